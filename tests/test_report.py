"""The headless reporter: plain lines, the live table, the summary."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from installer.events import (
    Failure,
    OutputLine,
    RunFinished,
    RunStarted,
    RunSummary,
    TaskBlocked,
    TaskFinished,
    TaskRef,
    TaskReopened,
    TaskSkipped,
    TaskStarted,
    TaskStatus,
)
from installer.report import HeadlessReporter, duration, render_summary

T0 = time.mktime((2025, 11, 22, 14, 3, 7, 0, 0, -1))


def _summary(**kw: object) -> RunSummary:
    base: dict[str, object] = {
        "run_id": "r1",
        "exit_code": 1,
        "duration": 125.0,
        "counts": (("done", 4), ("failed", 1), ("blocked", 1)),
        "executed": 3,
        "skipped": 1,
        "failures": (
            Failure(
                task_id="kn3:osd",
                host="kn3",
                step="osd",
                status=TaskStatus.FAILED,
                command="ceph orch daemon add osd kn3:/dev/sdb --key ****",
                exit_code=22,
                message="exited with status 22",
                tail=tuple(f"out {i}" for i in range(20)),
            ),
        ),
        "blocked": ("kn3:pool",),
        "not_started": (),
    }
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


def _started() -> RunStarted:
    return RunStarted(
        run_id="r1",
        cluster="fmp",
        profile="rke-ceph",
        hosts=("kn0", "kn3"),
        tasks=(
            TaskRef("kn0:prep", "kn0", "prep", "Prepare"),
            TaskRef("kn0:join", "kn0", "join", "Join"),
            TaskRef("kn3:prep", "kn3", "prep", "Prepare"),
        ),
        at=T0,
    )


def test_plain_lines_have_time_host_step_text() -> None:
    out = io.StringIO()
    rep = HeadlessReporter(out, live=False)
    rep(_started())
    rep(
        TaskStarted(
            task_id="kn0:prep",
            host="kn0",
            step="prep",
            title="Prepare",
            attempt=1,
            command="x",
            at=T0 + 1,
        )
    )
    rep(
        OutputLine(
            host="kn0", task="kn0:prep", stream="stdout", text="Reading package lists...", at=T0 + 2
        )
    )
    rep(
        TaskFinished(
            task_id="kn0:prep",
            host="kn0",
            step="prep",
            status=TaskStatus.DONE,
            exit_code=0,
            duration=3.0,
            at=T0 + 4,
        )
    )
    rep(
        TaskSkipped(
            task_id="kn3:prep", host="kn3", step="prep", reason="check-satisfied", at=T0 + 5
        )
    )
    rep(TaskBlocked(task_id="kn0:join", host="kn0", step="join", blocked_by="kn3:osd", at=T0 + 6))
    lines = out.getvalue().splitlines()
    assert "14:03:08 kn0 prep: started: Prepare" in lines
    assert "14:03:09 kn0 prep: Reading package lists..." in lines
    assert "14:03:11 kn0 prep: done in 3.0s" in lines
    assert "14:03:12 kn3 prep: skipped (already satisfied)" in lines
    assert "14:03:13 kn0 join: blocked: needs kn3:osd" in lines
    assert "\x1b[" not in out.getvalue()  # no terminal codes in a log


def test_summary_names_each_failure() -> None:
    text = render_summary(_summary())
    assert text.startswith(
        "Install failed: 4 done, 1 failed, 1 blocked (3 ran, 1 skipped) in 2m05s [exit 1]"
    )
    assert "FAILED: kn3 / osd (exit 22)" in text
    assert "ceph orch daemon add osd kn3:/dev/sdb --key ****" in text
    assert "last 20 lines of output:" in text and "| out 0" in text and "| out 19" in text
    assert "Blocked by a failure (1): kn3:pool" in text
    assert "Run the same command again to resume" in text


def test_summary_of_a_clean_run_and_a_refusal() -> None:
    ok = render_summary(_summary(exit_code=0, counts=(("done", 6),), failures=(), blocked=()))
    assert ok.startswith("Install complete: 6 done")
    assert "FAILED" not in ok and "resume" not in ok
    locked = render_summary(
        _summary(
            exit_code=4,
            counts=(),
            failures=(),
            blocked=(),
            message="kn0 is locked by another install",
        )
    )
    assert locked.startswith("Install refused") and "kn0 is locked" in locked


def test_long_commands_are_cut_in_the_summary() -> None:
    f = _summary().failures[0]
    long = Failure(**{**f.__dict__, "command": "\n".join(f"cmd {i}" for i in range(40))})
    text = render_summary(_summary(failures=(long,)))
    assert "cmd 14" in text and "cmd 15" not in text and "(25 more lines)" in text


def test_run_finished_prints_the_summary() -> None:
    out = io.StringIO()
    rep = HeadlessReporter(out, live=False)
    rep(_started())
    rep(RunFinished(summary=_summary(), at=T0 + 10))
    assert "FAILED: kn3 / osd (exit 22)" in out.getvalue()
    assert rep.summary is not None


def test_live_table_shows_one_row_per_host() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    rep = HeadlessReporter(buf, live=True, console=console, now=lambda: T0 + 65)
    rep(_started())
    rep(
        TaskStarted(
            task_id="kn0:prep",
            host="kn0",
            step="prep",
            title="Prepare",
            attempt=1,
            command="x",
            at=T0,
        )
    )
    rep(
        OutputLine(
            host="kn0", task="kn0:prep", stream="stdout", text="Unpacking containerd", at=T0 + 1
        )
    )
    rep(TaskSkipped(task_id="kn3:prep", host="kn3", step="prep", reason="done", at=T0))
    # Output lines do not go out one by one on a terminal: the table shows the last.
    assert "Unpacking containerd" not in buf.getvalue().split("kn0")[0]
    table = Console(file=io.StringIO(), width=120, color_system=None)
    table.print(rep.table())
    text = table.file.getvalue()  # type: ignore[attr-defined]
    row0 = next(line for line in text.splitlines() if "kn0" in line)
    assert (
        "prep (running)" in row0
        and "0/2" in row0
        and "1m05s" in row0
        and "Unpacking containerd" in row0
    )
    row3 = next(line for line in text.splitlines() if "kn3" in line)
    assert "1/1" in row3
    rep(RunFinished(summary=_summary(), at=T0 + 70))
    assert "FAILED: kn3 / osd" in buf.getvalue()
    assert rep._live is None  # stopped


def test_duration_format() -> None:
    assert duration(2.5) == "2.5s"
    assert duration(61) == "1m01s"
    assert duration(3725) == "1h02m05s"


def test_reporter_is_fed_by_a_real_run(tmp_path: Path) -> None:
    import asyncio

    from fake_transport import FakeNetwork, grid_plan

    from installer.events import EventBus
    from installer.journal import Journal
    from installer.runner import Runner, RunOptions

    plan = grid_plan(["a", "b"], ["s1", "s2"])
    net = FakeNetwork()
    net.on("#task:b:s2", exit=3, stdout="no space left on device\n")
    out = io.StringIO()
    rep = HeadlessReporter(out, live=False)
    bus = EventBus()
    bus.subscribe(rep)

    async def go() -> None:
        with Journal.open(tmp_path) as j:
            await Runner(plan, j, net.connect, bus=bus, options=RunOptions(operator="t")).run()

    asyncio.run(go())
    text = out.getvalue()
    assert " b s2: no space left on device" in text
    assert "FAILED: b / s2 (exit 3)" in text
    assert "echo s2" in text


def test_errors_go_to_stderr_and_plans_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    rep = HeadlessReporter(out, err=err, live=False)
    rep.notice("error: needs --yes")
    rep.notice("Plan for cluster fmp")
    assert err.getvalue() == "error: needs --yes\n"
    assert out.getvalue() == "Plan for cluster fmp\n"


def test_a_reopened_task_counts_as_not_finished_again() -> None:
    """A done task that runs again (its products expired) takes its host's count back."""
    from screens.run_controller import RunController

    out = io.StringIO()
    rep = HeadlessReporter(out, live=False)
    ctl = RunController()
    done = TaskFinished(
        task_id="kn0:prep",
        host="kn0",
        step="prep",
        status=TaskStatus.DONE,
        exit_code=0,
        duration=1.0,
        at=T0 + 1,
    )
    again = TaskReopened(
        task_id="kn0:prep", host="kn0", step="prep", reason="what it made expired", at=T0 + 2
    )
    for event in (_started(), done, again):
        rep(event)
        ctl.handle(event)
    assert "14:03:09 kn0 prep: runs again: what it made expired" in out.getvalue().splitlines()
    assert ctl.node("kn0").finished == 0 and ctl.finished == 0
    assert ctl.node("kn0").state != "done"
    assert any("prep runs again" in line for line in ctl.node("kn0").lines)
    rep(done)
    ctl.handle(done)
    assert ctl.node("kn0").finished == 1 and ctl.finished == 1
