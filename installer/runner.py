"""The runner: executes a Plan on many hosts at once, resumably.

A task (host x step) starts when everything it needs is done; one task at a
time per host, up to ``max_parallel`` hosts at once, ``serial`` steps one host
at a time. Each task: check (exit 0 = already satisfied), upload its files,
run, extract its captures. A failure blocks only what depends on it. Every
transition is committed to the journal before the next thing happens, so a
kill -9 at any moment resumes cleanly. The runner talks to hosts only through
``installer.transport``, emits events and never prints.

This module schedules and records; its parts live beside it:
``installer.host_sessions`` (connections and host locks, reconnects),
``installer.hostlock`` (the lock file on one host), ``installer.task_exec``
(one attempt at one task) and ``installer.run_options`` (the options).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

from installer import exitcodes
from installer.events import (
    EventBus,
    Failure,
    RunFinished,
    RunStarted,
    RunSummary,
    TaskBlocked,
    TaskFinished,
    TaskRef,
    TaskReopened,
    TaskRetrying,
    TaskSkipped,
    TaskStatus,
)
from installer.host_sessions import ConnectFactory, HostSessions, Sleep
from installer.hostlock import HostLocked
from installer.journal import Journal
from installer.plan_model import Plan, Task
from installer.redact import Redactor
from installer.run_options import RunOptions, backoff, default_operator
from installer.scheduler import (
    Action,
    PriorState,
    capture_producers,
    check_plan,
    decide,
    dependents,
    descendants,
    priorities,
    value_hash,
)
from installer.task_exec import CaptureVault, ConnectionLost, Outcome, TaskExecutor
from installer.transport import TransportError

__all__ = [
    "CaptureVault",
    "ConnectFactory",
    "RunOptions",
    "Runner",
    "backoff",
    "default_operator",
    "install_signal_handlers",
]


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
        self._executor = TaskExecutor(
            plan,
            self._graph,
            journal,
            self.bus,
            self.redactor,
            secrets,
            timeout_slack=self.options.timeout_slack,
        )
        self._hosts: HostSessions  # made by run(), once the run has its id
        self._running: dict[asyncio.Task[Outcome], str] = {}
        self._journaled: set[str] = set()
        self._index = {t.id: i for i, t in enumerate(plan.tasks)}
        # capture name -> the task that captures it; task id -> when it last ended done
        self._producer = capture_producers(plan)
        self._done_at: dict[str, float] = {}
        self._reopened: set[str] = set()  # done tasks run again in this run (fresh_for)
        # reader -> producers reopened for it: once each, so that products that expire
        # faster than a reader can start (fresh_for 0) fail the reader instead of looping
        self._reopened_for: dict[str, set[str]] = {}
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
        self._hosts = HostSessions(
            self.connect,
            self.journal,
            self.bus,
            self.redactor,
            o,
            run_id=self.run_id,
            sleep=self._sleep,
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
                await self._hosts.lock_all(hosts)
            except HostLocked as exc:
                exit_code = exitcodes.LOCKED
                message = str(exc)
            else:
                self._hosts.start_heartbeat()
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
            await self._hosts.release_all()
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
                self._executor.captures[name] = value
                self._executor.capture_hashes[name] = cap.value_hash
        prior = {tid: PriorState(r.status, r.input_hash, r.finished_at) for tid, r in rows.items()}
        self._done_at = {
            tid: r.finished_at
            for tid, r in rows.items()
            if r.status is TaskStatus.DONE and r.finished_at is not None
        }
        o = self.options
        actions = decide(
            self.plan,
            prior,
            self._executor.capture_hashes,
            only=o.only,
            skip=o.skip,
            retry_interrupted=o.retry_interrupted,
            now=time.time(),
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
                    t, Outcome(TaskStatus.INTERRUPTED, message=msg, command=row.command), 0.0
                )
        return actions

    # -- scheduling -----------------------------------------------------------------

    def _satisfied(self, task_id: str) -> bool:
        return self._status[task_id] in (TaskStatus.DONE, TaskStatus.EXCLUDED)

    async def _schedule(self, actions: dict[str, Action]) -> None:
        o = self.options
        busy_hosts: set[str] = set()
        busy_serial: set[str] = set()
        prio = priorities(self.plan)

        def rank(t: Task) -> tuple[int, int]:
            return (-prio[t.id], self._index[t.id])  # longest chain first, then plan order

        order = sorted(self.plan.tasks, key=rank)
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
                reopen: set[str] = set()
                for t in waiting:
                    if len(self._running) >= max(1, o.max_parallel):
                        break
                    if t.host in busy_hosts or (t.serial and t.step in busy_serial):
                        continue
                    if not all(self._satisfied(n) for n in t.needs):
                        continue
                    producers = self._producers_of(t)
                    if not all(self._satisfied(p) for p in producers):
                        continue  # one of them runs again first
                    expired = self._expired(producers) - self._reopened_for.get(t.id, set())
                    if expired:
                        self._reopened_for.setdefault(t.id, set()).update(expired)
                        reopen |= expired
                        continue
                    busy_hosts.add(t.host)
                    if t.serial:
                        busy_serial.add(t.step)
                    self._status[t.id] = TaskStatus.RUNNING
                    started_at[t.id] = time.monotonic()
                    aio = asyncio.create_task(self._run_task(t), name=t.id)
                    self._running[aio] = t.id
                waiting = [t for t in waiting if self._status[t.id] is TaskStatus.PENDING]
                if reopen:
                    waiting = sorted([*waiting, *self._reopen(reopen, actions)], key=rank)
                    continue  # launch them now if their hosts are free
            if not self._running:
                return
            done, _ = await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            for aio in sorted(done, key=lambda a: a.get_name()):
                tid = self._running.pop(aio)
                t = self._tasks[tid]
                busy_hosts.discard(t.host)
                busy_serial.discard(t.step)
                if aio.cancelled():
                    outcome = Outcome(
                        TaskStatus.INTERRUPTED, message=self._interrupt_message(t), command=t.run
                    )
                else:
                    exc = aio.exception()
                    if exc is not None:
                        outcome = Outcome(
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

    def _producers_of(self, t: Task) -> set[str]:
        """The tasks that capture the values ``t`` reads."""
        return {p for name in t.uses if (p := self._producer.get(name)) is not None}

    def _expired(self, producers: set[str]) -> set[str]:
        """Those of ``producers`` done longer ago than their ``fresh_for`` (a join token,
        uploaded certificates): a reader must not start with what they made."""
        now = time.time()
        out = set()
        for p in producers:
            fresh_for, done_at = self._tasks[p].fresh_for, self._done_at.get(p)
            if fresh_for is not None and done_at is not None and now - done_at > fresh_for:
                out.add(p)
        return out

    def _reopen(self, task_ids: set[str], actions: dict[str, Action]) -> list[Task]:
        """Put done tasks back to run again in this run; returns them."""
        out = []
        for tid in sorted(task_ids, key=self._order):
            t = self._tasks[tid]
            self._status[tid] = TaskStatus.PENDING
            actions[tid] = Action.RUN
            self._skipped.discard(tid)
            self._reopened.add(tid)
            del self._done_at[tid]
            reason = (
                f"what it made expires {t.fresh_for:.0f}s after it ends, and a later step still "
                "needs it"
            )
            self.journal.note(t.host, f"{t.step}: runs again: {reason}")
            self.bus.emit(TaskReopened(task_id=tid, host=t.host, step=t.step, reason=reason))
            out.append(t)
        return out

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

    def _finish(self, t: Task, outcome: Outcome, duration: float) -> None:
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

    async def _run_task(self, t: Task) -> Outcome:
        """Run one task to its end (retries included); journal and events as it goes."""
        o = self.options
        retries_left = t.retries if t.idempotent else 0
        reconnects_left = o.reconnect_attempts
        first = True
        n_retry = 0
        start = time.monotonic()
        outcome: Outcome
        while True:
            try:
                transport = await self._hosts.transport_for(t.host)
                outcome = await self._executor.attempt(
                    t,
                    transport,
                    run_id=self.run_id,
                    # Reopened for freshness: what already used it is done with it.
                    invalidate=first and t.id not in self._reopened,
                )
            except asyncio.CancelledError:
                outcome = Outcome(
                    TaskStatus.INTERRUPTED, message=self._interrupt_message(t), command=t.run
                )
                self._journal_end(t, outcome, time.monotonic() - start)
                raise
            except (TransportError, HostLocked) as exc:
                # Could not reach the host or take its lock: nothing ran.
                outcome = Outcome(TaskStatus.FAILED, message=str(exc), command=t.run)
                break
            except ConnectionLost as lost:
                first = False
                try:
                    await self._hosts.reconnect(t.host, str(lost))
                except (TransportError, HostLocked) as exc:
                    outcome = Outcome(
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
                outcome = Outcome(
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

    def _retrying(self, t: Task, n: int, delay: float, reason: str) -> None:
        reason = self.redactor.redact(reason)
        self.journal.note(t.host, f"{t.step}: retry {n} in {delay:.0f}s: {reason}")
        self.bus.emit(
            TaskRetrying(
                task_id=t.id, host=t.host, step=t.step, attempt=n + 1, delay=delay, reason=reason
            )
        )

    def _journal_end(self, t: Task, outcome: Outcome, duration: float) -> None:
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
        if outcome.status is TaskStatus.DONE:
            self._done_at[t.id] = time.time()
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
