"""Synthetic plans with known step durations, and the schedules to compare a run with.

Shared by ``runner_schedule.py`` (in-memory transport) and ``runner_lab.py``
(the lab over real SSH), so both measure the same plans against the same
bounds:

- ``critical_path``: the longest chain of durations through ``needs``, with the
  tasks of a ``serial`` step chained in plan order (the best any schedule can do);
- ``one_per_host``: the runner's policy (longest chain first, one task per host,
  serial steps one host at a time) simulated with zero overhead;
- ``busiest_host``: the largest total of one host's durations (with ``critical_path``,
  a lower bound for any schedule that runs one task at a time per host);
- ``one_per_host_bound``: a tighter such lower bound (a task waits for its
  ancestors, and those on one host run one after the other);
- ``lockstep``: Ansible's linear strategy over the same durations (every step
  waits for all hosts to finish the previous one; a serial step sums its hosts).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from fake_transport import make_plan, make_task  # noqa: E402

from installer.plan_model import Plan, Task  # noqa: E402
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

    Every task's run command ends with ``#task:<host>:<step>`` (``make_task``).
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


def predecessors(case: Case) -> dict[str, list[str]]:
    """Each task's needs, plus the previous host's task of a ``serial`` step (plan order)."""
    preds: dict[str, list[str]] = {}
    last_serial: dict[str, str] = {}
    for t in case.plan.tasks:
        needs = list(t.needs)
        if t.serial:
            prev = last_serial.get(t.step)
            if prev:
                needs.append(prev)
            last_serial[t.step] = t.id
        preds[t.id] = needs
    return preds


def critical_path(case: Case) -> float:
    finish: dict[str, float] = {}
    for tid, needs in predecessors(case).items():
        start = max((finish[n] for n in needs), default=0.0)
        finish[tid] = start + case.durations[tid]
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


def busiest_host(case: Case) -> float:
    """The largest sum of one host's task durations.

    With one task at a time per host no schedule ends sooner, so
    ``max(critical_path, busiest_host)`` bounds every one-task-per-host schedule
    from below (``one_per_host`` is the runner's policy, not a bound).
    """
    per_host: dict[str, float] = {}
    for t in case.plan.tasks:
        per_host[t.host] = per_host.get(t.host, 0.0) + case.durations[t.id]
    return max(per_host.values())


def one_per_host_bound(case: Case) -> float:
    """A lower bound for every schedule that runs one task at a time per host.

    The critical path, tightened by the hosts: a task starts only after all its
    ancestors, and those on one host run one after the other, none before its
    own earliest start (single-machine bound: earliest of their starts plus the
    sum of their durations). Also never less than ``busiest_host``. Serial steps
    are chained in plan order, as in ``critical_path``.
    """
    by_id = {t.id: t for t in case.plan.tasks}
    preds = predecessors(case)
    ancestors: dict[str, set[str]] = {}
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    for t in case.plan.tasks:
        anc: set[str] = set()
        for n in preds[t.id]:
            anc |= ancestors[n] | {n}
        ancestors[t.id] = anc
        s = max((finish[n] for n in preds[t.id]), default=0.0)
        per_host: dict[str, list[str]] = {}
        for a in anc:
            per_host.setdefault(by_id[a].host, []).append(a)
        for group in per_host.values():
            s = max(s, min(start[a] for a in group) + sum(case.durations[a] for a in group))
        start[t.id] = s
        finish[t.id] = s + case.durations[t.id]
    return max(max(finish.values()), busiest_host(case))
