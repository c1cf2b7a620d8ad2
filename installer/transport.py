"""The contract between the engine and a way of running commands on a host.

``installer.ssh`` implements it over asyncssh; tests may implement it in
memory. Discovery and the runner depend only on this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from installer import exitcodes
from installer.errors import OperatorError

# (stream, line) with stream "stdout" or "stderr"; the line has no newline.
LineCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class FailureKind(StrEnum):
    UNREACHABLE = "unreachable"
    REFUSED = "connection refused"
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth failed"
    HOST_KEY_UNKNOWN = "host key unknown"
    HOST_KEY_CHANGED = "host key changed"
    SUDO_PASSWORD_WRONG = "sudo password wrong"  # noqa: S105 - a label, not a password
    SUDO_NOT_ALLOWED = "sudo not allowed"
    COMMAND_NOT_FOUND = "command not found"
    CONNECTION_LOST = "connection lost"
    COMMAND_TIMEOUT = "command timeout"
    SUDO_PASSWORD_MISSING = "sudo password missing"  # noqa: S105 - a label, not a password
    PROTOCOL_ERROR = "ssh protocol error"
    UPLOAD_FAILED = "upload failed"


class TransportError(OperatorError):
    """A classified failure to reach or use a host."""

    exit_code = exitcodes.TASK_FAILED

    def __init__(
        self, host: str, kind: FailureKind, message: str, *, hint: str | None = None
    ) -> None:
        super().__init__(f"{host}: {kind.value}: {message}", hint=hint)
        self.host = host
        self.kind = kind
        self.detail = message


class Transport(Protocol):
    """One live connection to one host."""

    @property
    def host(self) -> str: ...

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
        ...

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
        ...

    async def close(self) -> None: ...
