"""Discovery: the real script run by a real local shell, and the parse of its output.

``LocalTransport`` is a tiny Transport that runs commands with a local shell
through asyncio subprocesses, the way the SSH transport runs them remotely,
so the script itself is exercised for real, not a canned copy of its output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer import discovery as D
from installer import facts as F
from installer.hostfacts import Firewall, HostFacts
from installer.transport import CommandResult, FailureKind, LineCallback, TransportError
from tests.conftest import require_tool

FIX = Path(__file__).resolve().parent / "fixtures"
RAW = FIX / "discovery"
OPTIONAL_FACTS = [
    f.name for f in dataclasses.fields(HostFacts) if f.name not in ("address", "unknown")
]


class LocalTransport:
    """Runs each command as ``[*prefix, command]`` on this machine; a timeout kills its group."""

    def __init__(
        self,
        host: str = "local",
        prefix: Sequence[str] = ("bash", "-c"),
        env: dict[str, str] | None = None,
    ) -> None:
        self._host = host
        self.prefix = tuple(prefix)
        self.env = env
        self.commands: list[str] = []

    @property
    def host(self) -> str:
        return self._host

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        self.commands.append(command)
        proc = await asyncio.create_subprocess_exec(
            *self.prefix,
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd="/tmp",
            start_new_session=True,  # its own group, so a timeout kills the whole script
            limit=2**22,
        )
        chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

        async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
            assert stream is not None
            while line := await stream.readline():
                chunks[name].append(line)
                if on_line is not None:
                    on_line(name, line.decode(errors="replace").rstrip("\n"))

        try:
            await asyncio.wait_for(
                asyncio.gather(
                    pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"), proc.wait()
                ),
                timeout,
            )
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise TransportError(
                self.host, FailureKind.COMMAND_TIMEOUT, f"no answer within {timeout}s"
            ) from None
        return CommandResult(
            exit_status=proc.returncode if proc.returncode is not None else -1,
            stdout=b"".join(chunks["stdout"]).decode(errors="replace"),
            stderr=b"".join(chunks["stderr"]).decode(errors="replace"),
        )

    async def upload(
        self,
        data: bytes,
        path: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        sudo: bool = False,
    ) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class CannedTransport:
    """Answers every command with a fixed output; optional barrier proves concurrency."""

    def __init__(
        self,
        host: str,
        stdout: str,
        barrier: asyncio.Barrier | None = None,
        error: TransportError | None = None,
        lines: Sequence[str] = (),
    ) -> None:
        self._host = host
        self.stdout = stdout
        self.barrier = barrier
        self.error = error
        self.lines = lines

    @property
    def host(self) -> str:
        return self._host

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        if self.barrier is not None:
            await asyncio.wait_for(self.barrier.wait(), 10)
        for line in self.lines:
            if on_line is not None:
                on_line("stdout", line)
        if self.error is not None:
            raise self.error
        return CommandResult(0, self.stdout, "")

    async def upload(
        self,
        data: bytes,
        path: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        sudo: bool = False,
    ) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def assert_every_unknown_fact_has_a_reason(facts: HostFacts) -> None:
    missing = [
        name
        for name in OPTIONAL_FACTS
        if getattr(facts, name) is None and name not in facts.unknown
    ]
    assert missing == []
    assert all(isinstance(r, str) and r for r in facts.unknown.values())


def sbin_which(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


# ---------------------------------------------------------------- the script


def test_script_is_valid_posix_sh_and_bash() -> None:
    for shell in ("bash", "sh"):
        if shutil.which(shell):
            done = os.system(f"{shell} -n -c {_quote(D.DISCOVERY_SCRIPT)} 2>/dev/null")
            assert done == 0, shell


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_script_has_one_section_per_probe_in_order() -> None:
    raw = (RAW / "captured__this-machine-root.txt").read_text()
    assert list(D.split_sections(raw)) == [p.name for p in D.PROBES]
    assert raw.startswith(D.SCRIPT_MARKER) and raw.rstrip().endswith(D.DONE_MARKER)


# ---------------------------------------------------------------- splitting


def test_split_sections_keeps_output_exact() -> None:
    raw = (
        "Welcome to the MOTD\n"
        + D.SCRIPT_MARKER
        + "\n"
        + "@@FMP-BEGIN a@@\nline 1\n\nline 3\n\n@@FMP-END a rc=0@@\n"
        + "@@FMP-BEGIN b@@\nno newline\n@@FMP-END b rc=127@@\n"
        + "@@FMP-BEGIN c@@\n\n@@FMP-END c rc=0@@\n"
        + "@@FMP-BEGIN d@@\npartial output"
    )
    sections = D.split_sections(raw)
    assert sections["a"] == D.Section("a", 0, "line 1\n\nline 3\n")
    assert sections["b"] == D.Section("b", 127, "no newline")
    assert sections["c"] == D.Section("c", 0, "")
    assert sections["d"] == D.Section("d", None, "partial output")


def test_render_section_round_trips() -> None:
    text = D.render_section("x", "a\nb", rc=3)
    assert D.split_sections(text) == {"x": D.Section("x", 3, "a\nb")}


# ---------------------------------------------------------------- parsing captured raw outputs


def test_parse_captured_root_output() -> None:
    facts = D.parse_discovery("192.0.2.2", (RAW / "captured__this-machine-root.txt").read_text())
    assert facts.address == "192.0.2.2"
    assert facts.hostname == "vm" and facts.fqdn == "vm"
    assert facts.os is not None and (facts.os.id, facts.os.version_id) == ("debian", "12")
    assert facts.arch == "x86_64" and facts.kernel == "6.18.44-fc-v669"
    # The same machine as the single-command captures: the parsers must agree.
    cpuinfo = F.parse_cpuinfo(
        (FIX / "cpuinfo" / "captured__this-machine-amd-epyc-2cpu.txt").read_text()
    )
    assert facts.cpu == cpuinfo and facts.cpu is not None and "avx512f" in facts.cpu.flags
    assert facts.memory is not None and facts.memory.total_bytes == 24684084 * 1024
    assert facts.swaps == ()
    assert facts.disks is not None and [d.name for d in facts.disks] == ["zram0", "vda"]
    assert facts.volume_groups == ()
    assert facts.nics == F.parse_ip_addr(
        (FIX / "ip" / "captured__this-machine-ip-j-addr.json").read_text()
    )
    assert (facts.default_gateway, facts.default_interface) == ("192.0.2.1", "eth0")
    assert facts.dns_servers == ("10.255.255.53",)
    assert facts.machine_id == "3d1219c7c4c5404aaa1f6d2a48adfda4"
    assert facts.cgroup_version == 1 and facts.systemd is False
    assert facts.virtualization == "docker" and facts.sudo_ok is True
    assert facts.listening_ports == frozenset({2024})
    assert facts.firewall == Firewall(active=False, kind="ufw")  # installed, inactive
    assert facts.time_sync is not None and facts.time_sync.service is None
    assert (
        facts.installed is not None
        and {"docker", "etcd", "haproxy", "keepalived"} <= facts.installed
    )
    assert facts.kernel_modules == {}  # captured before the module probe: none known
    assert facts.clock_epoch is not None and facts.clock_epoch > 1.7e9
    assert facts.product_uuid is None
    assert facts.unknown == {
        "disks.by_id": "ls: cannot access '/dev/disk/by-id/': No such file or directory",
        "product_uuid": "cat: /sys/class/dmi/id/product_uuid: No such file or directory",
    }


def test_parse_captured_unprivileged_output_says_why() -> None:
    facts = D.parse_discovery("h", (RAW / "captured__this-machine-nobody-dash.txt").read_text())
    assert facts.cpu is not None and facts.disks is not None  # no root needed for these
    assert facts.volume_groups is None and facts.firewall is None
    assert "Permission denied" in facts.unknown["volume_groups"]
    assert D.NO_ROOT in facts.unknown["volume_groups"]
    assert facts.unknown["firewall"].startswith("ufw: ERROR: You need to be root")
    assert "nft: Operation not permitted" in facts.unknown["firewall"]
    assert facts.sudo_ok is None and "password" in facts.unknown["sudo_ok"]
    # A missing file is not a permission problem: no "needs root" there.
    assert (
        facts.unknown["product_uuid"]
        == "cat: /sys/class/dmi/id/product_uuid: No such file or directory"
    )
    assert_every_unknown_fact_has_a_reason(facts)


def test_parse_captured_output_of_a_host_without_the_tools() -> None:
    facts = D.parse_discovery(
        "h", (RAW / "captured__this-machine-root-before-firewall-lvm-tools.txt").read_text()
    )
    assert facts.volume_groups is None
    assert facts.unknown["volume_groups"] == "vgs: command not found"
    # No ufw, firewalld, nft or iptables at all: nothing filters.
    assert facts.firewall == Firewall(active=False, kind=None)
    nobody = D.parse_discovery(
        "h", (RAW / "captured__this-machine-nobody-before-firewall-lvm-tools.txt").read_text()
    )
    assert nobody.sudo_ok is None and nobody.cpu == facts.cpu


@pytest.mark.parametrize("path", sorted(RAW.glob("*.txt")), ids=lambda p: p.name)
def test_every_captured_raw_output_parses_with_reasons(path: Path) -> None:
    facts = D.parse_discovery("h", path.read_text())
    assert facts.hostname == "vm" and facts.cpu is not None and facts.memory is not None
    assert_every_unknown_fact_has_a_reason(facts)


def test_missing_and_failed_sections_become_reasons() -> None:
    raw = (
        D.SCRIPT_MARKER
        + "\n"
        + D.render_section("lsblk", "bash: line 9: lsblk: command not found", rc=127)
    )
    raw += D.render_section("fqdn", "", rc=124)
    raw += D.render_section("cpuinfo", "processor : x", rc=0)
    facts = D.parse_discovery("h", raw)
    assert facts.unknown["disks"] == "lsblk: command not found"
    assert facts.unknown["fqdn"] == f"fqdn: timed out after {D.PROBE_TIMEOUT_S}s"
    assert facts.unknown["cpu"] == "cpuinfo: unexpected output: 'processor : x'"
    assert facts.unknown["memory"] == "meminfo: not in the discovery output"
    assert_every_unknown_fact_has_a_reason(facts)


def test_kernel_modules_come_from_the_installed_section() -> None:
    """Modules are a fact of their own, read from the same probe (no extra round trip)."""
    installed = "bin kubelet\nkmod nvme_tcp available\ndone"
    facts = D.parse_discovery(
        "h", D.SCRIPT_MARKER + "\n" + D.render_section("installed", installed)
    )
    assert facts.installed == frozenset({"kubelet"})
    assert facts.kernel_modules == {"nvme_tcp": "available"}
    assert "kernel_modules" not in facts.unknown
    cut = D.parse_discovery("h", D.SCRIPT_MARKER + "\n@@FMP-BEGIN installed@@\nkmod nvme_tcp lo")
    assert cut.installed is None and cut.kernel_modules is None
    assert cut.unknown["kernel_modules"] == cut.unknown["installed"]
    assert_every_unknown_fact_has_a_reason(cut)


@pytest.mark.parametrize(
    ("route", "gateway", "interface", "why"),
    [
        ("default via 10.0.0.1\n", "10.0.0.1", None, ("default_interface", "names no device")),
        (
            "default dev ppp0 scope link\n",
            None,
            "ppp0",
            ("default_gateway", "no gateway (dev ppp0)"),
        ),
        ("", None, None, ("default_gateway", "route: no default route")),
    ],
)
def test_odd_default_routes(
    route: str, gateway: str | None, interface: str | None, why: tuple[str, str]
) -> None:
    facts = D.parse_discovery("h", D.render_section("route", route.rstrip("\n")))
    assert (facts.default_gateway, facts.default_interface) == (gateway, interface)
    assert why[1] in facts.unknown[why[0]]
    assert_every_unknown_fact_has_a_reason(facts)


def test_sudo_reasons() -> None:
    asks = D.parse_discovery(
        "h", D.render_section("sudo", "password\nsudo: a password is required")
    )
    assert "set ssh.sudo_password_env" in asks.unknown["sudo_ok"]
    tty = D.parse_discovery(
        "h", D.render_section("sudo", "password\nsudo: sorry, you must have a tty to run sudo")
    )
    assert tty.unknown["sudo_ok"] == "sudo -n failed: sudo: sorry, you must have a tty to run sudo"
    absent = D.parse_discovery("h", D.render_section("sudo", "absent"))
    assert absent.sudo_ok is False


def test_output_without_the_script_is_all_unknown() -> None:
    facts = D.parse_discovery("h", "bash: fmp: Permission denied\n")
    assert facts == HostFacts(address="h", unknown=facts.unknown)
    assert facts.unknown["discovery"] == "bash: fmp: Permission denied"
    assert_every_unknown_fact_has_a_reason(facts)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text()
    | st.lists(
        st.sampled_from(
            [
                "@@FMP-BEGIN lsblk@@",
                "@@FMP-END lsblk rc=0@@",
                "@@FMP-BEGIN cpuinfo@@",
                "@@FMP-END cpuinfo rc=1@@",
                "{",
                "processor : 0",
                "@@FMP-DONE@@",
            ]
        ),
        max_size=10,
    ).map("\n".join)
)
def test_parse_discovery_never_raises_on_garbage(text: str) -> None:
    assert_every_unknown_fact_has_a_reason(D.parse_discovery("h", text))


SNIPPETS = [
    "default via 10.0.0.1",
    "default dev ppp0",
    "nameserver 127.0.0.53",
    "password",
    "root",
    "state: running",
    "Status: active",
    "-P INPUT DROP",
    "table inet f {",
    "units:",
    "ps:",
    "done",
    "bin docker",
    "Leap status : Normal",
    '{"blockdevices": [{"name": "sda", "type": "disk", "size": "1"}]}',
    '[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 8}]}]',
    "lrwxrwxrwx 1 r r 9 Jan 1 00:00 wwn-1 -> ../../sda",
    "Filename Type Size Used Priority",
    "processor : 0",
    "MemTotal: 1 kB",
    "booted=yes",
    "tmpfs",
    "1.5",
]
sections = st.lists(
    st.tuples(
        st.sampled_from([p.name for p in D.PROBES] + ["_error", "_stderr"]),
        st.lists(st.sampled_from(SNIPPETS) | st.text(max_size=15), max_size=4).map("\n".join),
        st.sampled_from([0, 1, 124, 127]),
    ),
    max_size=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(parts=sections)
def test_parse_discovery_never_raises_on_odd_sections(parts: list[tuple[str, str, int]]) -> None:
    raw = D.SCRIPT_MARKER + "\n" + "".join(D.render_section(n, body, rc) for n, body, rc in parts)
    assert_every_unknown_fact_has_a_reason(D.parse_discovery("h", raw))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.floats(0, 1), junk=st.text(max_size=20))
def test_a_cut_off_output_keeps_every_section_before_the_cut(cut: float, junk: str) -> None:
    raw = (RAW / "captured__this-machine-root.txt").read_text()
    at = int(len(raw) * cut)
    facts = D.parse_discovery("h", raw[:at] + junk)
    assert_every_unknown_fact_has_a_reason(facts)
    complete = {n for n, s in D.split_sections(raw[:at]).items() if s.rc is not None}
    if "cpuinfo" in complete:
        assert facts.cpu is not None


# ---------------------------------------------------------------- running the real script


def _expected_cpu_count() -> int:
    return sum(
        1 for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("processor")
    )


@pytest.mark.parametrize("shell", ["bash", "sh"])
async def test_discover_host_runs_the_real_script(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    with socket.socket() as listener:  # a port we know is listening, on loopback
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        transport = LocalTransport(prefix=(shell, "-c"))
        before = time.time()
        result = await D.discover_host(transport, "127.0.0.1", timeout=60)
        after = time.time()
    assert transport.commands == [D.DISCOVERY_SCRIPT]  # one script, one channel
    assert result.error is None, result.error
    facts = result.facts
    assert D.parse_discovery("127.0.0.1", result.raw) == facts  # what --save-raw replays
    assert facts.hostname == socket.gethostname()
    assert facts.kernel == platform.release() and facts.arch == platform.machine()
    assert facts.cpu is not None and facts.cpu.count == _expected_cpu_count()
    meminfo = F.parse_meminfo(Path("/proc/meminfo").read_text())
    assert facts.memory is not None and meminfo is not None
    assert facts.memory.total_bytes == meminfo.total_bytes
    if Path("/etc/machine-id").exists():
        assert facts.machine_id == Path("/etc/machine-id").read_text().strip()
    assert facts.mounts is not None and any(m.target == "/" for m in facts.mounts)
    assert facts.nics is not None and any(n.loopback for n in facts.nics)
    if shutil.which("ss") or shutil.which("netstat"):
        assert facts.listening_ports is not None and port in facts.listening_ports
    assert facts.clock_epoch is not None and before - 1 <= facts.clock_epoch <= after + 1
    assert facts.sudo_ok is (True if os.geteuid() == 0 else facts.sudo_ok)
    assert facts.kernel_modules is not None
    assert set(facts.kernel_modules) <= set(F.KERNEL_MODULE_PROBES)
    for module in F.KERNEL_MODULE_PROBES:
        if Path(f"/sys/module/{module}").is_dir():
            assert facts.kernel_modules[module] == "loaded"
    assert_every_unknown_fact_has_a_reason(facts)


async def test_discover_host_as_an_unprivileged_user() -> None:
    # Root, to become nobody; like a missing tool, its absence fails under CI.
    if os.geteuid() != 0:
        if os.environ.get("FMP_REQUIRE_TOOLS") == "1":
            pytest.fail("needs root to become nobody (FMP_REQUIRE_TOOLS=1)")
        pytest.skip("needs root to become nobody")
    setpriv = require_tool("setpriv")
    transport = LocalTransport(
        prefix=(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c")
    )
    result = await D.discover_host(transport, "127.0.0.1", timeout=60)
    facts = result.facts
    assert result.error is None
    assert facts.cpu is not None and facts.disks is not None and facts.nics is not None
    if shutil.which("sudo"):
        assert facts.sudo_ok is None and "sudo asks for a password" in facts.unknown["sudo_ok"]
    if sbin_which("vgs"):
        assert facts.volume_groups is None and D.NO_ROOT in facts.unknown["volume_groups"]
    if sbin_which("nft") or sbin_which("iptables") or sbin_which("ufw"):
        assert facts.firewall is None and D.NO_ROOT in facts.unknown["firewall"]
    assert_every_unknown_fact_has_a_reason(facts)


def _fake_tools(tmp_path: Path, tools: dict[str, str]) -> dict[str, str]:
    """An environment whose PATH finds these scripts before the real tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


async def test_a_broken_tool_makes_only_its_fact_unknown(tmp_path: Path) -> None:
    env = _fake_tools(
        tmp_path,
        {
            "lsblk": "echo 'lsblk: failed to access sysfs directory: /sys/dev/block'; exit 32",
            "systemd-detect-virt": "echo 'not a word list'",
            "ss": "echo 'garbage from ss'",
        },
    )
    result = await D.discover_host(LocalTransport(env=env), "h", timeout=60)
    facts = result.facts
    assert facts.disks is None
    assert facts.unknown["disks"] == "lsblk: failed to access sysfs directory: /sys/dev/block"
    assert facts.virtualization is None and facts.unknown["virtualization"].startswith(
        "virt: unexpected output"
    )
    assert facts.listening_ports is None and "garbage from ss" in facts.unknown["listening_ports"]
    assert facts.cpu is not None and facts.memory is not None and facts.hostname is not None
    assert_every_unknown_fact_has_a_reason(facts)


async def test_a_hanging_command_keeps_the_facts_read_before_it(tmp_path: Path) -> None:
    # `cat` is not behind the per-command timeout, so the whole run times out there;
    # the probes before /proc/cpuinfo read their files with shell builtins.
    env = _fake_tools(tmp_path, {"cat": "exec sleep 60"})
    result = await D.discover_host(LocalTransport(env=env), "h", timeout=3)
    assert result.error is not None and result.error.startswith("command timeout")
    facts = result.facts
    assert facts.hostname == socket.gethostname() and facts.os is not None  # before cat
    assert facts.kernel == platform.release()
    assert facts.cpu is None and facts.memory is None
    assert facts.unknown["cpu"].startswith(
        "cpuinfo: discovery did not get this far (command timeout"
    )
    assert facts.unknown["memory"].startswith("meminfo: discovery did not get this far")
    assert D.parse_discovery("h", result.raw) == facts  # the raw file says it was interrupted
    assert_every_unknown_fact_has_a_reason(facts)


async def test_a_lost_connection_is_a_result_not_an_exception() -> None:
    raw = (RAW / "captured__this-machine-root.txt").read_text().splitlines()
    lost = TransportError("h", FailureKind.CONNECTION_LOST, "connection reset by peer")
    transport = CannedTransport("h", "", error=lost, lines=raw[:12])
    result = await D.discover_host(transport, "h", timeout=5)
    assert result.error == "connection lost: connection reset by peer"
    assert result.facts.clock_epoch is not None and result.facts.hostname == "vm"
    assert (
        result.facts.unknown["cpu"]
        == "cpuinfo: discovery did not get this far (connection lost: connection reset by peer)"
    )


async def test_stderr_and_an_early_exit_are_kept_in_the_raw_output() -> None:
    raw = (RAW / "captured__this-machine-root.txt").read_text()
    cut = raw[: raw.index("@@FMP-BEGIN ports@@")]

    class Exiting(CannedTransport):
        async def run(self, command: str, **_: object) -> CommandResult:
            return CommandResult(137, cut, "bash: line 400: Killed\n")

    result = await D.discover_host(Exiting("h", ""), "h", timeout=5)
    assert result.error == "the discovery script stopped with exit status 137: Killed"
    sections = D.split_sections(result.raw)
    assert sections[D.STDERR_SECTION].output == "bash: line 400: Killed"
    assert result.facts.listening_ports is None and result.facts.cpu is not None
    assert "the discovery script stopped" in result.facts.unknown["listening_ports"]


# ---------------------------------------------------------------- all hosts


async def test_discover_all_saves_raw_outputs_that_replay(tmp_path: Path) -> None:
    addresses = ["10.0.0.1", "kn1.example", "fe80::1%eth0"]
    transports = {a: LocalTransport(host=a) for a in addresses}
    seen: list[str] = []
    results = await D.discover_all(
        transports,
        timeout=60,
        save_raw=tmp_path / "raw",
        on_result=lambda r: seen.append(r.address),
    )
    assert [r.address for r in results] == addresses
    assert sorted(seen) == sorted(addresses)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        ["10.0.0.1.txt", "kn1.example.txt", "fe80__1_eth0.txt"]
    )
    for result in results:
        saved = D.raw_path(tmp_path / "raw", result.address).read_text()
        assert saved == result.raw
        assert D.parse_discovery(result.address, saved) == result.facts
        assert result.facts.address == result.address


async def test_discover_all_runs_every_host_at_once() -> None:
    # Each run waits until all three have started: run one after another, this never ends.
    raw = (RAW / "captured__this-machine-root.txt").read_text()
    barrier = asyncio.Barrier(3)
    transports = {f"10.0.0.{i}": CannedTransport(f"10.0.0.{i}", raw, barrier) for i in range(3)}
    results = await asyncio.wait_for(D.discover_all(transports, timeout=10), 20)
    assert [r.facts.hostname for r in results] == ["vm", "vm", "vm"]
    assert all(r.error is None for r in results)
