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

``--scale`` is wall seconds per simulated second. The plans and the three
bounds live in ``schedule_model.py``; ``runner_lab.py`` runs the same plans
against the lab over real SSH.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from fake_transport import FakeNetwork  # noqa: E402
from schedule_model import Case, critical_path, kubeadm_like, lockstep, one_per_host  # noqa: E402

from installer.events import EventBus  # noqa: E402
from installer.journal import Journal  # noqa: E402
from installer.runner import Runner, RunOptions  # noqa: E402


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
