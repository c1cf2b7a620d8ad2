"""fmp-install plan --answers F --out DIR [--facts FILE] [--json]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from installer.answers import Answers
    from installer.hostfacts import HostFacts
    from installer.plan_model import Plan
    from installer.redact import Redactor


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="render the install plan (every file per host, plan.txt, the DAG) without running it",
        description="Render the profile for an answers file without executing anything: every "
        "file each host gets (DIR/<host>/<path>), DIR/plan.txt (per host the ordered steps with "
        "their commands, and which steps wipe which disks) and, with --json, the DAG "
        "(DIR/plan.json). Secrets are shown as **** everywhere except in the files that must "
        "hold them. The profile's secrets are generated once and kept in "
        "STATE-DIR/secrets.yaml (mode 0600).",
    )
    p.add_argument("--answers", "-a", required=True, metavar="FILE", help="the answers.yaml")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="where to write the plan")
    p.add_argument(
        "--facts",
        metavar="FILE",
        help="host facts saved by `fmp-install discover --save-facts FILE`; "
        "without it the hosts are discovered now over SSH (read-only)",
    )
    p.add_argument("--json", action="store_true", help="also write the DAG to DIR/plan.json")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the cluster's state directory, which holds secrets.yaml "
        "(default: ~/.local/state/fmp-install/<cluster name>)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a profile option for this plan (e.g. cni=flannel); repeatable",
    )
    p.set_defaults(handler=run)


def _option_value(raw: str) -> str | int | bool:
    low = raw.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if raw.isdigit():
        return int(raw)
    return raw


def run(args: argparse.Namespace) -> int:
    import json

    from installer import exitcodes
    from installer.answers import load_answers
    from installer.errors import OperatorError
    from installer.paths import default_state_root
    from installer.plan import PlanError, facts_by_label, make_plan, plan_json, plan_text
    from installer.profile import ProfileError, load_profile
    from installer.secrets import (
        ensure_secrets,
        load_secrets,
        redactor_for,
        save_secrets,
        secrets_path,
    )

    answers = load_answers(args.answers)  # ProblemList is printed by cli.main
    try:
        profile = load_profile(answers.profile)
    except ProfileError as exc:
        raise OperatorError(f"profile {answers.profile} cannot be used:\n{exc}") from None
    options: dict[str, str | int | bool] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OperatorError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip()] = _option_value(value.strip())

    if args.facts:
        from installer.factsio import load_facts

        facts = facts_by_label(answers, load_facts(args.facts))
        source = str(args.facts)
    else:
        facts = _discover(answers)
        source = "discovery"
    unknown = [h.label for h in answers.hosts if h.label not in facts]
    if unknown:
        raise OperatorError(
            f"{source} has no facts for {', '.join(unknown)}",
            hint="make every host reachable (fmp-install discover shows why one is not), "
            "or save facts for all of them",
        )

    state_dir = (
        Path(args.state_dir).expanduser()
        if args.state_dir
        else default_state_root() / answers.cluster.name
    )
    spath = secrets_path(state_dir)
    store = load_secrets(spath)
    values, made = ensure_secrets(profile.spec.secrets, store.generated)
    if made:
        store.generated = values
        save_secrets(spath, store)
    try:
        plan = make_plan(answers, profile, facts=facts, secrets=values, options=options)
    except PlanError as exc:
        raise OperatorError(f"cannot plan: {exc}") from None
    redactor = redactor_for(profile.spec.secrets, values, store.captured.values())

    out = Path(args.out)
    written = write_host_files(plan, out, redactor)
    (out / "plan.txt").write_text(plan_text(plan, redactor, answers), encoding="utf-8")
    if args.json:
        doc = plan_json(plan, redactor)
        (out / "plan.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if made:
        print(f"generated secrets {', '.join(made)} in {spath}", file=sys.stderr)
    print(
        f"{out}/plan.txt: {len(plan.tasks)} tasks on {len(plan.hosts)} hosts, "
        f"{written} files under {out}/<host>/"
    )
    return exitcodes.OK


def write_host_files(plan: Plan, out: Path, redactor: Redactor) -> int:
    """Write every task's files under out/<host>/<path>. Secret files keep their secrets (0600)."""
    from installer.errors import OperatorError

    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for task in plan.tasks:
        host_dir = (out / task.host).resolve()
        for f in task.files:
            target = (host_dir / f.path.lstrip("/")).resolve()
            if not target.is_relative_to(host_dir):
                raise OperatorError(f"task {task.id}: file path {f.path} leaves the host folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            content = f.content if f.secret else redactor.redact(f.content)
            target.write_text(content, encoding="utf-8")
            target.chmod(0o600 if f.secret else (f.mode & 0o755) | 0o600)
            count += 1
    return count


def _discover(answers: Answers) -> dict[str, HostFacts]:
    """Facts of every reachable host, by a fresh discovery over SSH (nothing is changed)."""
    import asyncio
    import os

    from installer.gather import gather
    from installer.pipeline import connections_for

    async def go() -> dict[str, HostFacts]:
        conns = connections_for(answers, os.environ)
        try:
            return (await gather(answers, conns, check_sudo=False)).facts
        finally:
            await conns.close()

    return asyncio.run(go())
