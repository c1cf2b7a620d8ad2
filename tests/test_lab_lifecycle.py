"""lab up / status / down: what it leaves behind (nothing), answers.yaml, --from-raw, user namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.labkit import Lab, cli, start_lab, stop_lab

pytestmark = pytest.mark.slow


def _mounts() -> list[str]:
    return sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if text in (p / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p.name))
            except OSError:
                continue
    return found


def test_up_then_down_leaves_nothing_behind(tmp_path: Path) -> None:
    require_tool("ssh")
    mounts_before = _mounts()
    outside = sorted(p.name for p in tmp_path.iterdir())
    root = tmp_path / "D"
    lab = start_lab(
        root,
        {
            "base_address": "127.77.2.11",
            "vip": "127.77.2.100",
            "nodes": [{"name": "a"}, {"name": "b"}],
        },
    )
    status = json.loads((root / "lab.json").read_text())
    pids = [status["pid"]] + [
        n[k] for n in status["nodes"].values() for k in ("init_pid", "launcher_pid")
    ]
    lab.ok(
        "a",
        "nohup sleep 300 >/dev/null 2>&1 & touch /etc/x /root/x /tmp/x /var/x; mount -t tmpfs none /mnt",
    )
    r = cli("lab", "status", "--dir", str(root))
    assert r.returncode == 0 and "a " in r.stdout and "up" in r.stdout
    assert _mounts() == mounts_before  # node mounts live in the node's namespace only
    r = cli("lab", "down", "--dir", str(root))
    assert r.returncode == 0, r.stderr
    assert not root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [n for n in outside if n != "D"] + [
        p for p in ["D-spec.yaml"] if (tmp_path / p).exists()
    ]
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        )
    assert _pids_mentioning(str(root)) == []
    assert _mounts() == mounts_before
    assert cli("lab", "status", "--dir", str(root)).returncode == 1


def test_answers_file_validates_for_every_profile(tmp_path: Path) -> None:
    from installer.answer_checks import check_answers
    from installer.answers import load_answers
    from installer.lab import answers_gen
    from installer.lab.spec import LabSpec, resolve_nodes, with_node_count
    from installer.profile import available_profiles

    spec = with_node_count(LabSpec(), None)
    nodes = resolve_nodes(spec)
    for profile in available_profiles():
        path = tmp_path / f"{profile}.yaml"
        answers_gen.write_answers(path, answers_gen.build_answers(spec, nodes, profile, tmp_path))
        answers = load_answers(path)
        assert not [p for p in check_answers(answers) if p.severity == "error"]
        r = cli("validate", "--answers", str(path))
        assert r.returncode == 0, r.stdout + r.stderr
        if profile != "kubeadm-etcd":
            assert answers.storage.wipe, profile
            assert all(
                h.storage_disk and h.storage_disk.startswith("/dev/disk/by-id/wwn-")
                for h in answers.hosts_with("storage")
            )
        assert answers.ssh.user == "root" and answers.ssh.known_hosts == str(
            tmp_path / "known_hosts"
        )


def test_lab_answers_are_usable_with_the_known_hosts(tmp_path: Path) -> None:
    require_tool("ssh")
    root = tmp_path / "D"
    lab = start_lab(
        root,
        {"base_address": "127.77.3.11", "vip": "127.77.3.100", "nodes": [{"name": "a"}]},
        "--profile",
        "microk8s-openebs",
    )
    try:
        from installer.answers import load_answers

        answers = load_answers(root / "answers.yaml", semantic=False)
        assert answers.profile == "microk8s-openebs"
        host = answers.hosts[0]
        assert host.address == "127.77.3.11"
        known = (root / "known_hosts").read_text()
        assert known.startswith("[127.77.3.11]:2222 ssh-ed25519 ")
        assert (
            lab.ok("a", "ls /dev/disk/by-id/ | grep ^wwn-")
            .strip()
            .splitlines()[0]
            .startswith("wwn-0x")
        )
        assert host.storage_disk is not None
        assert lab.ok("a", f"readlink -f {host.storage_disk}").strip() == "/dev/sdb"
    finally:
        stop_lab(lab)


def test_second_up_in_the_same_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "D"
    lab = start_lab(
        root, {"base_address": "127.77.4.11", "vip": "127.77.4.100", "nodes": [{"name": "a"}]}
    )
    try:
        r = cli("lab", "up", "--dir", str(root))
        assert r.returncode != 0 and "already runs" in r.stderr
    finally:
        stop_lab(lab)


def test_from_raw_replays_a_captured_host(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    cpu = "".join(
        f"processor\t: {i}\nmodel name\t: Weird CPU\nflags\t\t: fpu sse2\n\n" for i in range(3)
    )
    lsblk = json.dumps({"blockdevices": [
        {"name": "vda", "type": "disk", "size": 21474836480, "model": "VDISK", "serial": "S1", "wwn": None,
         "rota": False, "mountpoints": [None], "children": [{"name": "vda1", "type": "part", "size": 21474836480, "mountpoints": ["/"]}]},
        {"name": "vdb", "type": "disk", "size": 107374182400, "model": "VDISK", "serial": "S2", "wwn": "0x5000aaaabbbbcccc",
         "rota": True, "mountpoints": [None]},
    ]})  # fmt: skip
    sections = {
        "hostname": "captured-host", "cpuinfo": cpu, "meminfo": "MemTotal:        4000000 kB\nSwapTotal:             0 kB\n",
        "os_release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "machine_id": "0123456789abcdef0123456789abcdef", "lsblk": lsblk, "virt": "none",
        "ip_addr": json.dumps([
            {"ifindex": 2, "ifname": "eth7", "operstate": "UP", "addr_info": [
                {"family": "inet", "local": "192.0.2.7", "prefixlen": 24, "scope": "global"},
                {"family": "inet6", "local": "2001:db8::7", "prefixlen": 64, "scope": "global"},
                {"family": "inet6", "local": "fe80::7", "prefixlen": 64, "scope": "link"}]},
            {"ifindex": 3, "ifname": "eth8", "operstate": "UP", "addr_info": [
                {"family": "inet", "local": "10.9.0.7", "prefixlen": 24, "scope": "global"}]},
        ]),
        "route": "default via 192.0.2.1 dev eth7 ",
    }  # fmt: skip
    rcs = {"virt": 1}
    text = "".join(
        f"@@FMP-BEGIN {k}@@\n{v}\n@@FMP-END {k} rc={rcs.get(k, 0)}@@\n" for k, v in sections.items()
    )
    (raw_dir / "192.0.2.7.txt").write_text("@@FMP-DISCOVERY v=1@@\n" + text + "@@FMP-DONE@@\n")
    root = tmp_path / "D"
    lab = start_lab(
        root, {"base_address": "127.77.5.11", "vip": "127.77.5.100"}, "--from-raw", str(raw_dir)
    )
    try:
        assert [n["name"] for n in lab.config["nodes"]] == ["captured-host"]
        n = "captured-host"
        assert lab.ok(n, "hostname").strip() == "captured-host"
        assert lab.ok(n, "grep -c ^processor /proc/cpuinfo").strip() == "3"
        assert "Weird CPU" in lab.ok(n, "cat /proc/cpuinfo")
        assert lab.ok(n, "cat /etc/machine-id").strip() == "0123456789abcdef0123456789abcdef"
        assert "debian" in lab.ok(n, "cat /etc/os-release")
        assert json.loads(lab.ok(n, "lsblk -J -b -O"))["blockdevices"][1]["name"] == "vdb"
        _check_replayed_ip(lab, n, "127.77.5.11")
        r = lab.run(n, "systemd-detect-virt")
        assert (r.returncode, r.stdout.strip()) == (1, "none")
        discovery = pytest.importorskip("installer.discovery")
        out = lab.run(n, "sh -s", input=discovery.DISCOVERY_SCRIPT).stdout
        facts = discovery.parse_discovery("127.77.5.11", out)
        assert facts.hostname == "captured-host" and facts.cpu is not None and facts.cpu.count == 3
    finally:
        stop_lab(lab)


def _addrs(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        e["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"]] for e in entries
    }


def _check_replayed_ip(lab: Lab, n: str, address: str) -> None:
    """``ip`` on a replayed node: the captured interfaces, with the lab's address on the main one
    (not the captured host's), the addresses added since, and -4/-6/dev honoured in every format.
    """
    now = _addrs(json.loads(lab.ok(n, "ip -j addr")))
    assert list(now) == ["lo", "eth7", "eth8"]
    assert now["eth7"] == [
        f"{address}/8",
        "fe80::7/64",
    ]  # 192.0.2.7 and 2001:db8::7 were the host's
    assert now["eth8"] == ["10.9.0.7/24"]  # a captured interface the lab has no address for
    assert _addrs(json.loads(lab.ok(n, "ip -j -4 addr")))["eth7"] == [f"{address}/8"]
    assert _addrs(json.loads(lab.ok(n, "ip -6 -j addr")))["eth7"] == ["fe80::7/64"]
    assert list(_addrs(json.loads(lab.ok(n, "ip -j addr show dev eth8")))) == ["eth8"]
    r = lab.run(n, "ip -j addr show dev eth9")
    assert r.returncode == 1 and 'Device "eth9" does not exist.' in r.stderr
    lab.ok(n, "ip addr add 127.77.5.100/32 dev eth7")  # as keepalived would place the VIP
    after = _addrs(json.loads(lab.ok(n, "ip -j -4 addr show dev eth7")))
    assert after == {"eth7": [f"{address}/8", "127.77.5.100/32"]}
    brief = {line.split()[0]: line.split()[2:] for line in lab.ok(n, "ip -br addr").splitlines()}
    assert brief == _addrs(json.loads(lab.ok(n, "ip -j addr")))  # the same view in every format
    text = lab.ok(n, "ip -4 addr show eth7")
    assert f"inet {address}/8 scope global eth7" in text and "192.0.2.7" not in text
    route = lab.ok(n, "ip route get 10.1.1.1")
    assert f"dev eth7 src {address}" in route and "192.0.2.1" in route
    assert lab.ok(n, "ip route show default").startswith("default via 192.0.2.1 dev eth7")
    lab.ok(n, "ip addr del 127.77.5.100/32 dev eth7")


def test_user_namespace_mode(tmp_path: Path) -> None:
    """Every node has a user namespace of its own, which maps the caller to root inside
    the node."""
    root = tmp_path / "D"
    lab = start_lab(
        root,
        {
            "base_address": "127.77.6.11",
            "vip": "127.77.6.100",
            "nodes": [{"name": "u"}],
        },
    )
    try:
        assert lab.ok("u", "id -u; hostname; echo x > /etc/u-only; cat /etc/u-only") == "0\nu\nx\n"
        node_userns = lab.ok("u", "stat -L -c %i /proc/self/ns/user").strip()
        assert int(node_userns) != os.stat("/proc/self/ns/user").st_ino
        assert not Path("/etc/u-only").exists()
    finally:
        stop_lab(lab)


def test_no_namespaces_is_a_clear_failure(tmp_path: Path) -> None:
    """Where the kernel refuses namespaces, lab up fails (2) and never runs nodes unsandboxed.

    ``lab up`` runs in a user namespace of its own whose mount namespace limit is 0 (a limit of
    that namespace only: the host's sysctls do not change), so every unshare(CLONE_NEWNS) fails.
    """
    require_tool("unshare")
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"]).returncode != 0:
        pytest.skip("no user namespace here to block namespaces in")
    root = tmp_path / "D"
    before = Path("/proc/sys/user/max_mnt_namespaces").read_text()
    blocked = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c",
         "echo 0 > /proc/sys/user/max_mnt_namespaces && exec \"$@\"", "sh",
         sys.executable, "-m", "installer.cli", "lab", "up", "--dir", str(root)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert Path("/proc/sys/user/max_mnt_namespaces").read_text() == before
    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert "cannot sandbox the lab's nodes" in blocked.stderr
    assert "namespaces (unshare(mount, pid): No space left on device)" in blocked.stderr
    assert "never runs node commands outside a sandbox" in blocked.stderr
    assert not root.exists()


def test_missing_nsenter_is_named(tmp_path: Path) -> None:
    """Without nsenter the error says so (not that unshare failed)."""
    root = tmp_path / "D"
    r = cli("lab", "up", "--dir", str(root), env={"PATH": str(tmp_path)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nsenter (util-linux), which runs every command inside a node, is not installed" in (
        r.stderr
    )
    assert "unshare" not in r.stderr and "install util-linux" in r.stderr
    assert not root.exists()


def test_bad_spec_is_reported(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("vip: 10.1.2.3\n")
    r = cli("lab", "up", "--dir", str(tmp_path / "D"), "--spec", str(spec))
    assert r.returncode == 2 and "loopback" in r.stderr
    assert not (tmp_path / "D").exists()


def test_lab_help_is_fast_and_textual_free() -> None:
    r = cli("lab", "--help")
    assert r.returncode == 0 and "up" in r.stdout
    import subprocess
    import sys

    code = (
        "import sys, installer.lab.control, installer.lab.daemon; print('textual' in sys.modules)"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        ).stdout.strip()
        == "False"
    )


async def _asyncssh_upload(lab_root: Path, address: str) -> tuple[str, str]:
    import asyncssh

    async with asyncssh.connect(
        address, 2222, username="root", client_keys=[str(lab_root / "id_ed25519")],
        known_hosts=str(lab_root / "known_hosts"),
    ) as conn:  # fmt: skip
        async with conn.start_sftp_client() as sftp:
            async with sftp.open("/etc/.up.part", "wb") as fh:
                await fh.write(b"atomic upload\n")
            await sftp.chmod("/etc/.up.part", 0o640)
            await sftp.posix_rename("/etc/.up.part", "/etc/uploaded.conf")
            names = sorted(await sftp.listdir("/etc/sudoers.d"))
        r = await conn.run("stat -c %a /etc/uploaded.conf; cat /etc/uploaded.conf", check=True)
        return str(r.stdout), " ".join(names)


def test_builtin_sftp_server(tmp_path: Path) -> None:
    """Hosts without OpenSSH's sftp-server get the lab's own, inside the node's namespaces."""
    import asyncio

    root = tmp_path / "D"
    lab = start_lab(root, {"base_address": "127.77.7.11", "vip": "127.77.7.100", "nodes": [{"name": "s"}]},
                    env={"FMP_LAB_SFTP": "builtin"})  # fmt: skip
    try:
        out, names = asyncio.run(_asyncssh_upload(root, "127.77.7.11"))
        assert out == "640\natomic upload\n" and "README" in names
        assert (root / "nodes" / "s" / "etc" / "uploaded.conf").exists()
        if require_tool("sftp"):
            src = tmp_path / "f.txt"
            src.write_text("via openssh sftp\n")
            batch = f"put {src} /root/f.txt\nrename /root/f.txt /root/g.txt\nls -l /root\nrm /root/g.txt\n"
            r = subprocess.run(
                ["sftp", "-i", str(root / "id_ed25519"), "-o", f"UserKnownHostsFile={root / 'known_hosts'}",
                 "-o", "BatchMode=yes", "-P", "2222", "-b", "-", "root@127.77.7.11"],
                input=batch, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            assert "g.txt" in r.stdout and "root" in r.stdout
            assert lab.run("s", "ls /root/g.txt").returncode != 0
    finally:
        stop_lab(lab)
