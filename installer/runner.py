"""The runner: executes a Plan on many hosts at once, resumably.

A task (host x step) starts when everything it needs is done; one task at a
time per host, up to ``max_parallel`` hosts at once, ``serial`` steps one host
at a time. Each task: check (exit 0 = already satisfied), upload its files,
run, extract its captures. A failure blocks only what depends on it. Every
transition is committed to the journal before the next thing happens, so a
kill -9 at any moment resumes cleanly. The runner talks to hosts only through
``installer.transport``, emits events and never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import re
import shlex
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from installer import exitcodes
from installer.errors import OperatorError
from installer.events import (
    EventBus,
    Failure,
    HostLost,
    HostReconnected,
    OutputLine,
    RunFinished,
    RunStarted,
    RunSummary,
    Stream,
    TaskBlocked,
    TaskFinished,
    TaskRef,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskStatus,
)
from installer.journal import TAIL_LINES, Journal
from installer.plan_model import CAPTURE_RE, CaptureSpec, Plan, Task
from installer.redact import Redactor, StreamRedactor
from installer.scheduler import (
    Action,
    PriorState,
    check_plan,
    decide,
    dependents,
    descendants,
    effective_hash,
    priorities,
    value_hash,
)
from installer.transport import CommandResult, FailureKind, Transport, TransportError

HOST_LOCK_PATH = "/run/fmp-install.lock"
LOCK_MARKER = "# fmp-install:host-lock"

ConnectFactory = Callable[[str], Awaitable[Transport]]
Sleep = Callable[[float], Awaitable[None]]


class CaptureVault(Protocol):
    """Where secret captured values live (the 0600 secrets file), by name."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...


class HostLocked(OperatorError):
    exit_code = exitcodes.LOCKED


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunOptions:
    max_parallel: int = 32
    fail_fast: bool = False
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    retry_interrupted: bool = False
    break_locks: bool = False
    lock_ttl: float = 900.0  # a host lock not refreshed for this long is stale
    host_lock_path: str = HOST_LOCK_PATH
    operator: str = field(default_factory=default_operator)
    reconnect_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    grace_period: float = 30.0  # after a stop request, before running tasks are cancelled
    timeout_slack: float = 30.0  # our own backstop beyond a step's timeout


def backoff(base: float, cap: float, n: int) -> float:
    """Delay before retry ``n`` (1, 2, …): base, 2·base, 4·base, … up to ``cap``."""
    return float(min(cap, base * (2 ** max(0, n - 1))))


# -- host locks ---------------------------------------------------------------

_LOCK_ACQUIRE = """{marker} acquire
lock={path}
content={content}
set -o noclobber
if {{ printf '%s\\n' "$content" > "$lock"; }} 2>/dev/null; then echo FMP_LOCK=acquired; exit 0; fi
set +o noclobber
now=$(date +%s)
mt=$(stat -c %Y "$lock" 2>/dev/null || echo "$now")
echo FMP_LOCK=held
echo "age=$((now - mt))"
cat "$lock" 2>/dev/null
exit 3
"""

_LOCK_REPLACE = """{marker} replace
lock={path}
content={content}
{remove}printf '%s\\n' "$content" > "$lock.$$" && mv -f "$lock.$$" "$lock" && echo FMP_LOCK=acquired
"""

_LOCK_BREAK = """{marker} break
lock={path}
old={old_run}
grep -qxF "run=$old" "$lock" 2>/dev/null && rm -f "$lock"
true
"""

_LOCK_TOUCH = """{marker} refresh
lock={path}
grep -qxF {run} "$lock" 2>/dev/null && touch "$lock"
true
"""

_LOCK_RELEASE = """{marker} release
lock={path}
grep -qxF {run} "$lock" 2>/dev/null && rm -f "$lock"
true
"""


@dataclass(frozen=True)
class LockInfo:
    age: int
    fields: Mapping[str, str]

    def describe(self) -> str:
        f = self.fields
        return (
            f"operator {f.get('operator', '?')}, run {f.get('run', '?')}, "
            f"since {f.get('since', '?')}, last refreshed {self.age}s ago"
        )


def _parse_lock(stdout: str) -> LockInfo:
    fields: dict[str, str] = {}
    age = 0
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "age":
            with contextlib.suppress(ValueError):
                age = int(value)
        elif key != "FMP_LOCK":
            fields[key] = value
    return LockInfo(age, fields)


class HostLock:
    """``/run/fmp-install.lock`` on one host: who is installing there."""

    def __init__(self, host: str, *, run_id: str, installation: str, options: RunOptions) -> None:
        self.host = host
        self.run_id = run_id
        self.installation = installation
        self.options = options
        q = shlex.quote
        self._path = q(options.host_lock_path)
        content = "\n".join(
            [
                f"operator={options.operator}",
                f"host={host}",
                f"run={run_id}",
                f"installation={installation}",
                f"since={time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
            ]
        )
        self._content = q(content)

    async def acquire(self, transport: Transport) -> None:
        o = self.options
        res = await transport.run(
            _LOCK_ACQUIRE.format(marker=LOCK_MARKER, path=self._path, content=self._content),
            timeout=60,
            sudo=True,
        )
        if "FMP_LOCK=acquired" in res.stdout:
            return
        if "FMP_LOCK=held" not in res.stdout:
            raise HostLocked(
                f"{self.host}: could not create the host lock {o.host_lock_path} "
                f"(exit {res.exit_status}): {res.stderr.strip() or res.stdout.strip()}",
                hint="check that the login user can write to /run with sudo",
            )
        info = _parse_lock(res.stdout)
        if info.fields.get("run") == self.run_id:
            return
        if info.fields.get("installation") == self.installation:
            # Left by an earlier run from this same state directory, which we
            # hold locked: that run is over, so the lock is ours to take over.
            await self._replace(transport, remove=False)
            return
        stale = info.age > o.lock_ttl
        if stale and o.break_locks:
            old = shlex.quote(info.fields.get("run", ""))
            await transport.run(
                _LOCK_BREAK.format(marker=LOCK_MARKER, path=self._path, old_run=old),
                timeout=60,
                sudo=True,
            )
            res = await transport.run(
                _LOCK_ACQUIRE.format(marker=LOCK_MARKER, path=self._path, content=self._content),
                timeout=60,
                sudo=True,
            )
            if "FMP_LOCK=acquired" in res.stdout:
                return
            info = _parse_lock(res.stdout)
            stale = False
        if stale:
            raise HostLocked(
                f"{self.host} is locked by another install ({info.describe()}); the lock is "
                f"stale (not refreshed for more than {int(o.lock_ttl)}s)",
                hint="if no other fmp-install is working on this host, rerun with --break-locks",
            )
        raise HostLocked(
            f"{self.host} is locked by another install ({info.describe()})",
            hint=f"wait for that install to finish; if you are sure none is running, remove "
            f"{o.host_lock_path} on {self.host} (or wait {int(o.lock_ttl)}s and use --break-locks)",
        )

    async def _replace(self, transport: Transport, *, remove: bool) -> None:
        await transport.run(
            _LOCK_REPLACE.format(
                marker=LOCK_MARKER,
                path=self._path,
                content=self._content,
                remove='rm -f "$lock"\n' if remove else "",
            ),
            timeout=60,
            sudo=True,
        )

    async def refresh(self, transport: Transport) -> None:
        await transport.run(
            _LOCK_TOUCH.format(
                marker=LOCK_MARKER, path=self._path, run=shlex.quote(f"run={self.run_id}")
            ),
            timeout=60,
            sudo=True,
        )

    async def release(self, transport: Transport) -> None:
        await transport.run(
            _LOCK_RELEASE.format(
                marker=LOCK_MARKER, path=self._path, run=shlex.quote(f"run={self.run_id}")
            ),
            timeout=60,
            sudo=True,
        )


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


# -- the runner -------------------------------------------------------------------


@dataclass
class _Outcome:
    status: TaskStatus
    exit_code: int | None = None
    message: str = ""
    satisfied: bool = False  # done because the check said so
    input_hash: str | None = None  # the effective input hash it ran with
    command: str = ""
    tail: tuple[str, ...] = ()


class _ConnectionLost(Exception):
    pass


_CONNECT_FAILURES = (
    FailureKind.UNREACHABLE,
    FailureKind.REFUSED,
    FailureKind.TIMEOUT,
    FailureKind.CONNECTION_LOST,
)


class _AttemptState:
    """Output of one attempt: redacted lines, as they go out."""

    def __init__(self, runner: Runner, task: Task, hold: bool) -> None:
        self.runner = runner
        self.task = task
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
            red = self.streams[s] = self.runner.redactor.stream()
        for out in red.feed(line):
            self._out(s, out)

    def _out(self, s: Stream, text: str) -> None:
        self.tail.append(text)
        self.runner._output(self.task, s, text)

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


class Runner:
    """Run ``plan`` against hosts reached through ``connect(host)``.

    Use ``await runner.run()`` once; it returns the summary (also sent as
    ``RunFinished``). ``request_stop()`` is safe to call from a signal handler.
    """

    def __init__(
        self,
        plan: Plan,
        journal: Journal,
        connect: ConnectFactory,
        *,
        redactor: Redactor | None = None,
        secrets: CaptureVault | None = None,
        bus: EventBus | None = None,
        options: RunOptions | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        check_plan(plan)
        self.plan = plan
        self.journal = journal
        self.connect = connect
        self.redactor = redactor or journal.redactor
        journal.redactor = self.redactor
        self.secrets = secrets
        self.bus = bus or EventBus()
        self.options = options or RunOptions()
        self._sleep = sleep
        self.run_id = ""
        self._tasks = {t.id: t for t in plan.tasks}
        self._graph = dependents(plan)
        self._status: dict[str, TaskStatus] = {}
        self._skipped: set[str] = set()
        self._executed: set[str] = set()
        self._failures: dict[str, Failure] = {}
        self._blocked: list[str] = []
        self._captures: dict[str, str] = {}
        self._capture_hashes: dict[str, str] = {}
        self._transports: dict[str, Transport] = {}
        self._host_mutex: dict[str, asyncio.Lock] = {}
        self._locks: dict[str, HostLock] = {}
        self._running: dict[asyncio.Task[_Outcome], str] = {}
        self._journaled: set[str] = set()
        self._index = {t.id: i for i, t in enumerate(plan.tasks)}
        self._heartbeat: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._stop_reason = ""
        self._cancel_handle: asyncio.TimerHandle | None = None

    # -- public -------------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted", *, force: bool = False) -> None:
        """Stop launching tasks; cancel running ones after the grace period (now if ``force``)."""
        loop = asyncio.get_running_loop()
        first = not self._stop_requested
        self._stop_requested = True
        self._stop_reason = self._stop_reason or reason
        if force:
            self._cancel_running()
        elif first:
            self._cancel_handle = loop.call_later(self.options.grace_period, self._cancel_running)

    async def run(self) -> RunSummary:
        started = time.monotonic()
        o = self.options
        self.run_id = self.journal.begin_run(
            cluster=self.plan.cluster,
            profile=self.plan.profile,
            operator=o.operator,
            options={
                "max_parallel": o.max_parallel,
                "fail_fast": o.fail_fast,
                "only": sorted(o.only),
                "skip": sorted(o.skip),
                "retry_interrupted": o.retry_interrupted,
                "break_locks": o.break_locks,
            },
        )
        summary: RunSummary | None = None
        message = ""
        exit_code = exitcodes.OK
        try:
            self.bus.emit(
                RunStarted(
                    run_id=self.run_id,
                    cluster=self.plan.cluster,
                    profile=self.plan.profile,
                    hosts=tuple(h.label for h in self.plan.hosts)
                    or tuple(dict.fromkeys(t.host for t in self.plan.tasks)),
                    tasks=tuple(TaskRef(t.id, t.host, t.step, t.title) for t in self.plan.tasks),
                )
            )
            actions = self._prepare()
            hosts = list(
                dict.fromkeys(t.host for t in self.plan.tasks if actions[t.id] is Action.RUN)
            )
            try:
                await self._lock_hosts(hosts)
            except HostLocked as exc:
                exit_code = exitcodes.LOCKED
                message = str(exc)
            else:
                self._start_heartbeat()
                await self._schedule(actions)
                exit_code = self._exit_code()
                message = self._stop_reason if self._stop_requested else ""
        except asyncio.CancelledError:
            self._cancel_running()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._running, return_exceptions=True)
            exit_code = exitcodes.INTERRUPTED
            message = "cancelled"
            raise
        finally:
            if self._cancel_handle is not None:
                self._cancel_handle.cancel()
            await self._release_hosts()
            summary = self._summary(exit_code, message, time.monotonic() - started)
            status = {
                exitcodes.OK: "done",
                exitcodes.LOCKED: "locked",
                exitcodes.INTERRUPTED: "interrupted",
            }.get(exit_code, "failed")
            self.journal.end_run(self.run_id, status=status, exit_code=exit_code, message=message)
            self.bus.emit(RunFinished(summary=summary))
        return summary

    # -- preparation ----------------------------------------------------------------

    def _prepare(self) -> dict[str, Action]:
        j = self.journal
        j.sync_plan(self.plan.tasks)
        rows = {r.task_id: r for r in j.tasks()}
        for name, cap in j.captures().items():
            value = cap.value
            if cap.secret:
                value = self.secrets.get(name) if self.secrets is not None else None
                if value is None or value_hash(value) != cap.value_hash:
                    continue  # lost: its producer runs again if needed
                self.redactor.add(value)
            if value is not None:
                self._captures[name] = value
                self._capture_hashes[name] = cap.value_hash
        prior = {tid: PriorState(r.status, r.input_hash) for tid, r in rows.items()}
        o = self.options
        actions = decide(
            self.plan,
            prior,
            self._capture_hashes,
            only=o.only,
            skip=o.skip,
            retry_interrupted=o.retry_interrupted,
        )
        for t in self.plan.tasks:
            self._status[t.id] = TaskStatus.PENDING
        for t in self.plan.tasks:
            if (
                actions[t.id] is Action.REFUSE_INTERRUPTED
                and self._status[t.id] is TaskStatus.PENDING
            ):
                row = rows[t.id]
                msg = (
                    f"'{t.title}' on {t.host} was interrupted in an earlier run "
                    f"({row.status.value}) and is not safe to repeat blindly: check on {t.host} "
                    f"whether it took effect (see {j.log_path(t.host)}), then rerun with "
                    "--retry-interrupted"
                )
                self._finish(
                    t, _Outcome(TaskStatus.INTERRUPTED, message=msg, command=row.command), 0.0
                )
        return actions

    # -- connections and host locks --------------------------------------------------

    async def _lock_hosts(self, hosts: list[str]) -> None:
        sem = asyncio.Semaphore(max(1, self.options.max_parallel))

        async def one(host: str) -> None:
            async with sem:
                # Unreachable now: its tasks try again and fail with the reason.
                with contextlib.suppress(TransportError):
                    await self._ensure_host(host)

        results = await asyncio.gather(*(one(h) for h in hosts), return_exceptions=True)
        refused = [r for r in results if isinstance(r, HostLocked)]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, HostLocked):
                raise r
        if refused:
            msg = "\n".join(r.message for r in refused)
            hint = refused[0].hint
            raise HostLocked(msg, hint=hint)

    async def _ensure_host(self, host: str) -> Transport:
        mutex = self._host_mutex.setdefault(host, asyncio.Lock())
        async with mutex:
            transport = self._transports.get(host)
            if transport is None:
                transport = await self.connect(host)
                self._transports[host] = transport
            if host not in self._locks:
                lock = HostLock(
                    host,
                    run_id=self.run_id,
                    installation=self.journal.installation_id,
                    options=self.options,
                )
                await lock.acquire(transport)
                self._locks[host] = lock
            return transport

    async def _reconnect(self, host: str, why: str) -> Transport:
        """Drop the connection and connect again with backoff; re-take the host lock."""
        old = self._transports.pop(host, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        # After a reboot /run is empty: take the lock again.
        self._locks.pop(host, None)
        self._emit_host_lost(host, why)
        o = self.options
        last: Exception | None = None
        for n in range(1, o.reconnect_attempts + 1):
            await self._sleep(backoff(o.backoff_base, o.backoff_max, n))
            try:
                transport = await self._ensure_host(host)
            except TransportError as exc:
                last = exc
                continue
            self.bus.emit(HostReconnected(host=host, attempts=n))
            self.journal.note(host, f"reconnected after {n} attempt(s)")
            return transport
        raise TransportError(
            host,
            FailureKind.UNREACHABLE,
            f"could not reconnect after {o.reconnect_attempts} attempts: {last}",
            hint=f"check that {host} is up and reachable, then rerun to resume",
        )

    def _emit_host_lost(self, host: str, why: str) -> None:
        msg = self.redactor.redact(why)
        self.bus.emit(HostLost(host=host, message=msg))
        self.journal.note(host, f"connection lost: {msg}")

    def _start_heartbeat(self) -> None:
        self._heartbeat = asyncio.create_task(
            self._refresh_locks(max(1.0, self.options.lock_ttl / 3))
        )

    async def _refresh_locks(self, interval: float) -> None:
        """Keep our host locks fresh, so that only a dead run's lock goes stale."""
        while True:
            await asyncio.sleep(interval)
            for host, lock in list(self._locks.items()):
                transport = self._transports.get(host)
                if transport is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(lock.refresh(transport), 60)

    async def _release_hosts(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
            self._heartbeat = None

        async def release(host: str, lock: HostLock) -> None:
            transport = self._transports.get(host)
            if transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lock.release(transport), 60)

        await asyncio.gather(*(release(h, lk) for h, lk in self._locks.items()))
        self._locks.clear()
        for transport in self._transports.values():
            with contextlib.suppress(Exception):
                await transport.close()
        self._transports.clear()

    # -- scheduling -----------------------------------------------------------------

    def _satisfied(self, task_id: str) -> bool:
        return self._status[task_id] in (TaskStatus.DONE, TaskStatus.EXCLUDED)

    async def _schedule(self, actions: dict[str, Action]) -> None:
        o = self.options
        busy_hosts: set[str] = set()
        busy_serial: set[str] = set()
        prio = priorities(self.plan)
        # Longest chain first, then plan order.
        order = sorted(self.plan.tasks, key=lambda t: (-prio[t.id], self._index[t.id]))
        waiting = [t for t in order if self._status[t.id] is TaskStatus.PENDING]
        started_at: dict[str, float] = {}
        while True:
            # Instant transitions first: skips and exclusions complete without a host.
            progressed = True
            while progressed:
                progressed = False
                for t in list(waiting):
                    if not all(self._satisfied(n) for n in t.needs):
                        continue
                    if actions[t.id] is Action.SKIP_DONE:
                        waiting.remove(t)
                        self._status[t.id] = TaskStatus.DONE
                        self._skipped.add(t.id)
                        self.bus.emit(
                            TaskSkipped(task_id=t.id, host=t.host, step=t.step, reason="done")
                        )
                        progressed = True
                    elif actions[t.id] is Action.EXCLUDED:
                        waiting.remove(t)
                        self._status[t.id] = TaskStatus.EXCLUDED
                        self.bus.emit(
                            TaskSkipped(task_id=t.id, host=t.host, step=t.step, reason="excluded")
                        )
                        progressed = True
            waiting = [t for t in waiting if self._status[t.id] is TaskStatus.PENDING]
            if not self._stop_requested:
                for t in waiting:
                    if len(self._running) >= max(1, o.max_parallel):
                        break
                    if t.host in busy_hosts or (t.serial and t.step in busy_serial):
                        continue
                    if not all(self._satisfied(n) for n in t.needs):
                        continue
                    busy_hosts.add(t.host)
                    if t.serial:
                        busy_serial.add(t.step)
                    self._status[t.id] = TaskStatus.RUNNING
                    started_at[t.id] = time.monotonic()
                    aio = asyncio.create_task(self._run_task(t), name=t.id)
                    self._running[aio] = t.id
                waiting = [t for t in waiting if self._status[t.id] is TaskStatus.PENDING]
            if not self._running:
                return
            done, _ = await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            for aio in sorted(done, key=lambda a: a.get_name()):
                tid = self._running.pop(aio)
                t = self._tasks[tid]
                busy_hosts.discard(t.host)
                busy_serial.discard(t.step)
                if aio.cancelled():
                    outcome = _Outcome(
                        TaskStatus.INTERRUPTED, message=self._interrupt_message(t), command=t.run
                    )
                else:
                    exc = aio.exception()
                    if exc is not None:
                        outcome = _Outcome(
                            TaskStatus.FAILED,
                            message=f"internal error: {type(exc).__name__}: {exc}",
                            command=t.run,
                        )
                    else:
                        outcome = aio.result()
                self._finish(t, outcome, time.monotonic() - started_at[tid])
                if outcome.status is not TaskStatus.DONE and o.fail_fast:
                    self._stop_requested = True
                    self._stop_reason = (
                        self._stop_reason or "stopped at the first failure (--fail-fast)"
                    )

    def _cancel_running(self) -> None:
        for aio in self._running:
            aio.cancel()

    def _interrupt_message(self, t: Task) -> str:
        if t.idempotent:
            return f"'{t.title}' on {t.host} was stopped ({self._stop_reason}); rerun to resume"
        return (
            f"'{t.title}' on {t.host} was stopped midway ({self._stop_reason}) and is not safe "
            f"to repeat blindly: check on {t.host} whether it took effect (see "
            f"{self.journal.log_path(t.host)}), then rerun with --retry-interrupted"
        )

    def _finish(self, t: Task, outcome: _Outcome, duration: float) -> None:
        """Record a task's end (journal already updated by ``_run_task``) and block dependents."""
        r = self.redactor.redact
        self._status[t.id] = outcome.status
        if outcome.status is TaskStatus.DONE:
            return
        if t.id not in self._journaled:
            # Ended without reaching _journal_end (refused at start, cancelled
            # between attempts): keep the row's earlier output, set the status.
            self.journal.set_status(
                t.id, outcome.status, message=outcome.message, run_id=self.run_id
            )
            self.bus.emit(
                TaskFinished(
                    task_id=t.id,
                    host=t.host,
                    step=t.step,
                    status=outcome.status,
                    exit_code=outcome.exit_code,
                    duration=duration,
                    message=r(outcome.message),
                )
            )
        self._failures[t.id] = Failure(
            task_id=t.id,
            host=t.host,
            step=t.step,
            status=outcome.status,
            command=r(outcome.command or t.run),
            exit_code=outcome.exit_code,
            message=r(outcome.message),
            tail=tuple(r(x) for x in outcome.tail),
        )
        for d in sorted(descendants(self._graph, [t.id]), key=self._order):
            if self._status[d] is TaskStatus.PENDING:
                self._status[d] = TaskStatus.BLOCKED
                self._blocked.append(d)
                dt = self._tasks[d]
                self.journal.set_status(
                    d,
                    TaskStatus.BLOCKED,
                    message=f"needs {t.id}, which did not complete",
                    run_id=self.run_id,
                )
                self.bus.emit(TaskBlocked(task_id=d, host=dt.host, step=dt.step, blocked_by=t.id))

    def _order(self, task_id: str) -> int:
        return self._index[task_id]

    # -- one task -----------------------------------------------------------------

    async def _run_task(self, t: Task) -> _Outcome:
        """Run one task to its end (retries included); journal and events as it goes."""
        o = self.options
        retries_left = t.retries if t.idempotent else 0
        reconnects_left = o.reconnect_attempts
        first = True
        n_retry = 0
        start = time.monotonic()
        outcome: _Outcome
        while True:
            try:
                transport = await self._transport_for(t)
                outcome = await self._attempt(t, transport, invalidate=first)
            except asyncio.CancelledError:
                outcome = _Outcome(
                    TaskStatus.INTERRUPTED, message=self._interrupt_message(t), command=t.run
                )
                self._journal_end(t, outcome, time.monotonic() - start)
                raise
            except (TransportError, HostLocked) as exc:
                # Could not reach the host or take its lock: nothing ran.
                outcome = _Outcome(TaskStatus.FAILED, message=str(exc), command=t.run)
                break
            except _ConnectionLost as lost:
                first = False
                try:
                    await self._reconnect(t.host, str(lost))
                except (TransportError, HostLocked) as exc:
                    outcome = _Outcome(
                        TaskStatus.FAILED if t.idempotent else TaskStatus.INTERRUPTED,
                        message=f"the connection to {t.host} was lost while '{t.title}' was "
                        f"running, and {exc}",
                        command=t.run,
                    )
                    break
                if t.idempotent and reconnects_left > 0:
                    reconnects_left -= 1
                    n_retry += 1
                    self._retrying(t, n_retry, 0.0, f"connection lost: {lost}")
                    continue
                outcome = _Outcome(
                    TaskStatus.INTERRUPTED,
                    message=(
                        f"the connection to {t.host} was lost while '{t.title}' was running; "
                        f"it may or may not have completed. Check on {t.host} whether it took "
                        f"effect (see {self.journal.log_path(t.host)}), then rerun with "
                        "--retry-interrupted"
                    ),
                    command=t.run,
                )
                break
            first = False
            if (
                outcome.status is TaskStatus.FAILED
                and retries_left > 0
                and not self._stop_requested
            ):
                retries_left -= 1
                n_retry += 1
                delay = backoff(o.backoff_base, o.backoff_max, n_retry)
                self._retrying(t, n_retry, delay, outcome.message)
                await self._sleep(delay)
                continue
            break
        self._journal_end(t, outcome, time.monotonic() - start)
        return outcome

    async def _transport_for(self, t: Task) -> Transport:
        """The host's connection; if it cannot be made, retry with backoff first."""
        try:
            return await self._ensure_host(t.host)
        except TransportError as exc:
            if exc.kind not in _CONNECT_FAILURES:
                raise
            return await self._reconnect(t.host, str(exc))

    def _retrying(self, t: Task, n: int, delay: float, reason: str) -> None:
        reason = self.redactor.redact(reason)
        self.journal.note(t.host, f"{t.step}: retry {n} in {delay:.0f}s: {reason}")
        self.bus.emit(
            TaskRetrying(
                task_id=t.id, host=t.host, step=t.step, attempt=n + 1, delay=delay, reason=reason
            )
        )

    def _journal_end(self, t: Task, outcome: _Outcome, duration: float) -> None:
        r = self.redactor.redact
        self.journal.task_finished(
            self.run_id,
            t.id,
            outcome.status,
            exit_code=outcome.exit_code,
            tail=outcome.tail,
            message=outcome.message,
            input_hash=outcome.input_hash if outcome.status is TaskStatus.DONE else None,
        )
        self._journaled.add(t.id)
        if outcome.satisfied:
            self.bus.emit(
                TaskSkipped(task_id=t.id, host=t.host, step=t.step, reason="check-satisfied")
            )
        else:
            if outcome.status is TaskStatus.DONE:
                self._executed.add(t.id)
            self.bus.emit(
                TaskFinished(
                    task_id=t.id,
                    host=t.host,
                    step=t.step,
                    status=outcome.status,
                    exit_code=outcome.exit_code,
                    duration=duration,
                    message=r(outcome.message),
                )
            )
        if outcome.satisfied:
            self._skipped.add(t.id)

    async def _attempt(self, t: Task, transport: Transport, *, invalidate: bool) -> _Outcome:
        """One try: check, upload, run, capture. Raises _ConnectionLost."""
        r = self.redactor.redact
        try:
            run = substitute(t.run, self._captures)
            check = substitute(t.check, self._captures) if t.check else None
            files = [(f, substitute(f.content, self._captures)) for f in t.files]
        except MissingCapture as exc:
            producer = next(
                (p.id for p in self.plan.tasks for c in p.captures if c.name == exc.name), None
            )
            where = f" (captured by {producer})" if producer else ""
            return _Outcome(
                TaskStatus.FAILED,
                message=f"the value '{exc.name}'{where} is not known: the step that prints it "
                "did not run or printed nothing",
                command=r(t.run),
            )
        shown = r(run)
        eff = effective_hash(t, self._capture_hashes)
        attempt = self.journal.task_started(
            self.run_id,
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
        state = _AttemptState(self, t, hold=any(c.secret for c in t.captures))
        result: CommandResult | None = None
        missing: list[str] = []
        try:
            if check is not None:
                res = await self._exec(transport, t, check)
                if res.exit_status == 0:
                    self._take_captures(t, res, required=False)
                # Logged only now: a secret it printed is known by this point.
                self._log_result(t, "check", res)
                if res.exit_status == 0:
                    self.journal.note(t.host, f"{t.step}: already satisfied (check exit 0)")
                    return _Outcome(
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
                    missing = self._take_captures(t, result, required=result.exit_status == 0)
                state.finish(result)
        except TransportError as exc:
            if exc.kind is FailureKind.CONNECTION_LOST:
                raise _ConnectionLost(exc.detail) from exc
            if exc.kind is FailureKind.COMMAND_TIMEOUT:
                return _Outcome(
                    TaskStatus.FAILED,
                    message=f"timed out after {t.timeout:.0f}s",
                    command=shown,
                    tail=tuple(state.tail),
                )
            return _Outcome(TaskStatus.FAILED, message=str(exc), command=shown)
        tail = tuple(state.tail)
        if result is None:  # pragma: no cover - _exec returns or raises
            raise RuntimeError("no result")
        if result.exit_status != 0:
            return _Outcome(
                TaskStatus.FAILED,
                result.exit_status,
                message=f"exited with status {result.exit_status}",
                command=shown,
                tail=tail,
            )
        if missing:
            return _Outcome(
                TaskStatus.FAILED,
                0,
                message="it succeeded but printed no value for "
                + ", ".join(missing)
                + " (the pattern did not match its output)",
                command=shown,
                tail=tail,
            )
        return _Outcome(TaskStatus.DONE, 0, command=shown, tail=tail, input_hash=eff)

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
                t.timeout + self.options.timeout_slack,
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

    def _take_captures(self, t: Task, result: CommandResult, *, required: bool) -> list[str]:
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
                run_id=self.run_id,
            )
            self._captures[spec.name] = value
            self._capture_hashes[spec.name] = h
        return missing

    def _output(self, t: Task, stream: Stream, text: str) -> None:
        self.journal.log(t.host, t.step, stream, text)
        self.bus.emit(OutputLine(host=t.host, task=t.id, stream=stream, text=text))

    # -- the end ----------------------------------------------------------------------

    def _exit_code(self) -> int:
        if self._stop_requested and self._stop_reason.startswith("interrupt"):
            return exitcodes.INTERRUPTED
        bad = (TaskStatus.FAILED, TaskStatus.INTERRUPTED, TaskStatus.BLOCKED, TaskStatus.PENDING)
        if any(s in bad for s in self._status.values()):
            return exitcodes.TASK_FAILED
        return exitcodes.OK

    def _summary(self, exit_code: int, message: str, duration: float) -> RunSummary:
        counts: dict[str, int] = {s.value: 0 for s in TaskStatus}
        for s in self._status.values():
            counts[s.value] += 1
        return RunSummary(
            run_id=self.run_id,
            exit_code=exit_code,
            duration=duration,
            counts=tuple(counts.items()),
            executed=len(self._executed),
            skipped=len(self._skipped),
            failures=tuple(self._failures[t.id] for t in self.plan.tasks if t.id in self._failures),
            blocked=tuple(self._blocked),
            not_started=tuple(
                t.id for t in self.plan.tasks if self._status.get(t.id) is TaskStatus.PENDING
            ),
            message=self.redactor.redact(message),
        )


def install_signal_handlers(
    runner: Runner, loop: asyncio.AbstractEventLoop | None = None
) -> Callable[[], None]:
    """SIGINT/SIGTERM: first one stops launching and cancels after the grace period,
    a second one cancels at once. Returns a function that removes the handlers."""
    loop = loop or asyncio.get_running_loop()
    count = 0

    def handler(signame: str) -> None:
        nonlocal count
        count += 1
        runner.request_stop(f"interrupted by {signame}", force=count > 1)

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue

    def remove() -> None:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    return remove
