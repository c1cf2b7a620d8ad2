"""SSH transport over asyncssh: ``connect(target)`` gives an ``SshConnection``.

One connection per host, reused for every command and upload, with at most
a few session channels open at once (OpenSSH allows ``MaxSessions``, 10 by
default; a lower server limit is learned). Host keys are always verified
against the known_hosts file: an unknown key is accepted only with
``accept_new_host_keys`` or when the operator confirms its fingerprint, then
written to the file; a changed key is always refused. A dropped connection
is re-established with exponential backoff on the next use (or by
``reconnect()``); whether to re-run a command is the runner's decision.

Passwords live in the ``SshTarget`` only: they go to asyncssh for login and
to sudo's stdin when it prompts, and into no message, log line or repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import asyncssh

from installer.ssh_command import drive
from installer.ssh_errors import (
    TRANSIENT,
    command_not_found,
    command_timeout,
    connection_lost,
)
from installer.ssh_exec import (
    ChannelLimiter,
    StartGate,
    Wrapper,
    kill_group_command,
)
from installer.ssh_login import CLOSE_WAIT, HostKeyCallback, Link, open_link
from installer.ssh_target import PasswordPrompt, SshTarget, target_for
from installer.ssh_upload import (
    MAKE_STAGING,
    STAGING_PREFIX,
    check_path,
    chown_script,
    install_script,
    last_line,
    owner_args,
    sftp_write,
    temp_name,
    upload_error,
)
from installer.transport import CommandResult, FailureKind, LineCallback, TransportError

if TYPE_CHECKING:
    from installer.transport import Transport

__all__ = [
    "DEFAULT_CHANNELS",
    "Backoff",
    "HostKeyCallback",
    "PasswordPrompt",
    "SshConnection",
    "SshTarget",
    "SudoStatus",
    "command_not_found",
    "connect",
    "target_for",
]

log = logging.getLogger(__name__)

DEFAULT_CHANNELS = 4
UPLOAD_TIMEOUT = 300.0
HELPER_TIMEOUT = 60.0
KILL_TIMEOUT = 30.0
_SESSION_REFUSED = {
    asyncssh.OPEN_CONNECT_FAILED,  # what OpenSSH answers past MaxSessions
    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
    asyncssh.OPEN_RESOURCE_SHORTAGE,
}

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Reconnect pauses: first, first*factor, ... capped; ``attempts`` tries in all."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    attempts: int = 5

    def delays(self) -> Iterator[float]:
        delay = self.first
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * self.factor, self.cap)


class SudoStatus(StrEnum):  # values are labels, not passwords
    ROOT = "root"  # logged in as root: nothing to elevate
    PASSWORDLESS = "passwordless"
    PASSWORD = "password"  # noqa: S105 - the one given works
    PASSWORD_MISSING = "password missing"  # noqa: S105
    PASSWORD_WRONG = "password wrong"  # noqa: S105
    NOT_ALLOWED = "not allowed"
    NOT_INSTALLED = "not installed"


async def connect(
    target: SshTarget,
    *,
    on_unknown_host_key: HostKeyCallback | None = None,
    max_channels: int = DEFAULT_CHANNELS,
    backoff: Backoff | None = None,
) -> SshConnection:
    """Open a verified, authenticated connection to ``target``; raises ``TransportError``."""
    link = await open_link(target, on_unknown_host_key)
    return SshConnection(
        target,
        link,
        on_unknown_host_key=on_unknown_host_key,
        max_channels=max_channels,
        backoff=backoff or Backoff(),
    )


class SshConnection:
    """One live SSH connection to one host; implements ``installer.transport.Transport``."""

    def __init__(
        self,
        target: SshTarget,
        link: Link,
        *,
        on_unknown_host_key: HostKeyCallback | None = None,
        max_channels: int = DEFAULT_CHANNELS,
        backoff: Backoff | None = None,
    ) -> None:
        self.target = target
        self._link: Link | None = link
        self._on_unknown = on_unknown_host_key
        self._limiter = ChannelLimiter(max_channels)
        self._backoff = backoff or Backoff()
        self._reconnect_lock = asyncio.Lock()
        self._generation = 0
        self._closed = False
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<SshConnection {self.target.display}>"

    async def __aenter__(self) -> SshConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def host(self) -> str:
        return self.target.label

    @property
    def channel_limit(self) -> int:
        """Sessions used at once: the configured bound, or the server's if lower."""
        return self._limiter.limit

    @property
    def peak_channels(self) -> int:
        return self._limiter.peak

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.lost

    # ------------------------------------------------------------ connection

    async def reconnect(self) -> None:
        """Drop the connection and open a new one, backing off between tries."""
        generation = self._generation
        async with self._reconnect_lock:
            if self._closed:
                raise self._closed_error()
            if self._generation != generation and self.connected:
                return  # another task reconnected while we waited for the lock
            if self._link is not None:
                self._link.close()
                await self._link.wait_closed()
                self._link = None
            delays = self._backoff.delays()
            while True:
                try:
                    self._link = await open_link(self.target, self._on_unknown)
                except TransportError as exc:
                    delay = next(delays, None)
                    if exc.kind not in TRANSIENT or delay is None:
                        raise
                    log.warning(
                        "%s: reconnect failed (%s); next try in %gs", self.host, exc.kind, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                self._generation += 1
                self.reconnects += 1
                log.info("%s: reconnected", self.target.display)
                return

    def _closed_error(self) -> TransportError:
        return TransportError(
            self.host,
            FailureKind.CONNECTION_LOST,
            "the connection was closed by fmp-install",
            hint="this is a bug in the caller: open a new connection with installer.ssh.connect()",
        )

    async def _live(self) -> Link:
        if self._closed:
            raise self._closed_error()
        if self._link is None or self._link.lost:
            await self.reconnect()
        assert self._link is not None
        return self._link

    async def _channel(
        self, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]
    ) -> tuple[T, Link]:
        """Open a session channel within the limit. The caller must ``_limiter.release()``."""
        retried_lost = False
        refusals = 0
        while True:
            link = await self._live()
            await self._limiter.acquire()
            try:
                opened = await opener(link.conn)
            except asyncssh.ChannelOpenError as exc:
                self._limiter.release()
                if link.lost:
                    # Nothing ran yet: reconnecting and opening again is always safe.
                    if retried_lost:
                        raise connection_lost(self.target, "before the command started") from None
                    retried_lost = True
                    continue
                if exc.code in _SESSION_REFUSED and refusals < 50:
                    refusals += 1
                    if self._limiter.refused():
                        log.debug("%s: server allows %d sessions", self.host, self._limiter.limit)
                    else:  # sshd may still be tearing down a session we closed
                        await asyncio.sleep(min(0.02 * refusals, 0.5))
                    continue
                raise TransportError(
                    self.host,
                    FailureKind.PROTOCOL_ERROR,
                    f"the host refused a session channel: {exc.reason}",
                    hint="check MaxSessions in the host's sshd_config (at least 1)",
                ) from None
            except BaseException:
                self._limiter.release()
                raise
            self._limiter.opened()
            return opened, link

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            self._link.close()
            await self._link.wait_closed()
            self._link = None

    # ------------------------------------------------------------ commands

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run ``command`` with bash; stream lines to ``on_line``; never raise on a non-zero exit."""
        return await self._run(command, timeout, sudo, input, on_line, kill_on_timeout=True)

    async def _run(
        self,
        command: str,
        timeout: float,
        sudo: bool,
        input: str | None,
        on_line: LineCallback | None,
        *,
        kill_on_timeout: bool,
    ) -> CommandResult:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        wrapper = Wrapper(sudo=sudo and self.target.user != "root")
        remote = wrapper.command(command)

        async def opener(conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientProcess[bytes]:
            return await conn.create_process(remote, encoding=None)

        proc, link = await self._channel(opener)
        gate = StartGate(wrapper)
        deadline = asyncio.timeout(timeout)
        released = False
        try:
            async with deadline:
                return await drive(proc, gate, self.target, lambda: link.lost, input, on_line)
        except TimeoutError:
            if not deadline.expired():
                raise
            # Closing the channel does not stop the command: kill its process group.
            proc.close()
            self._limiter.release()
            released = True
            if kill_on_timeout and gate.pid is not None and not link.lost:
                # Until sudo has let the command start, the group holds only our
                # own processes (and sudo, which its caller may signal).
                with contextlib.suppress(TransportError):
                    await self._run(
                        kill_group_command(gate.pid),
                        KILL_TIMEOUT,
                        wrapper.sudo and gate.passed,
                        None,
                        None,
                        kill_on_timeout=False,
                    )
            raise command_timeout(self.target, timeout) from None
        finally:
            try:
                proc.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait_closed(), CLOSE_WAIT)
            finally:
                if not released:
                    self._limiter.release()

    async def check_sudo(self) -> SudoStatus:
        """How this login can become root (``sudo -n true`` first, then the password)."""
        if self.target.user == "root":
            return SudoStatus.ROOT
        probe = await self.run("sudo -n true", timeout=HELPER_TIMEOUT)
        if probe.exit_status == 0:
            return SudoStatus.PASSWORDLESS
        if probe.exit_status == 127:
            return SudoStatus.NOT_INSTALLED
        if "password is required" not in probe.stderr.lower():
            return SudoStatus.NOT_ALLOWED
        if not self.target.sudo_password:
            return SudoStatus.PASSWORD_MISSING
        try:
            await self.run("true", sudo=True, timeout=HELPER_TIMEOUT)
        except TransportError as exc:
            mapped = {
                FailureKind.SUDO_PASSWORD_WRONG: SudoStatus.PASSWORD_WRONG,
                FailureKind.SUDO_NOT_ALLOWED: SudoStatus.NOT_ALLOWED,
                FailureKind.SUDO_PASSWORD_MISSING: SudoStatus.PASSWORD_MISSING,
            }
            if exc.kind in mapped:
                return mapped[exc.kind]
            raise
        return SudoStatus.PASSWORD

    # ------------------------------------------------------------ uploads

    async def upload(
        self,
        data: bytes,
        path: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        sudo: bool = False,
    ) -> None:
        """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
        check_path(path)
        user, group = owner_args(owner)
        deadline = asyncio.timeout(UPLOAD_TIMEOUT)
        try:
            async with deadline:
                if sudo and self.target.user != "root":
                    await self._upload_sudo(data, path, mode, user, group)
                else:
                    await self._upload_direct(data, path, mode, owner)
        except TimeoutError:
            if deadline.expired():
                raise upload_error(
                    self.host, path, f"not done within {UPLOAD_TIMEOUT:g}s"
                ) from None
            raise

    async def _sftp_write(self, data: bytes, tmp: str, mode: int, final: str | None) -> None:
        async def opener(conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
            return await conn.start_sftp_client()

        sftp, _ = await self._channel(opener)
        try:
            await sftp_write(sftp, self.host, data, tmp, mode, final)
        finally:
            sftp.exit()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sftp.wait_closed(), CLOSE_WAIT)
            self._limiter.release()

    async def _upload_direct(self, data: bytes, path: str, mode: int, owner: str | None) -> None:
        tmp = temp_name(path)
        if owner is None:
            await self._sftp_write(data, tmp, mode, path)
            return
        # The SFTP channel is closed before chown runs: with a limit of one
        # channel, holding it would wait for ourselves.
        await self._sftp_write(data, tmp, mode, None)
        result = await self.run(chown_script(tmp, path, owner), timeout=HELPER_TIMEOUT)
        if result.exit_status != 0:
            raise upload_error(self.host, path, last_line(result.stderr))

    async def _upload_sudo(
        self, data: bytes, path: str, mode: int, user: str | None, group: str | None
    ) -> None:
        made = await self.run(MAKE_STAGING, timeout=HELPER_TIMEOUT)
        staging = made.stdout.strip()
        if made.exit_status != 0 or not staging.startswith(STAGING_PREFIX):
            why = f"no staging directory: {last_line(made.stderr)}"
            raise upload_error(self.host, path, why)
        try:
            staged = f"{staging}/data"
            await self._sftp_write(data, staged, 0o600, None)
            script = install_script(staged, path, mode, user, group)
            result = await self.run(script, sudo=True, timeout=HELPER_TIMEOUT)
            if result.exit_status != 0:
                raise upload_error(self.host, path, last_line(result.stderr))
        finally:
            with contextlib.suppress(TransportError):
                await self.run(f"rm -rf {shlex.quote(staging)}", timeout=HELPER_TIMEOUT)


if TYPE_CHECKING:

    def _conforms(conn: SshConnection) -> Transport:
        return conn
