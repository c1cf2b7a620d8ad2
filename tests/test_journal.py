"""The journal: durable transitions, the state lock, integrity, redaction."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fake_transport import make_plan, make_task

from installer import exitcodes
from installer.events import TaskStatus
from installer.journal import (
    Journal,
    JournalCorrupt,
    JournalMissing,
    StateLocked,
    default_state_dir,
    lock_holder,
)
from installer.redact import Redactor

PLAN = make_plan(
    [make_task("a", "s1"), make_task("a", "s2", needs=("a:s1",)), make_task("b", "s1")]
)


def test_database_settings_and_files(tmp_path: Path) -> None:
    state = tmp_path / "st"
    with Journal.open(state) as j:
        assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j.integrity_check() == "ok"
        assert len(j.installation_id) == 16
    assert (state / "journal.sqlite").stat().st_mode & 0o777 == 0o600
    assert (state / "logs").is_dir()
    with Journal.open(state) as j:  # the id is kept across opens
        first = j.installation_id
    with Journal.open(state) as j:
        assert j.installation_id == first


def test_default_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir("fmp") == tmp_path / "fmp-install" / "fmp"


def test_task_transitions_are_committed_at_once(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.sync_plan(PLAN.tasks)
        run = j.begin_run(cluster="c", profile="p", operator="me", options={"x": 1})
        attempt = j.task_started(run, "a:s1", input_hash="h1", command="echo 1")
        assert attempt == 1
        # Another connection sees it immediately: nothing waits for close().
        other = sqlite3.connect(tmp_path / "journal.sqlite")
        assert (
            other.execute("SELECT status FROM tasks WHERE task_id='a:s1'").fetchone()[0]
            == "running"
        )
        j.task_finished(
            run,
            "a:s1",
            TaskStatus.DONE,
            exit_code=0,
            tail=[str(i) for i in range(50)],
            input_hash="h1",
        )
        row = other.execute(
            "SELECT status, exit_code, input_hash FROM tasks WHERE task_id='a:s1'"
        ).fetchone()
        assert row == ("done", 0, "h1")
        other.close()
        r = j.task("a:s1")
        assert r is not None and r.tail == tuple(str(i) for i in range(30, 50)) and r.attempts == 1
        assert [t.task_id for t in j.tasks()] == ["a:s1", "a:s2", "b:s1"]


def test_invalidation_resets_done_dependents(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.sync_plan(PLAN.tasks)
        run = j.begin_run(cluster="c", profile="p", operator="me", options={})
        for tid in ("a:s1", "a:s2"):
            j.task_started(run, tid, input_hash="h", command="x")
            j.task_finished(run, tid, TaskStatus.DONE, input_hash="h")
        j.task_started(run, "a:s1", input_hash="h2", command="x", invalidate=["a:s2"])
        s2 = j.task("a:s2")
        assert s2 is not None and s2.status is TaskStatus.PENDING


def test_runs_history_marks_dead_runs(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.begin_run(cluster="c", profile="p", operator="me", options={})
    with Journal.open(tmp_path) as j:  # the first never ended: it died
        second = j.begin_run(cluster="c", profile="p", operator="me", options={})
        j.end_run(second, status="done", exit_code=0)
        runs = j.runs()
    assert [r.status for r in runs] == ["died", "done"]
    assert runs[1].exit_code == 0 and runs[1].finished_at is not None


def test_redaction_in_rows_logs_and_captures(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    red = Redactor([secret])
    with Journal.open(tmp_path, redactor=red) as j:
        j.sync_plan(PLAN.tasks)
        run = j.begin_run(cluster="c", profile="p", operator="me", options={})
        j.task_started(run, "a:s1", input_hash="h", command=f"login {secret}")
        j.task_finished(
            run,
            "a:s1",
            TaskStatus.FAILED,
            exit_code=1,
            tail=[f"bad {secret}"],
            message=f"m {secret}",
        )
        j.log("a", "s1", "stdout", f"out {secret}")
        j.save_capture("tok", secret, secret=True, value_hash="hh", task_id="a:s1", run_id=run)
        j.save_capture(
            "addr", "10.0.0.1", secret=False, value_hash="h2", task_id="a:s1", run_id=run
        )
        caps = j.captures()
    assert caps["tok"].value is None and caps["tok"].secret
    assert caps["addr"].value == "10.0.0.1"
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    assert "out ****" in (tmp_path / "logs" / "a.log").read_text()


def test_second_installer_is_refused_with_pid_and_time(tmp_path: Path) -> None:
    # Another process holds the lock.
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[2]);"
        "from installer.journal import Journal;"
        "j = Journal.open(sys.argv[1]); print('locked', flush=True); time.sleep(60)"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), repo], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StateLocked) as exc:
            Journal.open(tmp_path)
        assert exc.value.exit_code == exitcodes.LOCKED == 4
        assert f"locked by PID {proc.pid} since " in str(exc.value)
        holder = lock_holder(tmp_path)
        assert holder is not None and holder.pid == proc.pid
        # Reading (status) still works while it runs.
        with Journal.open_readonly(tmp_path) as j:
            assert j.integrity_check() == "ok"
    finally:
        proc.kill()
        proc.wait()
    # The lock goes with the process, even killed.
    assert lock_holder(tmp_path) is None
    Journal.open(tmp_path).close()


def test_lock_released_on_close_in_process(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    with pytest.raises(StateLocked):
        Journal.open(tmp_path)
    j.close()
    Journal.open(tmp_path).close()


def test_corrupt_journal_is_refused_clearly(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.sync_plan(PLAN.tasks)
    db = tmp_path / "journal.sqlite"
    data = bytearray(db.read_bytes())
    data[0:16] = b"this is not sql\0"
    db.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as exc:
        Journal.open(tmp_path)
    msg = str(exc.value)
    assert "journal.sqlite is damaged" in msg and "move it aside" in msg
    # The failed open did not keep the state lock.
    from installer.journal import StateLock

    lock = StateLock(tmp_path)
    lock.acquire()
    lock.release()


def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.sync_plan(
            make_plan([make_task(f"h{i}", f"s{k}") for i in range(40) for k in range(10)]).tasks
        )
    db = tmp_path / "journal.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for off in range(2 * page + 100, len(data) - 100, page):
        data[off : off + 50] = b"\xff" * 50
    db.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        Journal.open(tmp_path)


def test_readonly_open_of_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalMissing) as exc:
        Journal.open_readonly(tmp_path / "nope")
    assert exc.value.exit_code == exitcodes.INVALID_INPUT
