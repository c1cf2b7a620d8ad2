"""The headless reporter: one consumer of the runner's event stream.

On a terminal it shows a live table, one row per host (current step, n/m,
elapsed, last output line), refreshed at most ten times a second however fast
the lines come. Otherwise it writes plain lines, ``HH:MM:SS host step: text``,
fit for CI logs. Both end with the same summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

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

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

COMMAND_LINES = 15  # of a failed task's command in the summary; the journal has all of it
LAST_LINE_WIDTH = 60

_SKIP_TEXT = {
    "done": "skipped (done in an earlier run)",
    "check-satisfied": "skipped (already satisfied)",
    "excluded": "skipped (--only/--skip)",
}


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def render_summary(summary: RunSummary) -> str:
    """The closing report: counts, then every failed task with what to look at."""
    counts = [
        f"{summary.count(s)} {s.value}"
        for s in (
            TaskStatus.DONE,
            TaskStatus.FAILED,
            TaskStatus.INTERRUPTED,
            TaskStatus.BLOCKED,
            TaskStatus.EXCLUDED,
        )
        if summary.count(s)
    ]
    head = {0: "Install complete", 4: "Install refused", 130: "Install interrupted"}.get(
        summary.exit_code, "Install failed"
    )
    lines = [
        f"{head}: {', '.join(counts) or 'nothing to do'} "
        f"({summary.executed} ran, {summary.skipped} skipped) in {duration(summary.duration)}"
        f" [exit {summary.exit_code}]"
    ]
    if summary.message:
        lines += [f"  {line}" for line in summary.message.splitlines()]
    for f in summary.failures:
        code = f"exit {f.exit_code}" if f.exit_code is not None else "no exit code"
        lines.append("")
        lines.append(f"{f.status.value.upper()}: {f.host} / {f.step} ({code})")
        if f.message:
            lines.append(f"  {f.message}")
        cmd = f.command.rstrip("\n").splitlines()
        if cmd:
            lines.append("  command:")
            lines += [f"    {c}" for c in cmd[:COMMAND_LINES]]
            if len(cmd) > COMMAND_LINES:
                lines.append(f"    ... ({len(cmd) - COMMAND_LINES} more lines)")
        if f.tail:
            lines.append(f"  last {len(f.tail)} lines of output:")
            lines += [f"    | {t}" for t in f.tail]
    if summary.blocked:
        lines.append("")
        lines.append(f"Blocked by a failure ({len(summary.blocked)}): {', '.join(summary.blocked)}")
    if summary.not_started:
        lines.append(f"Not started ({len(summary.not_started)}): {', '.join(summary.not_started)}")
    if summary.exit_code not in (0, 4):
        lines.append("")
        lines.append("Run the same command again to resume: finished steps are skipped.")
    return "\n".join(lines)


@dataclass
class _HostRow:
    host: str
    total: int = 0
    finished: int = 0
    step: str = ""
    state: str = "waiting"
    since: float | None = None
    last: str = ""


class HeadlessReporter:
    """Call it with each event (``bus.subscribe(reporter)``); ``notice`` for plain messages."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        err: TextIO | None = None,
        live: bool | None = None,
        console: Console | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream or sys.stdout
        self.err = err or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._console = console
        self._now = now
        self._live: Live | None = None
        self._rows: dict[str, _HostRow] = {}
        self._steps: dict[str, str] = {}  # task id -> step
        self.summary: RunSummary | None = None

    # -- plain output ----------------------------------------------------------------

    def _line(self, at: float, host: str, step: str, text: str) -> None:
        where = f"{host} {step}" if step else host
        self._write(f"{clock(at)} {where}: {text}")

    def _write(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def notice(self, text: str) -> None:
        """A message outside the event stream (dry-run plan, refusal); errors go to stderr."""
        if text.startswith("error:") and self._live is None:
            self.err.write(text + "\n")
            self.err.flush()
        else:
            self._write(text)

    # -- events ------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, OutputLine):
            step = self._steps.get(event.task, event.task)
            row = self._rows.get(event.host)
            if row is not None:
                row.last = event.text
            if not self.live:
                self._line(event.at, event.host, step, event.text)
        elif isinstance(event, TaskStarted):
            row = self._row(event.host)
            row.step, row.state, row.since, row.last = event.step, "running", event.at, ""
            more = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            if not self.live:
                self._line(event.at, event.host, event.step, f"started: {event.title}{more}")
        elif isinstance(event, TaskFinished):
            row = self._row(event.host)
            row.finished += 1
            row.state = event.status.value
            took = duration(event.duration)
            if event.status is TaskStatus.DONE:
                text = f"done in {took}"
            else:
                code = f"exit {event.exit_code}, " if event.exit_code is not None else ""
                text = f"{event.status.value.upper()} ({code}{took}): {event.message}"
            if not self.live or event.status is not TaskStatus.DONE:
                self._line(event.at, event.host, event.step, text)
        elif isinstance(event, TaskSkipped):
            row = self._row(event.host)
            row.finished += 1
            row.step, row.state = event.step, "skipped"
            if not self.live:
                self._line(event.at, event.host, event.step, _SKIP_TEXT[event.reason])
        elif isinstance(event, TaskBlocked):
            row = self._row(event.host)
            row.finished += 1
            self._line(event.at, event.host, event.step, f"blocked: needs {event.blocked_by}")
        elif isinstance(event, TaskReopened):
            self._row(event.host).finished -= 1
            self._line(event.at, event.host, event.step, f"runs again: {event.reason}")
        elif isinstance(event, TaskRetrying):
            self._line(
                event.at,
                event.host,
                event.step,
                f"retry (attempt {event.attempt}) in {event.delay:.0f}s: {event.reason}",
            )
        elif isinstance(event, HostLost):
            self._row(event.host).state = "reconnecting"
            self._line(event.at, event.host, "", f"connection lost, reconnecting: {event.message}")
        elif isinstance(event, HostReconnected):
            self._row(event.host).state = "running"
            self._line(event.at, event.host, "", f"reconnected (attempt {event.attempts})")
        elif isinstance(event, RunFinished):
            self.summary = event.summary
            self.close()
            self._write("")
            self._write(render_summary(event.summary))

    def _row(self, host: str) -> _HostRow:
        return self._rows.setdefault(host, _HostRow(host))

    def _started(self, event: RunStarted) -> None:
        self._rows = {h: _HostRow(h) for h in event.hosts}
        for t in event.tasks:
            self._row(t.host).total += 1
            self._steps[t.task_id] = t.step
        n = len(event.tasks)
        self._write(
            f"{clock(event.at)} fmp-install: run {event.run_id}: {event.profile} on "
            f"{len(self._rows)} hosts, {n} tasks"
        )
        if self.live and self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = self._console or Console(file=self.stream)
            self._live = Live(
                get_renderable=self.table,
                console=console,
                refresh_per_second=10,
                transient=False,
            )
            self._live.start()

    def table(self) -> RenderableType:
        from rich.table import Table

        t = Table(expand=True)
        t.add_column("host", no_wrap=True)
        t.add_column("step", no_wrap=True)
        t.add_column("progress", justify="right", no_wrap=True)
        t.add_column("elapsed", justify="right", no_wrap=True)
        t.add_column("last output", overflow="ellipsis", no_wrap=True, ratio=1)
        now = self._now()
        for row in self._rows.values():
            elapsed = duration(now - row.since) if row.since and row.state == "running" else ""
            step = f"{row.step} ({row.state})" if row.step else row.state
            last = (
                row.last
                if len(row.last) <= LAST_LINE_WIDTH * 2
                else row.last[-LAST_LINE_WIDTH * 2 :]
            )
            t.add_row(row.host, step, f"{row.finished}/{row.total}", elapsed, last)
        return t

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
