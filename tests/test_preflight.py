"""Preflight: a table test per check (pass and fail/warn), the report grid, the JSON shape,
and a property test that arbitrary facts never make run_preflight raise."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer.answers import Answers
from installer.hostfacts import (
    BlockDevice,
    Cpu,
    Firewall,
    HostFacts,
    Memory,
    Mount,
    NetAddress,
    Nic,
    OsRelease,
    SwapArea,
    TimeSync,
    VolumeGroup,
)
from installer.preflight import (
    CHECKS,
    Finding,
    PreflightReport,
    check_ids,
    findings_to_dict,
    run_preflight,
)
from installer.profile import ProfileMeta, Requirements, RoleRule, load_profile_meta

GiB = 2**30
T0 = 1_760_000_000.0
CP = ["control-plane", "etcd", "lb"]

# --------------------------------------------------------------------------- builders


def system_disk() -> BlockDevice:
    return BlockDevice(
        "sda",
        "/dev/sda",
        "disk",
        100 * GiB,
        by_id=("/dev/disk/by-id/wwn-0x5000c500aaaa0000",),
        children=(
            BlockDevice(
                "sda1", "/dev/sda1", "part", GiB, fstype="vfat", mountpoints=("/boot/efi",)
            ),
            BlockDevice("sda2", "/dev/sda2", "part", 99 * GiB, fstype="ext4", mountpoints=("/",)),
        ),
    )


def data_disk(**kw: Any) -> BlockDevice:
    base = BlockDevice(
        "sdb",
        "/dev/sdb",
        "disk",
        500 * GiB,
        rotational=False,
        by_id=("/dev/disk/by-id/wwn-0x5000c500bbbb0001", "/dev/disk/by-id/ata-DISK_B1"),
    )
    return replace(base, **kw)


def good_facts(i: int, **kw: Any) -> HostFacts:
    """A host that passes every check of the kubeadm-etcd and microk8s-openebs profiles."""
    base = HostFacts(
        address=f"10.30.217.2{i}",
        hostname=f"kn{i}",
        os=OsRelease("ubuntu", "24.04", "Ubuntu 24.04.3 LTS", ("debian",), "noble"),
        kernel="6.8.0-86-generic",
        arch="x86_64",
        cpu=Cpu(16, "AMD EPYC 7543", frozenset({"avx", "avx2", "sse4_2"})),
        memory=Memory(64 * GiB),
        swaps=(),
        disks=(system_disk(), data_disk()),
        volume_groups=(),
        mounts=(
            Mount("/dev/sda2", "/", "ext4"),
            Mount("/dev/sda1", "/boot/efi", "vfat"),
            Mount("/dev/mapper/data-containerd", "/var/lib/containerd", "xfs"),
            Mount("/dev/mapper/data-snap", "/var/snap", "xfs"),
        ),
        nics=(
            Nic("lo", "00:00:00:00:00:00", "UNKNOWN", (NetAddress("inet", "127.0.0.1", 8),), True),
            Nic(
                "ens18",
                f"52:54:00:00:00:1{i}",
                "UP",
                (NetAddress("inet", f"10.30.217.2{i}", 24),),
            ),
            Nic(
                "ens19", f"52:54:00:00:01:1{i}", "UP", (NetAddress("inet", f"192.168.50.{i}", 24),)
            ),
            Nic("docker0", "02:42:ac:11:00:01", "DOWN", ()),  # same on every host: ignored
        ),
        default_gateway="10.30.217.1",
        default_interface="ens18",
        machine_id=f"{i:032x}",
        product_uuid=f"4c4c4544-0000-0000-0000-00000000000{i}",
        time_sync=TimeSync("chrony", True),
        clock_epoch=T0 + i,
        cgroup_version=2,
        systemd=True,
        listening_ports=frozenset({22}),
        firewall=Firewall(False),
        virtualization="kvm",
        sudo_ok=True,
        installed=frozenset(),
        kernel_modules={"nvme_tcp": "available"},
    )
    return replace(base, **kw)


def make_answers(
    n: int = 3,
    *,
    profile: str = "kubeadm-etcd",
    roles: list[list[str]] | None = None,
    vip: str | None = "10.30.217.100",
    disks: dict[int, str] | None = None,
    wipe: list[str] | None = None,
    versions: dict[str, str] | None = None,
) -> Answers:
    hosts = []
    for i in range(n):
        h: dict[str, Any] = {
            "address": f"10.30.217.2{i}",
            "name": f"kn{i}",
            "roles": (roles[i] if roles else CP),
        }
        if disks and i in disks:
            h["storage_disk"] = disks[i]
        hosts.append(h)
    return Answers.model_validate(
        {
            "cluster": {"name": "fmp"},
            "profile": profile,
            "hosts": hosts,
            "network": {"vip": vip},
            "storage": {"wipe": wipe or []},
            "versions": versions or {},
        }
    )


def _meta(name: str, versions: dict[str, str], roles: dict[str, dict[str, Any]]) -> ProfileMeta:
    return ProfileMeta.model_validate(
        {
            "name": name,
            "title": name,
            "description": "a frozen copy for the tests",
            "versions": versions,
            "storage_backend": "none",
            "roles": {role: {"requires": req} for role, req in roles.items()},
        }
    )


# Frozen copies of the profiles' requirements, so that the tables below test the checks,
# not today's profile.yaml; test_real_profiles_* read the real files.
FROZEN: dict[str, ProfileMeta] = {
    "kubeadm-etcd": _meta(
        "kubeadm-etcd",
        {"kubernetes": "1.35", "containerd": "2.1"},
        {
            "control-plane": {"cpus": 2, "memory_mb": 1700, "ports": [6443, 10250, 10257, 10259]},
            "etcd": {"cpus": 2, "memory_mb": 2048, "ports": [2379, 2380]},
            "worker": {"cpus": 2, "memory_mb": 2048, "ports": [10250, 10256]},
            "lb": {"cpus": 1, "memory_mb": 512},
        },
    ),
    "microk8s-openebs": _meta(
        "microk8s-openebs",
        {"kubernetes": "1.35", "microk8s_channel": "1.35/stable"},
        {
            "control-plane": {
                "cpus": 8,
                "memory_mb": 32768,
                "cpu_flags": ["avx"],
                "ports": [16443, 10250, 25000, 19001],
            },
            "worker": {"cpus": 8, "memory_mb": 32768, "cpu_flags": ["avx"], "ports": [10250]},
            "storage": {"cpus": 2, "memory_mb": 4096},
        },
    ),
    "rke-ceph": _meta(
        "rke-ceph",
        {"kubernetes": "1.35", "rke2": "v1.35.0+rke2r1"},
        {
            "control-plane": {
                "cpus": 4,
                "memory_mb": 8192,
                "ports": [6443, 9345, 10250, 2379, 2380],
            },
            "worker": {"cpus": 4, "memory_mb": 8192, "ports": [10250]},
            "lb": {"cpus": 1, "memory_mb": 512},
            "ceph-mon": {"cpus": 2, "memory_mb": 4096, "ports": [3300, 6789]},
            "storage": {"cpus": 2, "memory_mb": 4096},
        },
    ),
}


def run(
    answers: Answers | None = None,
    facts: dict[str, HostFacts] | None = None,
    *,
    meta: ProfileMeta | None = None,
    vip_answers: bool | None = False,
    now: float | None = None,
) -> PreflightReport:
    answers = answers or make_answers()
    if facts is None:
        facts = {h.label: good_facts(i) for i, h in enumerate(answers.hosts)}
    meta = meta or FROZEN[answers.profile]
    return run_preflight(answers, meta, facts, vip_answers=vip_answers, now=now)


def facts_with(changes: dict[int, dict[str, Any]], n: int = 3) -> dict[str, HostFacts]:
    return {f"kn{i}": good_facts(i, **changes.get(i, {})) for i in range(n)}


def cell(report: PreflightReport, host: str, check: str) -> Finding:
    f = report.cell(host, check)
    assert f is not None, f"no {check} finding for {host}: {report.row(host)}"
    return f


# --------------------------------------------------------------------------- the baseline


@pytest.mark.parametrize("profile", ["kubeadm-etcd", "microk8s-openebs", "rke-ceph"])
def test_real_profiles_pass_good_hosts(profile: str) -> None:
    roles = {
        "kubeadm-etcd": CP,
        "microk8s-openebs": ["control-plane"],
        "rke-ceph": ["control-plane", "lb", "ceph-mon"],
    }[profile]
    facts = facts_with({})
    if profile == "rke-ceph":  # RKE2 keeps its images under /var/lib/rancher
        facts = {
            k: replace(
                f, mounts=(*(f.mounts or ()), Mount("/dev/vg/rancher", "/var/lib/rancher", "xfs"))
            )
            for k, f in facts.items()
        }
    report = run(
        make_answers(profile=profile, roles=[roles] * 3), facts, meta=load_profile_meta(profile)
    )
    not_pass = [f for f in report.findings if f.status != "pass"]
    assert not_pass == []
    assert not report.failed
    assert report.hosts == ("kn0", "kn1", "kn2")
    # every host check gave one finding per host; vip-free gave the cluster one. Huge pages
    # and kernel modules only where a role of the host asks for them (no storage role here).
    asks = {"microk8s-openebs": {"kernel-modules"}}.get(profile, set())
    not_asked = {"storage-disk", "hugepages", "kernel-modules"} - asks
    assert set(report.checks()) == set(check_ids()) - not_asked
    assert cell(report, "kn0", "reachable").message.startswith("kn0: discovered (Ubuntu 24.04.3")


# --------------------------------------------------------------------------- one table per check

Case = tuple[str, dict[str, Any], str, str]  # (check, kn0 fact changes, status, text in message)

HOST_CASES: list[Case] = [
    ("swap", {}, "pass", "swap is off"),
    (
        "swap",
        {"swaps": (SwapArea("/swap.img", "file", 2 * GiB, 0),)},
        "warn",
        "/swap.img (file, 2.0 GiB)",
    ),
    ("sudo", {"sudo_ok": False}, "fail", "sudo does not work"),
    ("cpu-count", {"cpu": Cpu(1)}, "fail", "1 CPU, below the 2 that role control-plane needs"),
    ("cpu-count", {"cpu": Cpu(2)}, "pass", "2 CPUs"),
    (
        "memory",
        {"memory": Memory(1 * GiB)},
        "fail",
        "1.0 GiB of memory, below the 2.0 GiB that role etcd needs",
    ),
    ("memory", {"memory": Memory(2 * GiB)}, "pass", "2.0 GiB"),
    ("os", {"os": OsRelease("ubuntu", "22.04")}, "pass", "ubuntu 22.04"),
    ("os", {"os": OsRelease("debian", "13", "Debian GNU/Linux 13 (trixie)")}, "pass", "Debian"),
    ("os", {"os": OsRelease("rocky", "9.4")}, "pass", "rocky 9.4"),
    ("os", {"os": OsRelease("ubuntu", "20.04")}, "warn", "version 20.04 is not one"),
    ("os", {"os": OsRelease("debian", "11")}, "warn", "version 11"),
    (
        "os",
        {"os": OsRelease("linuxmint", "22", id_like=("ubuntu", "debian"))},
        "warn",
        "not tested",
    ),
    ("os", {"os": OsRelease("alpine", "3.20")}, "fail", "not a supported OS"),
    ("os", {"os": OsRelease("")}, "fail", "no ID"),
    ("cgroup", {"cgroup_version": 1}, "fail", "refuses to start on cgroup v1"),
    ("cgroup", {"cgroup_version": 2}, "pass", "cgroup v2"),
    ("hostname", {"hostname": "kn_0"}, "fail", "'kn_0' is not a valid RFC 1123 name"),
    ("hostname", {"hostname": "-kn0"}, "fail", "not a valid RFC 1123"),
    ("hostname", {"hostname": "a" * 64}, "fail", "not a valid RFC 1123"),
    ("hostname", {"hostname": "localhost"}, "fail", "hostname is 'localhost'"),
    ("hostname", {"hostname": "KN0"}, "warn", "named 'kn0'"),
    ("hostname", {"hostname": "kn0.lab.example"}, "pass", "kn0.lab.example"),
    ("time-sync", {"time_sync": TimeSync(None, None)}, "warn", "no time sync service"),
    ("time-sync", {"time_sync": TimeSync("systemd-timesyncd", False)}, "warn", "not synchronized"),
    ("time-sync", {"time_sync": TimeSync("chrony", True)}, "pass", "chrony, synchronized"),
    (
        "nics",
        {
            "nics": (
                Nic("ens18", "52:54:00:00:00:10", "UP", (NetAddress("inet", "10.30.217.20", 24),)),
                Nic("docker0", "02:42:ac:11:00:01"),
                Nic("veth12ab", "aa:bb:cc:dd:ee:01"),
            )
        },
        "warn",
        "1 network interface(s) (ens18)",
    ),
    ("nics", {}, "pass", "2 NICs (ens18, ens19)"),
    (
        "ports",
        {"listening_ports": frozenset({22, 6443, 2379})},
        "fail",
        "2379 (etcd), 6443 (control-plane)",
    ),
    ("ports", {"listening_ports": frozenset({22, 8080})}, "pass", "are free"),
    ("firewall", {"firewall": Firewall(False, "ufw")}, "pass", "no active firewall"),
    (
        "firewall",
        {"firewall": Firewall(True, "ufw", frozenset({22, 6443, 10250, 10257, 10259, 2379, 2380}))},
        "pass",
        "required ports open",
    ),
    (
        "firewall",
        {"firewall": Firewall(True, "ufw", frozenset({22, 6443}))},
        "fail",
        "does not allow TCP 2379",
    ),
    (
        "firewall",
        {"firewall": Firewall(True, "nftables", frozenset())},
        "warn",
        "nftables is active",
    ),
    (
        "container-storage",
        {"mounts": (Mount("/dev/sda2", "/", "ext4"),)},
        "warn",
        "/var/lib/containerd is on /dev/sda2 (the root filesystem)",
    ),
    (
        "container-storage",
        {"mounts": (Mount("/dev/sda2", "/", "ext4"), Mount("/dev/sdc1", "/var/lib/docker", "xfs"))},
        "pass",
        "/var/lib/docker is on its own filesystem (/dev/sdc1",
    ),
    (
        "container-storage",
        {
            "mounts": (
                Mount("/dev/sda2", "/", "ext4"),
                Mount("/dev/sda2", "/var/lib/containerd", "ext4"),
            )
        },
        "warn",
        "not on a disk or LV of its own",  # a bind mount of / is no separate disk
    ),
    (
        "container-storage",
        {"mounts": (Mount("/dev/sda2", "/", "ext4"), Mount("/dev/vg0/var", "/var", "xfs"))},
        "pass",
        "on its own filesystem (/dev/vg0/var at /var)",
    ),
]


@pytest.mark.parametrize(("check", "changes", "status", "text"), HOST_CASES)
def test_host_check_table(check: str, changes: dict[str, Any], status: str, text: str) -> None:
    report = run(facts=facts_with({0: changes}))
    f = cell(report, "kn0", check)
    assert f.status == status, f
    assert text in f.message, f.message
    assert f.message.startswith("kn0")
    if status != "pass":
        assert f.fix
    # the other hosts are untouched
    assert cell(report, "kn1", check).status == "pass"


def test_fix_hints_are_actionable() -> None:
    report = run(
        facts=facts_with(
            {
                0: {
                    "swaps": (SwapArea("/dev/sda3", "partition", GiB, 0),),
                    "firewall": Firewall(True, "ufw", frozenset({22})),
                    "cgroup_version": 1,
                },
                1: {"firewall": Firewall(True, "firewalld", frozenset({22}))},
            }
        )
    )
    assert "swapoff -a" in cell(report, "kn0", "swap").fix
    assert "sudo ufw allow 6443/tcp" in cell(report, "kn0", "firewall").fix
    assert "firewall-cmd --permanent" in cell(report, "kn1", "firewall").fix
    assert "--add-port=2379/tcp" in cell(report, "kn1", "firewall").fix
    assert cell(report, "kn1", "firewall").status == "fail"
    assert "systemd.unified_cgroup_hierarchy=1" in cell(report, "kn0", "cgroup").fix


def test_cgroup_v1_is_a_warning_before_kubernetes_1_35() -> None:
    answers = make_answers(versions={"kubernetes": "1.34"})
    report = run(answers, facts_with({0: {"cgroup_version": 1}}))
    f = cell(report, "kn0", "cgroup")
    assert f.status == "warn"
    assert "1.34" in f.message


# --------------------------------------------------------------------------- role requirements


def test_cpu_flags_fail_only_where_the_profile_needs_them() -> None:
    no_avx = {0: {"cpu": Cpu(16, "QEMU Virtual CPU", frozenset({"sse2"}))}}
    kubeadm = run(facts=facts_with(no_avx))
    assert cell(kubeadm, "kn0", "cpu-flags").status == "pass"
    assert "no CPU flags required" in cell(kubeadm, "kn0", "cpu-flags").message

    answers = make_answers(profile="microk8s-openebs", roles=[["control-plane"]] * 3)
    micro = run(answers, facts_with(no_avx))
    f = cell(micro, "kn0", "cpu-flags")
    assert f.status == "fail"
    assert "lacks avx" in f.message and "control-plane" in f.message
    assert "host-passthrough" in f.fix  # a VM (virtualization kvm): expose the flag
    assert cell(micro, "kn1", "cpu-flags").status == "pass"
    # a storage-only holder does not need AVX in microk8s-openebs
    answers = make_answers(
        profile="microk8s-openebs", roles=[["storage"], ["control-plane"], ["control-plane"]]
    )
    assert cell(run(answers, facts_with(no_avx)), "kn0", "cpu-flags").status == "pass"


def test_flags_are_compared_case_insensitively() -> None:
    answers = make_answers(profile="microk8s-openebs", roles=[["control-plane"]] * 3)
    report = run(answers, facts_with({0: {"cpu": Cpu(16, None, frozenset({"AVX"}))}}))
    assert cell(report, "kn0", "cpu-flags").status == "pass"


@pytest.mark.parametrize(
    ("cpus", "mem_gib", "cpu_status", "mem_status"),
    [
        (8, 64, "pass", "pass"),
        (4, 64, "fail", "pass"),
        (8, 31.3, "pass", "warn"),  # a 32 GB host: MemTotal shows a little less
        (8, 16, "pass", "fail"),
    ],
)
def test_kloudspot_minimum_8_cores_32_gb(
    cpus: int, mem_gib: float, cpu_status: str, mem_status: str
) -> None:
    answers = make_answers(profile="microk8s-openebs", roles=[["control-plane"]] * 3)
    facts = facts_with(
        {0: {"cpu": Cpu(cpus, None, frozenset({"avx"})), "memory": Memory(int(mem_gib * GiB))}}
    )
    report = run(answers, facts)
    assert cell(report, "kn0", "cpu-count").status == cpu_status
    assert cell(report, "kn0", "memory").status == mem_status
    if cpu_status == "fail":
        assert (
            "below the 8 that role control-plane needs" in cell(report, "kn0", "cpu-count").message
        )
    if mem_status != "pass":
        assert "32.0 GiB" in cell(report, "kn0", "memory").message


def test_requirement_is_the_max_over_the_hosts_roles() -> None:
    one_cpu = {0: {"cpu": Cpu(1), "memory": Memory(GiB)}}
    only_lb = make_answers(roles=[["lb"], CP, CP])
    assert cell(run(only_lb, facts_with(one_cpu)), "kn0", "cpu-count").status == "pass"
    lb_and_etcd = make_answers(roles=[["lb", "etcd"], CP, CP])
    report = run(lb_and_etcd, facts_with(one_cpu))
    assert cell(report, "kn0", "cpu-count").status == "fail"
    assert "role etcd" in cell(report, "kn0", "cpu-count").message
    assert "role etcd" in cell(report, "kn0", "memory").message  # etcd 2048 MB > lb 512 MB


def test_host_without_roles_is_measured_against_the_lightest_role() -> None:
    answers = make_answers(
        profile="microk8s-openebs", roles=[[], ["control-plane"], ["control-plane"]]
    )
    facts = facts_with({0: {"cpu": Cpu(2, None, frozenset()), "memory": Memory(4 * GiB)}})
    report = run(answers, facts)
    # storage needs 2 CPUs / 4096 MB and no AVX: kn0 could hold it
    assert cell(report, "kn0", "cpu-count").status == "pass"
    assert cell(report, "kn0", "memory").status == "pass"
    assert cell(report, "kn0", "cpu-flags").status == "pass"
    report = run(answers, facts_with({0: {"cpu": Cpu(1)}}))
    f = cell(report, "kn0", "cpu-count")
    assert f.status == "fail" and "no role assigned yet" in f.message


def test_ports_come_from_the_roles_of_the_host() -> None:
    worker_only = make_answers(roles=[["worker"], CP, CP])
    report = run(worker_only, facts_with({0: {"listening_ports": frozenset({6443})}}))
    assert cell(report, "kn0", "ports").status == "pass"  # 6443 is a control-plane port
    report = run(worker_only, facts_with({0: {"listening_ports": frozenset({10256})}}))
    assert cell(report, "kn0", "ports").status == "fail"
    assert "sport = :10256" in cell(report, "kn0", "ports").fix


def custom_meta(**requires: Any) -> ProfileMeta:
    """A profile that is not in profiles/: the checks read its requirements all the same."""
    return ProfileMeta(
        name="custom",
        title="Custom",
        description="a fourth profile",
        versions={"kubernetes": "1.35", "k3s": "v1.35.0+k3s1"},
        storage_backend="none",
        roles={"control-plane": RoleRule(min=1, requires=Requirements(**requires))},
    )


def test_a_new_profile_brings_its_own_requirements() -> None:
    meta = custom_meta(
        cpus=32, memory_mb=1024, ports=[9999], cpu_flags=["avx512f"], os=["debian:12"]
    )
    answers = make_answers(roles=[["control-plane"]] * 3)
    facts = facts_with(
        {1: {"os": OsRelease("debian", "12")}, 2: {"listening_ports": frozenset({9999})}}
    )
    report = run(answers, facts, meta=meta)
    assert cell(report, "kn0", "cpu-count").status == "fail"
    assert "below the 32" in cell(report, "kn0", "cpu-count").message
    assert cell(report, "kn0", "cpu-flags").status == "fail"
    assert "avx512f" in cell(report, "kn0", "cpu-flags").message
    os0 = cell(report, "kn0", "os")
    assert (
        os0.status == "fail" and "debian:12" in os0.message
    )  # Ubuntu, but the profile wants Debian 12
    assert cell(report, "kn1", "os").status == "pass"
    assert cell(report, "kn2", "ports").status == "fail"
    # its runtime keeps images under /var/lib/rancher (k3s): /var/lib/containerd does not count
    cs = cell(report, "kn0", "container-storage")
    assert cs.status == "warn" and "/var/lib/rancher/k3s" in cs.message


def test_profile_os_entry_with_a_version_vouches_for_it() -> None:
    answers = make_answers(roles=[["control-plane"]] * 3)
    focal = facts_with({0: {"os": OsRelease("ubuntu", "20.04")}})
    assert (
        cell(run(answers, focal, meta=custom_meta(os=["ubuntu:20.04"])), "kn0", "os").status
        == "pass"
    )
    assert cell(run(answers, focal, meta=custom_meta(os=["ubuntu"])), "kn0", "os").status == "warn"
    assert (
        cell(run(answers, focal, meta=custom_meta(os=["ubuntu 22.04"])), "kn0", "os").status
        == "fail"
    )


# --------------------------------------------------------------------------- container storage per profile


def test_container_storage_path_follows_the_profile_runtime() -> None:
    root_only = (Mount("/dev/sda2", "/", "ext4"), Mount("/dev/vg/c", "/var/lib/containerd", "xfs"))
    rke = make_answers(profile="rke-ceph", roles=[["control-plane", "lb", "ceph-mon"]] * 3)
    f = cell(run(rke, facts_with({0: {"mounts": root_only}})), "kn0", "container-storage")
    assert f.status == "warn" and "/var/lib/rancher/rke2" in f.message
    micro = make_answers(profile="microk8s-openebs", roles=[["control-plane"]] * 3)
    f = cell(run(micro, facts_with({0: {"mounts": root_only}})), "kn0", "container-storage")
    assert f.status == "warn" and "/var/snap/microk8s/common" in f.message
    snap = (Mount("/dev/sda2", "/", "ext4"), Mount("/dev/vg/snap", "/var/snap/microk8s", "xfs"))
    assert (
        cell(run(micro, facts_with({0: {"mounts": snap}})), "kn0", "container-storage").status
        == "pass"
    )


def test_container_storage_fix_uses_free_space_in_a_volume_group() -> None:
    facts = facts_with(
        {
            0: {
                "mounts": (Mount("/dev/mapper/ubuntu--vg-root", "/", "ext4"),),
                "volume_groups": (VolumeGroup("ubuntu-vg", 900 * GiB, 800 * GiB, ("/dev/sda3",)),),
            }
        }
    )
    f = cell(run(facts=facts), "kn0", "container-storage")
    assert f.status == "warn"
    assert "ubuntu-vg has 800.0 GiB free" in f.fix
    assert "lvcreate -n containerd -L 100G ubuntu-vg" in f.fix


# --------------------------------------------------------------------------- duplicates (cloned VMs)


def test_duplicate_machine_id_names_the_hosts_that_share_it() -> None:
    cloned = "0123456789abcdef0123456789abcdef"
    report = run(facts=facts_with({0: {"machine_id": cloned}, 2: {"machine_id": cloned.upper()}}))
    f0 = cell(report, "kn0", "duplicate-machine-id")
    f2 = cell(report, "kn2", "duplicate-machine-id")
    assert f0.status == "fail" and f2.status == "fail"
    assert f"shares its machine-id {cloned} with kn2" in f0.message
    assert "with kn0" in f2.message
    assert "systemd-machine-id-setup" in f0.fix and "rm -f /etc/machine-id" in f0.fix
    assert cell(report, "kn1", "duplicate-machine-id").status == "pass"
    assert report.failed


def test_empty_machine_id_fails() -> None:
    f = cell(run(facts=facts_with({1: {"machine_id": ""}})), "kn1", "duplicate-machine-id")
    assert f.status == "fail" and "empty" in f.message


@pytest.mark.parametrize(
    ("check", "changes", "text"),
    [
        ("duplicate-hostname", {"hostname": "KN1"}, "hostname kn1 with kn1"),
        (
            "duplicate-product-uuid",
            {"product_uuid": "4C4C4544-0000-0000-0000-000000000001"},
            "with kn1",
        ),
        (
            "duplicate-mac",
            {
                "nics": (
                    Nic(
                        "eth0", "52:54:00:00:00:11", "UP", (NetAddress("inet", "10.30.217.20", 24),)
                    ),
                )
            },
            "52:54:00:00:00:11 with kn1",
        ),
    ],
)
def test_duplicates_across_hosts(check: str, changes: dict[str, Any], text: str) -> None:
    report = run(facts=facts_with({0: changes}))
    f0 = cell(report, "kn0", check)
    assert f0.status == "fail", f0
    assert text in f0.message
    assert "kn0" in cell(report, "kn1", check).message
    assert cell(report, "kn1", check).status == "fail"
    assert cell(report, "kn2", check).status == "pass"


def test_virtual_interfaces_sharing_a_mac_are_not_duplicates() -> None:
    report = run()  # docker0 has the same MAC on every host
    assert all(f.status == "pass" for f in report.column("duplicate-mac"))


# --------------------------------------------------------------------------- clocks


def test_clock_skew_is_measured_against_the_median() -> None:
    # mean = T0+36.7 would put kn0 37 s off; the median (T0+10) flags only the outlier
    facts = facts_with(
        {0: {"clock_epoch": T0}, 1: {"clock_epoch": T0 + 10}, 2: {"clock_epoch": T0 + 100}}
    )
    report = run(facts=facts)
    assert cell(report, "kn0", "clock-skew").status == "pass"
    assert cell(report, "kn1", "clock-skew").status == "pass"
    f2 = cell(report, "kn2", "clock-skew")
    assert f2.status == "fail"
    assert "90 s ahead of the hosts' median" in f2.message
    assert "chronyc makestep" in f2.fix


def test_clock_behind_and_installer_clock_in_detail() -> None:
    facts = facts_with(
        {0: {"clock_epoch": T0 - 45}, 1: {"clock_epoch": T0}, 2: {"clock_epoch": T0 + 1}}
    )
    f0 = cell(run(facts=facts, now=T0), "kn0", "clock-skew")
    assert f0.status == "fail" and "45 s behind" in f0.message
    assert f0.detail == "-45.0 s against the installer's clock"


def test_two_hosts_use_the_installer_clock_as_third_sample() -> None:
    answers = make_answers(2)
    facts = facts_with({0: {"clock_epoch": T0}, 1: {"clock_epoch": T0 + 50}}, n=2)
    # without `now`, the median of two is their midpoint: 25 s each, under the limit
    assert all(f.status == "pass" for f in run(answers, facts).column("clock-skew"))
    report = run(answers, facts, now=T0 + 1)
    assert cell(report, "kn0", "clock-skew").status == "pass"
    assert cell(report, "kn1", "clock-skew").status == "fail"


# --------------------------------------------------------------------------- storage disk
# Eligibility itself is installer.storage_disks' (tested there); these tests check that
# preflight turns its verdict on the chosen disk into the right status, with consent.

_PART = BlockDevice("sdb1", "/dev/sdb1", "part", 500 * GiB, fstype="ext4", uuid="u-1")
_MOUNTED = data_disk(children=(replace(_PART, mountpoints=("/data",)),))
_PARTED = data_disk(children=(_PART,))
_CEPH_LV = BlockDevice("ceph--1-osd--1", "/dev/mapper/ceph--1-osd--1", "lvm", 500 * GiB)


@pytest.mark.parametrize(
    ("disk", "device", "wipe", "status", "text"),
    [
        ("/dev/sdb", data_disk(), [], "pass", "storage_disk /dev/sdb, 500.0 GiB: empty"),
        (
            "/dev/disk/by-id/wwn-0x5000c500bbbb0001",
            data_disk(),
            [],
            "pass",
            "wwn-0x5000c500bbbb0001 (sdb), 500.0 GiB: empty",
        ),
        ("/dev/disk/by-id/ata-DISK_B1", data_disk(), [], "pass", "empty"),
        ("/dev/sdz", data_disk(), [], "fail", "storage_disk /dev/sdz: no disk /dev/sdz"),
        ("/dev/sdb1", _PARTED, ["kn0:/dev/sdb1"], "fail", "not a whole disk"),
        ("/dev/sdb", data_disk(size_bytes=4 * GiB), [], "fail", "cannot be used"),
        ("/dev/sda", data_disk(), [], "fail", "cannot be used: system disk"),
        ("/dev/sda", data_disk(), ["kn0:/dev/sda"], "fail", "system disk"),  # no consent for /
        ("/dev/sdb", _MOUNTED, [], "fail", "cannot be used: mounted"),
        ("/dev/sdb", _MOUNTED, ["kn0:/dev/sdb"], "fail", "mounted"),  # consent cannot unmount
        ("/dev/sdb", data_disk(read_only=True), [], "fail", "cannot be used"),
        ("/dev/sdb", _PARTED, [], "fail", "not empty: has 1 partition (sdb1)"),
        ("/dev/sdb", _PARTED, ["kn0:/dev/sdb"], "warn", "will be wiped (consent given)"),
        ("/dev/sdb", _PARTED, ["10.30.217.20:/dev/sdb"], "warn", "will be wiped"),  # by address
        ("/dev/disk/by-id/ata-DISK_B1", _PARTED, ["kn0:/dev/sdb"], "warn", "will be wiped"),
        ("/dev/sdb", _PARTED, ["kn1:/dev/sdb"], "fail", "wiping it needs consent"),  # other host
        ("/dev/sdb", _PARTED, ["kn0:/dev/sdc"], "fail", "wiping it needs consent"),  # other disk
        ("/dev/sdb", data_disk(fstype="xfs"), [], "fail", "xfs"),
        ("/dev/sdb", data_disk(fstype="LVM2_member"), [], "fail", "LVM"),
        ("/dev/sdb", data_disk(fstype="LVM2_member"), ["kn0:/dev/sdb"], "warn", "LVM"),
        ("/dev/sdb", data_disk(fstype="ceph_bluestore"), [], "fail", "Ceph"),
        ("/dev/sdb", data_disk(fstype="ceph_bluestore"), ["kn0:/dev/sdb"], "warn", "Ceph"),
    ],
)
def test_storage_disk_table(
    disk: str, device: BlockDevice, wipe: list[str], status: str, text: str
) -> None:
    answers = make_answers(disks={0: disk}, wipe=wipe)
    report = run(answers, facts_with({0: {"disks": (system_disk(), device)}}))
    f = cell(report, "kn0", "storage-disk")
    assert f.status == status, f
    assert text in f.message, f.message
    assert f.message.startswith(f"kn0: storage_disk {disk}")
    if status != "pass":
        assert f.fix


def test_storage_disk_message_carries_every_reason_of_the_storage_verdict() -> None:
    from installer.storage_disks import classify_disk

    device = data_disk(removable=True, size_bytes=4 * GiB, children=(_CEPH_LV,))
    facts = facts_with({0: {"disks": (system_disk(), device)}})
    cand = classify_disk("kn0", device, facts["kn0"])
    assert cand.status == "disallowed" and len(cand.reasons) >= 2
    f = cell(run(make_answers(disks={0: "/dev/sdb"}), facts), "kn0", "storage-disk")
    assert f.status == "fail"
    for reason in cand.reasons:
        assert reason.message in f.message
    assert "at least 5 GiB" in f.fix and "fixed disk" in f.fix


def test_the_system_disk_is_never_offered_for_wiping() -> None:
    answers = make_answers(disks={0: "/dev/sda"}, wipe=["kn0:/dev/sda"])
    f = cell(run(answers), "kn0", "storage-disk")
    assert f.status == "fail"
    assert "storage.wipe" not in f.fix and "wiped (consent" not in f.message
    assert "system disk is never wiped" in f.fix


def test_storage_disk_consent_hint_names_host_and_disk() -> None:
    answers = make_answers(disks={0: "/dev/disk/by-id/ata-DISK_B1"})
    f = cell(
        run(answers, facts_with({0: {"disks": (system_disk(), _PARTED)}})), "kn0", "storage-disk"
    )
    assert f.status == "fail"
    assert "add 'kn0:/dev/disk/by-id/ata-DISK_B1' to storage.wipe" in f.fix


def test_a_kernel_name_passes_with_a_stable_id_suggested() -> None:
    f = cell(run(make_answers(disks={0: "/dev/sdb"})), "kn0", "storage-disk")
    assert f.status == "pass"
    assert f.detail is not None and "/dev/disk/by-id/wwn-0x5000c500bbbb0001" in f.detail


def test_storage_disk_unknown_when_lsblk_failed() -> None:
    facts = facts_with({0: {"disks": None, "unknown": {"disks": "lsblk: command not found"}}})
    f = cell(run(make_answers(disks={0: "/dev/sdb"}), facts), "kn0", "storage-disk")
    assert f.status == "warn"
    assert f.message == "kn0: could not check storage_disk /dev/sdb: lsblk: command not found"


def test_storage_disk_only_where_one_is_chosen() -> None:
    report = run(make_answers(disks={1: "/dev/sdb"}))
    assert report.cell("kn0", "storage-disk") is None
    assert cell(report, "kn1", "storage-disk").status == "pass"
    assert "storage-disk" not in report.grid()["kn0"]


# --------------------------------------------------------------------------- network: subnet and VIP


def _on(i: int, addr: str, prefix: int = 24) -> dict[str, Any]:
    return {
        "nics": (
            Nic("ens18", f"52:54:00:00:00:1{i}", "UP", (NetAddress("inet", addr, prefix),)),
            Nic("ens19", f"52:54:00:00:01:1{i}", "UP", ()),
        )
    }


def test_vip_outside_a_hosts_subnet_fails_that_host() -> None:
    answers = make_answers()
    answers.hosts[2].address = "10.30.218.22"
    report = run(answers, facts_with({2: _on(2, "10.30.218.22")}))
    f = cell(report, "kn2", "subnet")
    assert f.status == "fail"
    assert "10.30.217.100 is outside kn2 10.30.218.0/24" in f.message
    assert "kn0, kn1 on 10.30.217.0/24" in f.message
    assert cell(report, "kn0", "subnet").status == "pass"
    assert "with the VIP 10.30.217.100" in cell(report, "kn0", "subnet").message


def test_hosts_on_different_subnets_without_vip_warn() -> None:
    answers = make_answers(vip=None)
    answers.hosts[2].address = "10.30.218.22"
    report = run(answers, facts_with({2: _on(2, "10.30.218.22")}))
    f = cell(report, "kn2", "subnet")
    assert f.status == "warn" and "kn2 is on 10.30.218.0/24" in f.message
    assert cell(report, "kn0", "subnet").status == "pass"
    assert report.cell("kn0", "vip-free") is None and report.cluster == ()


def test_vip_outside_every_subnet_fails_every_host() -> None:
    report = run(make_answers(vip="10.99.0.10"))
    assert [f.status for f in report.column("subnet")] == ["fail"] * 3


def test_subnet_falls_back_to_the_default_interface() -> None:
    # the host is reached through NAT: its answers address is on no NIC
    answers = make_answers()
    answers.hosts[0].address = "203.0.113.20"
    f = cell(run(answers), "kn0", "subnet")
    assert f.status == "pass" and "10.30.217.0/24" in f.message
    report = run(answers, facts_with({0: {"default_interface": None}}))
    assert cell(report, "kn0", "subnet").status == "warn"
    assert "could not tell its subnet" in cell(report, "kn0", "subnet").message


@pytest.mark.parametrize(("answers_", "status"), [(True, "fail"), (False, "pass")])
def test_vip_already_answering(answers_: bool, status: str) -> None:
    report = run(vip_answers=answers_)
    (f,) = report.cluster
    assert f.check == "vip-free" and f.host is None and f.status == status
    assert "10.30.217.100" in f.message
    assert report.failed is (status == "fail")


def test_vip_not_probed_gives_no_finding() -> None:
    report = run(vip_answers=None)
    assert report.column("vip-free") == ()
    assert "vip-free" not in report.checks()


# --------------------------------------------------------------------------- unknown facts, unreachable


def test_unknown_facts_warn_with_the_reason_and_never_fail() -> None:
    bare = HostFacts(
        address="10.30.217.20",
        unknown={
            "swaps": "cat: /proc/swaps: Permission denied",
            "disks": "lsblk: command not found",
        },
    )
    answers = make_answers(disks={0: "/dev/sdb"})
    report = run(answers, {"kn0": bare, "kn1": good_facts(1), "kn2": good_facts(2)})
    row = {f.check: f for f in report.row("kn0")}
    assert row["swap"].status == "warn"
    assert row["swap"].message == "kn0: could not check swap: cat: /proc/swaps: Permission denied"
    assert "lsblk: command not found" in row["storage-disk"].message
    assert row["os"].message == "kn0: could not check the OS: not reported by discovery"
    assert {f.status for f in report.row("kn0")} <= {"pass", "warn"}
    assert row["reachable"].status == "pass"
    # the others do not compare against kn0's missing values
    assert cell(report, "kn1", "duplicate-machine-id").status == "pass"


def test_a_host_without_facts_fails_reachable_only() -> None:
    facts = facts_with({})
    del facts["kn1"]
    report = run(facts=facts)
    assert [f.check for f in report.row("kn1")] == ["reachable"]
    f = cell(report, "kn1", "reachable")
    assert f.status == "fail" and "10.30.217.21" in f.message
    assert report.failed
    assert cell(report, "kn0", "clock-skew").status == "pass"


def test_facts_may_be_keyed_by_address() -> None:
    answers = make_answers()
    facts = {h.address: good_facts(i) for i, h in enumerate(answers.hosts)}
    report = run(answers, facts)
    assert not report.failed and len(report.row("kn2")) > 10


# --------------------------------------------------------------------------- report and JSON


def test_report_grid_helpers_and_order() -> None:
    report = run(facts=facts_with({0: {"swaps": (SwapArea("/swap.img", "file", GiB, 0),)}}))
    order = check_ids()
    assert order[0] == "reachable" and order[-1] == "vip-free"
    assert len(set(order)) == len(order) == len(CHECKS)
    assert [f.check for f in report.row("kn0")] == [c for c in order if c in report.grid()["kn0"]]
    assert [f.host for f in report.column("swap")] == ["kn0", "kn1", "kn2"]
    assert report.warnings == (cell(report, "kn0", "swap"),)
    assert report.status == "warn" and not report.failed
    assert report.counts()["warn"] == 1
    assert report.counts()["fail"] == 0


def test_findings_to_dict_is_stable_and_json_able() -> None:
    report = run(facts=facts_with({0: {"cgroup_version": 1}}), vip_answers=True)
    data = findings_to_dict(report)
    assert json.loads(json.dumps(data)) == data
    assert data == findings_to_dict(
        run(facts=facts_with({0: {"cgroup_version": 1}}), vip_answers=True)
    )
    assert set(data) == {
        "version",
        "failed",
        "counts",
        "checks",
        "hosts",
        "grid",
        "cluster",
        "findings",
    }
    assert data["version"] == 1 and data["failed"] is True
    assert data["hosts"] == ["kn0", "kn1", "kn2"]
    assert [c["id"] for c in data["checks"]] == list(report.checks())
    assert data["checks"][0] == {"id": "reachable", "title": "Reachable"}
    assert data["grid"]["kn0"]["cgroup"] == "fail" and data["grid"]["kn1"]["cgroup"] == "pass"
    assert list(data["grid"]["kn0"]) == [c for c in check_ids() if c in data["grid"]["kn0"]]
    assert data["cluster"] == [
        {
            "check": "vip-free",
            "host": None,
            "status": "fail",
            "message": data["cluster"][0]["message"],
            "fix": data["cluster"][0]["fix"],
            "detail": data["cluster"][0]["detail"],
        }
    ]
    assert data["counts"] == {"pass": data["counts"]["pass"], "warn": 0, "fail": 2}
    first = data["findings"][0]
    assert set(first) == {"check", "host", "status", "message", "fix", "detail"}
    assert len(data["findings"]) == len(report.findings)


# --------------------------------------------------------------------------- property: never raises

_text = st.text(max_size=12)
_maybe = st.none() | _text
_size = st.integers(min_value=-(2**40), max_value=2**50)
_addr = (
    st.sampled_from(["10.30.217.20", "10.30.217.21", "10.30.218.5", "::1", "fe80::1", "bogus", ""])
    | _text
)
_clock = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.floats(T0 - 100, T0 + 100)

_netaddr = st.builds(
    NetAddress, st.sampled_from(["inet", "inet6", "x"]), _addr, st.integers(-5, 200), st.booleans()
)
_nic = st.builds(
    Nic,
    st.sampled_from(["lo", "ens18", "ens19", "docker0", "eth0", ""]) | _text,
    st.none() | st.sampled_from(["52:54:00:00:00:10", "00:00:00:00:00:00"]) | _text,
    _maybe,
    st.tuples(_netaddr) | st.tuples(_netaddr, _netaddr) | st.just(()),
    st.booleans(),
)
_paths = (
    st.sampled_from(["/dev/sda", "/dev/sdb", "/dev/sdb1", "/dev/disk/by-id/ata-DISK_B1"]) | _text
)
_mountpoint = st.sampled_from(["/", "/boot", "[SWAP]", "/data", ""]) | _text


def _device(children: st.SearchStrategy[tuple[BlockDevice, ...]]) -> st.SearchStrategy[BlockDevice]:
    return st.builds(
        BlockDevice,
        name=st.sampled_from(["sda", "sdb", "sdb1"]) | _text,
        path=_paths,
        type=st.sampled_from(["disk", "part", "lvm", "rom", "crypt"]),
        size_bytes=_size,
        rotational=st.none() | st.booleans(),
        removable=st.booleans(),
        read_only=st.booleans(),
        wwn=st.none() | st.sampled_from(["0x5000c500bbbb0001", "5000"]) | _text,
        by_id=st.lists(_paths, max_size=2).map(tuple),
        fstype=st.none()
        | st.sampled_from(["ext4", "LVM2_member", "ceph_bluestore", "swap"])
        | _text,
        kname=st.none() | st.sampled_from(["sdb", "dm-0"]) | _text,
        pttype=st.none() | st.sampled_from(["gpt", "dos", ""]),
        mountpoints=st.lists(_mountpoint, max_size=2).map(tuple),
        children=children,
    )


_leaf = _device(st.just(()))
_tree = _device(st.lists(_device(st.lists(_leaf, max_size=2).map(tuple)), max_size=2).map(tuple))

_host_facts = st.builds(
    HostFacts,
    address=_addr,
    hostname=st.none() | st.sampled_from(["kn0", "KN0", "localhost", "a_b", "", "kn0."]) | _text,
    fqdn=_maybe,
    os=st.none()
    | st.builds(
        OsRelease,
        st.sampled_from(["ubuntu", "debian", "rocky", "", "arch"]) | _text,
        _maybe,
        _maybe,
        st.lists(_text, max_size=2).map(tuple),
        _maybe,
    ),
    kernel=_maybe,
    arch=_maybe,
    cpu=st.none()
    | st.builds(
        Cpu,
        st.integers(-2, 256),
        _maybe,
        st.frozensets(st.sampled_from(["avx", "AVX", "sse2"]) | _text, max_size=3),
    ),
    memory=st.none() | st.builds(Memory, _size, st.none() | _size),
    swaps=st.none()
    | st.lists(st.builds(SwapArea, _paths, _text, _size, _size), max_size=2).map(tuple),
    disks=st.none() | st.lists(_tree, max_size=3).map(tuple),
    volume_groups=st.none()
    | st.lists(
        st.builds(VolumeGroup, _text, _size, _size, st.lists(_paths, max_size=2).map(tuple)),
        max_size=2,
    ).map(tuple),
    mounts=st.none()
    | st.lists(
        st.builds(
            Mount,
            _paths,
            _mountpoint | st.sampled_from(["/var/lib/containerd", "/var", "/var/snap"]),
            _text,
        ),
        max_size=4,
    ).map(tuple),
    nics=st.none() | st.lists(_nic, max_size=3).map(tuple),
    default_interface=st.none() | st.sampled_from(["ens18", "eth0"]),
    machine_id=st.none() | st.sampled_from(["", "abc", "ABC"]) | _text,
    product_uuid=_maybe,
    time_sync=st.none() | st.builds(TimeSync, _maybe, st.none() | st.booleans()),
    clock_epoch=_clock,
    cgroup_version=st.none() | st.integers(-1, 3),
    listening_ports=st.none() | st.frozensets(st.integers(0, 70000), max_size=5),
    firewall=st.none()
    | st.builds(
        Firewall,
        st.booleans(),
        st.none() | st.sampled_from(["ufw", "firewalld", "nftables"]),
        st.frozensets(st.integers(0, 70000), max_size=5),
    ),
    virtualization=_maybe,
    sudo_ok=st.none() | st.booleans(),
    unknown=st.dictionaries(
        st.sampled_from(["swaps", "disks", "cpu", "os", "nics"]), _text, max_size=3
    ),
)

_ROLE_SETS: dict[str, list[list[str]]] = {
    "kubeadm-etcd": [[], CP, ["worker"], ["lb", "etcd"], ["bogus-role"]],
    "microk8s-openebs": [[], ["control-plane"], ["worker", "storage"], ["storage"]],
    "rke-ceph": [[], ["control-plane", "lb", "ceph-mon"], ["worker", "storage"]],
}


@st.composite
def _scenario(
    draw: Callable[..., Any],
) -> tuple[Answers, dict[str, HostFacts], bool | None, float | None]:
    profile = draw(st.sampled_from(sorted(_ROLE_SETS)))
    n = draw(st.integers(1, 4))
    roles = [draw(st.sampled_from(_ROLE_SETS[profile])) for _ in range(n)]
    disks = {
        i: draw(_paths.filter(lambda p: p.startswith("/dev/")))
        for i in range(n)
        if draw(st.booleans())
    }
    wipe = [f"kn{i}:{d}" for i, d in disks.items() if draw(st.booleans())]
    vip = draw(st.sampled_from([None, "10.30.217.100", "fd00::100"]))
    answers = make_answers(n, profile=profile, roles=roles, vip=vip, disks=disks, wipe=wipe)
    facts = {
        f"kn{i}": draw(_host_facts) for i in range(n) if draw(st.integers(0, 9))
    }  # some unreached
    vip_answers = draw(st.none() | st.booleans())
    now = draw(st.none() | _clock.filter(lambda x: x is not None))
    return answers, facts, vip_answers, now


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario(), st.none() | st.just(True))
def test_run_preflight_never_raises(
    scenario: tuple[Answers, dict[str, HostFacts], bool | None, float | None], real: bool | None
) -> None:
    answers, facts, vip_answers, now = scenario
    report = run_preflight(
        answers, load_profile_meta(answers.profile), facts, vip_answers=vip_answers, now=now
    )
    known = set(check_ids())
    seen: set[tuple[str | None, str]] = set()
    for f in report.findings:
        assert "internal error" not in f.message, f
        assert f.check in known
        assert (f.host, f.check) not in seen  # one finding per grid cell
        seen.add((f.host, f.check))
        if f.host is not None:
            assert f.message.startswith(f.host)
        if f.status != "pass":
            assert f.fix, f
    for host in answers.hosts:  # every host has a row, led by reachable
        assert report.row(host.label)[0].check == "reachable"
    json.dumps(findings_to_dict(report))


# --------------------------------------------------------------------------- the real profiles


def test_real_profiles_carry_the_runbook_requirements() -> None:
    """Seed 003 (Kloudspot): AVX, 8 cores, 32 GB; kubeadm: 2 CPUs / 1700 MB on a control plane."""
    answers = make_answers(profile="microk8s-openebs", roles=[["control-plane"]] * 3)
    weak = {0: {"cpu": Cpu(4, "QEMU Virtual CPU", frozenset({"sse2"})), "memory": Memory(16 * GiB)}}
    report = run(answers, facts_with(weak), meta=load_profile_meta("microk8s-openebs"))
    assert cell(report, "kn0", "cpu-flags").status == "fail"
    assert cell(report, "kn0", "cpu-count").status == "fail"
    assert cell(report, "kn0", "memory").status == "fail"
    kubeadm = load_profile_meta("kubeadm-etcd")
    report = run(
        make_answers(roles=[["control-plane"]] * 3), facts_with({0: {"cpu": Cpu(1)}}), meta=kubeadm
    )
    assert "below the 2" in cell(report, "kn0", "cpu-count").message


# --------------------------------------------------------------------------- huge pages, modules

STORAGE = ["storage"]
MK8S_STORAGE_ROLES = [["control-plane"], ["control-plane"], ["control-plane"], STORAGE]


def _mk8s(facts_changes: dict[int, dict[str, Any]]) -> PreflightReport:
    """The real microk8s-openebs requirements; kn3 holds only the storage role."""
    answers = make_answers(4, profile="microk8s-openebs", roles=MK8S_STORAGE_ROLES)
    return run(answers, facts_with(facts_changes, n=4), meta=load_profile_meta("microk8s-openebs"))


@pytest.mark.parametrize(
    ("memory", "status", "text"),
    [
        # storage: 4096 MB, plus 2048 MiB of huge pages = 6 GiB
        (
            Memory(6 * GiB),
            "pass",
            "kn3: 6.0 GiB of memory holds 2.0 GiB of huge pages (1024 x 2 MiB) for role storage "
            "besides the 4.0 GiB the role needs",
        ),
        (Memory(int(5.8 * GiB)), "warn", "a little below 2.0 GiB of huge pages (1024 x 2 MiB)"),
        (
            Memory(5 * GiB),
            "fail",
            "kn3: 5.0 GiB of memory cannot hold 2.0 GiB of huge pages (1024 x 2 MiB) for role "
            "storage on top of the 4.0 GiB the role needs: 6.0 GiB in all "
            "(profile microk8s-openebs)",
        ),
        # already reserved (HugePages_Total 1024 of 2 MiB): nothing left to reserve
        (Memory(5 * GiB, None, 1024, 2 * 2**20), "pass", "2.0 GiB of huge pages reserved"),
        (Memory(5 * GiB, None, 512, 2 * 2**20), "fail", "cannot hold"),
        (
            Memory(64 * GiB, None, 0, GiB),
            "fail",
            "the default huge page size is 1.0 GiB",
        ),
    ],
)
def test_hugepages_fit_in_memory_beside_the_roles_memory(
    memory: Memory, status: str, text: str
) -> None:
    f = cell(_mk8s({3: {"memory": memory}}), "kn3", "hugepages")
    assert f.status == status, f
    assert text in f.message, f.message
    if status != "pass":
        assert "default_hugepagesz=2M" in f.fix or "give kn3 at least 6.0 GiB" in f.fix, f.fix


def test_hugepages_beside_a_bigger_role_on_the_same_host_warn() -> None:
    """kn0 is a control plane (32 GiB) and holds storage (4 GiB + 2 GiB of huge pages):
    32 GiB fits the storage role and its pages, but pinning them leaves 30 GiB for the
    control plane's 32 GiB. A warning, not a failure: the runbook's nodes are this size."""
    roles = [["control-plane", *STORAGE], ["control-plane"], ["control-plane"], ["worker"]]
    answers = make_answers(4, profile="microk8s-openebs", roles=roles)
    facts = facts_with({0: {"memory": Memory(32 * GiB)}}, n=4)
    f = run(answers, facts, meta=load_profile_meta("microk8s-openebs")).cell("kn0", "hugepages")
    assert f is not None and f.status == "warn", f
    assert "leaves 30.0 GiB for the 32.0 GiB that role control-plane needs" in f.message
    assert f.fix == (
        "give kn0 34.0 GiB of memory, or give role storage to a host without role control-plane"
    )
    roomy = facts_with({0: {"memory": Memory(34 * GiB)}}, n=4)
    f = run(answers, roomy, meta=load_profile_meta("microk8s-openebs")).cell("kn0", "hugepages")
    assert f is not None and f.status == "pass", f


def test_hugepages_only_where_a_role_asks_for_them() -> None:
    report = _mk8s({})
    assert [f.host for f in report.column("hugepages")] == ["kn3"]
    assert report.cell("kn0", "hugepages") is None  # managers reserve none
    kubeadm = run(make_answers(), facts_with({}), meta=load_profile_meta("kubeadm-etcd"))
    assert "hugepages" not in kubeadm.checks() and "kernel-modules" not in kubeadm.checks()


def test_hugepages_unknown_memory_warns() -> None:
    f = cell(_mk8s({3: {"memory": None}}), "kn3", "hugepages")
    assert f.status == "warn" and f.message.startswith("kn3: could not check huge pages")


@pytest.mark.parametrize(
    ("modules", "status", "text"),
    [
        ({"nvme_tcp": "available"}, "pass", "kernel module nvme_tcp available"),
        ({"nvme_tcp": "loaded"}, "pass", "kernel module nvme_tcp available"),
        (
            {"nvme_tcp": "missing"},
            "fail",
            "kn3: kernel 6.8.0-86-generic has no module nvme_tcp (modinfo does not find it), "
            "needed by role storage (profile microk8s-openebs)",
        ),
        # no modinfo on the host: the probe could not tell
        ({}, "warn", "could not check kernel module nvme_tcp: discovery could not tell"),
        # facts from before the module probe
        (None, "warn", "could not check kernel modules: not reported by discovery"),
    ],
)
def test_kernel_modules(modules: dict[str, str] | None, status: str, text: str) -> None:
    f = cell(_mk8s({3: {"kernel_modules": modules}}), "kn3", "kernel-modules")
    assert f.status == status, f
    assert text in f.message, f.message
    if status == "fail":
        assert f.fix == (
            "install the running kernel's extra modules, then load them: sudo apt-get install "
            "linux-modules-extra-$(uname -r) && sudo modprobe nvme_tcp"
        )


def test_kernel_module_fix_off_ubuntu_names_no_ubuntu_package() -> None:
    changes = {"kernel_modules": {"nvme_tcp": "missing"}, "os": OsRelease("debian", "12")}
    f = cell(_mk8s({0: changes}), "kn0", "kernel-modules")
    assert f.status == "fail" and "role control-plane" in f.message
    assert "linux-modules-extra" not in f.fix and "sudo modprobe nvme_tcp" in f.fix


def test_profile_os_list_restricts_the_family_and_keeps_the_version_policy() -> None:
    meta = custom_meta(os=["ubuntu", "debian"])
    answers = make_answers(roles=[["control-plane"]] * 3)
    statuses = {}
    for os in (
        OsRelease("ubuntu", "24.04"),
        OsRelease("ubuntu", "16.04"),
        OsRelease("rocky", "9.4"),
    ):
        statuses[f"{os.id} {os.version_id}"] = cell(
            run(answers, facts_with({0: {"os": os}}), meta=meta), "kn0", "os"
        ).status
    assert statuses == {"ubuntu 24.04": "pass", "ubuntu 16.04": "warn", "rocky 9.4": "fail"}
    # a distribution we have no table for passes when the profile names it
    meta = custom_meta(os=["sles"])
    f = cell(
        run(answers, facts_with({0: {"os": OsRelease("sles", "15.6")}}), meta=meta), "kn0", "os"
    )
    assert f.status == "pass"
