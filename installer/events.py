"""The one event stream of an install.

The runner emits these frozen dataclasses and never prints; the wizard's panes
and the headless reporter are two consumers of the same stream. Every string in
an event has already been through the redactor: a consumer can show it as is.

Subscribe with a callback (``bus.subscribe(fn)``) or an asyncio queue
(``bus.queue()``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class TaskStatus(StrEnum):
    """A task's state in the journal and in events."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # ran and succeeded, or its check said it was already satisfied
    FAILED = "failed"
    BLOCKED = "blocked"  # something it needs failed
    INTERRUPTED = "interrupted"  # stopped midway: connection lost, installer killed, Ctrl-C
    EXCLUDED = "excluded"  # left out by --only / --skip


SkipReason = Literal["done", "check-satisfied", "excluded"]
Stream = Literal["stdout", "stderr"]


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=_now, kw_only=True)  # epoch seconds


@dataclass(frozen=True)
class TaskRef:
    task_id: str
    host: str
    step: str
    title: str


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    cluster: str
    profile: str
    hosts: tuple[str, ...]
    tasks: tuple[TaskRef, ...]  # the whole plan, in order: gives each host its n/m


@dataclass(frozen=True)
class TaskStarted(Event):
    task_id: str
    host: str
    step: str
    title: str
    attempt: int
    command: str  # secrets masked


@dataclass(frozen=True)
class OutputLine(Event):
    host: str
    task: str  # task id
    stream: Stream
    text: str  # one line, no newline, secrets masked


@dataclass(frozen=True)
class TaskFinished(Event):
    task_id: str
    host: str
    step: str
    status: TaskStatus  # DONE, FAILED or INTERRUPTED
    exit_code: int | None  # None when the command never finished (timeout, lost connection)
    duration: float  # seconds
    message: str = ""  # why it failed, what to check


@dataclass(frozen=True)
class TaskSkipped(Event):
    task_id: str
    host: str
    step: str
    reason: SkipReason


@dataclass(frozen=True)
class TaskBlocked(Event):
    task_id: str
    host: str
    step: str
    blocked_by: str  # the failed task id it (transitively) needs


@dataclass(frozen=True)
class TaskRetrying(Event):
    task_id: str
    host: str
    step: str
    attempt: int  # the attempt that is about to start
    delay: float
    reason: str


@dataclass(frozen=True)
class TaskReopened(Event):
    """A done task is to run again in this run: its products expired (``fresh_for``)
    before a later task could use them. Its host's finished count goes down by one."""

    task_id: str
    host: str
    step: str
    reason: str


@dataclass(frozen=True)
class HostLost(Event):
    host: str
    message: str


@dataclass(frozen=True)
class HostReconnected(Event):
    host: str
    attempts: int


@dataclass(frozen=True)
class Failure:
    """A task that did not complete, as the summary shows it."""

    task_id: str
    host: str
    step: str
    status: TaskStatus  # FAILED or INTERRUPTED
    command: str  # secrets masked
    exit_code: int | None
    message: str
    tail: tuple[str, ...]  # last output lines, secrets masked


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    exit_code: int
    duration: float
    counts: tuple[tuple[str, int], ...]  # (status, how many), statuses in TaskStatus order
    executed: int  # tasks whose command ran in this run
    skipped: int  # done before, or check satisfied
    failures: tuple[Failure, ...]
    blocked: tuple[str, ...]  # task ids
    not_started: tuple[str, ...]  # left pending by --fail-fast or an interrupt
    message: str = ""  # run-level reason: locked hosts, interrupted, ...

    def count(self, status: TaskStatus) -> int:
        return dict(self.counts).get(status.value, 0)


@dataclass(frozen=True)
class RunFinished(Event):
    summary: RunSummary


AnyEvent = (
    RunStarted
    | TaskStarted
    | OutputLine
    | TaskFinished
    | TaskSkipped
    | TaskBlocked
    | TaskRetrying
    | TaskReopened
    | HostLost
    | HostReconnected
    | RunFinished
)

Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to callbacks and asyncio queues, in emission order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def queue(self) -> asyncio.Queue[Event]:
        """An unbounded queue receiving every later event (a UI drains it at its pace)."""
        q: asyncio.Queue[Event] = asyncio.Queue()
        self.subscribe(q.put_nowait)
        return q

    def emit(self, event: Event) -> None:
        # A consumer that raises must not stop the install: the journal and
        # logs still record everything.
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logging.getLogger(__name__).exception("event consumer failed on %r", event)
