"""Real OpenSSH servers, an ssh-agent and test users for the SSH tests.

Not a test module: ``tests/test_ssh.py`` imports it. Everything here runs on
127.0.0.1 only, and every process it starts is stopped by its PID.

- ``Sshd``: ``/usr/sbin/sshd -D -e -f CONFIG`` on a free loopback port, with
  its own host key, config and authorized_keys in a private directory.
- ``TestUsers``: local accounts created with ``useradd`` (root only) with a
  password set by ``chpasswd`` and a rule in ``/etc/sudoers.d``: one user whose
  sudo asks for the password, one with NOPASSWD, one that may not sudo.
- ``SshAgent``: ``ssh-agent -D -a SOCKET``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_tool

START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, *, passphrase: str = "", kind: str = "ed25519", comment: str = "") -> Path:
    """A new key pair at ``path`` (private) and ``path.pub``; returns ``path``."""
    subprocess.run(
        [
            require_tool("ssh-keygen"),
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            comment,
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, found by walking /proc (children before grandchildren)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _ppid(int(entry))
            if ppid is not None:
                parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _stop_popen(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill(proc.pid)
            proc.wait(timeout=5)


def make_shared_dir(prefix: str) -> Path:
    """A temp dir the test users can traverse (sshd reads authorized_keys as the user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass
class Sshd:
    """One OpenSSH server on 127.0.0.1, configured and owned by the test."""

    workdir: Path
    authorized_keys: list[str]
    max_sessions: int = 10
    extra_config: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    host_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.host_key = keygen(self.workdir / "ssh_host_ed25519_key", comment="test-host")
        self.write_authorized_keys(self.authorized_keys)

    # ------------------------------------------------------------------ files

    @property
    def config_path(self) -> Path:
        return self.workdir / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` without the comment."""
        kind, blob = (self.workdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def host_fingerprint(self) -> str:
        out = subprocess.run(
            [require_tool("ssh-keygen"), "-l", "-E", "sha256", "-f", f"{self.host_key}.pub"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_public_key}\n"

    def write_authorized_keys(self, keys: list[str]) -> None:
        path = self.workdir / "authorized_keys"
        path.write_text("".join(k.strip() + "\n" for k in keys))
        path.chmod(0o644)

    def _write_config(self) -> None:
        self.config_path.write_text(
            f"""\
# sshd keeps the first value of a keyword: the test's own settings come first.
{self.extra_config}
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile none
UsePAM no
StrictModes no
AuthorizedKeysFile {self.workdir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitTTY no
AllowTcpForwarding yes
MaxSessions {self.max_sessions}
MaxStartups 100:30:200
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
        )

    # -------------------------------------------------------------- lifecycle

    def start(self, *, same_port: bool = False) -> Sshd:
        """Start sshd (on a new free port, or ``same_port`` as last time)."""
        binary = require_tool("sshd")
        # sshd refuses to start without its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _attempt in range(5 if not same_port else 50):
            if not same_port or not self.port:
                self.port = free_port()
            self._write_config()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [binary, "-D", "-e", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_listening(offset):
                return self
            _stop_popen(self.proc)
            self.proc = None
            if same_port:  # the old listener's socket may linger for a moment
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not start; log:\n{self.log_path.read_text()}")

    def _wait_listening(self, offset: int) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken between free_port() and bind
            with self.log_path.open("rb") as f:
                f.seek(offset)
                fresh = f.read().decode(errors="replace")
            if f"Server listening on 127.0.0.1 port {self.port}" in fresh:
                return True
            time.sleep(0.02)
        return False

    @property
    def pid(self) -> int:
        assert self.proc is not None, "sshd is not running"
        return self.proc.pid

    def connection_pids(self) -> list[int]:
        """The per-connection sshd processes (and what runs below them)."""
        return descendants(self.pid) if self.proc is not None else []

    def kill_connections(self) -> int:
        """SIGKILL every connection of this sshd (the listener keeps running)."""
        pids = self.connection_pids()
        for pid in pids:
            _kill(pid)
        return len(pids)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.kill_connections()
        _stop_popen(self.proc)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class SshAgent:
    """A real ssh-agent on a private socket, stopped by PID."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        return str(self.workdir / "agent.sock")

    def start(self) -> SshAgent:
        binary = require_tool("ssh-agent")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "-D", "-a", self.socket_path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not Path(self.socket_path).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ssh-agent did not start")
            time.sleep(0.02)
        return self

    def add(self, key: Path, passphrase: str) -> None:
        """``ssh-add`` an encrypted key, answering the passphrase through SSH_ASKPASS."""
        askpass = self.workdir / "askpass"
        askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
        askpass.chmod(0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SSH_AUTH_SOCK": self.socket_path,
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",
        }
        subprocess.run(
            [require_tool("ssh-add"), str(key)],
            env=env,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        askpass.unlink()

    def stop(self) -> None:
        if self.proc is not None:
            _stop_popen(self.proc)
            self.proc = None


# ------------------------------------------------------------------ test users


@dataclass
class TestUsers:
    """Local accounts for password and sudo tests. All share one random password."""

    __test__ = False  # not a pytest test class, despite the name

    sudo_password_user: str
    sudo_nopasswd_user: str
    no_sudo_user: str
    sh_user: str  # login shell /bin/sh (dash on Debian), NOPASSWD sudo
    password: str
    sudoers_file: Path

    @property
    def names(self) -> list[str]:
        return [self.sudo_password_user, self.sudo_nopasswd_user, self.no_sudo_user, self.sh_user]


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("FMP_REQUIRE_TOOLS") == "1":
        pytest.fail("SSH user/sudo tests need root (FMP_REQUIRE_TOOLS=1)")
    pytest.skip("SSH user/sudo tests need root to create test users")


def create_test_users() -> TestUsers:
    _require_root()
    useradd = require_tool("useradd")
    chpasswd = require_tool("chpasswd")
    visudo = require_tool("visudo")
    require_tool("sudo")
    tag = secrets.token_hex(3)
    users = TestUsers(
        sudo_password_user=f"fmpa{tag}",
        sudo_nopasswd_user=f"fmpn{tag}",
        no_sudo_user=f"fmpx{tag}",
        sh_user=f"fmps{tag}",
        # Letters and digits only: the password travels through chpasswd and shell-free APIs.
        password="Pw" + secrets.token_hex(12),
        sudoers_file=Path(f"/etc/sudoers.d/fmp-test-{tag}"),
    )
    try:
        for name in users.names:
            shell = "/bin/sh" if name == users.sh_user else "/bin/bash"
            subprocess.run(
                [useradd, "--create-home", "--shell", shell, name],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            [chpasswd],
            input="".join(f"{n}:{users.password}\n" for n in users.names),
            text=True,
            check=True,
            capture_output=True,
        )
        rules = (
            f"{users.sudo_password_user} ALL=(ALL:ALL) ALL\n"
            f"{users.sudo_nopasswd_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
            f"{users.sh_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
        )
        draft = users.sudoers_file.with_name(f".{users.sudoers_file.name}.draft")
        draft.write_text(rules)
        draft.chmod(0o440)
        subprocess.run([visudo, "-c", "-q", "-f", str(draft)], check=True, capture_output=True)
        draft.rename(users.sudoers_file)
    except BaseException:
        remove_test_users(users)
        raise
    return users


def remove_test_users(users: TestUsers) -> None:
    users.sudoers_file.unlink(missing_ok=True)
    userdel = shutil.which("userdel") or "/usr/sbin/userdel"
    for name in users.names:
        subprocess.run([userdel, "--force", "--remove", name], capture_output=True, check=False)
        shutil.rmtree(f"/run/sudo/ts/{name}", ignore_errors=True)
        with contextlib.suppress(OSError):
            Path(f"/run/sudo/ts/{name}").unlink()


@contextlib.contextmanager
def running(*servers: Sshd | SshAgent) -> Iterator[None]:
    """Stop every server on the way out, whatever happened."""
    try:
        yield
    finally:
        for server in servers:
            server.stop()
