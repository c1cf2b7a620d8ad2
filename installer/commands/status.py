"""fmp-install status [--answers F | --state-dir D] [--json]"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show what an install did: per host and step, status, times and failures",
        description="Read the install journal (safe while an install is running) and show, per "
        "host and step, the status, start and end times, attempts and failures.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--answers", "-a", metavar="FILE", help="the answers.yaml of the install (finds its state)"
    )
    where.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the install's state directory (default: ~/.local/state/fmp-install/<cluster>)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from installer import exitcodes
    from installer.errors import OperatorError

    if args.state_dir:
        state = Path(args.state_dir).expanduser()
    elif args.answers:
        from installer.answers import load_answers
        from installer.journal import default_state_dir

        state = default_state_dir(load_answers(args.answers, semantic=False).cluster.name)
    else:
        raise OperatorError(
            "status needs --answers FILE or --state-dir DIR to find the install",
            exit_code=exitcodes.INVALID_INPUT,
        )
    data = status_data(state)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(status_text(data) + "\n")
    return exitcodes.OK


def _iso(t: float | None) -> str | None:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t is not None else None


def status_data(state_dir: object) -> dict[str, object]:
    """The journal as plain data: runs, tasks grouped by host, failures, the lock holder."""
    from pathlib import Path

    from installer.journal import Journal, lock_holder

    state = Path(str(state_dir))
    with Journal.open_readonly(state) as journal:
        runs = journal.runs()
        tasks = journal.tasks()
    holder = lock_holder(state)
    hosts: dict[str, list[dict[str, object]]] = {}
    failures: list[dict[str, object]] = []
    counts: dict[str, int] = {}
    for t in tasks:
        duration = (
            round(t.finished_at - t.started_at, 3)
            if t.started_at is not None and t.finished_at is not None
            else None
        )
        row: dict[str, object] = {
            "task": t.task_id,
            "step": t.step,
            "title": t.title,
            "status": t.status.value,
            "attempts": t.attempts,
            "started": _iso(t.started_at),
            "finished": _iso(t.finished_at),
            "duration": duration,
            "exit_code": t.exit_code,
            "message": t.message,
        }
        hosts.setdefault(t.host, []).append(row)
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
        if t.status.value in ("failed", "interrupted"):
            failures.append(
                {
                    "task": t.task_id,
                    "host": t.host,
                    "step": t.step,
                    "status": t.status.value,
                    "exit_code": t.exit_code,
                    "message": t.message,
                    "command": t.command,
                    "last_lines": list(t.tail),
                }
            )
    return {
        "state_dir": str(state),
        "running": ({"pid": holder.pid, "since": holder.since} if holder is not None else None),
        "counts": counts,
        "runs": [
            {
                "run": r.run_id,
                "started": _iso(r.started_at),
                "finished": _iso(r.finished_at),
                "status": r.status,
                "exit_code": r.exit_code,
                "operator": r.operator,
                "message": r.message,
            }
            for r in runs
        ],
        "hosts": hosts,
        "failures": failures,
    }


def status_text(data: dict[str, object]) -> str:
    from typing import Any, cast

    d = cast(dict[str, Any], data)
    lines = [f"State: {d['state_dir']}"]
    running = d["running"]
    if running:
        lines.append(f"An install is running now: PID {running['pid']} since {running['since']}")
    runs = d["runs"]
    if runs:
        last = runs[-1]
        code = f", exit {last['exit_code']}" if last["exit_code"] is not None else ""
        lines.append(
            f"Last run {last['run']} by {last['operator']}: {last['status']}{code}, "
            f"started {last['started']}"
            + (f", ended {last['finished']}" if last["finished"] else "")
        )
        if len(runs) > 1:
            lines.append(f"({len(runs)} runs in the history)")
    counts = d["counts"]
    if counts:
        lines.append("Tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for host, rows in d["hosts"].items():
        lines.append("")
        lines.append(f"{host}:")
        for r in rows:
            when = r["started"] or ""
            if r["duration"] is not None:
                when += f" ({r['duration']:.1f}s)"
            code = f" exit {r['exit_code']}" if r["exit_code"] not in (None, 0) else ""
            tries = f" x{r['attempts']}" if r["attempts"] > 1 else ""
            lines.append(f"  {r['status']:<11} {r['step']:<24} {when}{code}{tries}")
    for f in d["failures"]:
        lines.append("")
        code = f"exit {f['exit_code']}" if f["exit_code"] is not None else "no exit code"
        lines.append(f"{f['status'].upper()}: {f['host']} / {f['step']} ({code})")
        if f["message"]:
            lines.append(f"  {f['message']}")
        if f["command"]:
            lines.append("  command:")
            lines += [f"    {c}" for c in str(f["command"]).splitlines()[:15]]
        if f["last_lines"]:
            lines.append("  last lines:")
            lines += [f"    | {x}" for x in f["last_lines"]]
    return "\n".join(lines)
