"""Pure decisions of the runner: what a rerun skips, what runs, what a failure blocks.

No I/O here: the runner feeds in the plan, the journal rows and the known
captures, and gets back one decision per task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from installer.events import TaskStatus
from installer.plan_model import Plan, Task

MISSING = "missing"


class Action(StrEnum):
    RUN = "run"
    SKIP_DONE = "skip-done"  # done before with the same effective inputs
    EXCLUDED = "excluded"  # --only / --skip
    REFUSE_INTERRUPTED = (
        "refuse-interrupted"  # not idempotent, died midway: needs --retry-interrupted
    )


@dataclass(frozen=True)
class PriorState:
    """What the journal knows about a task (the parts decisions need)."""

    status: TaskStatus
    input_hash: str
    finished_at: float | None = None  # epoch seconds it last ended


def stale_tasks(plan: Plan, prior: Mapping[str, PriorState], now: float) -> set[str]:
    """Done tasks whose products expired: they ended longer ago than their ``fresh_for``."""
    stale = set()
    for t in plan.tasks:
        p = prior.get(t.id)
        if (
            t.fresh_for is not None
            and p is not None
            and p.status is TaskStatus.DONE
            and p.finished_at is not None
            and now - p.finished_at > t.fresh_for
        ):
            stale.add(t.id)
    return stale


def capture_producers(plan: Plan) -> dict[str, str]:
    """Capture name -> the id of the task that captures it."""
    return {c.name: t.id for t in plan.tasks for c in t.captures}


def value_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def effective_hash(task: Task, capture_hashes: Mapping[str, str]) -> str:
    """The task's input hash plus the hashes of the captured values it reads."""
    h = hashlib.sha256(task.input_hash.encode())
    for name in sorted(task.uses):
        h.update(f"\0{name}={capture_hashes.get(name, MISSING)}".encode())
    return h.hexdigest()


def check_plan(plan: Plan) -> None:
    """Task ids unique, needs known and earlier in the plan (so it is a DAG)."""
    seen: set[str] = set()
    for t in plan.tasks:
        if t.id in seen:
            raise ValueError(f"plan has task {t.id} twice")
        for need in t.needs:
            if need not in seen:
                raise ValueError(
                    f"task {t.id} needs {need}, which is not an earlier task of the plan"
                )
        seen.add(t.id)


def dependents(plan: Plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t.id: [] for t in plan.tasks}
    for t in plan.tasks:
        for need in t.needs:
            out[need].append(t.id)
    return out


def descendants(graph: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every task reachable from ``roots`` through ``graph`` (roots excluded unless reached)."""
    seen: set[str] = set()
    stack = [d for r in roots for d in graph.get(r, ())]
    while stack:
        t = stack.pop()
        if t not in seen:
            seen.add(t)
            stack.extend(graph.get(t, ()))
    return seen


def selected(task: Task, only: Collection[str], skip: Collection[str]) -> bool:
    if only and task.step not in only:
        return False
    return task.step not in skip


def decide(
    plan: Plan,
    prior: Mapping[str, PriorState],
    capture_hashes: Mapping[str, str],
    *,
    only: Collection[str] = (),
    skip: Collection[str] = (),
    retry_interrupted: bool = False,
    now: float | None = None,
) -> dict[str, Action]:
    """One action per task for this run.

    A task is skipped when it is done with the same effective input hash and
    nothing it needs will run in this run; a task that runs makes everything
    after it run too. A producer whose captured value was lost (a deleted
    secrets file) or whose products expired (done longer before ``now`` than its
    ``fresh_for``) runs again when a task that reads its captures has to run.
    """
    stale = stale_tasks(plan, prior, now) if now is not None else set()
    producers = capture_producers(plan)
    graph = dependents(plan)
    forced: set[str] = set()
    while True:
        actions: dict[str, Action] = {}
        for t in plan.tasks:
            p = prior.get(t.id)
            if not selected(t, only, skip):
                actions[t.id] = Action.EXCLUDED
            elif (
                p is not None
                and p.status in (TaskStatus.RUNNING, TaskStatus.INTERRUPTED)
                and not t.idempotent
                and not retry_interrupted
            ):
                actions[t.id] = Action.REFUSE_INTERRUPTED
            elif (
                t.id not in forced
                and p is not None
                and p.status is TaskStatus.DONE
                and p.input_hash == effective_hash(t, capture_hashes)
                and all(actions[n] in (Action.SKIP_DONE, Action.EXCLUDED) for n in t.needs)
            ):
                actions[t.id] = Action.SKIP_DONE
            else:
                actions[t.id] = Action.RUN
        newly: set[str] = set()
        for t in plan.tasks:
            if actions[t.id] is not Action.RUN:
                continue
            for name in t.uses:
                producer = producers.get(name)
                if (
                    (name not in capture_hashes or producer in stale)
                    and producer is not None
                    and actions[producer] is Action.SKIP_DONE
                ):
                    newly.add(producer)
        newly -= forced
        if not newly:
            return actions
        forced |= newly
        forced |= descendants(graph, newly)


def priorities(plan: Plan) -> dict[str, int]:
    """Longest chain of tasks from each task to the end of the plan (itself included).

    When several tasks are ready, the runner starts the one with the longest
    chain behind it first: on a host whose one-task-at-a-time slot is the
    bottleneck, that is what keeps the critical path moving (the etcd steps
    before the package installs that nothing waits for yet).
    """
    graph = dependents(plan)
    level: dict[str, int] = {}
    for t in reversed(plan.tasks):
        level[t.id] = 1 + max((level[d] for d in graph[t.id]), default=0)
    return level


def blocked_by_failure(graph: Mapping[str, Iterable[str]], failed: str) -> set[str]:
    return descendants(graph, [failed])
