"""The pure fact parsers and the facts file, against real outputs in tests/fixtures.

Expectations come from each fixture folder's SOURCES.md (its tables are read
here), so a fixture cannot be added without saying what it must parse to.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer import facts as F
from installer.errors import OperatorError
from installer.factsio import (
    FactsFormatError,
    dump_facts,
    facts_from_dict,
    facts_to_dict,
    load_facts,
    save_facts,
)
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

FIX = Path(__file__).resolve().parent / "fixtures"
GiB = 2**30


def files(folder: str) -> list[Path]:
    return sorted(p for p in (FIX / folder).iterdir() if p.name != "SOURCES.md")


def read(folder: str, name: str) -> str:
    return (FIX / folder / name).read_text(encoding="utf-8")


def sources_rows(folder: str) -> dict[str, dict[str, str]]:
    """file name → {column: cell} from every table in the folder's SOURCES.md."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in (FIX / folder / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            row = dict(zip(header, cells, strict=False))
            rows[row[header[0]].strip("`")] = row
    return rows


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


FOLDERS = [p.name for p in sorted(FIX.iterdir()) if (p / "SOURCES.md").exists()]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_fixture_is_described_in_its_sources(folder: str) -> None:
    text = (FIX / folder / "SOURCES.md").read_text(encoding="utf-8")
    undocumented = [p.name for p in files(folder) if p.name not in text]
    assert undocumented == []


def test_the_shared_fixtures_were_all_copied() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    if not shared.exists():
        pytest.skip("../shared/fixtures is not beside this checkout")
    missing = [
        str(p.relative_to(shared))
        for p in shared.rglob("*")
        if p.is_file() and not (FIX / p.relative_to(shared)).exists()
    ]
    assert missing == []


# ---------------------------------------------------------------- os-release

OS_ROWS = sources_rows("os-release")


@pytest.mark.parametrize("path", files("os-release"), ids=ids(files("os-release")))
def test_os_release_id_and_version_match_sources(path: Path) -> None:
    row = OS_ROWS[path.name]
    parsed = F.parse_os_release(path.read_text(encoding="utf-8"))
    assert parsed is not None
    assert parsed.id == row["ID"]
    expected_version = None if row["VERSION_ID"] == "(none)" else row["VERSION_ID"]
    assert parsed.version_id == expected_version
    assert parsed.pretty_name


@pytest.mark.parametrize(
    ("name", "codename", "id_like"),
    [
        ("ansible__debian-10.txt", "buster", ()),
        ("ansible__ubuntu-18.04.txt", "bionic", ("debian",)),
        ("ansible__pop-os-20.04.txt", "focal", ("ubuntu", "debian")),
        ("ansible__fedora-31.txt", None, ()),  # VERSION_CODENAME="" is no codename
        ("python-distro__amazon-linux-2023.txt", None, ("fedora",)),
        ("distropacks__kali-2024.1.txt", "kali-rolling", ("debian",)),
        ("ansible__almalinux-8.3-beta.txt", None, ("rhel", "centos", "fedora")),
        ("captured__this-machine-debian-12.txt", "bookworm", ()),
    ],
)
def test_os_release_codename_and_family(
    name: str, codename: str | None, id_like: tuple[str, ...]
) -> None:
    parsed = F.parse_os_release(read("os-release", name))
    assert parsed is not None
    assert parsed.version_codename == codename
    assert parsed.id_like == id_like


def test_os_release_unquotes_and_unescapes() -> None:
    parsed = F.parse_os_release('ID=\'x\'\nPRETTY_NAME="A \\"B\\" \\$C"\n# c\n')
    assert parsed == OsRelease(id="x", pretty_name='A "B" $C')


# ---------------------------------------------------------------- cpuinfo

CPU_ROWS = sources_rows("cpuinfo")
CPU_MODELS = {  # where SOURCES.md says there is no model name line
    "ansible__arm64-4cpu-cortex-a53.txt": "ARM Cortex-A53",
    "ansible__s390x-z13-2cpu.txt": "IBM/S390 machine 2964",
}


@pytest.mark.parametrize("path", files("cpuinfo"), ids=ids(files("cpuinfo")))
def test_cpuinfo_matches_sources(path: Path) -> None:
    row = CPU_ROWS[path.name]
    cpu = F.parse_cpuinfo(path.read_text(encoding="utf-8"))
    assert cpu is not None
    assert cpu.count == int(row["CPU count"])
    assert ("avx" in cpu.flags) == (row["avx"] == "yes")
    assert ("avx2" in cpu.flags) == (row["avx2"] == "yes")
    if "avx512f" in row:
        assert ("avx512f" in cpu.flags) == (row["avx512f"] == "yes")
    model = row.get("model name (first)") or row["model name"]
    assert cpu.model == CPU_MODELS.get(path.name, model)


def test_cpuinfo_flags_of_arm_and_s390x_come_from_features() -> None:
    arm = F.parse_cpuinfo(read("cpuinfo", "ansible__arm64-4cpu-cortex-a53.txt"))
    s390 = F.parse_cpuinfo(read("cpuinfo", "ansible__s390x-z13-2cpu.txt"))
    ppc = F.parse_cpuinfo(read("cpuinfo", "ansible__ppc64le-power8-24cpu.txt"))
    assert arm is not None and {"asimd", "aes", "crc32"} <= arm.flags
    assert s390 is not None and {"zarch", "vx"} <= s390.flags
    assert ppc is not None and ppc.flags == frozenset()


def test_cpuinfo_counts_only_flags_every_cpu_has() -> None:
    text = "processor : 0\nflags : sse avx\n\nprocessor : 1\nflags : sse\n"
    assert F.parse_cpuinfo(text) == Cpu(count=2, model=None, flags=frozenset({"sse"}))


# ---------------------------------------------------------------- meminfo, swaps

MEM_ROWS = sources_rows("meminfo")


@pytest.mark.parametrize("path", files("meminfo"), ids=ids(files("meminfo")))
def test_meminfo_total_matches_sources(path: Path) -> None:
    mem = F.parse_meminfo(path.read_text(encoding="utf-8"))
    assert mem is not None
    kib = int(MEM_ROWS[path.name]["MemTotal"].removesuffix(" kB"))
    assert mem.total_bytes == kib * 1024


def test_meminfo_hugepages_and_available() -> None:
    full = F.parse_meminfo(read("meminfo", "gopsutil__intel-core-i5-16g.txt"))
    truncated = F.parse_meminfo(read("meminfo", "gopsutil__anonhugepages-256g-truncated.txt"))
    assert full == Memory(16115528 * 1024, 11225936 * 1024, 0, 2048 * 1024)
    assert truncated == Memory(260799420 * 1024, 127880216 * 1024, None, None)
    reserved = F.parse_meminfo(
        "MemTotal: 1000 kB\nHugePages_Total:     512\nHugepagesize: 2048 kB\n"
    )
    assert reserved is not None and reserved.hugepages_total == 512


def test_swaps() -> None:
    assert F.parse_swaps(read("swaps", "jc__swaps-swapfile.txt")) == (
        SwapArea("/swap.img", "file", 3996668 * 1024, 0),
    )
    assert F.parse_swaps(read("swaps", "captured__this-machine-no-swap.txt")) == ()
    escaped = "Filename Type Size Used Priority\n/swap\\040file file 1024 512 -2\n"
    assert F.parse_swaps(escaped) == (SwapArea("/swap file", "file", 1024 * 1024, 512 * 1024),)
    # Half a list would make "swap is off" look true.
    assert F.parse_swaps("Filename Type Size Used Priority\n/dev/sda2 partition x 0 -2\n") is None


# ---------------------------------------------------------------- lsblk

LSBLK_ROWS = sources_rows("lsblk-json")
_LSBLK_ENTRY = re.compile(r'(\S+) \((\w+), size="?([^)"]+)"?\)')


def _expected_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if text.isdigit():
        return int(text)
    return int(float(text[:-1]) * units[text[-1]])


@pytest.mark.parametrize("name", sorted(LSBLK_ROWS))
def test_lsblk_top_level_devices_match_sources(name: str) -> None:
    expected = _LSBLK_ENTRY.findall(
        LSBLK_ROWS[name]["top-level devices (non-partition) with sizes"]
    )
    disks = F.parse_lsblk(read("lsblk-json", name))
    assert disks is not None
    got = [
        (d.path if expected[0][0].startswith("/") else d.name, d.type, d.size_bytes)
        for d in disks
        if d.type != "part"
    ]
    assert got == [(n, t, _expected_size(s)) for n, t, s in expected]


@pytest.mark.parametrize("path", files("lsblk-json"), ids=ids(files("lsblk-json")))
def test_lsblk_every_fixture_parses_to_a_tree(path: Path) -> None:
    disks = F.parse_lsblk(path.read_text(encoding="utf-8"))
    assert disks
    for device in (d for top in disks for d in top.walk()):
        assert device.path.startswith("/dev/")
        assert device.size_bytes >= 0


def test_lsblk_old_all_string_format_with_paths_and_lvm() -> None:
    text = read("lsblk-json", "ceph__paths-old-strings-lvm.json")
    disks = F.parse_lsblk(text)
    assert disks is not None
    sda, _, _, sdd = disks
    assert sda.size_bytes == 128 * GiB and sda.removable is False and sda.read_only is False
    assert sda.rotational is None  # no ROTA column: unknown, not "SSD"
    assert [c.name for c in sda.children] == ["sda1", "sda2", "sda3"]
    assert sda.children[2].mountpoints == ("/etc/hosts",)
    lv = sdd.children[0]
    assert (lv.name, lv.path, lv.type) == (
        "ceph--osd--block--1",
        "/dev/mapper/ceph--osd--block--1",
        "lvm",
    )
    assert lv.size_bytes == 512 * GiB
    # util-linux < 2.33 prints booleans as "0"/"1" strings too.
    flipped = F.parse_lsblk(
        text.replace(
            '"name": "/dev/sdc", "maj:min": "8:32", "rm": "0"',
            '"name": "/dev/sdc", "maj:min": "8:32", "rm": "1"',
        )
    )
    assert flipped is not None and flipped[2].removable is True


def test_lsblk_modern_capture_fields() -> None:
    disks = F.parse_lsblk(read("lsblk-json", "captured__debian12-vm-lsblk-JbO.json"))
    assert disks is not None
    zram, vda = disks
    assert zram.mountpoints == () and zram.rotational is False  # "mountpoints": [null]
    assert vda.mountpoints == ("/",) and vda.rotational is True and vda.kname == "vda"
    assert vda.serial is None and vda.wwn is None and vda.transport is None


def test_lsblk_ironic_samples() -> None:
    incomplete = F.parse_lsblk(
        read("lsblk-json", "ironic__blk-incomplete-device-template-small.json")
    )
    assert incomplete is not None and [d.serial for d in incomplete] == [None, None]  # ""
    full = F.parse_lsblk(read("lsblk-json", "ironic__blk-device-template.json"))
    assert full is not None
    assert full[0].model == "TinyUSB Drive" and full[0].serial == "sda123"
    assert full[-1].path == "/dev/dm-0"  # a kernel name is not a /dev/mapper name
    part = F.parse_lsblk(read("lsblk-json", "ironic__partuuid-device-template.json"))
    assert part is not None and part[1].uuid == "987654-3210"


def test_lsblk_rescuezilla_filesystems() -> None:
    disks = F.parse_lsblk(read("lsblk-json", "rescuezilla__vbox-paths-bytes-small.json"))
    assert disks is not None
    by_name = {d.name: d for d in disks}
    assert by_name["loop0"].mountpoints == ("/rofs",) and by_name["loop0"].fstype == "squashfs"
    assert [c.fstype for c in by_name["sde"].children] == ["vfat", "ext2", "crypto_LUKS"]
    assert by_name["sr0"].type == "rom" and by_name["sdc"].model == "VBOX_HARDDISK"


def test_by_id_listing() -> None:
    links = F.parse_by_id(read("by-id", "captured__this-machine-ls-l-symlink-farm.txt"))
    assert links is not None
    assert links["sdb"] == (
        "/dev/disk/by-id/scsi-35000c500a1b2c3d4",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
    )
    assert links["nvme0n1"] == (
        "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456",
        "/dev/disk/by-id/nvme-eui.0025385b91b2c3d4",
    )
    assert set(links) == {"sda", "sda1", "sdb", "nvme0n1", "nvme0n1p2", "dm-0"}
    assert F.parse_by_id(read("by-id", "captured__this-machine-ls-l-no-by-id-dir.txt")) is None
    assert F.parse_by_id("total 0\n") == {}
    line = "lrwxrwxrwx 1 root root 9 Jan 15 09:44 wwn-0x1 -> ../../sdb\n"
    assert F.parse_by_id(line) == {"sdb": ("/dev/disk/by-id/wwn-0x1",)}
    assert F.parse_by_id(line + "ls: write error\n") is None


def test_by_id_links_land_on_devices_by_kernel_name() -> None:
    links = F.parse_by_id(read("by-id", "captured__this-machine-ls-l-symlink-farm.txt"))
    lsblk = json.dumps(
        {
            "blockdevices": [
                {"name": "sdb", "kname": "sdb", "path": "/dev/sdb", "type": "disk", "size": 10},
                {
                    "name": "nvme0n1",
                    "kname": "nvme0n1",
                    "type": "disk",
                    "size": 20,
                    "children": [
                        {
                            "name": "nvme0n1p2",
                            "kname": "nvme0n1p2",
                            "type": "part",
                            "size": 19,
                            "fstype": "LVM2_member",
                            "children": [
                                {
                                    "name": "vg0-containerd",
                                    "kname": "dm-0",
                                    "type": "lvm",
                                    "size": 5,
                                    "mountpoints": ["/var/lib/containerd"],
                                }
                            ],
                        }
                    ],
                },
            ]
        }
    )
    disks = F.parse_lsblk(lsblk, links)
    assert disks is not None
    sdb, nvme = disks
    assert sdb.by_id == (
        "/dev/disk/by-id/scsi-35000c500a1b2c3d4",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
    )
    lv = nvme.children[0].children[0]
    assert lv.path == "/dev/mapper/vg0-containerd" and lv.kname == "dm-0"
    assert lv.by_id[0] == "/dev/disk/by-id/dm-name-vg0-containerd"
    assert nvme.children[0].by_id[1] == "/dev/disk/by-id/nvme-eui.0025385b91b2c3d4-part2"


# ---------------------------------------------------------------- lvm, mounts

LVM_EXPECTED = (
    VolumeGroup("fmpvg0", 125829120, 125829120, ("/dev/loop0", "/dev/loop1")),
    VolumeGroup("fmpvg1", 62914560, 62914560, ("/dev/loop2",)),
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("captured__this-machine-vgs-json-2vg-3pv.txt", LVM_EXPECTED),
        ("captured__this-machine-vgs-json-with-B-suffix.txt", LVM_EXPECTED),
        ("captured__this-machine-vgs-separator-2vg-3pv.txt", LVM_EXPECTED),
        ("captured__this-machine-vgs-json-nonroot-denied.txt", None),
    ],
)
def test_vgs(name: str, expected: tuple[VolumeGroup, ...] | None) -> None:
    assert F.parse_vgs(read("lvm", name)) == expected


def test_vgs_without_volume_groups_is_empty_not_unknown() -> None:
    assert (
        F.parse_vgs(
            '  {\n      "report": [\n          {\n              "vg": [\n              ]\n          }\n      ]\n  }\n'
        )
        == ()
    )


def test_mounts() -> None:
    mounts = F.parse_mounts(read("misc", "captured__this-machine-proc-mounts.txt"))
    assert mounts is not None and len(mounts) == 20
    assert Mount("/dev/vda", "/", "ext4") in mounts
    assert Mount("cgroup2", "/sys/fs/cgroup/unified", "cgroup2") in mounts
    assert F.parse_mounts("/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n") == (
        Mount("/dev/sdb1", "/mnt/my disk", "ext4"),
    )


# ---------------------------------------------------------------- network


def test_ip_json_netplan() -> None:
    nics = F.parse_ip_addr(read("ip", "netplan__ip-d-j-addr.json"))
    assert nics is not None
    by_name = {n.name: n for n in nics}
    assert list(by_name) == ["lo", "enp0s31f6", "wlan0", "wg0", "wwan0", "tun0"]
    assert by_name["lo"].loopback and by_name["lo"].mac is None
    assert by_name["wg0"].mac is None  # wireguard has no MAC
    assert by_name["tun0"].mac is None  # a sit tunnel's "address" is 1.1.1.1
    assert by_name["wwan0"].state == "DOWN" and by_name["wwan0"].addresses == ()
    eth = by_name["enp0s31f6"]
    assert eth.mac == "54:e1:ad:5f:24:b4"
    assert eth.addresses[0] == NetAddress("inet", "192.168.178.62", 24, dynamic=True)
    assert eth.addresses[2].dynamic is False  # link-local


def test_ip_text_fallbacks() -> None:
    ubuntu = F.parse_ip_addr(read("ip", "python-ifcfg__ip-addr-ubuntu-16.04.txt"))
    assert ubuntu is not None
    assert [n.name for n in ubuntu] == ["lo", "enp0s25", "wlp3s0", "wwp0s29u1u4i6"]
    assert ubuntu[1].state == "DOWN" and ubuntu[1].addresses == ()
    assert ubuntu[2].addresses[0] == NetAddress("inet", "192.168.12.34", 24, dynamic=True)
    assert len(ubuntu[2].addresses) == 5
    centos = F.parse_ip_addr(read("ip", "rex__ip-addr-centos7.txt"))
    assert centos is not None
    assert centos[1] == Nic(
        "eth0",
        "00:1c:42:fe:5a:b5",
        "UP",
        (
            NetAddress("inet", "10.211.55.171", 24, dynamic=True),
            NetAddress("inet6", "fec0::fea9:21c:42ff:fefe:5ab5", 64, dynamic=True),
            NetAddress("inet6", "fe80::21c:42ff:fefe:5ab5", 64, dynamic=False),
        ),
        False,
    )


def test_ip_json_and_text_of_the_same_machine_agree() -> None:
    from_json = F.parse_ip_addr(read("ip", "captured__this-machine-ip-j-addr.json"))
    from_text = F.parse_ip_addr(read("ip", "captured__this-machine-ip-addr.txt"))
    assert from_json is not None and from_json == from_text
    eth0 = from_json[-1]
    assert eth0.addresses[0] == NetAddress("inet", "192.0.2.2", 24, dynamic=False)


def test_ip_debian_capture() -> None:
    nics = F.parse_ip_addr(read("ip", "captured__debian12-vm-ip-j-addr.json"))
    assert nics is not None and [n.name for n in nics] == ["lo", "ifb0", "ifb1", "eth0"]


@pytest.mark.parametrize(
    ("name", "gateway", "interface"),
    [
        ("jc__ip-route-centos7.7.txt", "10.0.2.2", "enp0s3"),
        ("netplan__ip-d-j-route-v6.json", "fe80::cece:1eff:fe3d:c737", "enp0s31f6"),
        ("captured__this-machine-ip-route-default.txt", "192.0.2.1", "eth0"),
        ("captured__this-machine-ip-j-route-default.json", "192.0.2.1", "eth0"),
    ],
)
def test_default_route(name: str, gateway: str, interface: str) -> None:
    assert F.parse_default_route(read("ip", name)) == F.DefaultRoute(gateway, interface)


def test_default_route_prefers_ipv4_then_lowest_metric() -> None:
    text = (
        "default via fd00::1 dev eth0 metric 1\n"
        "default via 10.0.0.1 dev eth1 metric 600\n"
        "default via 10.0.0.2 dev eth2 metric 100\n"
    )
    assert F.parse_default_route(text) == F.DefaultRoute("10.0.0.2", "eth2")
    assert F.parse_default_route("default dev ppp0 scope link\n") == F.DefaultRoute(None, "ppp0")
    assert F.parse_default_route("") is None


def test_resolv_conf() -> None:
    assert F.parse_resolv_conf(read("misc", "captured__this-machine-resolv.conf")) == (
        "10.255.255.53",
    )
    text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions edns0\n"
    assert F.parse_resolv_conf(text) == ("10.0.0.2", "fe80::1%eth0")
    assert F.parse_resolv_conf("cat: /etc/resolv.conf: No such file or directory") is None


@pytest.mark.parametrize(
    "name",
    [
        "captured__this-machine-ss-Hltn.txt",
        "captured__this-machine-ss-ltn.txt",
        "captured__this-machine-netstat-ltn.txt",
    ],
)
def test_listening_ports(name: str) -> None:
    assert F.parse_listening_ports(read("misc", name)) == frozenset({2024})


def test_listening_ports_address_forms() -> None:
    text = (
        "LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*\n"
        "LISTEN 0 128 [::]:22 [::]:*\n"
        "LISTEN 0 128 *:6443 *:*\n"
    )
    assert F.parse_listening_ports(text) == frozenset({53, 22, 6443})
    assert F.parse_listening_ports("") == frozenset()
    assert F.parse_listening_ports("bash: ss: command not found") is None


# ---------------------------------------------------------------- time

# `timedatectl show` in the documented key=value format (this machine has no systemd).
TIMEDATECTL_SHOW_SYNCED = (
    "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n"
)
TIMEDATECTL_SHOW_UNSYNCED = (
    "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=no\nNTPSynchronized=no\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (read("timedatectl", "jc__centos-7.7-ntp-enabled-dst.txt"), F.TimedatectlState(True, True)),
        (read("timedatectl", "jc__rtc-local-warning.txt"), F.TimedatectlState(True, True)),
        (read("timedatectl", "jc__timesync-status.txt"), None),
        (read("timesync", "captured__this-machine-timedatectl-no-systemd.txt"), None),
        (TIMEDATECTL_SHOW_SYNCED, F.TimedatectlState(True, True)),
        (TIMEDATECTL_SHOW_UNSYNCED, F.TimedatectlState(False, False)),
    ],
)
def test_timedatectl(text: str, expected: F.TimedatectlState | None) -> None:
    assert F.parse_timedatectl(text) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("captured__this-machine-chronyc-tracking-local-stratum10.txt", True),
        ("captured__this-machine-chronyc-tracking-not-synchronised.txt", False),
        ("captured__this-machine-chronyc-tracking-no-daemon.txt", None),
    ],
)
def test_chronyc_tracking(name: str, expected: bool | None) -> None:
    assert F.parse_chronyc_tracking(read("timesync", name)) is expected


def test_ntpq_peers() -> None:
    text = read("timesync", "jc__ntpq-p-centos7.7-no-sys-peer.txt")
    assert F.parse_ntpq_peers(text) is False
    lines = text.splitlines()
    lines[2] = "*" + lines[2][1:]  # the same table once ntpd picked a system peer
    assert F.parse_ntpq_peers("\n".join(lines)) is True
    assert F.parse_ntpq_peers("ntpq: read: Connection refused") is None


def test_time_services_and_combination() -> None:
    units = "units:\nchrony.service loaded active running chrony, an NTP client/server\n"
    assert F.parse_time_services(units) == ("chrony",)
    assert F.parse_time_services("ps:\nsystemd-timesyn\n") == ("systemd-timesyncd",)
    assert F.parse_time_services("ps:\n") == ()
    assert F.parse_time_services("") is None
    tracking = F.parse_chronyc_tracking(
        read("timesync", "captured__this-machine-chronyc-tracking-not-synchronised.txt")
    )
    assert F.combine_time_sync(("chrony",), None, tracking, None) == TimeSync("chrony", False)
    assert F.combine_time_sync(
        ("systemd-timesyncd",), F.TimedatectlState(True, True), None, None
    ) == TimeSync("systemd-timesyncd", True)
    assert F.combine_time_sync((), None, None, None) == TimeSync(None, False)
    assert F.combine_time_sync(None, None, None, None) is None


# ---------------------------------------------------------------- firewall

ACTIVE_PORTS = frozenset({22, 2379, 2380, 6443, 10250})


FIREWALL_CASES = [
    (
        "captured__this-machine-ufw-status-active.txt",
        F.parse_ufw_status,
        Firewall(True, "ufw", ACTIVE_PORTS),
    ),
    (
        "captured__this-machine-ufw-status-verbose-active.txt",
        F.parse_ufw_status,
        Firewall(True, "ufw", ACTIVE_PORTS),
    ),
    ("captured__this-machine-ufw-status-inactive.txt", F.parse_ufw_status, Firewall(False, "ufw")),
    ("captured__this-machine-ufw-status-nonroot.txt", F.parse_ufw_status, None),
    (
        "jc__ufw-status-verbose-mixed.txt",
        F.parse_ufw_status,
        Firewall(True, "ufw", frozenset({22, 80})),
    ),
    (
        "captured__this-machine-nft-empty-ruleset.txt",
        F.parse_nft_ruleset,
        Firewall(False, "nftables"),
    ),
    (
        "captured__this-machine-nft-debian-default-accept.txt",
        F.parse_nft_ruleset,
        Firewall(False, "nftables"),
    ),
    (
        "captured__this-machine-nft-input-policy-drop.txt",
        F.parse_nft_ruleset,
        Firewall(True, "nftables", ACTIVE_PORTS),
    ),
    (
        "captured__this-machine-nft-iptables-nft-reject.txt",
        F.parse_nft_ruleset,
        Firewall(True, "nftables", frozenset({22})),
    ),
    ("captured__this-machine-nft-nonroot.txt", F.parse_nft_ruleset, None),
    (
        "captured__this-machine-iptables-S-accept.txt",
        F.parse_iptables_input,
        Firewall(False, "iptables"),
    ),
    (
        "captured__this-machine-iptables-S-policy-drop.txt",
        F.parse_iptables_input,
        Firewall(True, "iptables", frozenset({22, 6443, 2379, 2380})),
    ),
    (
        "captured__this-machine-iptables-S-reject-last.txt",
        F.parse_iptables_input,
        Firewall(True, "iptables", frozenset({22})),
    ),
    ("captured__this-machine-iptables-nonroot.txt", F.parse_iptables_input, None),
]


@pytest.mark.parametrize(("name", "parser", "expected"), FIREWALL_CASES)
def test_firewall_fixtures(name: str, parser: object, expected: Firewall | None) -> None:
    assert callable(parser)
    assert parser(read("firewall", name)) == expected


def test_every_firewall_fixture_is_in_the_table() -> None:
    assert {case[0] for case in FIREWALL_CASES} == {p.name for p in files("firewall")}


def test_firewalld() -> None:
    running = (
        "state: running\nports: 6443/tcp 2379-2380/tcp 8472/udp\nservices: ssh dhcpv6-client\n"
    )
    assert F.parse_firewalld(running) == Firewall(
        True, "firewalld", frozenset({22, 6443, 2379, 2380})
    )
    assert F.parse_firewalld("state: not running\n") == Firewall(False, "firewalld")
    assert F.parse_firewalld("firewall-cmd: command not found") is None


def test_combine_firewall_prefers_an_active_one() -> None:
    inactive_ufw = Firewall(False, "ufw")
    active_nft = Firewall(True, "nftables", frozenset({22}))
    assert F.combine_firewall([inactive_ufw, None, active_nft]) == active_nft
    assert F.combine_firewall([None, Firewall(False, "nftables")]) == Firewall(False, None)
    assert F.combine_firewall([None, None]) is None


# ---------------------------------------------------------------- small facts


def test_single_line_facts() -> None:
    assert (
        F.parse_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
        == "3d1219c7c4c5404aaa1f6d2a48adfda4"
    )
    assert F.parse_machine_id("uninitialized\n") is None
    assert (
        F.parse_product_uuid("4C4C4544-0042-3510-8051-B4C04F4A4E32\n")
        == "4c4c4544-0042-3510-8051-b4c04f4a4e32"
    )
    assert F.parse_product_uuid("cat: /sys/class/dmi/id/product_uuid: Permission denied") is None
    assert F.parse_epoch("1795313758.790052857\n") == pytest.approx(1795313758.790052857)
    assert F.parse_epoch("1795313758.%N\n") == 1795313758.0  # busybox date
    assert F.parse_cgroup_fs("cgroup2fs\n") == 2 and F.parse_cgroup_fs("tmpfs\n") == 1
    assert F.parse_cgroup_fs("stat: cannot read file system information") is None
    assert F.parse_systemd("booted=no\n") is False and F.parse_systemd("booted=yes\n") is True
    assert F.parse_virtualization("none\n") == "none" and F.parse_virtualization("kvm\n") == "kvm"
    assert F.parse_virtualization("bash: systemd-detect-virt: command not found") is None
    assert (
        F.parse_hostname("kn0\n") == "kn0"
        and F.parse_hostname("hostname: Name or service not known") is None
    )
    assert F.parse_single_token("6.18.44-fc-v669\n") == "6.18.44-fc-v669"


def test_sudo_and_installed() -> None:
    assert F.parse_sudo("root\n") is True and F.parse_sudo("nopasswd\n") is True
    assert F.parse_sudo("absent\n") is False
    assert F.parse_sudo("password\nsudo: a password is required\n") is None
    probe = "bin docker\nbin dockerd\nbin kubelet\npath /etc/kubernetes/admin.conf\npath /var/lib/etcd/member\ndone\n"
    assert F.parse_installed(probe) == frozenset(
        {"docker", "kubelet", "kubernetes-config", "etcd-data"}
    )
    assert F.parse_installed("done\n") == frozenset()
    assert F.parse_installed("bin docker\n") is None  # cut off before "done"


def test_installed_kernel_modules() -> None:
    """``kmod NAME loaded|available|missing|unknown`` lines of the installed probe."""
    for state, modules in (
        ("loaded", {"nvme_tcp": "loaded"}),
        ("available", {"nvme_tcp": "available"}),
        ("missing", {"nvme_tcp": "missing"}),
        ("unknown", {}),  # no modinfo on the host: not known
        ("maybe", {}),
    ):
        text = f"bin kubelet\nkmod nvme_tcp {state}\ndone\n"
        assert F.parse_kernel_modules(text) == modules, state
        assert F.parse_installed(text) == {"kubelet"}, state  # modules are not "installed"
    # only the probed modules: a line for another one is not this script's
    assert F.parse_kernel_modules("kmod rbd loaded\ndone\n") == {}
    assert F.parse_kernel_modules("kmod nvme_tcp loaded\n") is None  # cut off before "done"
    assert set(F.KERNEL_MODULE_PROBES) >= {"nvme_tcp"}


def test_installed_probe_reports_kernel_modules(tmp_path: Path) -> None:
    """The probe itself, run by sh with stand-ins for /sys/module and modinfo."""
    from installer import discovery as D

    body = D.PROBES_BY_NAME["installed"].body.replace("/sys/module/", f"{tmp_path}/module/")
    script = f"fmp_t() {{\n{body}\n}}\nfmp_t\n"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    modinfo = bindir / "modinfo"

    def probe(modinfo_rc: int | None, loaded: bool) -> dict[str, str] | None:
        if modinfo_rc is None:
            modinfo.unlink(missing_ok=True)
        else:
            modinfo.write_text(f"#!/bin/sh\nexit {modinfo_rc}\n")
            modinfo.chmod(0o755)
        (tmp_path / "module" / "nvme_tcp").mkdir(parents=True, exist_ok=True)
        if not loaded:
            (tmp_path / "module" / "nvme_tcp").rmdir()
        r = subprocess.run(
            ["/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            env={"PATH": str(bindir)},  # builtins only, and this modinfo or none
            check=True,
        )
        modules = F.parse_kernel_modules(r.stdout)
        return None if modules is None else dict(modules)

    assert probe(None, loaded=True) == {"nvme_tcp": "loaded"}
    assert probe(0, loaded=True) == {"nvme_tcp": "loaded"}
    assert probe(0, loaded=False) == {"nvme_tcp": "available"}
    assert probe(1, loaded=False) == {"nvme_tcp": "missing"}
    assert probe(None, loaded=False) == {}  # no modinfo: not known


# ---------------------------------------------------------------- garbage never raises

PARSERS: list[Callable[[str], object]] = [
    F.parse_os_release,
    F.parse_single_token,
    F.parse_hostname,
    F.parse_machine_id,
    F.parse_product_uuid,
    F.parse_epoch,
    F.parse_cgroup_fs,
    F.parse_systemd,
    F.parse_virtualization,
    F.parse_cpuinfo,
    F.parse_meminfo,
    F.parse_swaps,
    F.parse_lsblk,
    F.parse_by_id,
    F.parse_vgs,
    F.parse_mounts,
    F.parse_ip_addr,
    F.parse_default_route,
    F.parse_resolv_conf,
    F.parse_listening_ports,
    F.parse_timedatectl,
    F.parse_chronyc_tracking,
    F.parse_ntpq_peers,
    F.parse_time_services,
    F.parse_ufw_status,
    F.parse_firewalld,
    F.parse_nft_ruleset,
    F.parse_iptables_input,
    F.parse_sudo,
    F.parse_installed,
    F.parse_kernel_modules,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
# Keys the JSON parsers look at, so hypothesis reaches past the first type check.
lsblk_like = st.fixed_dictionaries(
    {
        "blockdevices": st.lists(
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "kname",
                        "path",
                        "type",
                        "size",
                        "rota",
                        "rm",
                        "ro",
                        "mountpoints",
                        "mountpoint",
                        "children",
                        "serial",
                    ]
                ),
                json_values,
                max_size=8,
            ),
            max_size=4,
        )
    }
)
ip_like = st.lists(
    st.dictionaries(
        st.sampled_from(["ifname", "address", "operstate", "flags", "addr_info", "link_type"]),
        json_values
        | st.lists(
            st.dictionaries(
                st.sampled_from(["family", "local", "prefixlen", "dynamic"]), json_values
            )
        ),
        max_size=6,
    ),
    max_size=4,
)
garbage = (
    st.text()
    | st.binary().map(lambda b: b.decode("latin-1"))
    | json_values.map(json.dumps)
    | lsblk_like.map(json.dumps)
    | ip_like.map(json.dumps)
    | st.lists(
        st.sampled_from(
            [
                "processor : 0",
                "flags : avx",
                "MemTotal: x kB",
                "Status: active",
                "default via",
                "LISTEN 0 0 a:b",
                "chain x {",
                "}",
                "nameserver ::1",
                "@@",
                "-P INPUT DROP",
                "state: running",
                "units:",
                "done",
                "Filename",
            ]
        ),
        max_size=8,
    ).map("\n".join)
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=garbage)
def test_no_parser_raises_on_garbage(text: str) -> None:
    for parser in PARSERS:
        parser(text)  # must not raise, whatever it returns


def _all_fixture_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for folder in FOLDERS for p in files(folder)]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_parser_raises_on_damaged_real_output(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(_all_fixture_texts()))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    junk = data.draw(st.text(max_size=10))
    damaged = text[:start] + junk + text[end:]
    for parser in PARSERS:
        parser(damaged)


@pytest.mark.parametrize("parser", PARSERS, ids=[p.__name__ for p in PARSERS])
@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01\x02\xff",
        "bash: line 1: tool: command not found\n",
        "<html><body>502 Bad Gateway</body></html>",
        '{"blockdevices": [',
        "[[[[[[[[[[[[[[[[[[[[",
        "[" * 5000,
    ],
)
def test_known_garbage_is_unknown(parser: object, text: str) -> None:
    assert callable(parser)
    assert parser(text) is None


# ---------------------------------------------------------------- facts file (factsio)

names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=12)
opt_names = st.none() | names
sizes = st.integers(0, 2**50)


def block_devices(depth: int = 2) -> st.SearchStrategy[BlockDevice]:
    children = st.lists(block_devices(depth - 1), max_size=2) if depth else st.just([])
    return st.builds(
        BlockDevice,
        name=names,
        path=names,
        type=names,
        size_bytes=sizes,
        rotational=st.none() | st.booleans(),
        removable=st.booleans(),
        read_only=st.booleans(),
        transport=opt_names,
        model=opt_names,
        serial=opt_names,
        wwn=opt_names,
        by_id=st.lists(names, max_size=2).map(tuple),
        fstype=opt_names,
        label=opt_names,
        uuid=opt_names,
        mountpoints=st.lists(names, max_size=2).map(tuple),
        children=children.map(tuple),
        kname=opt_names,
        pttype=opt_names,
    )


host_facts = st.builds(
    HostFacts,
    address=names,
    hostname=opt_names,
    os=st.none() | st.builds(OsRelease, id=names, id_like=st.lists(names, max_size=3).map(tuple)),
    cpu=st.none()
    | st.builds(
        Cpu, count=st.integers(1, 512), model=opt_names, flags=st.frozensets(names, max_size=5)
    ),
    memory=st.none() | st.builds(Memory, total_bytes=sizes, available_bytes=st.none() | sizes),
    swaps=st.none()
    | st.lists(
        st.builds(SwapArea, path=names, kind=names, size_bytes=sizes, used_bytes=sizes), max_size=2
    ).map(tuple),
    disks=st.none() | st.lists(block_devices(), max_size=2).map(tuple),
    volume_groups=st.none()
    | st.lists(
        st.builds(
            VolumeGroup,
            name=names,
            size_bytes=sizes,
            free_bytes=sizes,
            pvs=st.lists(names, max_size=2).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    mounts=st.none()
    | st.lists(st.builds(Mount, source=names, target=names, fstype=names), max_size=2).map(tuple),
    nics=st.none()
    | st.lists(
        st.builds(
            Nic,
            name=names,
            mac=opt_names,
            state=opt_names,
            addresses=st.lists(
                st.builds(
                    NetAddress,
                    family=names,
                    address=names,
                    prefixlen=st.integers(0, 128),
                    dynamic=st.booleans(),
                ),
                max_size=2,
            ).map(tuple),
            loopback=st.booleans(),
        ),
        max_size=2,
    ).map(tuple),
    dns_servers=st.none() | st.lists(names, max_size=2).map(tuple),
    time_sync=st.none()
    | st.builds(TimeSync, service=opt_names, synchronized=st.none() | st.booleans()),
    clock_epoch=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    cgroup_version=st.none() | st.sampled_from([1, 2]),
    systemd=st.none() | st.booleans(),
    listening_ports=st.none() | st.frozensets(st.integers(1, 65535), max_size=5),
    firewall=st.none()
    | st.builds(
        Firewall,
        active=st.booleans(),
        kind=opt_names,
        open_ports=st.frozensets(st.integers(1, 65535), max_size=4),
    ),
    sudo_ok=st.none() | st.booleans(),
    installed=st.none() | st.frozensets(names, max_size=4),
    kernel_modules=st.none()
    | st.dictionaries(names, st.sampled_from(["loaded", "available", "missing"]), max_size=2),
    unknown=st.dictionaries(names, names, max_size=3),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(facts=host_facts)
def test_facts_round_trip_exactly_through_json(facts: HostFacts) -> None:
    data = json.loads(json.dumps(facts_to_dict(facts), allow_nan=False))
    assert facts_from_dict(data) == facts


def test_facts_dict_shape_is_the_documented_one() -> None:
    facts = HostFacts(
        address="10.0.0.1",
        cpu=Cpu(2, "x", frozenset({"avx2", "avx"})),
        listening_ports=frozenset({443, 22}),
        disks=(
            BlockDevice(
                "sda",
                "/dev/sda",
                "disk",
                10,
                children=(BlockDevice("sda1", "/dev/sda1", "part", 9),),
            ),
        ),
        unknown={"product_uuid": "denied"},
    )
    data = facts_to_dict(facts)
    assert data["cpu"] == {"count": 2, "model": "x", "flags": ["avx", "avx2"]}
    assert data["listening_ports"] == [22, 443]
    assert data["disks"][0]["children"][0]["name"] == "sda1"
    assert data["memory"] is None and data["unknown"] == {"product_uuid": "denied"}
    assert list(data)[:3] == ["address", "hostname", "fqdn"]


def test_facts_from_dict_uses_defaults_and_names_the_bad_key() -> None:
    assert facts_from_dict({"address": "a"}) == HostFacts(address="a")
    with pytest.raises(FactsFormatError, match=r"^cpu\.count: expected an integer, got True"):
        facts_from_dict({"address": "a", "cpu": {"count": True}})
    with pytest.raises(FactsFormatError, match=r"disks\[0\]\.children\[0\]\.size_bytes: missing"):
        facts_from_dict(
            {
                "address": "a",
                "disks": [
                    {
                        "name": "s",
                        "path": "/dev/s",
                        "type": "disk",
                        "size_bytes": 1,
                        "children": [{"name": "p", "path": "/p", "type": "part"}],
                    }
                ],
            }
        )
    with pytest.raises(FactsFormatError, match="unknown key 'hostnmae'"):
        facts_from_dict({"address": "a", "hostnmae": "typo"})
    with pytest.raises(FactsFormatError, match=r"^address: missing"):
        facts_from_dict({})


def test_kernel_modules_in_a_facts_file(tmp_path: Path) -> None:
    """Module states by name; a file saved before the field existed still reads (None)."""
    facts = HostFacts("10.0.0.1", kernel_modules={"nvme_tcp": "available"})
    assert facts_to_dict(facts)["kernel_modules"] == {"nvme_tcp": "available"}
    path = tmp_path / "facts.json"
    save_facts(path, [facts])
    assert load_facts(path) == [facts]
    # a file from before kernel_modules (its older shape: an "installed" list)
    path.write_text(json.dumps({"version": 1, "hosts": [{"address": "a", "installed": []}]}))
    assert load_facts(path) == [HostFacts("a", installed=frozenset())]
    assert load_facts(path)[0].kernel_modules is None
    with pytest.raises(
        FactsFormatError,
        match=r"^kernel_modules\.nvme_tcp: expected one of 'loaded', 'available', 'missing', "
        r"got 'present'",
    ):
        facts_from_dict({"address": "a", "kernel_modules": {"nvme_tcp": "present"}})
    with pytest.raises(FactsFormatError, match=r"^kernel_modules\.nvme_tcp: expected one of"):
        facts_from_dict({"address": "a", "kernel_modules": {"nvme_tcp": True}})


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load_facts(tmp_path: Path, suffix: str) -> None:
    hosts = [
        HostFacts(
            "10.0.0.1", hostname="kn0", cpu=Cpu(8, None, frozenset({"avx"})), clock_epoch=1.5
        ),
        HostFacts("10.0.0.2", unknown={"disks": "lsblk: command not found"}),
    ]
    path = tmp_path / "sub" / f"facts{suffix}"
    save_facts(path, hosts)
    assert load_facts(path) == hosts
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    if suffix == ".json":
        assert json.loads(path.read_text())["version"] == 1
        assert path.read_text() == dump_facts(hosts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"line 1, column 2: not valid JSON"),
        ("[]", 'expected a mapping with "version" and "hosts"'),
        ('{"version": 2, "hosts": []}', "version: expected 1, got 2"),
        ('{"version": 1, "hosts": {}}', "hosts: expected a list"),
        ('{"version": 1, "hosts": [], "extra": 1}', "unknown key 'extra'"),
        (
            '{"version": 1, "hosts": [{"address": "a", "cpu": {"count": "8"}}]}',
            r"hosts\[0\]\.cpu\.count: expected an integer, got '8'",
        ),
        (
            '{"version": 1, "hosts": [{"address": "a"}, {"address": "a"}]}',
            r"hosts\[1\]\.address: 'a' appears twice",
        ),
    ],
)
def test_load_facts_errors_name_the_file_and_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content)
    with pytest.raises(OperatorError, match=message) as err:
        load_facts(path)
    assert str(path) in err.value.message


def test_load_facts_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(
        OperatorError, match="cannot read the facts file: No such file or directory"
    ):
        load_facts(tmp_path / "nope.json")
    bad = tmp_path / "facts.yaml"
    bad.write_text("version: 1\nhosts: [\n")
    with pytest.raises(OperatorError, match=r"facts\.yaml: line \d+, column \d+: not valid YAML"):
        load_facts(bad)
