"""The runner against the lab over real SSH: wall time vs the plan's critical path and lockstep.

The lab version of ``runner_schedule.py``: the same synthetic kubeadm-like plans
(``schedule_model.py``), but every task is a real command (``echo <step>``)
sent over a real SSH connection (asyncssh, host keys pinned) to a lab node,
run in the node's namespaces by bash, and held there by the lab's
``durations`` spec key for exactly the step's simulated duration times
``--scale``. The runner is the real ``Runner`` with a real ``Journal`` (SQLite,
fsync at every transition) in a temporary state directory, connections made
as a real run makes them (``pipeline.connections_for`` on the lab's
``answers.yaml``; opened before the clock starts, as discovery does in a real
run; host locks taken and released inside the measured time).

One lab per node count (nodes named cp1..cp3, w1..wN like the plans' hosts),
on a random 127.x.y.0/24 of its own; every case's commands carry a case tag
so that one lab's ``durations`` serve all its cases. ``profile`` adds the
kubeadm-etcd profile's own plan on a fresh 6-node lab per run (discover,
preflight, plan, ``headless.run_install``, the shims doing the real work),
each task's run command held for a per-step time (``PROFILE_HOLDS`` x
``--scale``); a task whose check finds it done runs no command and counts
0 s. The lab is always stopped (``fmp-install lab down``, which kills only
the PIDs it recorded), also on an error or SIGTERM.

Columns (seconds are wall seconds):

- critical path / one-per-host / lockstep: as in ``runner_schedule.py``,
  computed by ``schedule_model`` from the durations the lab enforces;
- runner: ``Runner.run()`` from call to return (host locks, every task,
  unlocks, closing the connections);
- the second table: what one task at a time per host costs on the plan,
  ``schedule_model.one_per_host_bound`` (no such schedule can end sooner) and
  the runner against it;
- the third table explains the gap, for the median run: per-task overhead
  (from the task's start event to its end event, minus the time the lab holds
  its command: SSH channel, the node's bash, two journal commits, and for the
  profile the check, the uploads and any real work longer than the hold);
  the critical path and one-per-host bound recomputed from the measured task
  times (what a zero-overhead scheduler would reach with those task costs);
  the time before the first task starts (host locks) and after the last one
  ends (unlocks, close).

    python bench/runner_lab.py [--scale 0.5] [--repeat 3] [--only 6,12,32,profile]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from schedule_model import (  # noqa: E402
    Case,
    busiest_host,
    critical_path,
    kubeadm_like,
    lockstep,
    one_per_host,
    one_per_host_bound,
)

from installer.answers import load_answers  # noqa: E402
from installer.events import Event, EventBus, TaskFinished, TaskSkipped, TaskStarted  # noqa: E402
from installer.headless import run_install  # noqa: E402
from installer.journal import Journal  # noqa: E402
from installer.pipeline import (  # noqa: E402
    connections_for,
    discover_and_check,
    load_for_run,
    plan_for_run,
)
from installer.plan_model import Plan, PlanHost, Task  # noqa: E402
from installer.runner import Runner, RunOptions  # noqa: E402
from tests.e2e import isolated_spec  # noqa: E402
from tests.labkit import cli  # noqa: E402

MAX_PARALLEL = 32


@dataclass
class LabCase:
    """A schedule_model case in wall seconds, its commands tagged for the lab."""

    tag: str
    case: Case  # durations in wall seconds (simulated seconds x scale)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(t.host for t in self.case.plan.tasks))

    def marker(self, task_id: str) -> str:
        return f"#task:{task_id} case={self.tag}."

    def durations_spec(self) -> list[dict[str, Any]]:
        return [
            {"match": re.escape(self.marker(tid)), "seconds": round(seconds, 3)}
            for tid, seconds in self.case.durations.items()
        ]


def lab_case(tag: str, case: Case, scale: float) -> LabCase:
    """``case`` with its commands tagged (``#task:<id> case=<tag>.``) and durations scaled."""
    tasks = tuple(
        dataclasses.replace(t, run=f"{t.run} case={tag}.", title=f"{t.step} ({tag})")
        for t in case.plan.tasks
    )
    plan = dataclasses.replace(case.plan, tasks=tasks, cluster=f"bench-{tag}")
    durations = {tid: round(s * scale, 3) for tid, s in case.durations.items()}
    return LabCase(tag, Case(case.name, plan, durations))


@dataclass
class Run:
    wall: float
    started: dict[str, float] = field(default_factory=dict)  # task id -> seconds after t0
    finished: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0  # this process's user+sys during the run


# -- the lab ------------------------------------------------------------------------


class Lab:
    """``fmp-install lab up`` in ``root/lab`` with ``spec`` (on a loopback /24 of its own)."""

    def __init__(self, root: Path, spec: dict[str, Any], profile: str | None = None) -> None:
        self.root = root
        self.spec = isolated_spec(spec)
        self.profile = profile
        self.dir = root / "lab"

    def up(self) -> None:
        spec_file = self.root / "lab-spec.yaml"
        spec_file.write_text(yaml.safe_dump(self.spec))
        extra = ["--profile", self.profile] if self.profile else []
        t0 = time.perf_counter()
        r = cli(
            "lab", "up", "--dir", str(self.dir), "--spec", str(spec_file), *extra, timeout=300
        )  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(f"lab up failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        nodes = len(self.spec.get("nodes") or []) or 6
        print(
            f"lab up: {nodes} nodes on {self.spec['base_address']}.. "
            f"in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )

    def down(self) -> None:
        r = cli("lab", "down", "--dir", str(self.dir), timeout=120)
        if r.returncode != 0:
            print(f"lab down failed ({r.returncode}):\n{r.stdout}{r.stderr}", file=sys.stderr)


def synthetic_spec(hosts: list[str], cases: list[LabCase]) -> dict[str, Any]:
    return {
        "cluster_name": "bench",
        "nodes": [{"name": h} for h in hosts],
        "durations": [d for c in cases for d in c.durations_spec()],
    }


class Recorder:
    """When each task started and finished, in seconds after ``t0``."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.satisfied: set[str] = set()  # its check said done: the run command did not run

    def __call__(self, ev: Event) -> None:
        now = time.perf_counter() - self.t0
        if isinstance(ev, TaskStarted):
            self.started.setdefault(ev.task_id, now)
        elif isinstance(ev, TaskFinished):
            self.finished[ev.task_id] = now
        elif isinstance(ev, TaskSkipped) and ev.reason == "check-satisfied":
            self.finished[ev.task_id] = now
            self.satisfied.add(ev.task_id)

    def notice(self, text: str) -> None:  # headless.Reporter
        print(text, file=sys.stderr)


async def measure(lab: Lab, lc: LabCase, state: Path) -> Run:
    """One run of a synthetic plan: the real Runner and Journal over SSH to the lab."""
    answers = load_answers(lab.dir / "answers.yaml")
    addresses = {h.label: str(h.address) for h in answers.hosts}
    plan = dataclasses.replace(
        lc.case.plan,
        hosts=tuple(PlanHost(h, addresses[h], ()) for h in lc.hosts),
    )
    conns = connections_for(answers, os.environ)
    try:
        # A real run has discovered every host (and so connected) before the plan runs.
        for reach in await conns.reach_all():
            if reach.error is not None:
                raise SystemExit(f"{reach.label}: {reach.error}")
        bus = EventBus()
        rec = Recorder()
        bus.subscribe(rec)
        with Journal.open(state) as journal:
            runner = Runner(
                plan,
                journal,
                conns.runner_connector(),
                bus=bus,
                options=RunOptions(operator="bench", max_parallel=MAX_PARALLEL),
            )
            cpu0 = _cpu()
            rec.t0 = time.perf_counter()
            summary = await runner.run()
            wall = time.perf_counter() - rec.t0
            cpu = _cpu() - cpu0
        if summary.exit_code != 0:
            raise SystemExit(f"{lc.case.name}: run failed: {summary}")
        return Run(wall, rec.started, rec.finished, cpu)
    finally:
        await conns.close()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- analysis -----------------------------------------------------------------------


@dataclass
class Row:
    lc: LabCase
    runs: list[Run]
    load_before: float
    load_after: float

    @property
    def run(self) -> Run:
        """The median run (by wall time)."""
        ordered = sorted(self.runs, key=lambda r: r.wall)
        return ordered[(len(ordered) - 1) // 2]

    def overheads(self) -> list[float]:
        r = self.run
        return [r.finished[t] - r.started[t] - d for t, d in self.lc.case.durations.items()]

    def measured(self) -> Case:
        """The plan with each task's measured time (start event to end event) as duration."""
        r = self.run
        c = self.lc.case
        return Case(c.name, c.plan, {t: r.finished[t] - r.started[t] for t in c.durations})


def _row_json(row: Row) -> dict[str, Any]:
    c = row.lc.case
    return {
        "name": c.name,
        "tag": row.lc.tag,
        "tasks": [
            {"id": t.id, "host": t.host, "step": t.step, "needs": list(t.needs), "serial": t.serial}
            for t in c.plan.tasks
        ],
        "durations": c.durations,
        "runs": [dataclasses.asdict(r) for r in row.runs],
        "load": [row.load_before, row.load_after],
    }


def _row_from_json(d: dict[str, Any]) -> Row:
    tasks = tuple(
        Task(
            id=t["id"],
            host=t["host"],
            step=t["step"],
            title=t["step"],
            needs=tuple(t["needs"]),
            run="",
            serial=t["serial"],
        )
        for t in d["tasks"]
    )
    hosts = tuple(PlanHost(h, "", ()) for h in dict.fromkeys(t.host for t in tasks))
    plan = Plan(cluster="bench", profile="bench", hosts=hosts, tasks=tasks)
    lc = LabCase(d["tag"], Case(d["name"], plan, d["durations"]))
    return Row(lc, [Run(**r) for r in d["runs"]], d["load"][0], d["load"][1])


def print_tables(rows: list[Row]) -> None:
    print(
        "| plan | tasks | critical path (s) | one-per-host (s) | runner (s) "
        "| runner / critical path | runner / one-per-host | lockstep (s) | lockstep / runner |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        c = row.lc.case
        cp, oph, ls = critical_path(c), one_per_host(c, MAX_PARALLEL), lockstep(c)
        wall = statistics.median(r.wall for r in row.runs)
        print(
            f"| {c.name} | {len(c.plan.tasks)} | {cp:.1f} | {oph:.1f} | {wall:.1f} "
            f"| {wall / cp:.3f} | {wall / oph:.3f} | {ls:.1f} | {ls / wall:.2f}x |"
        )
    print()
    print(
        "| plan | busiest host (s) | one-task-per-host lower bound (s) "
        "| one-per-host / bound | runner / bound |"
    )
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        c = row.lc.case
        bound = one_per_host_bound(c)
        wall = statistics.median(r.wall for r in row.runs)
        print(
            f"| {c.name} | {busiest_host(c):.1f} | {bound:.1f} "
            f"| {one_per_host(c, MAX_PARALLEL) / bound:.3f} | {wall / bound:.3f} |"
        )
    print()
    print(
        "| plan | runs, wall s | per-task overhead min / median / max (ms) "
        "| measured times: critical path (s) | measured times: one-per-host (s) "
        "| runner / measured one-per-host | before first task (ms) | after last task (ms) "
        "| runner CPU (s) | load before / after |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        r = row.run
        ov = row.overheads()
        m = row.measured()
        mcp, moph = critical_path(m), one_per_host(m, MAX_PARALLEL)
        first = min(r.started.values())
        last = max(r.finished.values())
        print(
            f"| {row.lc.case.name} | {', '.join(f'{x.wall:.2f}' for x in row.runs)} "
            f"| {min(ov) * 1000:.0f} / {statistics.median(ov) * 1000:.0f} / {max(ov) * 1000:.0f} "
            f"| {mcp:.1f} | {moph:.1f} | {r.wall / moph:.3f} "
            f"| {first * 1000:.0f} | {(r.wall - last) * 1000:.0f} "
            f"| {r.cpu:.2f} | {row.load_before:.2f} / {row.load_after:.2f} |"
        )
    for row in rows:
        slowest = sorted(zip(row.overheads(), row.lc.case.durations, strict=True), reverse=True)[:3]
        print(
            f"\n{row.lc.case.name}: largest per-task overheads (median run): "
            + ", ".join(f"{tid} +{o * 1000:.0f} ms" for o, tid in slowest)
        )


# -- main ---------------------------------------------------------------------------


def cases_for(n_hosts: int, scale: float) -> list[LabCase]:
    workers = n_hosts - 3
    if n_hosts == 6:
        raw = [
            kubeadm_like(workers, seed=1, linear=True),
            kubeadm_like(workers, seed=2, slow="w2", linear=True),
            kubeadm_like(workers, seed=1),
        ]
    else:
        raw = [kubeadm_like(workers, seed=3, linear=True), kubeadm_like(workers, seed=3)]
    return [lab_case(f"c{n_hosts}x{i}", c, scale) for i, c in enumerate(raw)]


Sink = Callable[[Row], None]


def run_lab(n_hosts: int, args: argparse.Namespace, sink: Sink, failed: list[str]) -> None:
    cases = cases_for(n_hosts, args.scale)
    with tempfile.TemporaryDirectory(prefix="fmp-runner-lab-") as tmp:
        lab = Lab(Path(tmp), synthetic_spec(cases[0].hosts, cases))
        try:
            lab.up()
            for lc in cases:
                try:
                    load_before = os.getloadavg()[0]
                    runs = []
                    for i in range(args.repeat):
                        state = Path(tmp) / f"state-{lc.tag}-{i}"
                        run = asyncio.run(measure(lab, lc, state))
                        _progress(lc, run, i)
                        runs.append(run)
                    sink(Row(lc, runs, load_before, os.getloadavg()[0]))
                except Exception as exc:  # one case failing must not lose the others
                    failed.append(f"{lc.case.name}: {_failure(exc)}")
        finally:
            lab.down()


def _failure(exc: BaseException) -> str:
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}"


def _progress(lc: LabCase, run: Run, i: int) -> None:
    print(
        f"{lc.case.name}: run {i + 1}: {run.wall:.2f}s "
        f"(critical path {critical_path(lc.case):.2f}s)",
        file=sys.stderr,
    )


# -- the kubeadm-etcd profile's own plan ----------------------------------------------

# Simulated seconds each step's run command is held for (before --scale): the
# order of magnitude of the real step on a real host (packages from the
# internet, kubeadm init). Steps not named here get DEFAULT_HOLD.
PROFILE_HOLDS = {
    "tools": 10,
    "k8s-apt-repo": 8,
    "kernel-modules": 2,
    "containerd-install": 30,
    "k8s-packages": 40,
    "hosts-file": 2,
    "sysctls": 2,
    "swap-off": 2,
    "containerd-config": 6,
    "chrony": 10,
    "etcd-install": 20,
    "etcd-certs": 10,
    "etcd-service": 8,
    "etcd-health": 4,
    "lb-haproxy": 10,
    "lb-keepalived": 8,
    "etcd-client-cert": 4,
    "kubeadm-init": 60,
    "kubeadm-join-control-plane": 30,
    "cni-calico": 10,
    "kubeadm-join-worker": 20,
    "ingress-nginx": 10,
    "etcd-backup": 4,
    "cluster-ready": 10,
    "hostname": 2,
    "kubeconfig": 2,
}
DEFAULT_HOLD = 4.0


def hold_for(step: str, scale: float) -> float:
    """Wall seconds, rounded to a 0.5 s bucket (one lab ``durations`` entry per bucket)."""
    return max(0.5, round(PROFILE_HOLDS.get(step, DEFAULT_HOLD) * scale * 2) / 2)


def hold_marker(seconds: float) -> str:
    return f"fmp-bench-hold={seconds:g}s"


def profile_spec(scale: float) -> dict[str, Any]:
    buckets = sorted({hold_for(step, scale) for step in [*PROFILE_HOLDS, ""]})
    return {
        "cluster_name": "bench",
        "durations": [{"match": re.escape(hold_marker(b)) + r"\b", "seconds": b} for b in buckets],
    }


async def measure_profile(lab: Lab, state: Path, scale: float) -> tuple[LabCase, Run]:
    """One fresh install of the profile's real plan (discover, preflight, plan, run_install).

    Each task's run command gets a last line ``# fmp-bench-hold=Ns``, which the lab
    holds for N seconds; the real shims run as in the end-to-end tests.
    """
    answers = load_for_run(lab.dir / "answers.yaml", os.environ)
    conns = connections_for(answers, os.environ)
    try:
        checked = await discover_and_check(answers, conns)
        if checked.report.failures:
            raise SystemExit(f"preflight failed: {checked.report.failures}")
        plan, store, redactor = plan_for_run(answers, checked.gathered.facts, state)
        tasks = tuple(
            dataclasses.replace(t, run=f"{t.run}\n# {hold_marker(hold_for(t.step, scale))}")
            for t in plan.tasks
        )
        plan = dataclasses.replace(plan, tasks=tasks)
        rec = Recorder()
        bus = EventBus()
        bus.subscribe(rec)
        cpu0 = _cpu()
        rec.t0 = time.perf_counter()
        code = await run_install(
            plan,
            state_dir=state,
            connect=conns.runner_connector(),
            secrets=store,
            yes=True,
            dry_run=False,
            reporter=rec,
            consented_disks=answers.storage.wipe,
            redactor=redactor,
            bus=bus,
            options=RunOptions(operator="bench", max_parallel=MAX_PARALLEL),
            handle_signals=False,
        )
        wall = time.perf_counter() - rec.t0
        if code != 0:
            raise SystemExit(f"profile install failed: exit {code} (journal in {state})")
        # A task whose check found it done ran no command for the lab to hold.
        durations = {
            t.id: 0.0 if t.id in rec.satisfied else hold_for(t.step, scale) for t in plan.tasks
        }
        name = f"kubeadm-etcd profile plan, {len(plan.hosts)} hosts"
        lc = LabCase("profile", Case(name, plan, durations))
        return lc, Run(wall, rec.started, rec.finished, _cpu() - cpu0)
    finally:
        await conns.close()


def run_profile(args: argparse.Namespace, sink: Sink, failed: list[str]) -> None:
    """A new lab for every run: an install changes the nodes for good."""
    runs: list[Run] = []
    lc: LabCase | None = None
    load_before = os.getloadavg()[0]
    try:
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="fmp-runner-lab-") as tmp:
                lab = Lab(Path(tmp), profile_spec(args.scale), profile="kubeadm-etcd")
                try:
                    lab.up()
                    lc, run = asyncio.run(measure_profile(lab, Path(tmp) / "state", args.scale))
                finally:
                    lab.down()
                _progress(lc, run, i)
            runs.append(run)
    except Exception as exc:
        failed.append(f"kubeadm-etcd profile plan: {_failure(exc)}")
    if lc is not None and runs:
        sink(Row(lc, runs, load_before, os.getloadavg()[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=0.5, help="wall seconds per simulated second")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--json-out", type=Path, default=None, help="keep every run's task times (after each case)"
    )
    ap.add_argument(
        "--from-json", type=Path, default=None, help="print the tables of a --json-out file again"
    )
    ap.add_argument(
        "--only",
        default="6,12,32,profile",
        help="what to run, comma-separated: a node count N >= 4 (the synthetic plans on N "
        "nodes: 3 control planes, N-3 workers) and/or profile (the kubeadm-etcd profile's "
        "own plan on 6 nodes)",
    )
    args = ap.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if any(x != "profile" and not (x.isdigit() and int(x) >= 4) for x in only):
        ap.error("--only takes node counts (4 or more) and/or profile")

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through lab.down()

    signal.signal(signal.SIGTERM, on_term)
    if args.from_json is not None:
        data = json.loads(args.from_json.read_text())
        _print_report(data["meta"], [_row_from_json(r) for r in data["rows"]], data["failed"])
        return
    meta = {
        "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "cpu": f"{_cpu_model()} x {os.cpu_count()}",
        "before": _uptime(),
        "scale": args.scale,
        "repeat": args.repeat,
        "argv": sys.argv[1:],
    }
    rows: list[Row] = []
    failed: list[str] = []

    def sink(row: Row) -> None:
        rows.append(row)
        save()

    def save() -> None:
        if args.json_out is not None:
            data = {"meta": meta, "rows": [_row_json(r) for r in rows], "failed": failed}
            args.json_out.write_text(json.dumps(data, indent=1))

    for what in only:
        try:
            if what == "profile":
                run_profile(args, sink, failed)
            else:
                run_lab(int(what), args, sink, failed)
        except Exception as exc:  # e.g. lab up failed
            failed.append(f"{what}: {_failure(exc)}")
    meta["after"] = _uptime()
    save()
    _print_report(meta, rows, failed)
    if failed:
        sys.exit(1)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _print_report(meta: dict[str, Any], rows: list[Row], failed: list[str]) -> None:
    print(f"date: {meta['date']}; {meta['cpu']}")
    print(f"before: {meta['before']}")
    print(
        f"scale: {meta['scale']} wall s per simulated second; median of {meta['repeat']} "
        "runs; seconds below are wall seconds\n"
    )
    print_tables(rows)
    for f in failed:
        print(f"\nFAILED: {f}")
    print(f"\nafter: {meta.get('after', '?')}")


if __name__ == "__main__":
    main()
