"""The live state of an install, as the Run screen shows it; owned by the App.

It consumes the engine's event stream (``installer.events``) and keeps, per
node, a status row and a ring buffer of recent output. Lines also go to a
"pending" list that the Run screen drains about ten times a second with
``Log.write_lines``: one repaint per flush, not per line. The full logs are
the journal's files in the state directory; this keeps only the last
``max_lines`` per node in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from installer.events import (
    Event,
    HostLost,
    HostReconnected,
    OutputLine,
    RunFinished,
    RunStarted,
    RunSummary,
    TaskBlocked,
    TaskFinished,
    TaskReopened,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskStatus,
)

NodeState = Literal["waiting", "running", "done", "failed", "blocked", "lost"]
MAX_LINES = 2000


@dataclass
class NodeView:
    host: str
    roles: tuple[str, ...] = ()
    total: int = 0
    finished: int = 0  # done + skipped
    step: str = ""
    title: str = ""
    state: NodeState = "waiting"
    started_at: float | None = None  # first task start (epoch seconds)
    ended_at: float | None = None
    failed_step: str | None = None
    message: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    pending: list[str] = field(default_factory=list)
    dropped: int = 0  # lines that fell out of the buffer before a flush

    def elapsed(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)

    def add_line(self, text: str) -> None:
        self.lines.append(text)
        self.pending.append(text)
        if len(self.pending) > MAX_LINES:
            # Nobody is flushing this node (not focused): keep the tail only.
            overflow = len(self.pending) - MAX_LINES
            del self.pending[:overflow]
            self.dropped += overflow

    def take_pending(self) -> list[str]:
        out, self.pending = self.pending, []
        return out


class RunController:
    """Receives events (``handle``); the Run screen reads ``nodes`` and ``summary``."""

    def __init__(
        self,
        hosts: Iterable[tuple[str, tuple[str, ...]]] = (),
        *,
        state_dir: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.nodes: dict[str, NodeView] = {h: NodeView(h, roles) for h, roles in hosts}
        self.total = 0
        self.finished = 0
        self.failed = 0
        self.running = 0
        self.started_at: float | None = None
        self.summary: RunSummary | None = None
        self.state_dir = state_dir
        self.clock = clock or time.time
        self.version = 0  # bumped on every change: the screen repaints only when it moved
        self.stopping = False
        self.error: str | None = None  # the run could not start or crashed
        self.handle_ref: object | None = None  # the engine's RunHandle

    @property
    def done(self) -> bool:
        return self.summary is not None or self.error is not None

    def node(self, host: str) -> NodeView:
        if host not in self.nodes:
            self.nodes[host] = NodeView(host)
        return self.nodes[host]

    def first_failure(self) -> str | None:
        for host, node in self.nodes.items():
            if node.state == "failed":
                return host
        return None

    def handle(self, event: Event) -> None:
        self.version += 1
        if isinstance(event, RunStarted):
            self.started_at = event.at
            self.total = len(event.tasks)
            self.finished = self.failed = self.running = 0
            self.summary = None
            for ref in event.tasks:
                self.node(ref.host)
            for node in self.nodes.values():
                node.total = sum(1 for t in event.tasks if t.host == node.host)
                node.finished = 0
                node.state = "waiting"
                node.failed_step = None
                node.ended_at = None
        elif isinstance(event, TaskStarted):
            node = self.node(event.host)
            node.step, node.title, node.state = event.step, event.title, "running"
            node.message = ""
            if node.started_at is None:
                node.started_at = event.at
            self.running += 1
            node.add_line(
                f"── {event.title} ({event.step})"
                + (f", attempt {event.attempt}" if event.attempt > 1 else "")
            )
        elif isinstance(event, OutputLine):
            self.node(event.host).add_line(event.text)
        elif isinstance(event, TaskFinished):
            node = self.node(event.host)
            self.running = max(0, self.running - 1)
            if event.status == TaskStatus.DONE:
                node.finished += 1
                self.finished += 1
                node.state = "done" if node.finished >= node.total else "waiting"
            else:
                node.state = "failed"
                node.failed_step = event.step
                node.message = event.message
                self.failed += 1
                code = "no exit code" if event.exit_code is None else f"exit {event.exit_code}"
                node.add_line(f"✗ {event.step} failed ({code}) {event.message}".rstrip())
            if node.state in ("done", "failed"):
                node.ended_at = event.at
        elif isinstance(event, TaskSkipped):
            node = self.node(event.host)
            node.finished += 1
            self.finished += 1
            if node.finished >= node.total and node.state != "failed":
                node.state = "done"
                node.ended_at = event.at
        elif isinstance(event, TaskBlocked):
            node = self.node(event.host)
            if node.state != "failed":
                node.state = "blocked"
                node.message = f"waits for {event.blocked_by}, which failed"
        elif isinstance(event, TaskReopened):
            node = self.node(event.host)
            node.finished = max(0, node.finished - 1)
            self.finished = max(0, self.finished - 1)
            if node.state == "done":
                node.state, node.ended_at = "waiting", None
            node.add_line(f"↻ {event.step} runs again: {event.reason}")
        elif isinstance(event, TaskRetrying):
            self.node(event.host).add_line(
                f"↻ retrying {event.step} in {event.delay:.0f}s (attempt {event.attempt}): {event.reason}"
            )
        elif isinstance(event, HostLost):
            node = self.node(event.host)
            node.state = "lost"
            node.message = event.message
            node.add_line(f"⚠ connection lost: {event.message}")
        elif isinstance(event, HostReconnected):
            node = self.node(event.host)
            node.state = "running"
            node.message = ""
            node.add_line(f"✓ reconnected after {event.attempts} attempt(s)")
        elif isinstance(event, RunFinished):
            self.summary = event.summary
            self.running = 0
