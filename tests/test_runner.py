"""The runner's scheduling, failures, captures, secrets, resume and locks.

Everything runs against the in-memory FakeNetwork (tests/fake_transport.py);
assertions are about what happened and in which order, never about time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fake_transport import FakeNetwork, FakeTransport, grid_plan, make_plan, make_task

from installer import exitcodes
from installer.events import (
    Event,
    EventBus,
    HostLost,
    HostReconnected,
    OutputLine,
    RunFinished,
    RunStarted,
    TaskBlocked,
    TaskFinished,
    TaskReopened,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskStatus,
)
from installer.headless import planned_actions
from installer.hostlock import LOCK_MARKER
from installer.journal import Journal
from installer.plan_model import CaptureSpec, FileSpec, Plan, capture_placeholder
from installer.redact import Redactor
from installer.runner import Runner, RunOptions, install_signal_handlers
from installer.scheduler import Action


class Vault:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value


@dataclasses.dataclass
class Outcome:
    summary: Any
    events: list[Event]
    delays: list[float]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def run_plan(
    plan: Plan,
    net: FakeNetwork,
    state: Path,
    *,
    redactor: Redactor | None = None,
    vault: Vault | None = None,
    on_event: Any = None,
    runner_hook: Any = None,
    **opts: Any,
) -> Outcome:
    events: list[Event] = []
    delays: list[float] = []

    async def sleep(d: float) -> None:
        delays.append(d)
        await asyncio.sleep(0)

    bus = EventBus()
    bus.subscribe(events.append)
    if on_event is not None:
        bus.subscribe(on_event)
    opts.setdefault("operator", "tester@here")
    with Journal.open(state, redactor=redactor) as journal:
        runner = Runner(
            plan,
            journal,
            net.connect,
            redactor=redactor,
            secrets=vault,
            bus=bus,
            options=RunOptions(**opts),
            sleep=sleep,
        )
        if runner_hook is not None:
            runner_hook(runner)
        summary = await runner.run()
    return Outcome(summary, events, delays)


def statuses(state: Path) -> dict[str, TaskStatus]:
    with Journal.open_readonly(state) as j:
        return {r.task_id: r.status for r in j.tasks()}


# -- scheduling ---------------------------------------------------------------------


async def test_dag_order_and_per_host_exclusivity(tmp_path: Path) -> None:
    hosts = ["a", "b", "c"]
    plan = grid_plan(hosts, ["prep", "install", "join", "finish"], barrier=("join",))
    net = FakeNetwork()
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert out.summary.executed == 12
    # Every task starts only after all its needs ended.
    ended: set[str] = set()
    for kind, _host, task in net.order:
        if kind == "start":
            assert set(plan.task(task).needs) <= ended, task
        else:
            ended.add(task)
    assert max(net.max_per_host.values()) == 1
    assert net.max_total > 1  # hosts really ran at the same time
    assert statuses(tmp_path) == {t.id: TaskStatus.DONE for t in plan.tasks}


async def test_independent_host_chains_do_not_wait_for_each_other(tmp_path: Path) -> None:
    # Host a's second step must not wait for host b's slow first step.
    gate = asyncio.Event()
    plan = grid_plan(["a", "b"], ["s1", "s2"])
    net = FakeNetwork()
    net.on("#task:b:s1", gate=gate)

    def release(e: Event) -> None:
        if isinstance(e, TaskFinished) and e.task_id == "a:s2":
            gate.set()

    out = await run_plan(plan, net, tmp_path, on_event=release)
    assert out.summary.exit_code == 0
    done = [e.task_id for e in out.of(TaskFinished)]
    assert done.index("a:s2") < done.index("b:s1")


async def test_serial_step_runs_one_host_at_a_time(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b", "c", "d"], ["prep", "join"], serial=("join",))
    net = FakeNetwork()
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert net.max_per_step["join"] == 1
    assert net.max_per_step["prep"] > 1


async def test_max_parallel_bounds_hosts_at_once(tmp_path: Path) -> None:
    plan = grid_plan([f"h{i}" for i in range(6)], ["s1", "s2"])
    net = FakeNetwork()
    out = await run_plan(plan, net, tmp_path, max_parallel=2)
    assert out.summary.exit_code == 0
    assert net.max_total == 2


# -- failures -------------------------------------------------------------------------


async def test_failure_blocks_only_dependents(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b", "c"], ["s1", "s2", "s3"])
    net = FakeNetwork()
    net.on("#task:b:s2", exit=2, stdout="\n".join(f"line {i}" for i in range(30)), stderr="boom")
    out = await run_plan(plan, net, tmp_path)
    s = out.summary
    assert s.exit_code == exitcodes.TASK_FAILED
    assert [f.task_id for f in s.failures] == ["b:s2"]
    f = s.failures[0]
    assert (f.host, f.step, f.exit_code) == ("b", "s2", 2)
    assert "echo s2" in f.command
    assert len(f.tail) == 20 and f.tail[-1] == "boom"
    assert s.blocked == ("b:s3",)
    assert [e.task_id for e in out.of(TaskBlocked)] == ["b:s3"]
    assert net.task_runs("b:s3") == 0
    for h in ("a", "c"):
        assert net.task_runs(f"{h}:s3") == 1
    st = statuses(tmp_path)
    assert st["b:s2"] is TaskStatus.FAILED and st["b:s3"] is TaskStatus.BLOCKED
    assert st["a:s3"] is TaskStatus.DONE
    with Journal.open_readonly(tmp_path) as j:
        row = j.task("b:s2")
        assert row is not None and row.exit_code == 2 and row.tail[-1] == "boom"


async def test_barrier_step_blocked_everywhere_by_one_failure(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "all"], barrier=("all",))
    net = FakeNetwork()
    net.on("#task:a:s1", exit=1)
    out = await run_plan(plan, net, tmp_path)
    assert set(out.summary.blocked) == {"a:all", "b:all"}
    assert net.task_runs("b:s1") == 1


async def test_fail_fast_stops_launching(tmp_path: Path) -> None:
    plan = make_plan(
        [make_task("a", "bad"), make_task("a", "next"), make_task("b", "x"), make_task("b", "y")]
    )
    net = FakeNetwork()
    net.on("#task:a:bad", exit=1)
    out = await run_plan(plan, net, tmp_path, fail_fast=True, max_parallel=1)
    s = out.summary
    assert s.exit_code == exitcodes.TASK_FAILED
    assert [e.task_id for e in out.of(TaskStarted)] == ["a:bad"]
    assert set(s.not_started) == {"a:next", "b:x", "b:y"}
    assert "fail-fast" in s.message


async def test_retries_with_backoff_for_idempotent_steps(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "flaky", retries=3)])
    net = FakeNetwork()
    net.on("#task:a:flaky", exit=1, times=2)
    out = await run_plan(plan, net, tmp_path, backoff_base=1.0, backoff_max=30.0)
    assert out.summary.exit_code == 0
    assert net.task_runs("a:flaky") == 3
    assert [e.attempt for e in out.of(TaskRetrying)] == [2, 3]
    assert out.delays == [1.0, 2.0]  # exponential
    with Journal.open_readonly(tmp_path) as j:
        row = j.task("a:flaky")
        assert row is not None and row.attempts == 3 and row.status is TaskStatus.DONE


async def test_no_retry_for_non_idempotent_steps(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "once", retries=3, idempotent=False)])
    net = FakeNetwork()
    net.on("#task:a:once", exit=1)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 1
    assert net.task_runs("a:once") == 1
    assert not out.of(TaskRetrying)


async def test_timeout_fails_the_step(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "slow", timeout=0.05), make_task("b", "ok")])
    net = FakeNetwork()
    net.on("#task:a:slow", hang=True)
    out = await run_plan(plan, net, tmp_path)
    assert [f.task_id for f in out.summary.failures] == ["a:slow"]
    assert "timed out" in out.summary.failures[0].message
    assert statuses(tmp_path)["b:ok"] is TaskStatus.DONE


async def test_dropped_connection_retries_idempotent_step(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "s1"), make_task("a", "s2", needs=("a:s1",))])
    net = FakeNetwork()
    net.on("#task:a:s1", drop=True, times=1)
    net.connect_failures["a"] = 0
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert net.task_runs("a:s1") == 2
    assert [type(e) for e in out.events if isinstance(e, HostLost | HostReconnected)] == [
        HostLost,
        HostReconnected,
    ]
    assert net.connects == 2


async def test_reconnect_backs_off_while_host_is_down(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "s1")])
    net = FakeNetwork()
    net.on("#task:a:s1", drop=True, times=1)
    out_events: list[Event] = []

    def down(e: Event) -> None:
        out_events.append(e)
        if isinstance(e, HostLost):
            net.connect_failures["a"] = 2  # the host reboots: two refused attempts

    out = await run_plan(plan, net, tmp_path, on_event=down, backoff_base=1.0)
    assert out.summary.exit_code == 0
    assert out.of(HostReconnected)[0].attempts == 3
    assert out.delays == [1.0, 2.0, 4.0]


async def test_dropped_connection_interrupts_non_idempotent_step(tmp_path: Path) -> None:
    plan = make_plan(
        [make_task("a", "init", idempotent=False), make_task("a", "after", needs=("a:init",))]
    )
    net = FakeNetwork()
    net.on("#task:a:init", drop=True, times=1)
    out = await run_plan(plan, net, tmp_path)
    s = out.summary
    assert s.exit_code == exitcodes.TASK_FAILED
    f = s.failures[0]
    assert f.status is TaskStatus.INTERRUPTED
    assert "--retry-interrupted" in f.message and "a.log" in f.message
    assert s.blocked == ("a:after",)
    assert net.task_runs("a:init") == 1

    # A plain rerun does not repeat it ...
    out2 = await run_plan(plan, net, tmp_path)
    assert out2.summary.exit_code == exitcodes.TASK_FAILED
    assert net.task_runs("a:init") == 1
    assert "--retry-interrupted" in out2.summary.failures[0].message
    # ... --retry-interrupted does.
    out3 = await run_plan(plan, net, tmp_path, retry_interrupted=True)
    assert out3.summary.exit_code == 0
    assert net.task_runs("a:init") == 2 and net.task_runs("a:after") == 1


async def test_unreachable_host_fails_its_tasks_only(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2"])
    net = FakeNetwork()
    net.connect_failures["b"] = 100
    out = await run_plan(plan, net, tmp_path, reconnect_attempts=2)
    s = out.summary
    assert [f.task_id for f in s.failures] == ["b:s1"]
    assert "unreachable" in s.failures[0].message
    assert s.blocked == ("b:s2",)
    assert statuses(tmp_path)["a:s2"] is TaskStatus.DONE


# -- checks, files, captures, secrets ------------------------------------------------


async def test_check_satisfied_skips_the_run(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "pkg", check="dpkg -s foo #check")])
    net = FakeNetwork()
    net.on("dpkg -s foo", exit=0)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert [e.reason for e in out.of(TaskSkipped)] == ["check-satisfied"]
    assert net.task_runs("a:pkg") == 0
    assert statuses(tmp_path)["a:pkg"] is TaskStatus.DONE


async def test_check_unsatisfied_runs(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "pkg", check="dpkg -s foo #check")])
    net = FakeNetwork()
    net.on("dpkg -s foo", exit=1)
    await run_plan(plan, net, tmp_path)
    assert net.task_runs("a:pkg") == 1


async def test_captures_flow_into_later_commands_and_files(tmp_path: Path) -> None:
    ph = capture_placeholder("join.addr")
    plan = make_plan(
        [
            make_task(
                "cp1",
                "init",
                captures=(CaptureSpec("join.addr", r"JOIN=(?P<value>\S+)"),),
            ),
            make_task(
                "w1",
                "join",
                needs=("cp1:init",),
                run=f"join {ph}",
                files=(FileSpec("/etc/join.conf", f"addr: {ph}\n", mode=0o600),),
            ),
        ]
    )
    net = FakeNetwork()
    net.on("#task:cp1:init", stdout="starting\nJOIN=10.0.0.1:6443\n")
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    join = net.runs("w1")[-1]
    assert "join 10.0.0.1:6443" in join.command
    upload = next(c for c in net.calls if c.kind == "upload")
    assert upload.data == b"addr: 10.0.0.1:6443\n" and upload.mode == 0o600
    with Journal.open_readonly(tmp_path) as j:
        cap = j.captures()["join.addr"]
        assert cap.value == "10.0.0.1:6443" and not cap.secret


async def test_missing_capture_fails_with_a_clear_message(tmp_path: Path) -> None:
    plan = make_plan(
        [
            make_task("a", "init", captures=(CaptureSpec("tok", r"TOKEN=(\S+)"),)),
            make_task("b", "use", needs=("a:init",), run=f"use {capture_placeholder('tok')}"),
        ]
    )
    net = FakeNetwork()
    net.on("#task:a:init", stdout="nothing useful\n")
    out = await run_plan(plan, net, tmp_path)
    f = out.summary.failures[0]
    assert f.task_id == "a:init" and "tok" in f.message
    assert out.summary.blocked == ("b:use",)


SECRET = "s3cr3t-join-token-9f8e7d6c5b4a"


def _secret_plan() -> Plan:
    ph = capture_placeholder("kubeadm.token")
    return make_plan(
        [
            make_task(
                "cp1",
                "token",
                captures=(CaptureSpec("kubeadm.token", r"token: (?P<value>\S+)", secret=True),),
            ),
            make_task(
                "w1",
                "join",
                needs=("cp1:token",),
                run=f"kubeadm join --token {ph}",
                files=(FileSpec("/etc/tok", f"{ph}\n", secret=True),),
            ),
            make_task("w2", "join", needs=("cp1:token",), run=f"kubeadm join --token {ph}"),
        ]
    )


def _all_text(state: Path) -> bytes:
    data = b""
    for p in state.rglob("*"):
        if p.is_file():
            data += p.read_bytes()
    return data


async def test_secret_capture_is_redacted_everywhere(tmp_path: Path) -> None:
    plan = _secret_plan()
    net = FakeNetwork()
    # The token is printed, also cut in two by a line break, and echoed by the joins.
    net.on("#task:cp1:token", stdout=f"token: {SECRET}\nwrapped: {SECRET[:12]}\n{SECRET[12:]}\n")
    net.on("#task:w1:join", stdout=f"joining with {SECRET}\n")
    net.on("#task:w2:join", exit=1, stderr=f"bad token {SECRET}\n")
    vault = Vault()
    state = tmp_path / "state"
    out = await run_plan(plan, net, state, vault=vault)
    assert out.summary.exit_code == 1
    # The value reached the hosts that need it ...
    assert SECRET in net.runs("w1")[-1].command
    assert next(c for c in net.calls if c.kind == "upload").data == f"{SECRET}\n".encode()
    # ... and the 0600 secrets store, not the journal.
    assert vault.values == {"kubeadm.token": SECRET}
    # Nowhere else: events, summary, journal rows, WAL, logs.
    text = repr(out.events)
    assert SECRET not in text and SECRET[:12] not in text and SECRET[12:] not in text
    assert "****" in text
    failure = out.summary.failures[0]
    assert "****" in failure.command and "****" in failure.tail[-1]
    blob = _all_text(state)
    assert SECRET.encode() not in blob and SECRET[12:].encode() not in blob
    assert b"****" in (state / "logs" / "w1.log").read_bytes()
    with Journal.open_readonly(state) as j:
        cap = j.captures()["kubeadm.token"]
        assert cap.secret and cap.value is None
        row = j.task("w2:join")
        assert row is not None and "****" in row.command
    # A resume finds the secret again in the vault and skips the done tasks.
    out2 = await run_plan(plan, net, state, vault=vault)
    assert net.task_runs("cp1:token") == 1 and net.task_runs("w1:join") == 1
    assert net.task_runs("w2:join") == 2
    assert SECRET not in repr(out2.events)


async def test_lost_secret_makes_its_producer_run_again(tmp_path: Path) -> None:
    plan = _secret_plan()
    net = FakeNetwork()
    net.on("#task:cp1:token", stdout=f"token: {SECRET}\n")
    net.on("#task:w2:join", exit=1, times=1)
    await run_plan(plan, net, tmp_path, vault=Vault())
    # The secrets file was lost; w2 still has to join: the token is printed again.
    out = await run_plan(plan, net, tmp_path, vault=Vault())
    assert out.summary.exit_code == 0
    assert net.task_runs("cp1:token") == 2


async def test_generated_secrets_masked_in_commands(tmp_path: Path) -> None:
    pw = "generated-Pa55word-xyz"
    plan = make_plan([make_task("a", "db", run=f"setpw {pw}")])
    net = FakeNetwork()
    net.on("#task:a:db", exit=1, stdout=f"using {pw}\n")
    out = await run_plan(plan, net, tmp_path, redactor=Redactor([pw]))
    assert pw not in repr(out.events) and pw.encode() not in _all_text(tmp_path)
    assert "setpw ****" in out.summary.failures[0].command


# -- resume ------------------------------------------------------------------------


async def test_resume_skips_done_tasks_without_touching_hosts(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2", "s3"])
    net = FakeNetwork()
    await run_plan(plan, net, tmp_path)
    calls = len(net.calls)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert out.summary.executed == 0 and out.summary.skipped == 6
    assert {e.reason for e in out.of(TaskSkipped)} == {"done"}
    assert len(net.calls) == calls  # not even a connection


async def test_resume_after_failure_runs_only_what_is_left(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2", "s3"])
    net = FakeNetwork()
    net.on("#task:b:s2", exit=1, times=1)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 1
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert [e.task_id for e in out.of(TaskStarted)] == ["b:s2", "b:s3"]
    for t in plan.tasks:
        expected = 2 if t.id == "b:s2" else 1
        assert net.task_runs(t.id) == expected, t.id


async def test_changed_input_reruns_task_and_everything_after(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2", "s3"])
    net = FakeNetwork()
    await run_plan(plan, net, tmp_path)
    changed = tuple(
        dataclasses.replace(t, input_hash="new") if t.id == "a:s2" else t for t in plan.tasks
    )
    plan2 = dataclasses.replace(plan, tasks=changed)
    out = await run_plan(plan2, net, tmp_path)
    assert sorted(e.task_id for e in out.of(TaskStarted)) == ["a:s2", "a:s3"]
    # Unchanged since: a third run does nothing.
    out = await run_plan(plan2, net, tmp_path)
    assert out.summary.executed == 0


async def test_changed_capture_value_reruns_its_readers(tmp_path: Path) -> None:
    ph = capture_placeholder("v")
    plan = make_plan(
        [
            make_task("a", "make", captures=(CaptureSpec("v", r"V=(\S+)"),)),
            make_task("b", "use", needs=("a:make",), run=f"use {ph}"),
        ]
    )
    net = FakeNetwork()
    net.on("#task:a:make", stdout="V=1\n", times=1)
    net.on("#task:a:make", stdout="V=2\n")
    await run_plan(plan, net, tmp_path)
    # Force the producer to run again (its inputs changed); its new value reaches b.
    plan2 = dataclasses.replace(
        plan, tasks=(dataclasses.replace(plan.tasks[0], input_hash="x"), plan.tasks[1])
    )
    await run_plan(plan2, net, tmp_path)
    assert [c.command.split()[1] for c in net.runs("b")] == ["1", "2"]


def _age_task(state: Path, task_id: str, seconds: float) -> None:
    db = sqlite3.connect(state / "journal.sqlite")
    with db:
        db.execute(
            "UPDATE tasks SET finished_at = finished_at - ? WHERE task_id=?", (seconds, task_id)
        )
    db.close()


def _expiring_plan(fresh_for: float) -> Plan:
    ph = capture_placeholder("join")
    return make_plan(
        [
            make_task(
                "cp1", "token", captures=(CaptureSpec("join", r"J=(\S+)"),), fresh_for=fresh_for
            ),
            make_task("w1", "join", needs=("cp1:token",), run=f"join {ph}"),
            make_task("w2", "join", needs=("cp1:token",), run=f"join {ph}"),
        ]
    )


async def test_expired_products_are_made_again_before_a_reader_runs(tmp_path: Path) -> None:
    plan = _expiring_plan(fresh_for=3600)
    net = FakeNetwork()
    net.on("#task:cp1:token", stdout="J=first\n", times=1)
    net.on("#task:cp1:token", stdout="J=second\n")
    net.on("#task:w2:join", exit=1, times=1)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 1
    # Resumed two hours later: the token is stale, so it is made again before w2 joins,
    # and a dry run says so.
    _age_task(tmp_path, "cp1:token", 7200)
    actions, _ = planned_actions(plan, tmp_path)
    assert actions["cp1:token"] is Action.RUN and actions["w1:join"] is Action.RUN
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert net.task_runs("cp1:token") == 2
    assert [c.command.split()[1] for c in net.runs("w2")] == ["first", "second"]


async def test_products_that_expire_during_the_run_are_made_again(tmp_path: Path) -> None:
    """w2 can join only after a slow step; by then the token (fresh for 0.3 s) expired.
    The token step runs again in the same run, w2 joins with the new token, and w1,
    which joined with the old one, stays done."""
    ph = capture_placeholder("join")
    plan = make_plan(
        [
            make_task("cp1", "token", captures=(CaptureSpec("join", r"J=(\S+)"),), fresh_for=0.3),
            make_task("w1", "join", needs=("cp1:token",), run=f"join {ph}"),
            make_task("w2", "slow"),
            make_task("w2", "join", needs=("cp1:token", "w2:slow"), run=f"join {ph}"),
        ]
    )
    net = FakeNetwork()
    net.on("#task:cp1:token", stdout="J=first\n", times=1)
    net.on("#task:cp1:token", stdout="J=second\n")
    net.on("#task:w2:slow", delay=1.0)  # a wait, not a speed limit: it outlasts the 0.3 s
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert net.task_runs("cp1:token") == 2
    assert [c.command.split()[1] for c in net.runs("w1")] == ["first"]
    assert [c.command.split()[1] for c in net.runs("w2") if "join" in c.command] == ["second"]
    reopened = out.of(TaskReopened)
    assert [e.task_id for e in reopened] == ["cp1:token"]
    assert reopened[0].reason.startswith("what it made expires 0s after it ends")
    # Each host's count ends at its number of tasks: ends minus reopenings.
    ends = [e.host for e in out.events if isinstance(e, TaskFinished | TaskSkipped)]
    assert ends.count("cp1") - len(reopened) == 1
    with Journal.open_readonly(tmp_path) as j:
        rows = {r.task_id: r for r in j.tasks()}
    assert {r.status for r in rows.values()} == {TaskStatus.DONE}  # w1 was not invalidated
    # A rerun at once reopens nothing. w1 joined with the token since replaced: like any
    # task whose input changed it runs again, and in a profile its check makes that a no-op.
    out = await run_plan(plan, net, tmp_path)
    assert not out.of(TaskReopened)
    assert [e.task_id for e in out.of(TaskStarted)] == ["w1:join"]


async def test_products_that_expire_at_once_are_made_again_once_per_reader(
    tmp_path: Path,
) -> None:
    """fresh_for 0: the product has expired before any reader can start. Each reader has
    it made again once, then runs with what it gets (and fails, as a real expired token
    would); the run ends instead of making it again forever."""
    ph = capture_placeholder("join")
    plan = make_plan(
        [
            make_task("cp1", "token", captures=(CaptureSpec("join", r"J=(\S+)"),), fresh_for=0),
            make_task("w1", "join", needs=("cp1:token",), run=f"join {ph}"),
            make_task("w2", "join", needs=("cp1:token",), run=f"join {ph}"),
        ]
    )
    net = FakeNetwork()
    net.on("#task:cp1:token", stdout="J=t\n")
    net.on("#task:w1:join", exit=1)  # the token expired
    net.on("#task:w2:join", exit=1)
    run = asyncio.create_task(run_plan(plan, net, tmp_path))
    done, _ = await asyncio.wait({run}, timeout=60)  # a hang detector, not a speed limit
    assert done, "the run never ended: the producer was made again forever"
    out = run.result()
    assert out.summary.exit_code == 1
    assert net.task_runs("cp1:token") <= 3  # once, then at most once for each reader
    assert sorted(f.task_id for f in out.summary.failures) == ["w1:join", "w2:join"]


async def test_fresh_products_and_finished_readers_need_no_rerun(tmp_path: Path) -> None:
    plan = _expiring_plan(fresh_for=3600)
    net = FakeNetwork()
    net.on("#task:cp1:token", stdout="J=first\n")
    net.on("#task:w2:join", exit=1, times=1)
    await run_plan(plan, net, tmp_path)
    _age_task(tmp_path, "cp1:token", 600)  # still fresh
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0 and net.task_runs("cp1:token") == 1
    # Everything is done: an old token does not matter when nobody reads it.
    _age_task(tmp_path, "cp1:token", 7200)
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.executed == 0 and net.task_runs("cp1:token") == 1


async def test_invalidation_survives_a_crash(tmp_path: Path) -> None:
    """A changed task that finished before a crash still makes its dependents rerun."""
    plan = grid_plan(["a"], ["s1", "s2"])
    net = FakeNetwork()
    await run_plan(plan, net, tmp_path)
    plan2 = dataclasses.replace(
        plan, tasks=(dataclasses.replace(plan.tasks[0], input_hash="new"), plan.tasks[1])
    )
    net.on("#task:a:s2", exit=1, times=1)  # stands in for dying before s2 completes
    await run_plan(plan2, net, tmp_path)
    out = await run_plan(plan2, net, tmp_path)
    assert [e.task_id for e in out.of(TaskStarted)] == ["a:s2"]
    assert net.task_runs("a:s1") == 2


def _set_running(state: Path, task_id: str) -> None:
    db = sqlite3.connect(state / "journal.sqlite")
    with db:
        db.execute("UPDATE tasks SET status='running' WHERE task_id=?", (task_id,))
    db.close()


async def test_task_left_running_by_a_dead_installer(tmp_path: Path) -> None:
    plan = make_plan([make_task("a", "idem"), make_task("b", "once", idempotent=False)])
    net = FakeNetwork()
    await run_plan(plan, net, tmp_path)
    _set_running(tmp_path, "a:idem")
    _set_running(tmp_path, "b:once")
    out = await run_plan(plan, net, tmp_path)
    assert net.task_runs("a:idem") == 2  # idempotent: simply run again
    assert net.task_runs("b:once") == 1  # not without consent
    assert out.summary.exit_code == 1
    assert out.summary.failures[0].status is TaskStatus.INTERRUPTED
    out = await run_plan(plan, net, tmp_path, retry_interrupted=True)
    assert out.summary.exit_code == 0 and net.task_runs("b:once") == 2


async def test_only_and_skip_select_steps(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2", "s3"])
    net = FakeNetwork()
    out = await run_plan(plan, net, tmp_path, only=frozenset({"s2"}))
    assert sorted(e.task_id for e in out.of(TaskStarted)) == ["a:s2", "b:s2"]
    assert {e.reason for e in out.of(TaskSkipped)} == {"excluded"}
    st = statuses(tmp_path)
    assert st["a:s1"] is TaskStatus.PENDING and st["a:s2"] is TaskStatus.DONE
    # s1 never ran, so it runs now, and s2 after it again (it comes after a task that ran).
    out = await run_plan(plan, net, tmp_path, skip=frozenset({"s3"}))
    assert sorted(e.task_id for e in out.of(TaskStarted)) == ["a:s1", "a:s2", "b:s1", "b:s2"]
    assert statuses(tmp_path)["a:s3"] is TaskStatus.PENDING


# -- events -----------------------------------------------------------------------


async def test_event_stream_shape(tmp_path: Path) -> None:
    plan = grid_plan(["a"], ["s1"])
    net = FakeNetwork()
    net.on("#task:a:s1", stdout="hello\nworld\n")
    q_events: list[Event] = []
    bus_queue: asyncio.Queue[Event] | None = None

    def hook(runner: Runner) -> None:
        nonlocal bus_queue
        bus_queue = runner.bus.queue()

    out = await run_plan(plan, net, tmp_path, runner_hook=hook)
    kinds = [type(e).__name__ for e in out.events]
    assert kinds == [
        "RunStarted",
        "TaskStarted",
        "OutputLine",
        "OutputLine",
        "TaskFinished",
        "RunFinished",
    ]
    assert isinstance(out.events[0], RunStarted) and out.events[0].tasks[0].task_id == "a:s1"
    lines = out.of(OutputLine)
    assert [(e.host, e.task, e.stream, e.text) for e in lines] == [
        ("a", "a:s1", "stdout", "hello"),
        ("a", "a:s1", "stdout", "world"),
    ]
    fin = out.of(TaskFinished)[0]
    assert fin.status is TaskStatus.DONE and fin.exit_code == 0 and fin.duration >= 0
    assert isinstance(out.events[-1], RunFinished)
    assert bus_queue is not None
    while not bus_queue.empty():
        q_events.append(bus_queue.get_nowait())
    assert [type(e) for e in q_events] == [type(e) for e in out.events]


# -- interrupts ----------------------------------------------------------------------


async def test_stop_request_cancels_after_grace_and_keeps_journal_consistent(
    tmp_path: Path,
) -> None:
    plan = grid_plan(["a", "b"], ["s1", "s2"])
    net = FakeNetwork()
    net.on("#task:a:s1", hang=True)
    holder: dict[str, Runner] = {}

    def hook(runner: Runner) -> None:
        holder["r"] = runner

    def on_event(e: Event) -> None:
        if isinstance(e, TaskFinished) and e.task_id == "b:s1":
            holder["r"].request_stop("interrupted by SIGINT")

    out = await run_plan(plan, net, tmp_path, runner_hook=hook, on_event=on_event, grace_period=0.0)
    s = out.summary
    assert s.exit_code == exitcodes.INTERRUPTED
    assert net.task_runs("b:s2") == 0  # nothing launched after the stop
    st = statuses(tmp_path)
    assert st["a:s1"] is TaskStatus.INTERRUPTED
    assert TaskStatus.RUNNING not in st.values()
    with Journal.open_readonly(tmp_path) as j:
        assert j.integrity_check() == "ok"
        assert j.runs()[-1].status == "interrupted"
    # Running again resumes.
    net.rules.clear()
    out = await run_plan(plan, net, tmp_path)
    assert out.summary.exit_code == 0
    assert sorted(e.task_id for e in out.of(TaskStarted)) == ["a:s1", "a:s2", "b:s2"]


async def test_sigint_handler_stops_the_run(tmp_path: Path) -> None:
    plan = grid_plan(["a"], ["s1", "s2"])
    net = FakeNetwork()
    net.on("#task:a:s1", hang=True)
    removers: list[Any] = []

    def hook(runner: Runner) -> None:
        removers.append(install_signal_handlers(runner))

    def on_event(e: Event) -> None:
        if isinstance(e, TaskStarted):
            os.kill(os.getpid(), signal.SIGINT)

    try:
        out = await run_plan(
            plan, net, tmp_path, runner_hook=hook, on_event=on_event, grace_period=0.0
        )
    finally:
        for r in removers:
            r()
    assert out.summary.exit_code == exitcodes.INTERRUPTED
    assert net.task_runs("a:s2") == 0


# -- host locks ---------------------------------------------------------------------


async def test_host_lock_refuses_a_second_install(tmp_path: Path) -> None:
    plan = grid_plan(["a", "b"], ["s1"])
    net = FakeNetwork(lock_dir=tmp_path / "hosts")
    gate = asyncio.Event()
    net.on("#task:a:s1", gate=gate)
    first = asyncio.create_task(run_plan(plan, net, tmp_path / "one", operator="alice@x"))
    while not net.lock_file("a").exists() or not net.lock_file("b").exists():
        await asyncio.sleep(0.01)
    lock_text = net.lock_file("a").read_text()
    assert "operator=alice@x" in lock_text and "host=a" in lock_text and "run=" in lock_text
    # Another installer (its own state dir) is refused, touching nothing.
    net2 = FakeNetwork(lock_dir=tmp_path / "hosts")
    second = await run_plan(plan, net2, tmp_path / "two", operator="bob@y")
    assert second.summary.exit_code == exitcodes.LOCKED
    assert "alice@x" in second.summary.message
    assert not net2.runs()
    gate.set()
    out = await first
    assert out.summary.exit_code == 0
    assert not net.lock_file("a").exists() and not net.lock_file("b").exists()  # released


def _foreign_lock(net: FakeNetwork, host: str, *, age: int) -> None:
    path = net.lock_file(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("operator=carol@z\nhost=a\nrun=old-run\ninstallation=someone-else\n")
    t = path.stat().st_mtime - age
    os.utime(path, (t, t))


async def test_stale_host_lock_needs_break_locks(tmp_path: Path) -> None:
    plan = grid_plan(["a"], ["s1"])
    net = FakeNetwork(lock_dir=tmp_path / "hosts")
    _foreign_lock(net, "a", age=7200)
    out = await run_plan(plan, net, tmp_path / "s", lock_ttl=900)
    assert out.summary.exit_code == exitcodes.LOCKED
    assert "stale" in out.summary.message and "--break-locks" in out.summary.message
    assert net.task_runs("a:s1") == 0
    out = await run_plan(plan, net, tmp_path / "s", lock_ttl=900, break_locks=True)
    assert out.summary.exit_code == 0
    assert net.task_runs("a:s1") == 1


async def test_fresh_foreign_lock_is_not_broken(tmp_path: Path) -> None:
    plan = grid_plan(["a"], ["s1"])
    net = FakeNetwork(lock_dir=tmp_path / "hosts")
    _foreign_lock(net, "a", age=0)
    out = await run_plan(plan, net, tmp_path / "s", lock_ttl=900, break_locks=True)
    assert out.summary.exit_code == exitcodes.LOCKED
    assert "carol@z" in out.summary.message
    assert net.lock_file("a").exists()


async def test_own_leftover_lock_is_taken_over(tmp_path: Path) -> None:
    plan = grid_plan(["a"], ["s1", "s2"])
    net = FakeNetwork(lock_dir=tmp_path / "hosts")
    net.on("#task:a:s2", exit=1, times=1)
    await run_plan(plan, net, tmp_path / "s")
    with Journal.open_readonly(tmp_path / "s") as j:
        inst = j.installation_id
    # As if the installer had been killed: its lock stays on the host.
    net.lock_file("a").write_text(f"operator=me\nhost=a\nrun=dead\ninstallation={inst}\n")
    out = await run_plan(plan, net, tmp_path / "s")
    assert out.summary.exit_code == 0
    assert not net.lock_file("a").exists()


async def test_heartbeat_retakes_a_vanished_lock_and_reports_a_foreign_one(
    tmp_path: Path,
) -> None:
    plan = grid_plan(["a"], ["s1"])
    net = FakeNetwork(lock_dir=tmp_path / "hosts")
    gate = asyncio.Event()
    net.on("#task:a:s1", gate=gate)
    lock = net.lock_file("a")
    first = asyncio.create_task(run_plan(plan, net, tmp_path / "s", lock_ttl=3))
    while not lock.exists():
        await asyncio.sleep(0.01)
    ours = lock.read_text()
    # The host rebooted between two beats: /run is empty and the connection came back.
    lock.unlink()
    for _ in range(500):
        if lock.exists():
            break
        await asyncio.sleep(0.01)
    assert lock.read_text() == ours  # taken again by the heartbeat, same run
    # Another install grabbed it meanwhile: the heartbeat leaves it and says so.
    foreign = "operator=carol@z\nhost=a\nrun=other-run\ninstallation=someone-else\n"
    lock.write_text(foreign)
    log = tmp_path / "s" / "logs" / "a.log"
    for _ in range(500):
        if log.exists() and "held by another install" in log.read_text():
            break
        await asyncio.sleep(0.01)
    gate.set()
    out = await first
    assert out.summary.exit_code == 0
    text = log.read_text()
    assert "host lock had vanished (a reboot?): taken again" in text
    assert "held by another install" in text
    assert lock.read_text() == foreign  # never removed another install's lock


class _HeldBeat(FakeNetwork):
    """Its lock refreshes wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.beating = asyncio.Event()
        self.release = asyncio.Event()
        self.refreshes = 0

    async def connect(self, host: str) -> FakeTransport:
        transport = await super().connect(host)
        net = self

        class Transport(FakeTransport):
            async def run(self, command: str, **kw: Any) -> Any:
                if command.startswith(f"{LOCK_MARKER} refresh"):
                    net.refreshes += 1
                    net.beating.set()
                    await net.release.wait()
                return await super().run(command, **kw)

        transport.__class__ = Transport
        return transport


async def test_release_ends_a_heartbeat_whose_refresh_ends_as_it_is_cancelled(
    tmp_path: Path,
) -> None:
    """A refresh that ends in the same turn of the event loop as the release cancels the
    heartbeat: asyncio.wait_for (3.11) then returns the refresh's result and swallows the
    cancellation. The heartbeat went on beating and the run waited for it forever (a
    10-minute wizard run never finished)."""
    from installer.events import EventBus
    from installer.host_sessions import HostSessions

    net = _HeldBeat()
    with Journal.open(tmp_path / "s") as journal:
        sessions = HostSessions(
            net.connect,
            journal,
            EventBus(),
            Redactor(),
            RunOptions(lock_ttl=0.3, operator="tester@here"),
            run_id="r1",
            sleep=asyncio.sleep,
        )
        await sessions.lock_all(["a"])
        sessions.start_heartbeat()
        await net.beating.wait()  # the heartbeat waits inside a refresh
        net.release.set()  # the refresh ends in the next turn...
        release = asyncio.create_task(sessions.release_all())  # ...and the release starts in it
        done, _ = await asyncio.wait({release}, timeout=30)  # a hang detector, not a speed limit
        assert done, "release_all never returned: the heartbeat outlived the run"
        assert net.refreshes == 1


# -- kill -9 ------------------------------------------------------------------------

FAKE = Path(__file__).with_name("fake_transport.py")
REPO_ROOT = Path(__file__).resolve().parent.parent


def test_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    import random
    import subprocess
    import sys
    import time

    from fake_transport import CRASH_TOKEN, crash_plan

    state, locks, log = tmp_path / "state", tmp_path / "hosts", tmp_path / "exec.log"
    log.touch()
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{FAKE.parent}"}
    rnd = random.Random(20251122)
    plan = crash_plan()

    def start(i: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, str(FAKE), "child", str(state), str(locks), str(log), str(i)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def executions() -> list[tuple[int, str]]:
        rows = [line.split() for line in log.read_text().splitlines() if line.strip()]
        return [(int(pid), task) for pid, task in rows]

    done_after_kill: list[tuple[int, set[str]]] = []  # (pids so far, done tasks)
    pids: list[int] = []
    kills = 0
    for i in range(12):
        if kills == 6:
            break
        before = len(executions())
        proc = start(i)
        pids.append(proc.pid)
        # Kill after a random number of commands has started (0 = during start-up).
        wanted = rnd.randint(0, 7)
        deadline = time.monotonic() + 60
        while len(executions()) < before + wanted and proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the child made no progress")
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        with Journal.open_readonly(state) if (state / "journal.sqlite").exists() else _Null() as j:
            if j is not None:
                assert j.integrity_check() == "ok"
                done = {r.task_id for r in j.tasks() if r.status is TaskStatus.DONE}
                done_after_kill.append((len(pids), done))
    assert kills >= 5

    final = start(99)
    _out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]
    pids.append(final.pid)

    with Journal.open_readonly(state) as j:
        assert j.integrity_check() == "ok"
        assert {r.task_id: r.status for r in j.tasks()} == {
            t.id: TaskStatus.DONE for t in plan.tasks
        }
        assert j.runs()[-1].status == "done"
    execs = executions()
    # No task recorded done after a kill ran again in a later process.
    for n_pids, done in done_after_kill:
        later = set(pids[n_pids:])
        again = sorted({task for pid, task in execs if pid in later and task in done})
        assert not again, f"done tasks ran again: {again}"
    # Everything ran at least once, the secret never reached the state except secrets.yaml.
    assert {task for _, task in execs} >= {t.id for t in plan.tasks}
    for p in state.rglob("*"):
        if p.is_file() and p.name != "secrets.yaml":
            assert CRASH_TOKEN.encode() not in p.read_bytes(), p
    assert (state / "secrets.yaml").stat().st_mode & 0o777 == 0o600
    assert not any(locks.rglob("fmp-install.lock"))  # host locks released at the end


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- headless -------------------------------------------------------------------------


class Notes:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notices: list[str] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def notice(self, text: str) -> None:
        self.notices.append(text)


def _wipe_plan() -> Plan:
    return make_plan(
        [
            make_task("kn0", "prep"),
            make_task("kn3", "prep"),
            make_task("kn3", "osd", needs=("kn3:prep",), destructive=True, wipes=("/dev/sdb",)),
        ]
    )


async def _headless(plan: Plan, net: FakeNetwork, state: Path, **kw: Any) -> tuple[int, Notes]:
    from installer.headless import run_install
    from installer.secrets import SecretStore

    notes = Notes()
    args: dict[str, Any] = {
        "yes": True,
        "dry_run": False,
        "consented_disks": ["kn3:/dev/sdb"],
        "secrets": SecretStore(),
        "handle_signals": False,
    }
    args.update(kw)
    code = await run_install(plan, state_dir=state, connect=net.connect, reporter=notes, **args)
    return code, notes


async def test_headless_needs_yes(tmp_path: Path) -> None:
    net = FakeNetwork()
    code, notes = await _headless(_wipe_plan(), net, tmp_path / "s", yes=False)
    assert code == exitcodes.INVALID_INPUT
    assert "--yes" in notes.notices[0] and "Nothing was changed" in notes.notices[0]
    assert not net.calls and not (tmp_path / "s").exists()


async def test_headless_names_disks_wiped_without_consent(tmp_path: Path) -> None:
    net = FakeNetwork()
    code, notes = await _headless(
        _wipe_plan(), net, tmp_path / "s", consented_disks=["kn3:/dev/sdc"]
    )
    assert code == exitcodes.INVALID_INPUT
    assert "kn3:/dev/sdb" in notes.notices[0] and "storage.wipe" in notes.notices[0]
    assert not net.calls
    # Skipping the destructive step needs no consent.
    code, _ = await _headless(_wipe_plan(), net, tmp_path / "s", consented_disks=[], skip=["osd"])
    assert code == 0 and net.task_runs("kn3:osd") == 0


async def test_headless_runs_and_resumes(tmp_path: Path) -> None:
    net = FakeNetwork()
    net.on("#task:kn3:osd", exit=1, times=1)
    code, notes = await _headless(_wipe_plan(), net, tmp_path / "s")
    assert code == exitcodes.TASK_FAILED
    assert isinstance(notes.events[-1], RunFinished)
    code, notes = await _headless(_wipe_plan(), net, tmp_path / "s")
    assert code == 0
    assert [e.task_id for e in notes.events if isinstance(e, TaskStarted)] == ["kn3:osd"]


async def test_headless_dry_run_changes_nothing(tmp_path: Path) -> None:
    net = FakeNetwork()
    code, notes = await _headless(_wipe_plan(), net, tmp_path / "s", yes=False, dry_run=True)
    assert code == 0
    text = notes.notices[0]
    assert "kn3:" in text and "WIPES kn3:/dev/sdb" in text and "3 of 3 tasks would run" in text
    assert not net.calls and not (tmp_path / "s").exists()
    # After an install, the dry run says what a rerun would skip.
    await _headless(_wipe_plan(), net, tmp_path / "s")
    calls = len(net.calls)
    code, notes = await _headless(_wipe_plan(), net, tmp_path / "s", dry_run=True)
    assert "0 of 3 tasks would run" in notes.notices[0] and "skip (done)" in notes.notices[0]
    assert len(net.calls) == calls


async def test_headless_unknown_step(tmp_path: Path) -> None:
    code, notes = await _headless(_wipe_plan(), FakeNetwork(), tmp_path / "s", only=["nope"])
    assert code == exitcodes.INVALID_INPUT
    assert "no step named nope" in notes.notices[0] and "osd" in notes.notices[0]


async def test_headless_state_locked(tmp_path: Path) -> None:
    net = FakeNetwork()
    with Journal.open(tmp_path / "s"):
        code, notes = await _headless(_wipe_plan(), net, tmp_path / "s")
    assert code == exitcodes.LOCKED
    assert f"locked by PID {os.getpid()}" in notes.notices[0]
    assert not net.calls


async def test_headless_keeps_captured_secrets_in_the_0600_file(tmp_path: Path) -> None:
    from installer.secrets import load_secrets, secrets_path

    net = FakeNetwork()
    net.on("#task:cp1:token", stdout=f"token: {SECRET}\n")
    state = tmp_path / "s"
    code, notes = await _headless(_secret_plan(), net, state)
    assert code == 0
    path = secrets_path(state)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secrets(path).captured == {"kubeadm.token": SECRET}
    assert SECRET not in repr(notes.events)


async def test_secret_captured_from_a_satisfied_check_is_masked(tmp_path: Path) -> None:
    ph = capture_placeholder("tok")
    plan = make_plan(
        [
            make_task(
                "cp1",
                "token",
                check="kubeadm token list",
                captures=(CaptureSpec("tok", r"token: (\S+)", secret=True),),
            ),
            make_task("w1", "join", needs=("cp1:token",), run=f"join {ph}"),
        ]
    )
    net = FakeNetwork()
    net.on("kubeadm token list", stdout=f"token: {SECRET}\n")
    vault = Vault()
    out = await run_plan(plan, net, tmp_path, vault=vault)
    assert out.summary.exit_code == 0
    assert net.task_runs("cp1:token") == 0
    assert f"join {SECRET}" in net.runs("w1")[-1].command
    assert vault.values == {"tok": SECRET}
    assert SECRET not in repr(out.events)
    assert SECRET.encode() not in _all_text(tmp_path)
    assert "token: ****" in (tmp_path / "logs" / "cp1.log").read_text()


def test_stream_redactor_masks_secrets_cut_by_line_breaks() -> None:
    secret = "Zq9-long-secret-value-77"
    red = Redactor([secret])
    stream = red.stream()
    lines = [
        "plain line",
        f"a {secret} b",
        f"key={secret[:10]}",  # held back: its end starts the secret
        f"{secret[10:]} trailing",
        f"x{secret[:2]}",  # too short a start to hold: goes out, the rest is masked
        f"{secret[2:]}",
        "last",
    ]
    out: list[str] = []
    for line in lines:
        out += stream.feed(line)
    out += stream.flush()
    assert len(out) == len(lines)
    joined = "\n".join(out)
    assert secret not in joined and secret[10:] not in joined and secret[:10] not in joined
    assert secret[2:] not in joined
    assert out[0] == "plain line" and out[1] == "a **** b"
    assert out[2] == "key=****" and out[3] == "**** trailing"
    assert out[-1] == "last"
    # Nothing is held when nothing could be a secret's start.
    s2 = red.stream()
    assert s2.feed("hello") == ["hello"]
