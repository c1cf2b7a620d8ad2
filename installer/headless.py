"""``fmp-install --answers F``: confirm, then run the plan, with no questions.

The caller (the CLI) validates the answers, discovers the hosts, runs
preflight and renders the plan; ``run_install`` takes it from there:
consent checks (``--yes`` and every wiped disk named in ``storage.wipe``),
``--dry-run``, ``--only``/``--skip``, the journal, the run itself and the exit
code (0 installed, 1 a task failed, 2 refused for lack of consent, 4 locked,
130 interrupted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Protocol

from installer import exitcodes
from installer.errors import OperatorError
from installer.events import Event, EventBus, RunSummary
from installer.journal import DB_NAME, Journal, JournalCorrupt, StateLocked
from installer.plan_model import Plan
from installer.redact import Redactor
from installer.runner import (
    ConnectFactory,
    Runner,
    RunOptions,
    default_operator,
    install_signal_handlers,
)
from installer.scheduler import Action, PriorState, decide, selected
from installer.secrets import SecretStore, save_secrets, secrets_path


class Reporter(Protocol):
    """What headless output needs: events, plus plain notices (``report.HeadlessReporter``)."""

    def __call__(self, event: Event) -> None: ...

    def notice(self, text: str) -> None: ...


class SecretsFileVault:
    """The runner's store of secret captured values: the ``captured`` part of secrets.yaml."""

    def __init__(self, path: Path, store: SecretStore) -> None:
        self.path = path
        self.store = store

    def get(self, name: str) -> str | None:
        return self.store.captured.get(name)

    def put(self, name: str, value: str) -> None:
        if self.store.captured.get(name) == value:
            return
        self.store.captured[name] = value
        save_secrets(self.path, self.store)


def unconsented_wipes(
    plan: Plan, consented: Iterable[str], *, only: Collection[str] = (), skip: Collection[str] = ()
) -> list[tuple[str, str]]:
    """``(host:disk, task id)`` for every disk a selected destructive task wipes without consent.

    Consent may name a disk by any of its names the plan's facts know (``Plan.wipe_consent``):
    ``kn3:/dev/sdb`` consents to wiping ``serial:S3Z8...`` when that is the same disk.
    """
    ok = list(consented)
    missing: list[tuple[str, str]] = []
    for t in plan.tasks:
        if not selected(t, only, skip):
            continue
        for disk in t.wipes:
            if plan.wipe_consent(t, disk, ok) is None:
                missing.append((f"{t.host}:{disk}", t.id))
    return missing


def unknown_steps(plan: Plan, names: Iterable[str]) -> list[str]:
    steps = {t.step for t in plan.tasks}
    return sorted(set(names) - steps)


def render_dry_run(plan: Plan, actions: dict[str, Action], redactor: Redactor) -> str:
    """Per host, the ordered steps and what a real run would do with each."""
    what = {
        Action.RUN: "run",
        Action.SKIP_DONE: "skip (done)",
        Action.EXCLUDED: "excluded",
        Action.REFUSE_INTERRUPTED: "refused: interrupted earlier, needs --retry-interrupted",
    }
    lines = [f"Plan for cluster {plan.cluster} ({plan.profile}): {len(plan.tasks)} tasks"]
    hosts = list(dict.fromkeys(t.host for t in plan.tasks))
    for host in hosts:
        lines.append("")
        lines.append(f"{host}:")
        for t in plan.tasks:
            if t.host != host:
                continue
            flags = [
                f
                for f, on in (
                    ("serial", t.serial),
                    ("destructive", t.destructive),
                    ("not idempotent", not t.idempotent),
                )
                if on
            ]
            extra = f" [{', '.join(flags)}]" if flags else ""
            lines.append(f"  {what[actions[t.id]]:<12} {t.step}: {t.title}{extra}")
            for disk in t.wipes:
                lines.append(f"               WIPES {host}:{disk}")
            if actions[t.id] is Action.RUN:
                for cmd in redactor.redact(t.run).strip().splitlines()[:3]:
                    lines.append(f"               $ {cmd}")
    n_run = sum(1 for a in actions.values() if a is Action.RUN)
    lines.append("")
    lines.append(f"{n_run} of {len(plan.tasks)} tasks would run. Nothing was changed (--dry-run).")
    return "\n".join(lines)


async def run_install(
    plan: Plan,
    *,
    state_dir: Path | str,
    connect: ConnectFactory,
    secrets: SecretStore,
    yes: bool,
    dry_run: bool,
    reporter: Reporter,
    consented_disks: Collection[str] = (),
    max_parallel: int = 32,
    fail_fast: bool = False,
    only: Collection[str] = (),
    skip: Collection[str] = (),
    retry_interrupted: bool = False,
    break_locks: bool = False,
    redactor: Redactor | None = None,
    bus: EventBus | None = None,
    options: RunOptions | None = None,
    handle_signals: bool = True,
) -> int:
    """Confirm and run ``plan``; returns the exit code.

    ``consented_disks`` is the answers' ``storage.wipe`` (``host:/dev/...``, ``host:serial:...``).
    ``secrets`` is the loaded secrets.yaml (``installer.secrets.load_secrets``):
    captured secret values are added to it and saved, 0600, as they appear.
    ``redactor`` defaults to one masking every value in ``secrets``; pass
    ``installer.secrets.redactor_for(...)`` to leave public CA certificates
    readable. ``options`` overrides the run options built from the flags.
    """
    state = Path(state_dir).expanduser()
    red = redactor or Redactor(secrets.values())
    only_set, skip_set = frozenset(only), frozenset(skip)

    bad = unknown_steps(plan, [*only_set, *skip_set])
    if bad:
        known = ", ".join(sorted({t.step for t in plan.tasks}))
        reporter.notice(
            f"error: no step named {', '.join(bad)} in this plan (--only/--skip)\n"
            f"  hint: the steps are: {known}"
        )
        return exitcodes.INVALID_INPUT
    if not dry_run:
        missing = unconsented_wipes(plan, consented_disks, only=only_set, skip=skip_set)
        if missing:
            disks = sorted({d for d, _ in missing})
            steps = ", ".join(sorted({tid for _, tid in missing}))
            reporter.notice(
                f"error: the plan wipes disks that the answers do not list in storage.wipe: "
                f"{', '.join(disks)} (steps {steps}). Nothing was changed.\n"
                f"  hint: add them to storage.wipe in the answers file to consent, e.g.\n"
                f"    storage:\n      wipe: [{', '.join(disks)}]"
            )
            return exitcodes.INVALID_INPUT
        if not yes:
            hosts = sorted({t.host for t in plan.tasks})
            reporter.notice(
                f"error: a headless install changes {len(hosts)} hosts ({', '.join(hosts)}) and "
                "needs --yes to go ahead. Nothing was changed.\n"
                "  hint: review it first with --dry-run, then rerun with --yes"
            )
            return exitcodes.INVALID_INPUT

    opts = options or RunOptions(
        max_parallel=max_parallel,
        fail_fast=fail_fast,
        only=only_set,
        skip=skip_set,
        retry_interrupted=retry_interrupted,
        break_locks=break_locks,
        operator=default_operator(),
    )
    if dry_run:
        return _dry_run(plan, state, opts, red, reporter)
    events = bus or EventBus()
    unsubscribe = events.subscribe(reporter)
    try:
        summary = await run_journaled(
            plan,
            state,
            connect,
            secrets=secrets,
            redactor=red,
            bus=events,
            options=opts,
            started=install_signal_handlers if handle_signals else None,
        )
        return summary.exit_code
    except (StateLocked, JournalCorrupt) as exc:
        reporter.notice(f"error: {exc}")
        return exc.exit_code
    except OperatorError as exc:
        reporter.notice(f"error: {red.redact(str(exc))}")
        return exc.exit_code
    finally:
        unsubscribe()


async def run_journaled(
    plan: Plan,
    state: Path,
    connect: ConnectFactory,
    *,
    secrets: SecretStore,
    redactor: Redactor,
    bus: EventBus,
    options: RunOptions,
    started: Callable[[Runner], Callable[[], None] | None] | None = None,
) -> RunSummary:
    """Run ``plan`` with its journal and secrets vault in ``state``: the one way an install
    runs, headless or from the wizard.

    ``started`` gets the Runner before it runs (to stop it later, or to install signal
    handlers) and may return a clean-up to call when it ends. Raises StateLocked or
    JournalCorrupt when the journal cannot be opened.
    """
    journal = Journal.open(state, redactor=redactor)
    try:
        runner = Runner(
            plan,
            journal,
            connect,
            redactor=redactor,
            secrets=SecretsFileVault(secrets_path(state), secrets),
            bus=bus,
            options=options,
        )
        cleanup = started(runner) if started is not None else None
        try:
            return await runner.run()
        finally:
            if cleanup is not None:
                cleanup()
    finally:
        journal.close()


def planned_actions(
    plan: Plan, state: Path, opts: RunOptions | None = None
) -> tuple[dict[str, Action], bool]:
    """What a run of ``plan`` would do given the journal (read-only, no lock), and
    whether the journal's last run succeeded. Raises OperatorError for a bad journal."""
    opts = opts or RunOptions()
    prior: dict[str, PriorState] = {}
    hashes: dict[str, str] = {}
    last_ok = False
    if (state / DB_NAME).exists():
        with Journal.open_readonly(state) as journal:
            prior = {
                r.task_id: PriorState(r.status, r.input_hash, r.finished_at)
                for r in journal.tasks()
            }
            hashes = {name: c.value_hash for name, c in journal.captures().items()}
            runs = journal.runs()
            last_ok = bool(runs) and runs[-1].exit_code == exitcodes.OK
    actions = decide(
        plan,
        prior,
        hashes,
        only=opts.only,
        skip=opts.skip,
        retry_interrupted=opts.retry_interrupted,
        now=time.time(),
    )
    return actions, last_ok


def _dry_run(plan: Plan, state: Path, opts: RunOptions, red: Redactor, reporter: Reporter) -> int:
    """Show what a run would do, resume included, without creating or locking anything."""
    try:
        actions, _ = planned_actions(plan, state, opts)
    except OperatorError as exc:
        reporter.notice(f"error: {exc}")
        return exc.exit_code
    reporter.notice(render_dry_run(plan, actions, red))
    return exitcodes.OK
