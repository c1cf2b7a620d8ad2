"""``RealEngine``'s implementation: the wizard's calls mapped onto ``installer.*``.

Imported only when the wizard first needs the engine, and each function
imports the engine parts it uses, so the wizard starts without loading them.
Each function only converts the engine's answers into the view types the
screens show; the decisions are the engine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from installer.answers import Answers, Host
from installer.errors import OperatorError
from installer.events import RunSummary
from installer.hostfacts import HostFacts
from installer.plan_model import Plan
from installer.profile import ProfileMeta
from screens.engine_adapters import (
    CheckResult,
    DiscoveryFailed,
    DiskVerdict,
    DoneInfo,
    Feature,
    HostKeyPrompt,
    HostKeyQuestion,
    PlanPreview,
    PreflightView,
    RenderedFile,
    ResumeInfo,
    RunRequest,
    StorageEstimateView,
    Verdict,
    VolumeSpec,
)

# --------------------------------------------------------------------------- discovery


async def discover(
    answers: Answers,
    host: Host,
    environ: Mapping[str, str],
    on_unknown_key: HostKeyPrompt,
) -> HostFacts:
    """Reach one host and discover it with the pipeline's own pieces (``installer.gather``:
    discovery plus the sudo check), asking the operator about an unknown host key."""
    from installer.connections import Connections, ssh_connector
    from installer.gather import gather
    from installer.transport import TransportError

    known_hosts = answers.ssh_for(host).known_hosts

    async def ask(label: str, fingerprint: str) -> bool:
        return await on_unknown_key(
            HostKeyQuestion(
                host=label,
                address=host.address,
                key_type="",
                fingerprint=fingerprint,
                known_hosts=known_hosts,
            )
        )

    one = answers.model_copy(update={"hosts": [host]})
    conns = Connections([host.label], ssh_connector(one, environ, on_unknown_host_key=ask))
    try:
        (reach,) = await conns.reach_all()
        err = reach.error
        if isinstance(err, TransportError):
            raise DiscoveryFailed(err.kind.value, err.detail, err.hint)
        if isinstance(err, OperatorError):
            raise DiscoveryFailed("settings", err.message, err.hint)
        gathered = await gather(one, conns)  # reuses the connection just opened
    finally:
        await conns.close()
    problem = gathered.problems.get(host.label)
    if problem is not None:
        kind = "discovery incomplete" if host.label in gathered.facts else "not usable"
        if "sudo" in problem.message:
            kind = "sudo failed"
        raise DiscoveryFailed(kind, problem.message, problem.hint)
    facts: HostFacts = gathered.facts[host.label]
    return facts


# --------------------------------------------------------------------------- preflight


def preflight(
    answers: Answers,
    meta: ProfileMeta,
    facts: Mapping[str, HostFacts],
    now: float | None = None,
) -> PreflightView:
    from installer.preflight import check_title, run_preflight

    report = run_preflight(answers, meta, facts, now=time.time() if now is None else now)
    return _preflight_view(report, check_title)


def _preflight_view(report: Any, check_title: Any) -> PreflightView:
    findings = tuple(
        CheckResult(f.check, f.host, f.status, f.message, f.fix or "", f.detail)
        for f in report.findings
    )
    order = tuple(report.checks())
    return PreflightView(findings, order, tuple((c, str(check_title(c))) for c in order))


# --------------------------------------------------------------------------- storage


_DISK_STATUS = {"allowed": "allowed", "needs-wipe": "consent", "disallowed": "disallowed"}


def disk_verdicts(answers: Answers, host: Host, facts: HostFacts) -> list[DiskVerdict]:
    from installer.storage_disks import disk_candidates

    out = []
    for cand in disk_candidates(facts, host.label):
        if cand.status == "disallowed":
            reason = "; ".join(r.message for r in cand.reasons)
        elif cand.status == "needs-wipe":
            reason = "; ".join(r.message for r in cand.wipe_reasons)
        else:
            reason = ""
        warning = ""
        if not cand.disk_id.stable:
            warning = (
                f"no stable id (by-id link, WWN or unique serial): {cand.disk_id.answer_path} "
                "can change across reboots"
            )
        out.append(
            DiskVerdict(
                path=cand.path,
                stable_id=cand.disk_id.answer_path,
                status=_DISK_STATUS[cand.status],  # type: ignore[arg-type]
                reason=reason,
                warning=warning,
                aliases=tuple(sorted(cand.aliases())),
            )
        )
    return out


def features() -> list[Feature]:
    from installer.workloads import load_catalogue

    cat = load_catalogue()
    return [Feature(name, f.title, tuple(f.volumes), f.help) for name, f in cat.features.items()]


def _resolved(answers: Answers) -> list[Any]:
    from installer.workloads import load_catalogue, resolve_volumes

    volumes, _problems = resolve_volumes(load_catalogue(), answers.storage)
    return list(volumes)


def volumes(answers: Answers) -> list[VolumeSpec]:
    return [
        VolumeSpec(
            v.name,
            v.size_gib,
            v.shared,
            v.replicas if v.shared else None,
            v.title,
            v.feature,
        )
        for v in _resolved(answers)
    ]


def estimate(
    answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
) -> StorageEstimateView:
    from installer.storage import estimate_for_answers, format_estimate

    est = estimate_for_answers(answers, facts, _resolved(answers))
    lines = tuple(str(line) for line in format_estimate(est))
    problems = tuple(p.message for p in est.problems if p.severity == "error")
    fixes = tuple(p.fix for p in est.problems if p.fix)
    return StorageEstimateView(
        est.backend, _verdict(est.verdict), lines, problems, fixes, _summary(est)
    )


def _verdict(value: str) -> Verdict:
    return value if value in ("ok", "tight", "insufficient") else "none"  # type: ignore[return-value]


def _pct(u: float | None) -> str:
    return f" ({u:.0%})" if u is not None else ""


def _summary(est: Any) -> tuple[tuple[str, str, Verdict], ...]:
    """Required versus available, one row per part, from the estimate's own figures."""
    from installer.storage_model import fmt

    rows: list[tuple[str, str, Verdict]] = []
    s, u = est.shared, est.unshared
    if s.volumes or est.backend != "none":
        rows.append(
            (
                "Shared",
                f"{fmt(s.required_gib)} of {fmt(s.available_gib)}{_pct(s.utilization)}",
                _verdict(s.verdict),
            )
        )
    if u.volumes:
        where = f" on {u.tightest_node}" if u.tightest_node else ""
        # Nodes may need different amounts (volumes on every node versus workload nodes only):
        # the tightest node's own need goes with its free space.
        need = u.required_gib_tightest_node
        rows.append(
            (
                "Each node",
                f"{fmt(u.required_gib_per_node if need is None else need)} of "
                f"{fmt(u.available_gib_tightest_node)}{where}{_pct(u.utilization)}",
                _verdict(u.verdict),
            )
        )
    return tuple(rows)


# --------------------------------------------------------------------------- plan


def _state_dir(answers: Answers) -> Path:
    from installer.journal import default_state_dir

    path: Path = default_state_dir(answers.cluster.name)
    return path


def plan(
    answers: Answers,
    meta: ProfileMeta,
    facts: Mapping[str, HostFacts],
    now: float | None = None,
) -> PlanPreview:
    from installer.pipeline import plan_for_run

    the_plan, _store, redactor = plan_for_run(answers, facts, _state_dir(answers))
    files = tuple(
        RenderedFile(
            task.host,
            f.path,
            "" if f.secret else redactor.redact(f.content),
            f.secret,
        )
        for task in the_plan.tasks
        for f in task.files
    )
    findings = preflight(answers, meta, facts, now).findings
    wipes = tuple(dict.fromkeys((t.host, d) for t in the_plan.tasks for d in t.wipes))
    return PlanPreview(the_plan, files, findings, wipes)


# --------------------------------------------------------------------------- journal


def unfinished_run() -> ResumeInfo | None:
    """The most recent state directory whose journal has steps not done."""
    from installer.journal import DB_NAME, Journal
    from installer.paths import default_state_root

    root = default_state_root()
    if not root.is_dir():
        return None
    candidates = sorted(
        (p for p in root.iterdir() if (p / DB_NAME).is_file()),
        key=lambda p: (p / DB_NAME).stat().st_mtime,
        reverse=True,
    )
    for state in candidates:
        with Journal.open_readonly(state) as journal:
            tasks = journal.tasks()
            runs = journal.runs()
        if not tasks or not runs:
            continue
        done = sum(1 for t in tasks if t.status.value in ("done", "excluded"))
        if done == len(tasks):
            continue
        failed = tuple(
            f"{t.host}: {t.step}" + (f" (exit {t.exit_code})" if t.exit_code is not None else "")
            for t in tasks
            if t.status.value in ("failed", "interrupted")
        )
        last = runs[-1]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.started_at))
        answers_file = state / "answers.yaml"
        return ResumeInfo(
            cluster=state.name,
            state_dir=str(state),
            total=len(tasks),
            done=done,
            failed=failed,
            last_run=f"last run {when}, {last.status}",
            answers_path=str(answers_file) if answers_file.is_file() else None,
        )
    return None


def discard_run(info: ResumeInfo) -> None:
    """Move the journal aside (never deleted outright: it is the only record)."""
    from installer.journal import DB_NAME

    state = Path(info.state_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        p = state / name
        if p.exists():
            p.rename(state / f"{name}.discarded-{stamp}")


# --------------------------------------------------------------------------- the run


class _Handle:
    """A Runner started by the wizard; the App keeps it."""

    def __init__(self) -> None:
        self.runner: Any = None
        self.task: asyncio.Task[RunSummary | None] | None = None
        self.stop_requested = False

    def stop(self) -> None:
        self.stop_requested = True
        if self.runner is not None:
            self.runner.request_stop("stopped from the wizard")

    async def wait(self) -> RunSummary | None:
        if self.task is None:
            return None
        return await self.task


def start_run(request: RunRequest) -> _Handle:
    """Run the plan as the headless install does (``headless.run_journaled``), keeping the
    Runner to stop it."""
    from installer.events import EventBus
    from installer.headless import run_journaled, unconsented_wipes
    from installer.pipeline import connections_for
    from installer.profile import load_profile
    from installer.runner import Runner, RunOptions
    from installer.secrets import cluster_secrets
    from screens.save import save_answers

    answers = request.answers
    the_plan = request.preview.plan
    missing = unconsented_wipes(the_plan, answers.storage.wipe)
    if missing:
        disks = ", ".join(sorted({d for d, _ in missing}))
        raise OperatorError(f"the plan wipes disks that were not confirmed: {disks}")
    state = request.state_dir or _state_dir(answers)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The answers of this run, so that Welcome can offer to resume it (no secrets).
    save_answers(answers, state / "answers.yaml")
    profile = load_profile(answers.profile)
    _values, store, redactor = cluster_secrets(state, profile.spec.secrets)
    conns = connections_for(answers, dict(request.environ))
    handle = _Handle()

    def started(runner: Runner) -> None:
        handle.runner = runner
        if handle.stop_requested:
            runner.request_stop("stopped from the wizard")

    async def run() -> RunSummary | None:
        try:
            bus = EventBus()
            bus.subscribe(request.emit)
            return await run_journaled(
                the_plan,
                state,
                conns.runner_connector(),
                secrets=store,
                redactor=redactor,
                bus=bus,
                options=RunOptions(**request.options),
                started=started,
            )
        finally:
            await conns.close()

    handle.task = asyncio.get_running_loop().create_task(run())
    return handle


def done_info(
    answers: Answers, summary: RunSummary | None, plan: Plan | None, state_dir: Path
) -> DoneInfo:
    """Where the kubeconfig is (written from the profile's capture, as headless does), and
    what the plan says the operator gets: its storage classes and the checks to run."""
    from installer.kubeconfig import write_kubeconfig
    from installer.secrets import load_secrets, secrets_path

    net = answers.network
    endpoint = f"https://{net.vip}:{net.api_port}" if net.vip else None
    kubeconfig: str | None = None
    if summary is not None and summary.exit_code == 0:
        captured = load_secrets(secrets_path(state_dir)).captured.get("kubeconfig")
        if captured:
            kubeconfig = str(write_kubeconfig(state_dir, captured))
    result = plan.result if plan is not None else None
    checks = result.checks if result is not None else ()
    if kubeconfig and checks:
        checks = (f"export KUBECONFIG={kubeconfig}", *checks)
    return DoneInfo(
        kubeconfig=kubeconfig,
        api_endpoint=endpoint,
        storage_classes=result.storage_classes if result is not None else (),
        check_commands=checks,
        state_dir=str(state_dir),
    )
