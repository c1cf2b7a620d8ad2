"""One attempt at one task: check, upload its files, run, take its captures.

The check runs first; exit 0 means already satisfied, and the run is skipped.
Run output goes out line by line, redacted, to the host log and as
``OutputLine`` events; when the step captures a secret, its output is held
until the secret is known, so the secret is never shown. A lost connection
raises ``ConnectionLost`` for the runner to reconnect and decide; every other
end is an ``Outcome``. Retries, reconnects and the journal row's end are the
runner's (``installer.runner``).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from installer.events import EventBus, OutputLine, Stream, TaskStarted, TaskStatus
from installer.journal import TAIL_LINES, Journal
from installer.plan_model import CAPTURE_RE, CaptureSpec, Plan, Task
from installer.redact import Redactor, StreamRedactor
from installer.scheduler import capture_producers, descendants, effective_hash, value_hash
from installer.transport import CommandResult, FailureKind, Transport, TransportError


class CaptureVault(Protocol):
    """Where secret captured values live (the 0600 secrets file), by name."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...


# -- captures and substitution --------------------------------------------------


class MissingCapture(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def substitute(text: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise MissingCapture(name)
        return values[name]

    return CAPTURE_RE.sub(repl, text)


def extract_capture(spec: CaptureSpec, result: CommandResult) -> str | None:
    text = result.stderr if spec.stream == "stderr" else result.stdout
    m = re.search(spec.pattern, text, re.MULTILINE)
    if m is None:
        return None
    if "value" in m.re.groupindex:
        value = m.group("value")
    elif m.re.groups:
        value = m.group(1)
    else:
        value = m.group(0)
    return value.strip() if value is not None else None


# -- the outcome of an attempt ---------------------------------------------------


@dataclass
class Outcome:
    status: TaskStatus
    exit_code: int | None = None
    message: str = ""
    satisfied: bool = False  # done because the check said so
    input_hash: str | None = None  # the effective input hash it ran with
    command: str = ""
    tail: tuple[str, ...] = ()


class ConnectionLost(Exception):
    """The connection dropped while the task ran: it may or may not have taken effect."""


class AttemptOutput:
    """Output of one attempt: redacted lines, as they go out to ``emit``."""

    def __init__(self, redactor: Redactor, emit: Callable[[Stream, str], None], hold: bool) -> None:
        self.redactor = redactor
        self.emit = emit
        self.hold = hold  # secret captures: show nothing until they are known
        self.held: list[tuple[Stream, str]] = []
        self.streams: dict[Stream, StreamRedactor] = {}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.lines = 0

    def on_line(self, stream: str, line: str) -> None:
        s: Stream = "stderr" if stream == "stderr" else "stdout"
        self.lines += 1
        if self.hold:
            self.held.append((s, line))
            return
        self._feed(s, line)

    def _feed(self, s: Stream, line: str) -> None:
        red = self.streams.get(s)
        if red is None:
            red = self.streams[s] = self.redactor.stream()
        for out in red.feed(line):
            self._out(s, out)

    def _out(self, s: Stream, text: str) -> None:
        self.tail.append(text)
        self.emit(s, text)

    def finish(self, result: CommandResult | None) -> None:
        if result is not None and self.lines == 0:
            # A transport that does not stream: take the lines from the result.
            for s, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                for line in text.splitlines():
                    self.on_line(s, line)
        for s, line in self.held:
            self._feed(s, line)
        self.held.clear()
        self.hold = False
        for s, red in self.streams.items():
            for out in red.flush():
                self._out(s, out)


# -- one attempt ------------------------------------------------------------------


class TaskExecutor:
    """Runs attempts at tasks, and holds the values their captures produced.

    ``captures`` / ``capture_hashes`` (name -> value / value hash) are what
    later tasks substitute; the runner fills them from the journal on resume.
    """

    def __init__(
        self,
        plan: Plan,
        graph: Mapping[str, list[str]],
        journal: Journal,
        bus: EventBus,
        redactor: Redactor,
        secrets: CaptureVault | None,
        *,
        timeout_slack: float,
    ) -> None:
        self.plan = plan
        self.journal = journal
        self.bus = bus
        self.redactor = redactor
        self.secrets = secrets
        self.timeout_slack = timeout_slack
        self.captures: dict[str, str] = {}
        self.capture_hashes: dict[str, str] = {}
        self._graph = graph

    async def attempt(
        self, t: Task, transport: Transport, *, run_id: str, invalidate: bool
    ) -> Outcome:
        """One try: check, upload, run, capture. Raises ConnectionLost."""
        r = self.redactor.redact
        try:
            run = substitute(t.run, self.captures)
            check = substitute(t.check, self.captures) if t.check else None
            files = [(f, substitute(f.content, self.captures)) for f in t.files]
        except MissingCapture as exc:
            producer = capture_producers(self.plan).get(exc.name)
            where = f" (captured by {producer})" if producer else ""
            return Outcome(
                TaskStatus.FAILED,
                message=f"the value '{exc.name}'{where} is not known: the step that prints it "
                "did not run or printed nothing",
                command=r(t.run),
            )
        shown = r(run)
        eff = effective_hash(t, self.capture_hashes)
        attempt = self.journal.task_started(
            run_id,
            t.id,
            input_hash=eff,
            command=shown,
            invalidate=sorted(descendants(self._graph, [t.id])) if invalidate else (),
        )
        self.bus.emit(
            TaskStarted(
                task_id=t.id,
                host=t.host,
                step=t.step,
                title=t.title,
                attempt=attempt,
                command=shown,
            )
        )
        self.journal.note(t.host, f"{t.step}: start (attempt {attempt})")
        state = AttemptOutput(
            self.redactor,
            functools.partial(self._output, t),
            hold=any(c.secret for c in t.captures),
        )
        result: CommandResult | None = None
        missing: list[str] = []
        try:
            if check is not None:
                res = await self._exec(transport, t, check)
                if res.exit_status == 0:
                    self._take_captures(t, res, run_id=run_id, required=False)
                # Logged only now: a secret it printed is known by this point.
                self._log_result(t, "check", res)
                if res.exit_status == 0:
                    self.journal.note(t.host, f"{t.step}: already satisfied (check exit 0)")
                    return Outcome(
                        TaskStatus.DONE, 0, satisfied=True, command=shown, input_hash=eff
                    )
            for spec, content in files:
                await transport.upload(
                    content.encode(), spec.path, mode=spec.mode, owner=spec.owner, sudo=t.sudo
                )
            try:
                result = await self._exec(transport, t, run, on_line=state.on_line)
            finally:
                if result is not None:
                    missing = self._take_captures(
                        t, result, run_id=run_id, required=result.exit_status == 0
                    )
                state.finish(result)
        except TransportError as exc:
            if exc.kind is FailureKind.CONNECTION_LOST:
                raise ConnectionLost(exc.detail) from exc
            if exc.kind is FailureKind.COMMAND_TIMEOUT:
                return Outcome(
                    TaskStatus.FAILED,
                    message=f"timed out after {t.timeout:.0f}s",
                    command=shown,
                    tail=tuple(state.tail),
                )
            return Outcome(TaskStatus.FAILED, message=str(exc), command=shown)
        tail = tuple(state.tail)
        if result is None:  # pragma: no cover - _exec returns or raises
            raise RuntimeError("no result")
        if result.exit_status != 0:
            return Outcome(
                TaskStatus.FAILED,
                result.exit_status,
                message=f"exited with status {result.exit_status}",
                command=shown,
                tail=tail,
            )
        if missing:
            return Outcome(
                TaskStatus.FAILED,
                0,
                message="it succeeded but printed no value for "
                + ", ".join(missing)
                + " (the pattern did not match its output)",
                command=shown,
                tail=tail,
            )
        return Outcome(TaskStatus.DONE, 0, command=shown, tail=tail, input_hash=eff)

    async def _exec(
        self,
        transport: Transport,
        t: Task,
        command: str,
        *,
        on_line: Callable[[str, str], None] | None = None,
    ) -> CommandResult:
        try:
            return await asyncio.wait_for(
                transport.run(command, timeout=t.timeout, sudo=t.sudo, on_line=on_line),
                t.timeout + self.timeout_slack,
            )
        except TimeoutError:
            raise TransportError(
                t.host, FailureKind.COMMAND_TIMEOUT, f"no answer after {t.timeout:.0f}s"
            ) from None

    def _log_result(self, t: Task, what: str, result: CommandResult) -> None:
        """Put a command's whole output in the host log (for checks, which are not shown)."""
        step = f"{t.step}[{what}]"
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            red = self.redactor.stream()
            for line in text.splitlines():
                for out in red.feed(line):
                    self.journal.log(t.host, step, stream, out)
            for out in red.flush():
                self.journal.log(t.host, step, stream, out)

    def _take_captures(
        self, t: Task, result: CommandResult, *, run_id: str, required: bool
    ) -> list[str]:
        missing: list[str] = []
        for spec in t.captures:
            value = extract_capture(spec, result)
            if value is None:
                if required:
                    missing.append(spec.name)
                continue
            h = value_hash(value)
            if spec.secret:
                self.redactor.add(value)
                if self.secrets is not None:
                    self.secrets.put(spec.name, value)
            self.journal.save_capture(
                spec.name,
                value,
                secret=spec.secret,
                value_hash=h,
                task_id=t.id,
                run_id=run_id,
            )
            self.captures[spec.name] = value
            self.capture_hashes[spec.name] = h
        return missing

    def _output(self, t: Task, stream: Stream, text: str) -> None:
        self.journal.log(t.host, t.step, stream, text)
        self.bus.emit(OutputLine(host=t.host, task=t.id, stream=stream, text=text))
