"""How close the runner gets to the plan's critical path, and what lockstep would cost.

Runs synthetic plans with simulated step durations over the in-memory fake
transport (tests/fake_transport.py), with the real journal (fsync on every
transition) in a temporary state directory, and prints a markdown table:

- critical path: the longest chain of durations through ``needs``, with the
  tasks of a ``serial`` step chained in plan order (the best any schedule can do);
- runner: measured wall time of ``Runner.run``;
- one-per-host: the same runner policy (longest chain first, one task per
  host, serial steps) simulated with zero overhead: runner / one-per-host is
  the runner's own overhead (journal fsyncs, event loop); one-per-host /
  critical path is what one task at a time per host costs on that plan;
- lockstep: Ansible's linear strategy over the same durations (every step
  waits for all hosts to finish the previous one; a serial step sums its hosts).

    python bench/runner_schedule.py [--scale 0.05] [--repeat 3]

``--scale`` is wall seconds per simulated second. When the lab exists this is
the place to add a lab-backed variant with the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_transport import FakeNetwork, make_plan, make_task  # noqa: E402

from installer.events import EventBus  # noqa: E402
from installer.journal import Journal  # noqa: E402
from installer.plan_model import Plan, Task  # noqa: E402
from installer.runner import Runner, RunOptions  # noqa: E402
from installer.scheduler import priorities  # noqa: E402


@dataclass
class Case:
    name: str
    plan: Plan
    durations: dict[str, float]  # task id -> simulated seconds


def kubeadm_like(
    n_workers: int, seed: int, slow: str | None = None, *, linear: bool = False
) -> Case:
    """3 control planes with etcd, N workers: the shape of the kubeadm-etcd profile.

    ``linear``: each host's steps form one chain (etcd after the packages), as
    the profiles write them; otherwise etcd only needs prep, so a host has two
    branches that its one-task-at-a-time slot must order.
    """
    rnd = random.Random(seed)
    cps = ["cp1", "cp2", "cp3"]
    workers = [f"w{i + 1}" for i in range(n_workers)]
    hosts = cps + workers
    tasks: list[Task] = []
    dur: dict[str, float] = {}

    def add(
        host: str, step: str, seconds: float, needs: tuple[str, ...] = (), **kw: object
    ) -> None:
        t = make_task(host, step, needs=needs, **kw)
        tasks.append(t)
        factor = 3.0 if host == slow else 1.0
        dur[t.id] = seconds * factor

    for h in hosts:
        add(h, "prep", rnd.uniform(5, 15))
    for h in hosts:
        add(h, "containerd", rnd.uniform(20, 40), (f"{h}:prep",))
    for h in hosts:
        add(h, "kube-pkgs", rnd.uniform(15, 30), (f"{h}:containerd",))
    for h in cps:
        add(h, "etcd", rnd.uniform(10, 20), (f"{h}:kube-pkgs" if linear else f"{h}:prep",))
    for h in cps:
        add(h, "etcd-cluster", rnd.uniform(3, 6), tuple(f"{c}:etcd" for c in cps))
    add("cp1", "init", 60, ("cp1:kube-pkgs", *(f"{c}:etcd-cluster" for c in cps)))
    add("cp1", "cni", 10, ("cp1:init",))
    for h in cps[1:]:
        add(h, "cp-join", rnd.uniform(25, 35), (f"{h}:kube-pkgs", "cp1:init"), serial=True)
    for h in workers:
        add(h, "join", rnd.uniform(15, 25), (f"{h}:kube-pkgs", "cp1:init"))
    for h in hosts:
        last = "cni" if h == "cp1" else ("cp-join" if h in cps else "join")
        add(h, "verify", rnd.uniform(2, 5), (f"{h}:{last}",))
    # make_plan needs a topological order: the steps above are added in one.
    return Case(
        f"kubeadm-like, {len(hosts)} hosts"
        + (", linear per host" if linear else ", branching per host")
        + (", one 3x slower" if slow else ""),
        make_plan(tasks),
        dur,
    )


def critical_path(case: Case) -> float:
    finish: dict[str, float] = {}
    last_serial: dict[str, str] = {}
    for t in case.plan.tasks:
        needs = list(t.needs)
        if t.serial:
            prev = last_serial.get(t.step)
            if prev:
                needs.append(prev)
            last_serial[t.step] = t.id
        start = max((finish[n] for n in needs), default=0.0)
        finish[t.id] = start + case.durations[t.id]
    return max(finish.values())


def one_per_host(case: Case, max_parallel: int = 32) -> float:
    """The runner's policy, simulated: longest chain first, one task per host, serial steps."""
    prio = priorities(case.plan)
    index = {t.id: i for i, t in enumerate(case.plan.tasks)}
    order = sorted(case.plan.tasks, key=lambda t: (-prio[t.id], index[t.id]))
    done: set[str] = set()
    running: list[tuple[float, str]] = []  # (end time, task id)
    busy_hosts: set[str] = set()
    busy_serial: set[str] = set()
    waiting = list(order)
    now = 0.0
    by_id = {t.id: t for t in case.plan.tasks}
    while waiting or running:
        for t in list(waiting):
            if len(running) >= max_parallel:
                break
            if t.host in busy_hosts or (t.serial and t.step in busy_serial):
                continue
            if not all(n in done for n in t.needs):
                continue
            waiting.remove(t)
            busy_hosts.add(t.host)
            if t.serial:
                busy_serial.add(t.step)
            running.append((now + case.durations[t.id], t.id))
        running.sort()
        now, tid = running.pop(0)
        t = by_id[tid]
        done.add(tid)
        busy_hosts.discard(t.host)
        busy_serial.discard(t.step)
    return now


def lockstep(case: Case) -> float:
    """Ansible linear: a step starts on every host when the previous step ended everywhere."""
    steps: dict[str, list[Task]] = {}
    for t in case.plan.tasks:
        steps.setdefault(t.step, []).append(t)
    total = 0.0
    for tasks in steps.values():
        d = [case.durations[t.id] for t in tasks]
        total += sum(d) if tasks[0].serial else max(d)
    return total


async def measure(case: Case, scale: float) -> float:
    net = FakeNetwork(yields=1)
    # Longest ids first: "#task:cp1:etcd" is also in "#task:cp1:etcd-cluster".
    for tid, seconds in sorted(case.durations.items(), key=lambda kv: -len(kv[0])):
        net.on(f"#task:{tid}", delay=seconds * scale)
    with tempfile.TemporaryDirectory() as d, Journal.open(d) as journal:
        runner = Runner(
            case.plan,
            journal,
            net.connect,
            bus=EventBus(),
            options=RunOptions(operator="bench", max_parallel=32),
        )
        t0 = time.perf_counter()
        summary = await runner.run()
        wall = time.perf_counter() - t0
    if summary.exit_code != 0:
        raise SystemExit(f"{case.name}: run failed: {summary}")
    return wall / scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=0.05, help="wall seconds per simulated second")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = [
        kubeadm_like(3, seed=1, linear=True),
        kubeadm_like(3, seed=2, slow="w2", linear=True),
        kubeadm_like(29, seed=3, linear=True),
        kubeadm_like(3, seed=1),
        kubeadm_like(29, seed=3),
    ]
    print(f"scale: {args.scale} s per simulated second, median of {args.repeat} runs\n")
    print(
        "| plan | tasks | critical path (s) | one-per-host (s) | runner (s) "
        "| runner / critical path | runner / one-per-host | lockstep (s) | lockstep / runner |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        cp = critical_path(case)
        oph = one_per_host(case)
        ls = lockstep(case)
        runs = [asyncio.run(measure(case, args.scale)) for _ in range(args.repeat)]
        wall = statistics.median(runs)
        print(
            f"| {case.name} | {len(case.plan.tasks)} | {cp:.1f} | {oph:.1f} | {wall:.1f} "
            f"| {wall / cp:.3f} | {wall / oph:.3f} | {ls:.1f} | {ls / wall:.2f}x |"
        )


if __name__ == "__main__":
    main()
