"""installer.ssh against real OpenSSH sshd servers on 127.0.0.1 (see tests/sshd.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncssh
import pytest

from installer import ssh_hostkeys
from installer.answers import Answers
from installer.errors import OperatorError
from installer.ssh import Backoff, SshConnection, SshTarget, SudoStatus, connect, target_for
from installer.ssh_errors import command_not_found
from installer.ssh_exec import ChannelLimiter, Gate, StartGate, Wrapper
from installer.transport import FailureKind, TransportError
from tests.conftest import REPO
from tests.sshd import (
    SshAgent,
    Sshd,
    TestUsers,
    create_test_users,
    keygen,
    make_shared_dir,
    remove_test_users,
)

# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class ClientKeys:
    plain: Path
    encrypted: Path
    passphrase: str

    def public(self, key: Path) -> str:
        return Path(f"{key}.pub").read_text()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = make_shared_dir("fmp-ssh-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def client_keys(workdir: Path) -> ClientKeys:
    keys = workdir / "client"
    keys.mkdir()
    passphrase = "pp-" + secrets.token_hex(8)
    return ClientKeys(
        plain=keygen(keys / "id_plain"),
        encrypted=keygen(keys / "id_encrypted", passphrase=passphrase),
        passphrase=passphrase,
    )


@pytest.fixture(scope="session")
def users() -> Iterator[TestUsers]:
    created = create_test_users()
    yield created
    remove_test_users(created)


@pytest.fixture
def servers(workdir: Path, client_keys: ClientKeys) -> Iterator[Callable[..., Sshd]]:
    """A factory of running sshd; every one is stopped after the test."""
    started: list[Sshd] = []

    def make(**kwargs: object) -> Sshd:
        server = Sshd(
            workdir / f"sshd-{secrets.token_hex(4)}",
            authorized_keys=[
                client_keys.public(client_keys.plain),
                client_keys.public(client_keys.encrypted),
            ],
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sshd(servers: Callable[..., Sshd]) -> Sshd:
    return servers()


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "ssh" / "known_hosts"


def trust(server: Sshd, known_hosts: Path) -> None:
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with known_hosts.open("a") as f:
        f.write(server.known_hosts_line())


def target(
    server: Sshd, known_hosts: Path, client_keys: ClientKeys, *, trusted: bool = True, **kw: object
) -> SshTarget:
    if trusted:
        trust(server, known_hosts)
    base = SshTarget(
        label="node",
        address="127.0.0.1",
        port=server.port,
        user="root",
        identity_files=(client_keys.plain,),
        known_hosts=known_hosts,
        connect_timeout=10,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


class Lines:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.event = asyncio.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.items.append((stream, line))
        self.event.set()

    def of(self, stream: str) -> list[str]:
        return [line for s, line in self.items if s == stream]


# --------------------------------------------------------------------------- commands


async def test_key_auth_runs_commands_and_streams_lines(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    lines = Lines()
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        result = await conn.run(
            "echo out1; echo err1 >&2; printf 'out2\\nlast-without-newline'; exit 3",
            timeout=30,
            on_line=lines,
        )
        assert result.exit_status == 3
        assert result.stdout == "out1\nout2\nlast-without-newline"
        assert result.stderr == "err1\n"
        assert lines.of("stdout") == ["out1", "out2", "last-without-newline"]
        assert lines.of("stderr") == ["err1"]
        # bash, not sh; stdin is fed and closed.
        result = await conn.run("echo ${BASH_VERSION:+bash}; cat", timeout=30, input="a\nb\n")
        assert result.stdout == "bash\na\nb\n"
        assert (await conn.run("cat", timeout=30)).stdout == ""


async def test_exit_127_is_command_not_found(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        result = await conn.run("fmp-no-such-command --now", timeout=30)
    assert result.exit_status == 127
    error = command_not_found(conn.host, result)
    assert error is not None and error.kind is FailureKind.COMMAND_NOT_FOUND
    assert "fmp-no-such-command" in str(error) and error.hint
    assert command_not_found("node", replace(result, exit_status=1)) is None


async def test_password_auth(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    t = target(
        sshd,
        known_hosts,
        client_keys,
        user=users.sudo_nopasswd_user,
        identity_files=(),
        password=users.password,
    )
    async with await connect(t) as conn:
        assert (await conn.run("id -un", timeout=30)).stdout.strip() == users.sudo_nopasswd_user


async def test_auth_failure_names_the_methods_tried(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "not_authorised")
    t = target(
        sshd,
        known_hosts,
        client_keys,
        user=users.sudo_nopasswd_user,
        identity_files=(stranger, client_keys.encrypted, tmp_path / "missing"),
        password="wrong-" + users.password,
    )
    with pytest.raises(TransportError) as info:
        await connect(t)
    err = info.value
    assert err.kind is FailureKind.AUTH_FAILED
    text = str(err)
    assert "no ssh agent" in text and "password" in text and str(stranger) in text
    assert f"{client_keys.encrypted} is encrypted" in text and "ssh-add" in text
    assert "not found" in text
    assert users.password not in text and err.hint and "ssh-copy-id" in err.hint


async def test_encrypted_key_through_a_real_agent(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, tmp_path: Path
) -> None:
    only_encrypted = target(sshd, known_hosts, client_keys, identity_files=(client_keys.encrypted,))
    with pytest.raises(TransportError) as info:
        await connect(only_encrypted)
    assert info.value.kind is FailureKind.AUTH_FAILED

    agent = SshAgent(tmp_path / "agent").start()
    try:
        agent.add(client_keys.encrypted, client_keys.passphrase)
        t = replace(only_encrypted, agent_path=agent.socket_path)
        async with await connect(t) as conn:
            assert (await conn.run("id -u", timeout=30)).stdout.strip() == "0"
    finally:
        agent.stop()
    assert agent.proc is None


# --------------------------------------------------------------------------- sudo


async def test_passwordless_sudo_never_sends_the_password_to_the_command(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    # A sudo password is set, but NOPASSWD sudo never asks: it must not reach `cat`.
    t = target(
        sshd,
        known_hosts,
        client_keys,
        user=users.sudo_nopasswd_user,
        sudo_password=users.password,
    )
    async with await connect(t) as conn:
        assert await conn.check_sudo() is SudoStatus.PASSWORDLESS
        result = await conn.run("id -u; cat", sudo=True, timeout=30)
        assert result.stdout == "0\n"
        assert users.password not in result.stdout + result.stderr
        result = await conn.run("cat; echo err >&2", sudo=True, timeout=30, input="data\n")
        assert (result.stdout, result.stderr) == ("data\n", "err\n")
        assert (await conn.run("id -u", timeout=30)).stdout.strip() != "0"


async def test_sudo_with_password(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    t = target(
        sshd, known_hosts, client_keys, user=users.sudo_password_user, sudo_password=users.password
    )
    lines = Lines()
    async with await connect(t) as conn:
        assert await conn.check_sudo() is SudoStatus.PASSWORD
        result = await conn.run(
            "id -u; cat; echo done >&2", sudo=True, timeout=30, input="x\n", on_line=lines
        )
        assert (result.exit_status, result.stdout, result.stderr) == (0, "0\nx\n", "done\n")
        assert lines.items == [("stdout", "0"), ("stdout", "x"), ("stderr", "done")]
        # A failing command under sudo is a result, not an error.
        assert (await conn.run("exit 5", sudo=True, timeout=30)).exit_status == 5


async def test_sudo_wrong_missing_and_not_allowed(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    wrong = "not-" + users.password
    t = target(sshd, known_hosts, client_keys, user=users.sudo_password_user, sudo_password=wrong)
    async with await connect(t) as conn:
        with pytest.raises(TransportError) as info:
            await conn.run("id -u", sudo=True, timeout=30)
        assert info.value.kind is FailureKind.SUDO_PASSWORD_WRONG
        assert wrong not in str(info.value) and "sudo_password_env" in (info.value.hint or "")
        assert await conn.check_sudo() is SudoStatus.PASSWORD_WRONG

    async with await connect(replace(t, sudo_password=None)) as conn:
        with pytest.raises(TransportError) as info:
            await conn.run("id -u", sudo=True, timeout=30)
        assert info.value.kind is FailureKind.SUDO_PASSWORD_MISSING
        assert await conn.check_sudo() is SudoStatus.PASSWORD_MISSING

    no_sudo = replace(t, user=users.no_sudo_user, sudo_password=users.password)
    async with await connect(no_sudo) as conn:
        with pytest.raises(TransportError) as info:
            await conn.run("id -u", sudo=True, timeout=30)
        assert info.value.kind is FailureKind.SUDO_NOT_ALLOWED
        assert "sudoers" in str(info.value) and users.no_sudo_user in (info.value.hint or "")
        assert await conn.check_sudo() is SudoStatus.NOT_ALLOWED


async def test_wrapper_works_under_a_posix_sh_login_shell(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    t = target(sshd, known_hosts, client_keys, user=users.sh_user)
    async with await connect(t) as conn:
        assert (await conn.run("echo $0", timeout=30)).stdout == "bash\n"
        assert (await conn.run("[[ -n $BASH ]] && id -u", sudo=True, timeout=30)).stdout == "0\n"


async def test_root_needs_no_sudo(sshd: Sshd, known_hosts: Path, client_keys: ClientKeys) -> None:
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        assert await conn.check_sudo() is SudoStatus.ROOT
        assert (await conn.run("id -u", sudo=True, timeout=30)).stdout == "0\n"


# --------------------------------------------------------------------------- host keys


async def test_unknown_host_key_is_refused(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    t = target(sshd, known_hosts, client_keys, trusted=False)
    with pytest.raises(TransportError) as info:
        await connect(t)
    assert info.value.kind is FailureKind.HOST_KEY_UNKNOWN
    assert sshd.host_fingerprint() in str(info.value)
    assert "accept_new_host_keys" in (info.value.hint or "")
    assert not known_hosts.exists()


async def test_accept_new_host_key_writes_known_hosts(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    t = target(sshd, known_hosts, client_keys, trusted=False, accept_new_host_keys=True)
    async with await connect(t) as conn:
        assert (await conn.run("echo hi", timeout=30)).stdout == "hi\n"
    assert known_hosts.read_text() == sshd.known_hosts_line()
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    # Now known: a strict connection works, and OpenSSH itself agrees with the line.
    async with await connect(replace(t, accept_new_host_keys=False)) as conn:
        assert (await conn.run("true", timeout=30)).exit_status == 0
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known_hosts)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0


@pytest.mark.parametrize("is_async", [False, True])
async def test_unknown_host_key_accepted_by_callback(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, is_async: bool
) -> None:
    asked: list[tuple[str, str]] = []

    def sync_answer(host: str, fingerprint: str) -> bool:
        asked.append((host, fingerprint))
        return True

    async def async_answer(host: str, fingerprint: str) -> bool:
        asked.append((host, fingerprint))
        return True

    t = target(sshd, known_hosts, client_keys, trusted=False)
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text("# my hosts\nother.example ssh-ed25519 " + "A" * 4 + "\n")
    callback = async_answer if is_async else sync_answer
    async with await connect(t, on_unknown_host_key=callback) as conn:
        assert (await conn.run("echo ok", timeout=30)).stdout == "ok\n"
    assert asked == [("node", sshd.host_fingerprint())]
    assert known_hosts.read_text().splitlines()[-1] + "\n" == sshd.known_hosts_line()


async def test_unknown_host_key_declined_by_callback(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    t = target(sshd, known_hosts, client_keys, trusted=False)
    with pytest.raises(TransportError) as info:
        await connect(t, on_unknown_host_key=lambda host, fp: False)
    assert info.value.kind is FailureKind.HOST_KEY_UNKNOWN
    assert not known_hosts.exists()


async def test_changed_host_key_is_always_refused(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, tmp_path: Path
) -> None:
    impostor = keygen(tmp_path / "old_host_key")
    kind, blob = Path(f"{impostor}.pub").read_text().split()[:2]
    old_fp = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{impostor}.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(f"# kept\n[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    before = known_hosts.read_text()
    asked: list[str] = []

    def callback(host: str, fp: str) -> bool:
        asked.append(fp)
        return True

    t = target(sshd, known_hosts, client_keys, trusted=False, accept_new_host_keys=True)
    with pytest.raises(TransportError) as info:
        await connect(t, on_unknown_host_key=callback)
    err = info.value
    assert err.kind is FailureKind.HOST_KEY_CHANGED
    text = str(err)
    assert sshd.host_fingerprint() in text and old_fp in text
    assert f"{known_hosts}:2" in text
    assert "ssh-keygen -R" in (err.hint or "")
    assert asked == [] and known_hosts.read_text() == before


async def test_hashed_known_hosts_entry_is_trusted(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    trust(sshd, known_hosts)
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")
    async with await connect(target(sshd, known_hosts, client_keys, trusted=False)) as conn:
        assert (await conn.run("true", timeout=30)).exit_status == 0


# --------------------------------------------------------------------------- failures


async def test_refused_and_timeout_are_classified(
    known_hosts: Path, client_keys: ClientKeys
) -> None:
    nothing = SshTarget(
        label="n", address="127.0.0.1", port=_closed_port(), known_hosts=known_hosts
    )
    with pytest.raises(TransportError) as info:
        await connect(nothing)
    assert info.value.kind is FailureKind.REFUSED and info.value.hint

    # A listener that never speaks SSH: the handshake times out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = replace(nothing, port=silent.getsockname()[1], connect_timeout=0.5)
        with pytest.raises(TransportError) as info:
            await connect(mute)
    assert info.value.kind is FailureKind.TIMEOUT and "connect_timeout" in (info.value.hint or "")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_command_timeout_kills_the_remote_command(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    lines = Lines()
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        with pytest.raises(TransportError) as info:
            await conn.run("echo $$; exec sleep 300", timeout=1, on_line=lines)
        assert info.value.kind is FailureKind.COMMAND_TIMEOUT
        pid = int(lines.of("stdout")[0])
        # The host side gives up too (sshd would keep it running otherwise).
        await _until(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))
        assert (await conn.run("echo still usable", timeout=30)).stdout == "still usable\n"


async def test_sudo_command_timeout_kills_the_root_command(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    lines = Lines()
    t = target(
        sshd, known_hosts, client_keys, user=users.sudo_password_user, sudo_password=users.password
    )
    async with await connect(t) as conn:
        with pytest.raises(TransportError) as info:
            await conn.run("echo $$; id -u; exec sleep 300", sudo=True, timeout=2, on_line=lines)
        assert info.value.kind is FailureKind.COMMAND_TIMEOUT
        pid_text, uid = lines.of("stdout")[:2]
        assert uid == "0"  # a root process, which the SSH user could not kill without sudo
        pid = int(pid_text)
        await _until(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def _until(condition: Callable[[], bool], limit: float = 60.0) -> None:
    """Wait for a condition (a bound on waiting, not an assertion about speed)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def test_connection_killed_mid_command_then_reconnects(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    lines = Lines()
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        running = asyncio.create_task(
            conn.run("echo started; sleep 300", timeout=600, on_line=lines)
        )
        await asyncio.wait_for(lines.event.wait(), 60)
        assert sshd.kill_connections() >= 1
        with pytest.raises(TransportError) as info:
            await running
        assert info.value.kind is FailureKind.CONNECTION_LOST
        assert "may or may not" in (info.value.hint or "")
        # The next command reconnects by itself.
        assert (await conn.run("echo back", timeout=30)).stdout == "back\n"
        assert conn.reconnects == 1
        # And an explicit reconnect gives a fresh connection too.
        await conn.reconnect()
        assert conn.reconnects == 2 and conn.connected


async def test_reconnect_backs_off_until_the_server_returns(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    backoff = Backoff(first=0.05, factor=2, cap=0.5, attempts=60)
    async with await connect(target(sshd, known_hosts, client_keys), backoff=backoff) as conn:
        sshd.stop()
        restarted = threading.Event()

        def restart() -> None:
            time.sleep(0.5)
            sshd.start(same_port=True)
            restarted.set()

        thread = threading.Thread(target=restart)
        thread.start()
        try:
            result = await conn.run("echo again", timeout=30)
        finally:
            thread.join()
        assert restarted.is_set() and result.stdout == "again\n"
        assert conn.reconnects == 1

    give_up = Backoff(first=0.01, attempts=3)
    async with await connect(target(sshd, known_hosts, client_keys), backoff=give_up) as conn:
        sshd.stop()
        with pytest.raises(TransportError) as info:
            await conn.run("true", timeout=30)
        assert info.value.kind is FailureKind.REFUSED and conn.reconnects == 0


async def test_more_commands_than_max_sessions(
    servers: Callable[..., Sshd], known_hosts: Path, client_keys: ClientKeys
) -> None:
    sshd = servers(max_sessions=2)
    async with await connect(target(sshd, known_hosts, client_keys), max_channels=4) as conn:
        results = await asyncio.gather(
            *(conn.run(f"sleep 0.2; echo {i}", timeout=120) for i in range(10))
        )
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(10)]
        assert 1 <= conn.channel_limit <= 2
        assert conn.peak_channels <= 4
        # Uploads share the same bounded channels.
        await asyncio.gather(
            *(conn.upload(b"x", f"{sshd.workdir}/up-{i}") for i in range(5)),
            *(conn.run("true", timeout=120) for _ in range(5)),
        )
        assert all((sshd.workdir / f"up-{i}").read_bytes() == b"x" for i in range(5))


async def test_channel_limiter_learns_a_lower_limit() -> None:
    limiter = ChannelLimiter(4)
    for _ in range(3):
        await limiter.acquire()
        limiter.opened()
    await limiter.acquire()  # the 4th is refused by the server
    limiter.release()
    assert limiter.refused() and limiter.limit == 3
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    limiter.release()
    await waiter
    assert limiter.in_use == 3 and limiter.peak == 4
    # A refusal while fewer are open than once were (a session still closing on
    # the server) does not lower the limit below what the server has proven.
    limiter.release()
    limiter.release()
    assert not limiter.refused() and limiter.limit == 3
    with pytest.raises(ValueError):
        ChannelLimiter(0)


# --------------------------------------------------------------------------- jump host


async def test_jump_host(
    servers: Callable[..., Sshd], known_hosts: Path, client_keys: ClientKeys
) -> None:
    bastion = servers()
    inner = servers()
    trust(bastion, known_hosts)
    jump = target(bastion, known_hosts, client_keys, trusted=False, label="bastion")
    t = target(inner, known_hosts, client_keys, jump=jump)
    async with await connect(t) as conn:
        assert (await conn.run("echo through", timeout=30)).stdout == "through\n"
        await conn.upload(b"via jump", f"{inner.workdir}/via")
    assert (inner.workdir / "via").read_bytes() == b"via jump"


async def test_jump_host_without_forwarding_fails_on_the_jump(
    servers: Callable[..., Sshd], known_hosts: Path, client_keys: ClientKeys
) -> None:
    closed = servers(extra_config="AllowTcpForwarding no")
    inner = servers()
    trust(closed, known_hosts)
    t = target(
        inner,
        known_hosts,
        client_keys,
        jump=target(closed, known_hosts, client_keys, trusted=False, label="bastion"),
    )
    with pytest.raises(TransportError) as info:
        await connect(t)
    err = info.value
    assert err.host == "node" and "via bastion" in str(err)
    assert err.kind in (FailureKind.REFUSED, FailureKind.UNREACHABLE)
    assert "AllowTcpForwarding" in (err.hint or "")


async def test_jump_host_key_is_verified_too(
    servers: Callable[..., Sshd], known_hosts: Path, client_keys: ClientKeys
) -> None:
    bastion = servers()
    inner = servers()
    jump = target(bastion, known_hosts, client_keys, trusted=False, label="bastion")
    t = target(inner, known_hosts, client_keys, jump=jump)
    with pytest.raises(TransportError) as info:
        await connect(t)
    assert info.value.kind is FailureKind.HOST_KEY_UNKNOWN
    assert "via bastion" in str(info.value) and bastion.host_fingerprint() in str(info.value)


# --------------------------------------------------------------------------- uploads


async def test_upload_is_atomic_with_mode_and_owner(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    dest_dir = sshd.workdir / "etc" / "app"
    dest = dest_dir / "app.conf"
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        await conn.upload(b"one\n", str(dest), mode=0o640)
        first = dest.stat()
        assert dest.read_bytes() == b"one\n" and stat.S_IMODE(first.st_mode) == 0o640
        owner = f"{users.no_sudo_user}:{users.no_sudo_user}"
        await conn.upload(b"two\n", str(dest), mode=0o600, owner=owner)
        second = dest.stat()
    assert dest.read_bytes() == b"two\n"
    assert stat.S_IMODE(second.st_mode) == 0o600
    assert _name_of(second.st_uid) == users.no_sudo_user
    assert second.st_ino != first.st_ino  # replaced by rename, never rewritten in place
    assert os.listdir(dest_dir) == ["app.conf"]  # no temporary file left


async def test_upload_via_sudo(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, users: TestUsers
) -> None:
    root_only = sshd.workdir / "root-only"
    root_only.mkdir(mode=0o755)
    dest = root_only / "secret.key"
    t = target(
        sshd, known_hosts, client_keys, user=users.sudo_password_user, sudo_password=users.password
    )
    async with await connect(t) as conn:
        with pytest.raises(TransportError) as info:
            await conn.upload(b"nope", str(dest))
        assert info.value.kind is FailureKind.UPLOAD_FAILED
        await conn.upload(b"secret\n", str(dest), mode=0o600, sudo=True)
        st = dest.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
        owner = f"{users.sudo_nopasswd_user}:{users.sudo_nopasswd_user}"
        await conn.upload(b"v2\n", str(dest), mode=0o640, owner=owner, sudo=True)
        staging = await conn.run("ls -d /tmp/fmp-upload.* 2>/dev/null | wc -l", timeout=30)
    st = dest.stat()
    assert dest.read_bytes() == b"v2\n"
    assert (_name_of(st.st_uid), stat.S_IMODE(st.st_mode)) == (users.sudo_nopasswd_user, 0o640)
    assert os.listdir(root_only) == ["secret.key"]
    assert staging.stdout.strip() == "0"


def _name_of(uid: int) -> str:
    import pwd

    return pwd.getpwuid(uid).pw_name


async def test_upload_rejects_bad_arguments(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys
) -> None:
    async with await connect(target(sshd, known_hosts, client_keys)) as conn:
        with pytest.raises(ValueError):
            await conn.upload(b"", "relative/path")
        with pytest.raises(ValueError):
            await conn.upload(b"", "/tmp/x", owner="root; rm -rf /")


# --------------------------------------------------------------------------- secrets


async def test_no_password_in_logs_errors_or_repr(
    sshd: Sshd,
    known_hosts: Path,
    client_keys: ClientKeys,
    users: TestUsers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_used = [users.password, "wrong-" + users.password]
    texts: list[str] = []
    t = target(
        sshd,
        known_hosts,
        client_keys,
        user=users.sudo_password_user,
        identity_files=(),
        password=users.password,
        sudo_password=users.password,
    )
    texts += [repr(t), str(t)]
    async with await connect(t) as conn:
        texts.append(repr(conn))
        result = await conn.run("echo hi; sudo -k", sudo=True, timeout=30)
        texts += [result.stdout, result.stderr]
        await conn.upload(b"x", "/tmp/fmp-secret-test", sudo=True)
    for bad in (
        replace(t, password=secrets_used[1]),
        replace(t, sudo_password=secrets_used[1]),
    ):
        try:
            async with await connect(bad) as conn:
                await conn.run("true", sudo=True, timeout=30)
        except TransportError as exc:
            texts += [str(exc), repr(exc), exc.hint or ""]
        else:
            raise AssertionError("a wrong password was accepted")
    Path("/tmp/fmp-secret-test").unlink(missing_ok=True)
    records = [r.getMessage() for r in caplog.records] + [caplog.text]
    for secret in secrets_used:
        assert not any(secret in text for text in texts + records), secret


# --------------------------------------------------------------------------- target_for


def _answers(
    ssh: dict[str, object] | None = None, host: dict[str, object] | None = None
) -> Answers:
    return Answers.model_validate(
        {
            "cluster": {"name": "fmp"},
            "profile": "kubeadm-etcd",
            "ssh": ssh or {},
            "hosts": [{"address": "kn0", "name": "kn0", **(host or {})}],
        }
    )


def test_target_for_honours_ssh_config_and_answers_win(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        "Host kn0\n  HostName 10.9.8.7\n  User alice\n  Port 2200\n"
        "  IdentityFile ~/.ssh/kn0_key\n  ProxyJump bob@bastion:2022\n"
        "Host bastion\n  HostName 10.9.8.1\n"
    )
    env = {"HOME": str(home), "USER": "local", "SSH_AUTH_SOCK": "/run/agent.sock"}
    t = target_for(_answers(), "kn0", env)
    assert (t.label, t.address, t.user, t.port) == ("kn0", "10.9.8.7", "alice", 2200)
    assert t.identity_files == (home / ".ssh" / "kn0_key",)
    assert t.known_hosts == home / ".ssh" / "known_hosts"
    assert t.agent_path == "/run/agent.sock"
    assert t.jump is not None
    assert (t.jump.address, t.jump.port, t.jump.user) == ("10.9.8.1", 2022, "bob")
    assert t.jump.password is None and t.jump.identity_files == t.identity_files

    explicit = _answers(
        {"user": "fmpadmin", "identity_file": "~/.ssh/id_fmp", "jump_host": "ops@10.0.0.1:22"},
        {"ssh": {"port": 2222}},
    )
    t = target_for(explicit, "kn0", env)
    assert (t.address, t.user, t.port) == ("10.9.8.7", "fmpadmin", 2222)
    assert t.identity_files == (home / ".ssh" / "id_fmp",)
    assert t.jump is not None and (t.jump.user, t.jump.address) == ("ops", "10.0.0.1")


def test_target_for_defaults_without_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("not read here")
    t = target_for(_answers(), "kn0", {"HOME": str(home), "USER": "me"})
    assert (t.address, t.user, t.port, t.jump, t.agent_path) == ("kn0", "me", 22, None, None)
    assert t.identity_files == (home / ".ssh" / "id_ed25519",)
    assert t.accept_new_host_keys is False and t.connect_timeout == 10.0


def test_target_for_reads_passwords_from_named_variables(tmp_path: Path) -> None:
    answers = _answers({"password_env": "FMP_T_PW", "sudo_password_env": "FMP_T_SUDO"})
    env = {
        "HOME": str(tmp_path),
        "USER": "me",
        "FMP_T_PW": "login-secret",
        "FMP_T_SUDO": "root-secret",
    }
    t = target_for(answers, "kn0", env)
    assert (t.password, t.sudo_password) == ("login-secret", "root-secret")
    assert "secret" not in repr(t) and "secret" not in str(t)

    only_login = _answers({"password_env": "FMP_T_PW"})
    t = target_for(only_login, "kn0", env)
    assert t.sudo_password == "login-secret"  # sudo asks for the same account's password

    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return "typed-secret"

    t = target_for(answers, "kn0", {"HOME": str(tmp_path), "USER": "me"}, prompt)
    assert t.password == "typed-secret" and len(prompts) == 2
    assert prompts[0] == "SSH password for me@kn0"

    with pytest.raises(OperatorError) as info:
        target_for(answers, "kn0", {"HOME": str(tmp_path), "USER": "me"})
    assert "FMP_T_PW" in str(info.value) and "export FMP_T_PW" in (info.value.hint or "")


async def test_target_for_alias_connects_to_real_sshd(
    sshd: Sshd, known_hosts: Path, client_keys: ClientKeys, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host kn0\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n"
        f"  IdentityFile {client_keys.plain}\n"
    )
    trust(sshd, home / ".ssh" / "known_hosts")
    t = target_for(_answers(), "kn0", {"HOME": str(home), "USER": "nobody"})
    async with await connect(t) as conn:
        assert isinstance(conn, SshConnection) and conn.host == "kn0"
        assert (await conn.run("id -un", timeout=30)).stdout == "root\n"


# --------------------------------------------------------------------------- known_hosts


def test_start_gate_reads_markers_split_across_chunks() -> None:
    wrapper = Wrapper(sudo=True)
    gate = StartGate(wrapper)
    stream = (
        b"motd noise\n[fmp-pid-" + wrapper.token.encode() + b":4242]\n"
        b"[fmp-pid-0000000000000000:1]\n"  # a marker with another token is just text
        + wrapper.prompt
        + b"Sorry, try again.\n"
        + wrapper.prompt
        + wrapper.ready
        + b"command's own stderr\n"
    )
    events = []
    for i in range(0, len(stream), 3):
        gate.feed(stream[i : i + 3])
        while (step := gate.step()) is not Gate.MORE:
            events.append(step)
            if step is Gate.PASSED:
                break
        if gate.passed:
            break
    gate.feed(stream[i + 3 :])
    assert events == [Gate.PROMPT, Gate.PROMPT, Gate.PASSED]
    assert gate.pid == 4242 and gate.prompts == 2
    assert b"Sorry, try again." in gate.said and b"motd noise" in gate.said
    assert gate.remainder() == b"command's own stderr\n"

    plain = StartGate(Wrapper())
    plain.feed(b"[fmp-pid-" + plain.wrapper.token.encode() + b":7]\nrest")
    assert plain.step() is Gate.PASSED and plain.pid == 7 and plain.remainder() == b"rest"


def test_known_hosts_patterns() -> None:
    match = ssh_hostkeys.patterns_match
    assert match("a.example,[127.0.0.1]:2222", "[127.0.0.1]:2222")
    assert not match("[127.0.0.1]:2222", "127.0.0.1")
    assert match("*.example", "kn0.example") and not match("*.example,!kn0.example", "kn0.example")
    assert match("KN?.Example", "kn1.example")
    assert ssh_hostkeys.host_pattern("h", 22) == "h"
    assert ssh_hostkeys.host_pattern("h", 2222) == "[h]:2222"


def test_known_hosts_append_numbers_lines(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    path = tmp_path / "kh"
    path.write_text("# no trailing newline")
    assert ssh_hostkeys.append(path, "10.0.0.1", 22, key) == 2
    assert ssh_hostkeys.append(path, "10.0.0.1", 2222, key) == 3
    found = ssh_hostkeys.lookup(path, "10.0.0.1", 2222)
    assert [(e.line, e.fingerprint) for e in found.entries] == [(3, ssh_hostkeys.fingerprint(key))]
    assert ssh_hostkeys.lookup(path, "10.0.0.2", 22).entries == ()


def test_host_key_verification_is_never_disabled() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "installer").rglob("*.py")
        if re.search(r"known_hosts\s*=\s*None", p.read_text())
    ]
    assert offenders == []
