"""A node's SSH server: asyncssh on the node's loopback address, commands run inside its sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import asyncssh

from installer.lab.faults import Faults
from installer.lab.layout import LAB_RUN, NODE_PATH
from installer.lab.namespaces import Sandbox

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server")  # fmt: skip
CHUNK = 65536


def sftp_server_binary() -> str:
    """OpenSSH's sftp-server when the host has it, else the lab's own (installer.lab.sftpd)."""
    if os.environ.get("FMP_LAB_SFTP") != "builtin":
        found = next((p for p in SFTP_SERVERS if Path(p).is_file()), None) or shutil.which(
            "sftp-server"
        )
        if found:
            return found
    return f"{LAB_RUN}/bin/fmp-sftpd"


class _Auth(asyncssh.SSHServer):
    def __init__(self, node: NodeServer) -> None:
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.node.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.node.connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == "root" and key.public_data == self.node.client_key.public_data

    def session_requested(self) -> _Session:
        return _Session(self.node)


class _Session(asyncssh.SSHServerSession[bytes]):
    """One channel: a command, a login shell or the sftp subsystem, run inside the node."""

    def __init__(self, node: NodeServer) -> None:
        self.node = node
        self.chan: Any = None
        self.command: str | None = None
        self.subsystem: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: list[bytes] = []
        self.eof = False
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        return False  # commands run without a terminal, as with ssh -T

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str | bytes) -> bool:
        self.command = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem == "sftp":
            self.subsystem = subsystem
            return True
        return False

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def data_received(self, data: bytes, datatype: Any) -> None:
        if (
            self.proc is not None
            and self.proc.stdin is not None
            and not self.proc.stdin.is_closing()
        ):
            self.proc.stdin.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        return True  # keep the channel half-open: the command's output still has to go out

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self.writable.set()

    def _abort_connection(self) -> None:
        self.gone.set()
        conn = self.chan.get_extra_info("connection") if self.chan is not None else None
        if conn is not None:
            conn.abort()

    def _env(self) -> dict[str, str]:
        peer = self.chan.get_extra_info("peername") or ("127.0.0.1", 0)
        env = {
            "PATH": NODE_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
            "SHELL": "/bin/bash", "LANG": "C.UTF-8", "MAIL": "/var/mail/root",
            "SSH_CONNECTION": f"{peer[0]} {peer[1]} {self.node.address} {self.node.port}",
            "SSH_CLIENT": f"{peer[0]} {peer[1]} {self.node.port}",
        }  # fmt: skip
        for key, value in (self.chan.get_environment() or {}).items():
            k = key.decode() if isinstance(key, bytes) else str(key)
            if k == "LANG" or k.startswith("LC_"):
                env[k] = value.decode() if isinstance(value, bytes) else str(value)
        return env

    def _finish(self, code: int) -> None:
        if self.gone.is_set():
            return
        with contextlib.suppress(Exception):
            if code < 0:
                self.chan.exit_with_signal(signal.Signals(-code).name.removeprefix("SIG"))
            else:
                self.chan.exit(code)

    async def _run(self) -> None:
        try:
            await self._execute()
        except (asyncssh.Error, OSError) as exc:
            with contextlib.suppress(Exception):
                self.chan.write_stderr(f"lab: {exc}\n".encode())
            self._finish(255)

    async def _execute(self) -> None:
        node = self.node
        started = time.monotonic()
        if self.subsystem == "sftp":
            argv = node.sandbox.enter_argv([node.sftp_server])
            plan = node.faults.plan(node.name, "")
        else:
            text = self.command or ""
            plan = node.faults.plan(node.name, text)
            if plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            if plan.fail is not None:
                message = plan.fail.stderr or f"lab fault: command failed on {node.name}"
                self.chan.write_stderr(message.encode() + b"\n")
                await asyncio.sleep(max(0.0, plan.min_duration_s - (time.monotonic() - started)))
                self._finish(plan.fail.exit_code)
                return
            argv = node.sandbox.enter_argv(
                ["/bin/bash", "-c", text] if self.command is not None else ["/bin/bash", "-l"]
            )
        self.proc = proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env(), start_new_session=True,
        )  # fmt: skip
        assert proc.stdin and proc.stdout and proc.stderr
        for chunk in self.pending:
            proc.stdin.write(chunk)
        self.pending.clear()
        if self.eof:
            proc.stdin.close()
        dropper = None
        if plan.drop_after_s is not None:
            dropper = asyncio.get_running_loop().call_later(
                plan.drop_after_s, self._abort_connection
            )
        try:
            await asyncio.gather(
                self._pump(proc.stdout, stderr=False), self._pump(proc.stderr, stderr=True)
            )
            code = await proc.wait()
        finally:
            if dropper is not None:
                dropper.cancel()
        remaining = plan.min_duration_s - (time.monotonic() - started)
        if remaining > 0 and not self.gone.is_set():
            await asyncio.sleep(remaining)
        self._finish(code)

    async def _pump(self, reader: asyncio.StreamReader, stderr: bool) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return
            if self.gone.is_set():
                continue  # the client is gone: keep draining so the command is not blocked
            await self.writable.wait()
            with contextlib.suppress(Exception):
                if stderr:
                    self.chan.write_stderr(data)
                else:
                    self.chan.write(data)


class NodeServer:
    """Serves one node: exec (with faults applied), SFTP, exit codes."""

    def __init__(
        self, name: str, address: str, port: int, host_key: asyncssh.SSHKey,
        client_key: asyncssh.SSHKey, sandbox: Sandbox, faults: Faults,
    ) -> None:  # fmt: skip
        self.name = name
        self.address = address
        self.port = port
        self.host_key = host_key
        self.client_key = client_key
        self.sandbox = sandbox
        self.faults = faults
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.server: asyncssh.SSHAcceptor | None = None
        self.sftp_server = sftp_server_binary()

    async def start(self) -> None:
        self.server = await asyncssh.create_server(
            lambda: _Auth(self), self.address, self.port,
            server_host_keys=[self.host_key], encoding=None, reuse_address=True,
        )  # fmt: skip

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
