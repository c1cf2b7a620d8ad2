"""fmp-install --answers F [--yes] [--dry-run] ...: the headless install.

validate → discover → preflight → plan → confirm → run, with no questions.
Running the same command again resumes where the last run stopped.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from installer.answers import Answers
    from installer.plan_model import PlanResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "headless install",
        "fmp-install --answers FILE [options]: install with no questions. Run it again to "
        "resume after a failure or an interruption.",
    )
    g.add_argument("--answers", "-a", metavar="FILE", help="the answers.yaml to install")
    g.add_argument("--yes", "-y", action="store_true", help="go ahead without asking")
    g.add_argument(
        "--dry-run", action="store_true", help="show what would run (and be skipped), then stop"
    )
    g.add_argument(
        "--state-dir",
        metavar="DIR",
        help="journal, logs and secrets (default ~/.local/state/fmp-install/<cluster>)",
    )
    g.add_argument("--max-parallel", type=int, default=32, metavar="N", help="hosts at once (32)")
    g.add_argument("--fail-fast", action="store_true", help="stop launching after a failure")
    g.add_argument("--only", action="append", default=[], metavar="STEP", help="run only STEP")
    g.add_argument("--skip", action="append", default=[], metavar="STEP", help="skip STEP")
    g.add_argument(
        "--retry-interrupted",
        action="store_true",
        help="re-run non-idempotent steps that were cut off (check the host first)",
    )
    g.add_argument(
        "--break-locks", action="store_true", help="break stale host locks of a dead installer"
    )
    g.add_argument(
        "--rediscover",
        action="store_true",
        help="discover and check the hosts even when the last run finished with these answers",
    )
    g.add_argument(
        "--ignore-preflight",
        action="append",
        default=[],
        metavar="CHECK",
        help="go ahead although CHECK fails (e.g. cgroup); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import sys
    from pathlib import Path

    from rich.console import Console

    from installer import exitcodes
    from installer.answers import read_answers_text
    from installer.discover_report import render_findings
    from installer.journal import DB_NAME, default_state_dir
    from installer.pipeline import (
        connections_for,
        discover_and_check,
        load_for_run,
        plan_for_run,
        remember_facts,
    )
    from installer.report import HeadlessReporter

    if args.max_parallel < 1:
        print("error: --max-parallel must be at least 1", file=sys.stderr)
        return exitcodes.INVALID_INPUT
    answers = load_for_run(args.answers, os.environ)
    state = (
        Path(args.state_dir).expanduser()
        if args.state_dir
        else default_state_dir(answers.cluster.name)
    )
    # Piped output stays one finding per line, for whoever parses the log.
    console = Console(file=sys.stdout, soft_wrap=not sys.stdout.isatty())
    installed_before = (state / DB_NAME).exists()
    answers_text = read_answers_text(args.answers)
    fast_path = installed_before and not (args.rediscover or args.dry_run or args.only or args.skip)
    if fast_path and _already_done(answers, answers_text, state, console):
        return exitcodes.OK

    async def go() -> int:
        conns = connections_for(answers, os.environ)
        try:
            checked = await discover_and_check(answers, conns, installed_before=installed_before)
            report = checked.report
            ignored = set(args.ignore_preflight)
            blocking = [f for f in report.failures if f.check not in ignored]
            render_findings(report, console)
            if blocking:
                return exitcodes.PREFLIGHT_FAILED
            if not args.dry_run:
                remember_facts(state, answers_text, checked.gathered.facts)
            plan, store, redactor = plan_for_run(
                answers, checked.gathered.facts, state, save=not args.dry_run
            )
            from installer.headless import run_install

            code = await run_install(
                plan,
                state_dir=state,
                connect=conns.runner_connector(),
                secrets=store,
                yes=args.yes,
                dry_run=args.dry_run,
                reporter=HeadlessReporter(),
                consented_disks=answers.storage.wipe,
                max_parallel=args.max_parallel,
                fail_fast=args.fail_fast,
                only=args.only,
                skip=args.skip,
                retry_interrupted=args.retry_interrupted,
                break_locks=args.break_locks,
                redactor=redactor,
            )
            if code == exitcodes.OK and not args.dry_run:
                _deliver_result(state, plan.result, console)
            return code
        finally:
            await conns.close()

    return asyncio.run(go())


def _already_done(answers: Answers, answers_text: str, state: Path, console: Console) -> bool:
    """A finished install re-run with the same answers: say so without touching a host.

    Its facts are the ones it planned with; when every task is done with the
    same inputs, there is nothing to discover, check or run.
    """
    from installer.headless import planned_actions
    from installer.pipeline import plan_for_run, remembered_facts
    from installer.scheduler import Action

    facts = remembered_facts(state, answers, answers_text)
    if facts is None:
        return False
    plan, _store, _redactor = plan_for_run(answers, facts, state, save=False)
    actions, last_ok = planned_actions(plan, state)
    if not last_ok or any(a is not Action.SKIP_DONE for a in actions.values()):
        return False
    console.print(
        f"Nothing to do: all {len(plan.tasks)} steps of cluster {answers.cluster.name} are done "
        "with these answers, and no host was contacted. (--rediscover checks the hosts again.)"
    )
    _deliver_result(state, plan.result, console)
    return True


def _deliver_result(state: Path, result: PlanResult, console: Console) -> None:
    """Write the profile's ``kubeconfig`` capture next to the journal (0600), then say what
    the install made: the storage classes, and how to check the cluster."""
    from installer.kubeconfig import write_kubeconfig
    from installer.secrets import load_secrets, secrets_path

    captured = load_secrets(secrets_path(state)).captured.get("kubeconfig")
    if captured:
        path = write_kubeconfig(state, captured)
        console.print(f"kubeconfig: {path}")
    if result.storage_classes:
        console.print("storage classes: " + ", ".join(result.storage_classes))
    if result.checks:
        console.print("check it:")
        if captured:
            console.print(f"  export KUBECONFIG={path}", markup=False, highlight=False)
        for check in result.checks:
            console.print(f"  {check}", markup=False, highlight=False)
