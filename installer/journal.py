"""The journal: what an install did, so that a rerun resumes instead of redoing.

One SQLite database per cluster in the state directory (WAL, ``synchronous=FULL``,
a commit at every task transition, so a kill -9 at any moment leaves it
consistent), the full per-host logs in ``logs/<host>.log`` next to it, and a
lock file that stops a second installer from using the same state.

Secret captured values are not stored here: the runner keeps them in the 0600
secrets file; the journal only records that they exist and a hash of them.
Every string written (commands, messages, output lines, logs) goes through the
redactor first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets as pysecrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from installer import exitcodes
from installer.errors import OperatorError
from installer.events import TaskStatus
from installer.paths import default_state_root
from installer.plan_model import Task
from installer.redact import Redactor

DB_NAME = "journal.sqlite"
LOCK_NAME = "lock"
LOGS_DIR = "logs"
TAIL_LINES = 20
LOCK_TRIES = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    pid INTEGER NOT NULL,
    operator TEXT NOT NULL,
    cluster TEXT NOT NULL,
    profile TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    host TEXT NOT NULL,
    step TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    input_hash TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    command TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    tail TEXT NOT NULL DEFAULT '[]',
    idempotent INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS captures (
    name TEXT PRIMARY KEY,
    value TEXT,
    secret INTEGER NOT NULL,
    value_hash TEXT NOT NULL,
    task_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    captured_at REAL NOT NULL
);
"""


def default_state_dir(cluster: str) -> Path:
    """``~/.local/state/fmp-install/<cluster>/`` (XDG_STATE_HOME is honoured).

    ``FMP_STATE_DIR`` overrides it: the wizard's equivalent of ``--state-dir``.
    """
    override = os.environ.get("FMP_STATE_DIR")
    return Path(override).expanduser() if override else default_state_root() / cluster


class StateLocked(OperatorError):
    exit_code = exitcodes.LOCKED


class JournalCorrupt(OperatorError):
    exit_code = exitcodes.INTERNAL_ERROR


class JournalMissing(OperatorError):
    exit_code = exitcodes.INVALID_INPUT


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    since: str


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    seq: int
    host: str
    step: str
    title: str
    status: TaskStatus
    input_hash: str
    attempts: int
    run_id: str | None
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    command: str
    message: str
    tail: tuple[str, ...]
    idempotent: bool


@dataclass(frozen=True)
class CaptureRow:
    name: str
    value: str | None  # None for a secret: its value is in the secrets file
    secret: bool
    value_hash: str
    task_id: str


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started_at: float
    finished_at: float | None
    status: str
    exit_code: int | None
    pid: int
    operator: str
    message: str


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class StateLock:
    """An exclusive ``flock`` on ``<state>/lock``; the file says who holds it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # ``status`` takes a shared lock for an instant to see whether an
            # install runs: a few quick retries keep that from refusing us.
            for _ in range(LOCK_TRIES - 1):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.02)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_lock_holder(self.path)
            os.close(fd)
            who = f"PID {holder.pid}" if holder and holder.pid else "another process"
            since = f" since {holder.since}" if holder and holder.since else ""
            raise StateLocked(
                f"{self.path.parent} is locked by {who}{since}: another fmp-install is "
                "using this state directory",
                hint="wait for it to finish (fmp-install status shows its progress), "
                "or stop that process; the lock is released when it exits",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid={os.getpid()}\nsince={_iso(time.time())}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_lock_holder(path: Path) -> LockHolder | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if not fields:
        return None
    pid = fields.get("pid", "")
    return LockHolder(int(pid) if pid.isdigit() else None, fields.get("since", ""))


def lock_holder(state_dir: Path) -> LockHolder | None:
    """Who holds the state lock now, or None (for ``status``; takes no lock)."""
    path = state_dir / LOCK_NAME
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_lock_holder(path) or LockHolder(None, "")
    finally:
        os.close(fd)  # closing drops the shared lock if we got it
    return None


class Journal:
    """Open with ``Journal.open(state_dir)`` (locks) or ``Journal.open_readonly``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        state_dir: Path,
        *,
        lock: StateLock | None,
        redactor: Redactor | None,
        readonly: bool,
    ) -> None:
        self._conn = conn
        self.state_dir = state_dir
        self._lock = lock
        self.redactor = redactor or Redactor()
        self.readonly = readonly
        self._logs: dict[str, IO[str]] = {}

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path | str, *, redactor: Redactor | None = None) -> Journal:
        state = Path(state_dir).expanduser()
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        (state / LOGS_DIR).mkdir(exist_ok=True, mode=0o700)
        lock = StateLock(state)
        lock.acquire()
        try:
            conn = _connect(state / DB_NAME, readonly=False)
            conn.executescript(SCHEMA)
            with conn:
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('installation_id', ?)",
                    (pysecrets.token_hex(8),),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1')"
                )
        except BaseException:
            lock.release()
            raise
        return cls(conn, state, lock=lock, redactor=redactor, readonly=False)

    @classmethod
    def open_readonly(cls, state_dir: Path | str) -> Journal:
        state = Path(state_dir).expanduser()
        db = state / DB_NAME
        if not db.exists():
            raise JournalMissing(
                f"no install journal in {state}",
                hint="pass the --state-dir (or --answers) of an install that has run",
            )
        conn = _connect(db, readonly=True)
        return cls(conn, state, lock=None, redactor=None, readonly=True)

    def close(self) -> None:
        for fh in self._logs.values():
            with contextlib.suppress(OSError):
                fh.close()
        self._logs.clear()
        self._conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def installation_id(self) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key='installation_id'").fetchone()
        return str(row[0]) if row else ""

    def integrity_check(self) -> str:
        rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    # -- runs ----------------------------------------------------------------

    def begin_run(
        self, *, cluster: str, profile: str, operator: str, options: dict[str, Any]
    ) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + pysecrets.token_hex(3)
        with self._conn:
            # A run still 'running' in the history died without closing.
            self._conn.execute(
                "UPDATE runs SET status='died', message='the installer stopped without "
                "finishing (killed or crashed)' WHERE status='running'"
            )
            self._conn.execute(
                "INSERT INTO runs(run_id, started_at, status, pid, operator, cluster, profile,"
                " options) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (
                    run_id,
                    time.time(),
                    os.getpid(),
                    operator,
                    cluster,
                    profile,
                    json.dumps(options, sort_keys=True),
                ),
            )
        return run_id

    def end_run(self, run_id: str, *, status: str, exit_code: int, message: str = "") -> None:
        self._flush_logs()
        with self._conn:
            self._conn.execute(
                "UPDATE runs SET finished_at=?, status=?, exit_code=?, message=? WHERE run_id=?",
                (time.time(), status, exit_code, self.redactor.redact(message), run_id),
            )

    def runs(self) -> list[RunRow]:
        rows = self._conn.execute(
            "SELECT run_id, started_at, finished_at, status, exit_code, pid, operator, message"
            " FROM runs ORDER BY started_at, run_id"
        ).fetchall()
        return [RunRow(*r) for r in rows]

    # -- tasks ---------------------------------------------------------------

    def sync_plan(self, tasks: Sequence[Task]) -> None:
        """Give every task of the plan a row (new ones 'pending'); keep what is known."""
        with self._conn:
            for seq, t in enumerate(tasks):
                self._conn.execute(
                    "INSERT INTO tasks(task_id, seq, host, step, title, status, idempotent)"
                    " VALUES (?, ?, ?, ?, ?, 'pending', ?)"
                    " ON CONFLICT(task_id) DO UPDATE SET seq=excluded.seq, host=excluded.host,"
                    " step=excluded.step, title=excluded.title, idempotent=excluded.idempotent",
                    (t.id, seq, t.host, t.step, t.title, int(t.idempotent)),
                )

    def task(self, task_id: str) -> TaskRow | None:
        row = self._conn.execute(_TASK_SELECT + " WHERE task_id=?", (task_id,)).fetchone()
        return _task_row(row) if row else None

    def tasks(self) -> list[TaskRow]:
        rows = self._conn.execute(_TASK_SELECT + " ORDER BY seq, task_id").fetchall()
        return [_task_row(r) for r in rows]

    def task_started(
        self,
        run_id: str,
        task_id: str,
        *,
        input_hash: str,
        command: str,
        invalidate: Iterable[str] = (),
    ) -> int:
        """Record a start (attempts + 1) and return the attempt number.

        ``invalidate``: tasks after this one, set back to 'pending' in the same
        commit, so that if the installer dies now they still run again later.
        """
        self._flush_logs()
        with self._conn:
            self._conn.execute(
                "UPDATE tasks SET status='running', input_hash=?, attempts=attempts+1, run_id=?,"
                " started_at=?, finished_at=NULL, exit_code=NULL, command=?, message='',"
                " tail='[]' WHERE task_id=?",
                (input_hash, run_id, time.time(), self.redactor.redact(command), task_id),
            )
            self._conn.executemany(
                "UPDATE tasks SET status='pending' WHERE task_id=? AND status='done'",
                [(t,) for t in invalidate],
            )
            row = self._conn.execute(
                "SELECT attempts FROM tasks WHERE task_id=?", (task_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def task_finished(
        self,
        run_id: str,
        task_id: str,
        status: TaskStatus,
        *,
        exit_code: int | None = None,
        tail: Sequence[str] = (),
        message: str = "",
        input_hash: str | None = None,
    ) -> None:
        self._flush_logs()
        r = self.redactor.redact
        with self._conn:
            self._conn.execute(
                "UPDATE tasks SET status=?, run_id=?, finished_at=?, exit_code=?, tail=?,"
                " message=?, input_hash=COALESCE(?, input_hash) WHERE task_id=?",
                (
                    status.value,
                    run_id,
                    time.time(),
                    exit_code,
                    json.dumps([r(x) for x in list(tail)[-TAIL_LINES:]]),
                    r(message),
                    input_hash,
                    task_id,
                ),
            )

    def set_status(
        self, task_id: str, status: TaskStatus, *, message: str = "", run_id: str | None = None
    ) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE tasks SET status=?, message=?, run_id=COALESCE(?, run_id) WHERE task_id=?",
                (status.value, self.redactor.redact(message), run_id, task_id),
            )

    # -- captures ------------------------------------------------------------

    def save_capture(
        self,
        name: str,
        value: str,
        *,
        secret: bool,
        value_hash: str,
        task_id: str,
        run_id: str,
    ) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO captures(name, value, secret, value_hash, task_id, run_id,"
                " captured_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " value=excluded.value, secret=excluded.secret, value_hash=excluded.value_hash,"
                " task_id=excluded.task_id, run_id=excluded.run_id,"
                " captured_at=excluded.captured_at",
                (
                    name,
                    None if secret else value,
                    int(secret),
                    value_hash,
                    task_id,
                    run_id,
                    time.time(),
                ),
            )

    def captures(self) -> dict[str, CaptureRow]:
        rows = self._conn.execute(
            "SELECT name, value, secret, value_hash, task_id FROM captures"
        ).fetchall()
        return {r[0]: CaptureRow(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows}

    # -- logs ----------------------------------------------------------------

    def log_path(self, host: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "._-:" else "_" for c in host)
        return self.state_dir / LOGS_DIR / f"{safe}.log"

    def log(self, host: str, step: str, stream: str, line: str) -> None:
        """Append one (already stream-redacted) output line to ``logs/<host>.log``."""
        fh = self._logs.get(host)
        if fh is None:
            fh = open(self.log_path(host), "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._logs[host] = fh
        stamp = time.strftime("%H:%M:%S")
        fh.write(f"{stamp} {step} {stream}: {self.redactor.redact(line)}\n")

    def note(self, host: str, text: str) -> None:
        """A line in the host's log from the installer itself (start, result, retry)."""
        self.log(host, "fmp-install", "note", text)

    def _flush_logs(self) -> None:
        for fh in self._logs.values():
            with contextlib.suppress(OSError):
                fh.flush()


_TASK_SELECT = (
    "SELECT task_id, seq, host, step, title, status, input_hash, attempts, run_id, started_at,"
    " finished_at, exit_code, command, message, tail, idempotent FROM tasks"
)


def _task_row(r: tuple[Any, ...]) -> TaskRow:
    try:
        status = TaskStatus(r[5])
    except ValueError:
        status = TaskStatus.PENDING
    return TaskRow(
        task_id=r[0],
        seq=r[1],
        host=r[2],
        step=r[3],
        title=r[4],
        status=status,
        input_hash=r[6],
        attempts=r[7],
        run_id=r[8],
        started_at=r[9],
        finished_at=r[10],
        exit_code=r[11],
        command=r[12],
        message=r[13],
        tail=tuple(json.loads(r[14] or "[]")),
        idempotent=bool(r[15]),
    )


def _connect(db: Path, *, readonly: bool) -> sqlite3.Connection:
    damaged = (
        f"the install journal {db} is damaged",
        "move it aside (mv it to a backup name) and run again: the hosts keep what was "
        "installed, and each step's check makes the rerun skip what is already there",
    )
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            conn.execute("PRAGMA query_only=ON")
        else:
            conn = sqlite3.connect(db)
            os.chmod(db, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalCorrupt(f"{damaged[0]}: {exc}", hint=damaged[1]) from None
    result = "; ".join(str(r[0]) for r in rows)
    if result != "ok":
        conn.close()
        raise JournalCorrupt(f"{damaged[0]}: integrity check says: {result}", hint=damaged[1])
    return conn
