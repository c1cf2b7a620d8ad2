"""Turning SSH failures into ``TransportError``s an operator can act on.

Every message says what failed on which host; every hint says what to do.
Nothing here ever sees a password: messages are built from the target's
public fields and the exception's reason text only.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from installer.ssh_hostkeys import HostKeys, fingerprint, host_pattern, key_type, remove_hint
from installer.ssh_target import SshTarget
from installer.transport import CommandResult, FailureKind, TransportError

# Failures worth another try after a pause; the others need the operator.
TRANSIENT = frozenset(
    {FailureKind.UNREACHABLE, FailureKind.REFUSED, FailureKind.TIMEOUT, FailureKind.CONNECTION_LOST}
)

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EADDRNOTAVAIL}


@dataclass
class AuthSummary:
    """What a login offered, to say which methods were tried when all failed."""

    agent_path: str | None = None
    agent_keys: int | None = None  # None: the agent could not be asked
    identity_files: list[Path] = field(default_factory=list)
    password: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts: list[str] = []
        if self.agent_path is None:
            parts.append("no ssh agent (SSH_AUTH_SOCK is not set)")
        elif self.agent_keys is None:
            parts.append(f"ssh agent at {self.agent_path} (not reachable)")
        else:
            parts.append(f"ssh agent ({self.agent_keys} key{'s' * (self.agent_keys != 1)})")
        if self.identity_files:
            parts.append("identity files " + ", ".join(str(p) for p in self.identity_files))
        else:
            parts.append("no usable identity file")
        parts.append("password" if self.password else "no password")
        text = "; ".join(parts)
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text


def auth_failed(target: SshTarget, auth: AuthSummary) -> TransportError:
    return TransportError(
        target.label,
        FailureKind.AUTH_FAILED,
        f"{target.endpoint} refused every login method tried: {auth.describe()}",
        hint=(
            f"check the user name (ssh.user, now '{target.user}'); authorise your key with "
            f"'ssh-copy-id -p {target.port} {target.user}@{target.address}' or load it into "
            "the agent with 'ssh-add'; or give a password through the variable named in "
            "ssh.password_env"
        ),
    )


def connect_failed(target: SshTarget, exc: BaseException, auth: AuthSummary) -> TransportError:
    """Classify an exception raised while opening a connection to ``target``."""
    where = f"{target.address}:{target.port}"
    if isinstance(exc, asyncssh.PermissionDenied):
        return auth_failed(target, auth)
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            target.label,
            FailureKind.REFUSED,
            f"{where} refused the connection: nothing listens on port {target.port}",
            hint=(
                "start sshd on the host (systemctl start ssh), or fix the port "
                "(ssh.port in answers.yaml, Port in ~/.ssh/config); a firewall may also reject it"
            ),
        )
    if isinstance(exc, socket.gaierror):
        return TransportError(
            target.label,
            FailureKind.UNREACHABLE,
            f"cannot resolve '{target.address}': {exc.strerror}",
            hint="check the address in answers.yaml (or HostName in ~/.ssh/config) and DNS",
        )
    if isinstance(exc, TimeoutError):
        return TransportError(
            target.label,
            FailureKind.TIMEOUT,
            f"no SSH answer from {where} within {target.connect_timeout:g}s",
            hint=(
                "check the host is up and the address is right; a firewall may drop port "
                f"{target.port}; on a slow link raise ssh.connect_timeout"
            ),
        )
    if isinstance(exc, (asyncssh.KeyExchangeFailed, asyncssh.ProtocolError)):
        return TransportError(
            target.label,
            FailureKind.PROTOCOL_ERROR,
            f"SSH negotiation with {where} failed: {exc.reason}",
            hint=(
                "the host's sshd and fmp-install share no algorithm, or this is not an SSH "
                "server; check Ciphers/KexAlgorithms/HostKeyAlgorithms in its sshd_config"
            ),
        )
    if isinstance(
        exc,
        (asyncssh.DisconnectError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError),
    ):
        reason = exc.reason if isinstance(exc, asyncssh.DisconnectError) else str(exc.strerror)
        return TransportError(
            target.label,
            FailureKind.CONNECTION_LOST,
            f"{where} closed the connection during login: {reason}",
            hint=(
                "sshd may refuse us (MaxStartups, AllowUsers/DenyUsers, TCP wrappers); "
                "its log says why: journalctl -u ssh on the host"
            ),
        )
    if isinstance(exc, OSError):
        detail = exc.strerror or type(exc).__name__
        kind = FailureKind.UNREACHABLE
        if exc.errno not in _UNREACHABLE_ERRNOS:
            detail = f"{detail} (errno {exc.errno})"
        return TransportError(
            target.label,
            kind,
            f"cannot reach {where}: {detail}",
            hint="check the address, the network path and that the host is up (ping it)",
        )
    return TransportError(
        target.label,
        FailureKind.PROTOCOL_ERROR,
        f"SSH to {where} failed: {type(exc).__name__}: {exc}",
        hint="run 'ssh -v' to the same host for details",
    )


def via_jump(target: SshTarget, exc: TransportError) -> TransportError:
    """A failure on the jump host, reported against the host we were trying to reach."""
    jump = target.jump
    assert jump is not None
    return TransportError(
        target.label,
        exc.kind,
        f"via {jump.display}: {exc.detail}",
        hint=exc.hint,
    )


def tunnel_failed(target: SshTarget, code: int, reason: str) -> TransportError:
    """The jump host would not (or could not) open the tunnel to ``target``."""
    jump = target.jump
    assert jump is not None
    kind = FailureKind.UNREACHABLE if code == asyncssh.OPEN_CONNECT_FAILED else FailureKind.REFUSED
    return TransportError(
        target.label,
        kind,
        f"via {jump.display}: no tunnel to {target.address}:{target.port}: {reason}",
        hint=(
            f"the jump host must allow TCP forwarding (AllowTcpForwarding yes in its "
            f"sshd_config) and reach {target.address}:{target.port} itself"
        ),
    )


def host_key_changed(
    target: SshTarget, known: HostKeys, presented: asyncssh.SSHKey
) -> TransportError:
    old = known.plain_entries()
    same_type = [e for e in old if key_type(e.key) == key_type(presented)] or old
    listing = "; ".join(f"{e.where} has {key_type(e.key)} {e.fingerprint}" for e in same_type)
    first = same_type[0]
    return TransportError(
        target.label,
        FailureKind.HOST_KEY_CHANGED,
        f"{host_pattern(target.address, target.port)} now offers {key_type(presented)} key "
        f"{fingerprint(presented)}, but {listing}",
        hint=(
            "if the host was reinstalled, compare the new fingerprint with the host's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then delete the old entry: "
            f"{remove_hint(first.path, target.address, target.port)} (or line {first.line} "
            f"of {first.path}); otherwise someone may be intercepting the connection: stop"
        ),
    )


def host_key_type_gone(target: SshTarget, known: HostKeys, reason: str) -> TransportError:
    listing = "; ".join(
        f"{e.where} has {key_type(e.key)} {e.fingerprint}" for e in known.plain_entries()
    )
    first = known.plain_entries()[0]
    return TransportError(
        target.label,
        FailureKind.HOST_KEY_CHANGED,
        f"{host_pattern(target.address, target.port)} no longer offers a key of the known "
        f"type ({reason}); {listing}",
        hint=(
            "if the host was reinstalled, check its keys on the console, then delete the old "
            f"entry: {remove_hint(first.path, target.address, target.port)}"
        ),
    )


def host_key_refused(target: SshTarget, known: HostKeys, reason: str) -> TransportError:
    revoked = [e.where for e in known.entries if e.marker.value == "@revoked"]
    where = f" (marked @revoked at {', '.join(revoked)})" if revoked else ""
    return TransportError(
        target.label,
        FailureKind.HOST_KEY_CHANGED,
        f"the host key of {host_pattern(target.address, target.port)} is refused: {reason}{where}",
        hint="the key was revoked on purpose: have the host's keys regenerated and verified",
    )


def host_key_unknown(target: SshTarget, presented: asyncssh.SSHKey) -> TransportError:
    return TransportError(
        target.label,
        FailureKind.HOST_KEY_UNKNOWN,
        f"{host_pattern(target.address, target.port)} offers {key_type(presented)} key "
        f"{fingerprint(presented)}, which {target.known_hosts} does not know",
        hint=(
            "check the fingerprint on the host's console (ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub), then accept it in the wizard, or set "
            "ssh.accept_new_host_keys: true to trust keys on first use"
        ),
    )


def connection_lost(target: SshTarget, during: str) -> TransportError:
    return TransportError(
        target.label,
        FailureKind.CONNECTION_LOST,
        f"the connection to {target.endpoint} dropped {during}",
        hint=(
            "the host may have rebooted or the network failed; the command may or may not "
            "have finished: the runner retries idempotent steps, otherwise check the host"
        ),
    )


def command_timeout(target: SshTarget, timeout: float) -> TransportError:
    return TransportError(
        target.label,
        FailureKind.COMMAND_TIMEOUT,
        f"the command did not finish within {timeout:g}s and was stopped",
        hint="see the last lines of its output; raise the step's timeout if the host is just slow",
    )


def command_not_found(host: str, result: CommandResult) -> TransportError | None:
    """Exit 127 means the shell found no such command: say which, if bash said so."""
    if result.exit_status != 127:
        return None
    lines = [ln for ln in result.stderr.splitlines() if "not found" in ln]
    what = lines[-1].strip() if lines else "exit status 127"
    return TransportError(
        host,
        FailureKind.COMMAND_NOT_FOUND,
        what,
        hint="install the package that provides it, or check PATH for non-login shells",
    )
