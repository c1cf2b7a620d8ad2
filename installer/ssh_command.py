"""Driving one started command: sudo's prompt, stdin, streamed output, exit status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import asyncssh

from installer.ssh_errors import connection_lost
from installer.ssh_exec import Gate, LineCollector, StartGate, classify_sudo
from installer.ssh_target import SshTarget
from installer.transport import CommandResult, LineCallback, TransportError


async def drive(
    proc: asyncssh.SSHClientProcess[bytes],
    gate: StartGate,
    target: SshTarget,
    lost: Callable[[], bool],
    input: str | None,
    on_line: LineCallback | None,
) -> CommandResult:
    """Take one started command to its end: sudo's prompt, input, output, exit status.

    Raises ``TransportError`` for sudo failures and a dropped connection; a
    non-zero exit is a result.
    """
    out = LineCollector("stdout", on_line)
    err = LineCollector("stderr", on_line)
    try:
        ended = await _pass_gate(proc, gate, target.sudo_password)
        if not gate.passed:
            # sudo ended by itself (its exit status tells more), or it waits
            # for a password we will not give: then do not wait for it.
            status = (await proc.wait()).exit_status if ended else None
            if lost():
                raise connection_lost(target, "while the command was starting")
            if gate.pid is None:  # the login shell never got to our command
                stdout = (await proc.stdout.read()).decode("utf-8", "replace")
                return CommandResult(-1 if status is None else status, stdout, gate.text())
            failure = classify_sudo(target.user, status, gate.text(), prompts=gate.prompts)
            raise TransportError(target.label, failure.kind, failure.message, hint=failure.hint)
        if not gate.wrapper.sudo:
            err.feed(gate.said)  # e.g. a login shell's warning: the operator should see it
        err.feed(gate.remainder())
        with contextlib.suppress(OSError, asyncssh.Error):  # a command may exit unread
            if input:
                proc.stdin.write(input.encode())
            proc.stdin.write_eof()
        results = await asyncio.gather(
            _pump(proc.stdout, out), _pump(proc.stderr, err), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        completed = await proc.wait()
    except (OSError, asyncssh.Error):
        if lost():
            raise connection_lost(target, "while the command ran") from None
        raise
    status = completed.exit_status
    if status is None:
        if lost():
            raise connection_lost(target, "while the command ran")
        status = _signal_status(completed.exit_signal)
    return CommandResult(status, out.text(), err.text())


async def _pump(stream: asyncssh.SSHReader[bytes], sink: LineCollector) -> None:
    while chunk := await stream.read(65536):
        sink.feed(chunk)
    sink.close()


async def _pass_gate(
    proc: asyncssh.SSHClientProcess[bytes], gate: StartGate, password: str | None
) -> bool:
    """Read stderr up to the start of the command, answering sudo. True if stderr ended."""
    while True:
        step = gate.step()
        if step is Gate.PASSED:
            return False
        if step is Gate.PROMPT:
            if gate.prompts > 1 or not password:
                with contextlib.suppress(OSError, asyncssh.Error):
                    proc.stdin.write_eof()  # sudo gives up on EOF
                return False
            proc.stdin.write(password.encode() + b"\n")
            continue
        chunk = await proc.stderr.read(65536)
        if not chunk:
            return True
        gate.feed(chunk)


def _signal_status(exit_signal: tuple[str, bool, str, str] | None) -> int:
    if exit_signal:
        with contextlib.suppress(KeyError):
            return 128 + signal.Signals["SIG" + exit_signal[0]].value
    return -1
