"""The lab against real clients: OpenSSH ssh/sftp, isolation from the host, discovery, faults."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.labkit import Lab, start_lab, stop_lab

pytestmark = pytest.mark.slow

SPEC = {
    "base_address": "127.77.1.11",
    "vip": "127.77.1.100",
    "ssh_port": 2222,
    "reboot_seconds": 1,
    "nodes": [
        {"name": "kn0"},
        {"name": "kn1", "facts": {"cpus": 4, "memory_gb": 16}},
        {"name": "kn2"},
        {"name": "kn3"},
    ],
    "faults": [
        {
            "kind": "fail",
            "node": "kn1",
            "match": "fault-fail",
            "exit_code": 42,
            "times": 2,
            "stderr": "injected",
        },
        {"kind": "drop", "node": "kn1", "match": "fault-drop", "after_s": 0.3, "times": 1},
        {"kind": "latency", "node": "kn2", "ms": 400},
        {"kind": "fill_disk", "node": "kn3", "path": "/var/lib", "size_kb": 64},
        {"kind": "sudo_reject", "node": "kn3"},
    ],
    "durations": [{"match": "fault-slow", "seconds": 1.0}],
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_tool("ssh")
    lab = start_lab(tmp_path_factory.mktemp("lab") / "D", SPEC)
    yield lab
    stop_lab(lab)


def test_ssh_exec_exit_codes_and_streams(lab: Lab) -> None:
    r = lab.run("kn0", "hostname; echo oops >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "kn0\n", "oops\n")
    assert lab.run("kn0", "cat", input="piped\n").stdout == "piped\n"
    assert lab.run("kn0", "kill -9 $$").returncode == 255  # killed by a signal: ssh reports 255


def test_host_key_is_pinned(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    argv = lab.ssh_argv("kn0")
    argv[argv.index(f"UserKnownHostsFile={lab.root / 'known_hosts'}")] = (
        f"UserKnownHostsFile={empty}"
    )
    r = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 255 and "Host key verification failed" in r.stderr
    line = (lab.root / "known_hosts").read_text().splitlines()[0]
    assert line.startswith("[127.77.1.11]:2222 ssh-ed25519 ")


def test_sftp_client_sees_the_node_filesystem(lab: Lab, tmp_path: Path) -> None:
    require_tool("sftp")
    src = tmp_path / "up.txt"
    src.write_text("uploaded by sftp\n")
    back = tmp_path / "back.txt"
    n = lab.node("kn0")
    batch = f"put {src} /etc/fmp-sftp.txt\nget /etc/hostname {back}\n"
    r = subprocess.run(
        ["sftp", "-i", str(lab.root / "id_ed25519"), "-o", f"UserKnownHostsFile={lab.root / 'known_hosts'}",
         "-o", "BatchMode=yes", "-P", str(n["port"]), "-b", "-", f"root@{n['address']}"],
        input=batch, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert back.read_text() == "kn0\n"
    assert lab.ok("kn0", "cat /etc/fmp-sftp.txt") == "uploaded by sftp\n"
    assert (lab.root / "nodes" / "kn0" / "etc" / "fmp-sftp.txt").exists()
    assert not Path("/etc/fmp-sftp.txt").exists()


def test_writes_stay_in_the_node(lab: Lab) -> None:
    host_files = {p: p.read_bytes() for p in (Path("/etc/hosts"), Path("/etc/fstab")) if p.exists()}
    host_sysctl = sorted(Path("/etc/sysctl.d").iterdir()) if Path("/etc/sysctl.d").is_dir() else []
    lab.ok(
        "kn1",
        "echo '10.9.9.9 lab-only' >> /etc/hosts; sed -i '/swap/ s/^/#/' /etc/fstab;"
        "echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/99-lab.conf; sysctl --system >/dev/null;"
        "touch /root/r /var/v /opt/o /usr/local/u /home/h /run/r /tmp/t",
    )
    for path, content in host_files.items():
        assert path.read_bytes() == content, f"{path} of the host changed"
    assert (
        sorted(Path("/etc/sysctl.d").iterdir()) if Path("/etc/sysctl.d").is_dir() else []
    ) == host_sysctl
    assert "lab-only" in lab.ok("kn1", "cat /etc/hosts")
    assert "lab-only" not in lab.ok("kn0", "cat /etc/hosts")
    assert lab.ok("kn1", "cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
    assert lab.ok("kn0", "cat /proc/sys/net/ipv4/ip_forward").strip() == "0"
    node = lab.root / "nodes" / "kn1"
    for sub in ("root/r", "var/v", "opt/o", "usr-local/u", "home/h", "run/r", "tmp/t"):
        assert (node / sub).exists(), sub
    assert not Path("/var/v").exists() and not Path("/opt/o").exists()
    # Everything else is read-only, and the host's devices are not there.
    r = lab.run("kn1", "touch /lab-test")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    lab.ok("kn1", "touch /usr/lab-test")  # the node's own /usr layer
    assert not Path("/usr/lab-test").exists()
    assert lab.run("kn0", "test -e /usr/lab-test").returncode == 1
    assert lab.ok("kn1", "ls /dev | sort | tr '\\n' ' '").split() == sorted(
        ["disk", "fd", "full", "mapper", "null", "pts", "random", "sda", "sda1", "sda2", "sda3", "sdb",
         "shm", "stderr", "stdin", "stdout", "tty", "ubuntu-vg", "urandom", "zero"]
    )  # fmt: skip


NS_GET_PARENT = 0xB702  # ioctl(2) on a namespace file: its parent (user) namespace
CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SYS_ADMIN, CAP_SYS_TIME = 12, 16, 21, 25


def _lab_python() -> str:
    """The interpreter every node has at <LAB_RUN>/py (the shims run on it)."""
    from installer.lab.layout import LAB_RUN
    from installer.lab.namespaces import python_layout

    return f"LD_LIBRARY_PATH={LAB_RUN}/py/lib {LAB_RUN}/py/{python_layout()[1]} -I -S"


def test_root_in_a_node_has_no_capability_over_the_host(lab: Lab) -> None:
    """Root in a node is root only in the node's own user namespace, also when the lab runs as
    root: none of its capabilities (CapEff) count for the host's clock, network, modules or mounts.
    """
    node = json.loads((lab.root / "lab.json").read_text())["nodes"]["kn0"]
    init = node["init_pid"]
    host_userns = os.stat("/proc/self/ns/user").st_ino
    # The node's user namespace is a child of the host's (the lab's): capabilities held there
    # apply to the node's own namespaces only, never to what the host's user namespace owns.
    fd = os.open(f"/proc/{init}/ns/user", os.O_RDONLY)
    try:
        parent = fcntl.ioctl(fd, NS_GET_PARENT)
        try:
            assert os.fstat(parent).st_ino == host_userns
        finally:
            os.close(parent)
    finally:
        os.close(fd)
    out = lab.ok(
        "kn0",
        "stat -L -c %i /proc/self/ns/user; grep ^CapEff: /proc/self/status | cut -f2;"
        "cat /proc/self/uid_map; readlink /proc/self/ns/mnt /proc/1/ns/mnt",
    )
    userns, capeff, *uid_map, own_mnt, init_mnt = out.split("\n")[:-1]
    assert int(userns) != host_userns
    held = int(capeff, 16)  # full, but relative to the node's user namespace
    over_host = held if int(userns) == host_userns else 0
    for cap in (CAP_SYS_TIME, CAP_SYS_MODULE, CAP_NET_ADMIN, CAP_SYS_ADMIN):
        assert held & (1 << cap) and not over_host & (1 << cap)
    assert uid_map[0].split()[:2] == ["0", str(os.geteuid())]  # root in the node is the lab's user
    # PID 1 of the node is the node's own init, in the node's own mount namespace.
    assert own_mnt == init_mnt != os.readlink("/proc/self/ns/mnt")

    # The clock: setting it fails (and, were it allowed, would set the current time).
    offset = time.time() - time.monotonic()
    r = lab.run("kn0", "date -s @$(date +%s.%N)")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr
    assert abs((time.time() - time.monotonic()) - offset) < 0.5
    assert lab.run("kn0", "hwclock --hctosys").returncode != 0
    # The network: CAP_NET_ADMIN over the host's network namespace (SO_MARK on its own socket).
    code = (
        "import socket\ns = socket.socket()\ntry:\n s.setsockopt(socket.SOL_SOCKET, 36, 1)\n"
        " print('set')\nexcept PermissionError:\n print('EPERM')"
    )
    assert lab.ok("kn0", f'{_lab_python()} -c "$(cat)"', input=code) == "EPERM\n"
    # The mounts: a lab run as root locks them, so the read-only ones stay read-only and the
    # node's /proc cannot be peeled off to reach the host's processes; and a handle on the
    # host's mount or network namespace does not open it.
    if os.geteuid() == 0:
        assert lab.run("kn0", "mount -o remount,bind,rw /").returncode != 0
        assert lab.run("kn0", "umount /proc || umount -l /proc").returncode != 0
        assert lab.run("kn0", "umount /etc || umount -l /etc").returncode != 0
    assert lab.run("kn0", "touch /srv/.fmp-lab-test").returncode != 0
    nsenter = shutil.which("nsenter")
    assert nsenter
    r = subprocess.run(
        ["bash", "-c", f"exec 9</proc/self/ns/mnt 8</proc/self/ns/net; exec {nsenter} -t {init} "
         "-U --preserve-credentials -m -u -p -- bash -c "
         "'nsenter --mount=/proc/self/fd/9 true; echo $?; nsenter --net=/proc/self/fd/8 true; echo $?'"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.stdout.split() == ["1", "1"], r.stdout + r.stderr
    assert r.stderr.count("Operation not permitted") == 2, r.stderr


def test_each_node_has_its_own_facts(lab: Lab) -> None:
    out0 = lab.ok(
        "kn0",
        "hostname; nproc; grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo; cat /etc/machine-id",
    )
    out1 = lab.ok(
        "kn1",
        "hostname; nproc; grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo; cat /etc/machine-id",
    )
    h0, n0, c0, m0, id0 = out0.split("\n")[:5]
    h1, n1, c1, m1, id1 = out1.split("\n")[:5]
    assert (h0, n0, c0) == ("kn0", "8", "8") and (h1, n1, c1) == ("kn1", "4", "4")
    assert m0 != m1 and id0 != id1
    assert "avx" in lab.ok("kn0", "grep -m1 ^flags /proc/cpuinfo").split()
    assert 'VERSION_ID="22.04"' in lab.ok("kn0", "cat /etc/os-release")
    assert lab.ok("kn0", "cat /sys/class/dmi/id/product_uuid") != lab.ok(
        "kn1", "cat /sys/class/dmi/id/product_uuid"
    )


def test_discovery_sees_each_nodes_facts(lab: Lab) -> None:
    discovery = pytest.importorskip("installer.discovery")
    facts = {}
    for name in ("kn0", "kn1"):
        r = lab.run(name, "sh -s", input=discovery.DISCOVERY_SCRIPT)
        facts[name] = discovery.parse_discovery(lab.node(name)["address"], r.stdout)
    f0, f1 = facts["kn0"], facts["kn1"]
    assert f0.hostname == "kn0" and f1.hostname == "kn1"
    assert f0.cpu is not None and f0.cpu.count == 8 and "avx" in f0.cpu.flags
    assert f1.cpu is not None and f1.cpu.count == 4
    assert (
        f0.memory is not None
        and f1.memory is not None
        and f0.memory.total_bytes > f1.memory.total_bytes
    )
    assert f0.os is not None and f0.os.id == "ubuntu" and f0.os.version_id == "22.04"
    assert f0.swaps and f0.swaps[0].path == "/swap.img"
    assert f0.disks is not None
    sdb = next(d for d in f0.disks if d.name == "sdb")
    assert sdb.size_bytes == 200 * 1024**3 and sdb.wwn and sdb.serial
    assert any(link.startswith("/dev/disk/by-id/wwn-") for link in sdb.by_id)
    assert f0.nics is not None and {n.name for n in f0.nics} >= {"ens18", "ens19"}
    assert f0.machine_id != f1.machine_id and f0.product_uuid != f1.product_uuid
    assert f0.virtualization == "kvm"
    assert f0.installed is not None and not f0.installed & {
        "kubeadm",
        "etcd",
        "haproxy",
        "keepalived",
    }


# ---------------------------------------------------------------- faults


def test_fault_fail_first_n_times(lab: Lab) -> None:
    first = lab.run("kn1", "echo fault-fail")
    second = lab.run("kn1", "echo fault-fail")
    third = lab.run("kn1", "echo fault-fail")
    assert (first.returncode, first.stderr.strip()) == (42, "injected")
    assert second.returncode == 42
    assert (third.returncode, third.stdout) == (0, "fault-fail\n")
    assert lab.run("kn0", "echo fault-fail").returncode == 0  # only kn1 has the fault


def test_fault_drop_connection(lab: Lab) -> None:
    r = lab.run("kn1", "echo started; sleep 1; echo finished")
    assert r.returncode == 0  # does not match
    r = lab.run("kn1", "echo fault-drop; sleep 3; echo never")
    assert r.returncode == 255 and "never" not in r.stdout
    assert lab.run("kn1", "echo fault-drop").returncode == 0  # times: 1


def test_fault_latency(lab: Lab) -> None:
    t0 = time.monotonic()
    lab.ok("kn2", "true")
    slow = time.monotonic() - t0
    t0 = time.monotonic()
    lab.ok("kn0", "true")
    fast = time.monotonic() - t0
    assert slow >= 0.4 and slow > fast


def test_fault_disk_full(lab: Lab) -> None:
    r = lab.run("kn3", "echo data > /var/lib/newfile")
    assert r.returncode != 0 and "No space left on device" in r.stderr
    assert "100%" in lab.ok("kn3", "df -h /var/lib")
    lab.ok("kn3", "echo data > /var/tmp/ok")  # the rest of /var is fine


def test_fault_sudo_rejects_password(lab: Lab) -> None:
    r = lab.run("kn3", "sudo -S -p '' true", input="secret\n")
    assert r.returncode == 1
    assert "Sorry, try again." in r.stderr and "incorrect password attempt" in r.stderr
    assert lab.run("kn3", "sudo -n true").returncode == 1
    assert lab.run("kn0", "sudo -n true").returncode == 0


def test_simulated_duration(lab: Lab) -> None:
    t0 = time.monotonic()
    lab.ok("kn0", "echo fault-slow")
    assert time.monotonic() - t0 >= 1.0


def test_reboot_drops_refuses_and_comes_back(lab: Lab) -> None:
    lab.ok("kn3", "echo persisted > /root/keep")
    r = lab.run("kn3", "reboot")
    assert r.returncode == 255
    refused = lab.run("kn3", "true")
    assert refused.returncode == 255 and "refused" in refused.stderr.lower()
    deadline = time.monotonic() + 20
    while lab.run("kn3", "true").returncode != 0:
        assert time.monotonic() < deadline, "kn3 did not come back"
        time.sleep(0.3)
    assert lab.ok("kn3", "cat /root/keep") == "persisted\n"


def test_real_etcd_cluster(lab: Lab) -> None:
    require_tool("etcd")
    require_tool("etcdctl")
    members = ["kn0", "kn1", "kn2"]
    addr = {m: lab.node(m)["address"] for m in members}
    cluster = ",".join(f"{m}=http://{addr[m]}:2380" for m in members)
    errors: list[str] = []

    def start(m: str) -> None:
        unit = (
            "[Unit]\nDescription=etcd\n[Service]\nType=notify\n"
            f"ExecStart=/usr/bin/etcd --name {m} --data-dir /var/lib/etcd "
            f"--listen-client-urls http://{addr[m]}:2379 --advertise-client-urls http://{addr[m]}:2379 "
            f"--listen-peer-urls http://{addr[m]}:2380 --initial-advertise-peer-urls http://{addr[m]}:2380 "
            f"--initial-cluster {cluster} --initial-cluster-state new --initial-cluster-token lab\n"
        )
        r = lab.run(m, "cat > /etc/systemd/system/etcd.service && apt-get install -y -q etcd-server etcd-client "
                    ">/dev/null && systemctl daemon-reload && systemctl enable --now etcd", input=unit)  # fmt: skip
        if r.returncode != 0:
            errors.append(f"{m}: {r.stderr}")

    threads = [threading.Thread(target=start, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    health = lab.ok(
        "kn0", f"etcdctl --endpoints http://{addr['kn0']}:2379 endpoint health --cluster 2>&1"
    )
    assert health.count("is healthy") == 3
    assert "2379" in lab.ok("kn0", "ss -Hltn")
