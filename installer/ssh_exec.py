"""Building blocks of one remote command: its wrapper, its output lines, its channel slot.

The login shell runs ``printf MARKER $$ >&2; exec bash -c COMMAND``. sshd makes
that shell a session and process-group leader, so the PID in the marker names
the command's whole process group: on timeout we close the channel *and* kill
that group from a second channel (OpenSSH ignores the SSH "signal" request and
keeps a command running after its channel is closed). No extra process is
started per command, which matters where exec is slow.

For sudo, the shell execs ``sudo -S -p PROMPT`` and we watch stderr for that
prompt: the password is written to stdin only when sudo asks for it (with
NOPASSWD it would otherwise reach the command's stdin), never in argv or the
environment; a second prompt means it was wrong. A READY line printed by the
elevated shell tells us sudo is done, and only then is the caller's input
sent. The markers carry a random token, so output cannot fake them.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from installer.transport import FailureKind, LineCallback


@dataclass(frozen=True)
class Wrapper:
    """How one command is started on the host, and the markers to look for."""

    sudo: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def pid_re(self) -> re.Pattern[bytes]:
        return re.compile(rb"\[fmp-pid-" + self.token.encode() + rb":(\d+)\]\n")

    @property
    def prompt(self) -> bytes:
        return f"[fmp-sudo-prompt-{self.token}]".encode()

    @property
    def ready(self) -> bytes:
        return f"[fmp-sudo-ready-{self.token}]\n".encode()

    def command(self, command: str) -> str:
        q = shlex.quote
        # Read by the login shell, which may be sh: keep this part POSIX.
        mark = f"printf '[fmp-pid-{self.token}:%s]\\n' \"$$\" >&2; "
        # --norc: bash started under sshd reads ~/.bashrc even for -c, and the
        # login shell has read it already (a pyenv init there costs ~0.3 s a command).
        if not self.sudo:
            return f"{mark}exec bash --norc -c {q(command)}"
        inner = 'printf \'%s\\n\' "$2" >&2; exec bash --norc -c "$1"'
        ready = self.ready.decode().rstrip("\n")
        return (
            f"{mark}exec sudo -S -p {q(self.prompt.decode())} -- "
            f"bash --norc -c {q(inner)} fmp-sudo {q(command)} {q(ready)}"
        )


def kill_group_command(pgid: int) -> str:
    """TERM the process group, then KILL what is left after a short grace."""
    g = f"-{pgid}"
    return (
        f"kill -TERM -- {g} 2>/dev/null || exit 0; "
        f"for _ in 1 2 3 4 5 6 7 8 9 10; do sleep 0.2; kill -0 -- {g} 2>/dev/null || exit 0; done; "
        f"kill -KILL -- {g} 2>/dev/null; exit 0"
    )


class Gate(Enum):
    MORE = "more"  # need more stderr
    PROMPT = "prompt"  # sudo asks for the password
    PASSED = "passed"  # the command itself runs now


class StartGate:
    """Reads the markers at the head of stderr; what precedes them is kept apart."""

    def __init__(self, wrapper: Wrapper) -> None:
        self.wrapper = wrapper
        self.pid: int | None = None
        self.prompts = 0
        self.passed = False
        self.said = b""  # the login shell's or sudo's own words
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data

    def remainder(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest

    def step(self) -> Gate:
        if self.pid is None:
            m = self.wrapper.pid_re.search(self._buf)
            if m is None:
                return Gate.MORE
            self.said += self._buf[: m.start()]
            self.pid = int(m.group(1))
            self._buf = self._buf[m.end() :]
            if not self.wrapper.sudo:
                self.passed = True
                return Gate.PASSED
        at_prompt = self._buf.find(self.wrapper.prompt)
        at_ready = self._buf.find(self.wrapper.ready)
        if at_ready != -1 and (at_prompt == -1 or at_ready < at_prompt):
            self.said += self._buf[:at_ready]
            self._buf = self._buf[at_ready + len(self.wrapper.ready) :]
            self.passed = True
            return Gate.PASSED
        if at_prompt != -1:
            self.said += self._buf[:at_prompt]
            self._buf = self._buf[at_prompt + len(self.wrapper.prompt) :]
            self.prompts += 1
            return Gate.PROMPT
        return Gate.MORE

    def text(self) -> str:
        return (self.said + self._buf).decode("utf-8", "replace")


@dataclass(frozen=True)
class SudoFailure:
    kind: FailureKind
    message: str
    hint: str


def classify_sudo(user: str, exit_status: int | None, said: str, *, prompts: int) -> SudoFailure:
    """Why sudo ended before running the command, from what it printed."""
    text = said.lower()
    last = next((ln.strip() for ln in reversed(said.splitlines()) if ln.strip()), "")
    if exit_status == 127 and "sudo" in text:
        return SudoFailure(
            FailureKind.SUDO_NOT_ALLOWED,
            "sudo is not installed on the host",
            f"install sudo (apt-get install sudo) and allow {user} to use it, or log in as root",
        )
    if any(s in text for s in ("not in the sudoers", "not allowed to", "may not run sudo")):
        return SudoFailure(
            FailureKind.SUDO_NOT_ALLOWED,
            f"{user} may not use sudo: {last}",
            f"add a rule for {user} in /etc/sudoers.d/ (e.g. '{user} ALL=(ALL:ALL) ALL') "
            "or use another ssh.user",
        )
    if any(s in text for s in ("terminal is required", "no tty present")):
        return SudoFailure(
            FailureKind.SUDO_NOT_ALLOWED,
            f"sudo for {user} requires a terminal: {last}",
            f"remove 'Defaults requiretty' for {user} in the host's sudoers",
        )
    if prompts > 1 or "incorrect password" in text or "try again" in text:
        return SudoFailure(
            FailureKind.SUDO_PASSWORD_WRONG,
            f"sudo did not accept the password for {user}",
            "check the variable named in ssh.sudo_password_env (without one, the SSH password "
            "is used for sudo)",
        )
    if "password is required" in text or "no password was provided" in text or prompts:
        return SudoFailure(
            FailureKind.SUDO_PASSWORD_MISSING,
            f"sudo asks {user} for a password and none was given",
            "name the variable holding it in ssh.sudo_password_env (or ssh.password_env), "
            f"or give {user} NOPASSWD in the host's sudoers",
        )
    return SudoFailure(
        FailureKind.SUDO_NOT_ALLOWED,
        f"sudo failed for {user} (exit {exit_status}): {last or 'no message'}",
        f"run 'sudo -v' as {user} on the host to see why",
    )


class LineCollector:
    """Bytes in, whole lines out to a callback; keeps the full text for the result."""

    def __init__(self, stream: str, on_line: LineCallback | None) -> None:
        self.stream = stream
        self.on_line = on_line
        self._chunks: list[bytes] = []
        self._partial = b""

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            self._emit(raw)

    def close(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def _emit(self, raw: bytes) -> None:
        if self.on_line is not None:
            self.on_line(self.stream, raw.rstrip(b"\r").decode("utf-8", "replace"))

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")


class ChannelLimiter:
    """A semaphore for the sessions of one connection that can learn a lower limit.

    OpenSSH allows ``MaxSessions`` (default 10) per connection, and refuses
    the next channel. When that happens with ``in_use`` channels open, the
    server's limit is ``in_use``: we adopt it, and the refused caller waits for
    a slot instead of failing.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a connection needs at least one channel")
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self.proven = 0  # most channels the server has had open at once
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_use >= self.limit:
            await self.wait_release()
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def release(self) -> None:
        self.in_use -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def wait_release(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def opened(self) -> None:
        """The server accepted a channel while ``in_use`` were held (ours included)."""
        self.proven = max(self.proven, self.in_use)

    def refused(self) -> bool:
        """The server refused one more channel. True if the limit was lowered.

        Its limit is what is open now, unless it once accepted more: a session
        we just closed may not be freed on the server yet, and mistaking that
        for the limit would serialise every later command.
        """
        learned = max(1, self.in_use, self.proven)
        if learned < self.limit:
            self.limit = learned
            return True
        return False
