"""What discovery learns about one host: plain frozen dataclasses, no I/O.

Every optional fact is ``None`` when it could not be learnt; ``HostFacts.unknown``
then maps the fact's name to the reason (``"lsblk: command not found"``), so a
missing tool makes one fact unknown instead of failing the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# What discovery learnt of one kernel module: ``loaded`` (in /sys/module: loaded, or built
# in with parameters), ``available`` (modinfo finds it for the running kernel, built in or
# loadable), or ``missing`` (modinfo does not find it).
KernelModuleState = Literal["loaded", "available", "missing"]


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str | None = None
    pretty_name: str | None = None
    id_like: tuple[str, ...] = ()
    version_codename: str | None = None


@dataclass(frozen=True)
class Cpu:
    count: int
    model: str | None = None
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Memory:
    total_bytes: int
    available_bytes: int | None = None
    hugepages_total: int | None = None
    hugepage_size_bytes: int | None = None


@dataclass(frozen=True)
class SwapArea:
    path: str
    kind: str  # "partition" | "file"
    size_bytes: int
    used_bytes: int


@dataclass(frozen=True)
class BlockDevice:
    """One node of the ``lsblk -J -b -O`` tree."""

    name: str
    path: str
    type: str  # disk, part, lvm, crypt, rom, loop, mpath, raid1...
    size_bytes: int
    rotational: bool | None = None
    removable: bool = False
    read_only: bool = False
    transport: str | None = None
    model: str | None = None
    serial: str | None = None
    wwn: str | None = None
    by_id: tuple[str, ...] = ()  # /dev/disk/by-id/... links that point at it
    fstype: str | None = None
    label: str | None = None
    uuid: str | None = None
    mountpoints: tuple[str, ...] = ()
    children: tuple[BlockDevice, ...] = ()
    # Kernel name (sda, dm-0): /proc/swaps, /sys and by-id links name devices by it.
    kname: str | None = None
    # Partition-table type (gpt, dos): a disk with a table but no partitions is not blank.
    pttype: str | None = None

    def walk(self) -> tuple[BlockDevice, ...]:
        """This device and all its descendants, depth first."""
        out: list[BlockDevice] = [self]
        for child in self.children:
            out.extend(child.walk())
        return tuple(out)


@dataclass(frozen=True)
class VolumeGroup:
    name: str
    size_bytes: int
    free_bytes: int
    pvs: tuple[str, ...] = ()  # /dev paths of its physical volumes


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str


@dataclass(frozen=True)
class NetAddress:
    family: str  # "inet" | "inet6"
    address: str
    prefixlen: int
    dynamic: bool = False  # DHCP/SLAAC-assigned (ip -j addr "dynamic")


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str | None = None
    state: str | None = None  # UP, DOWN, UNKNOWN
    addresses: tuple[NetAddress, ...] = ()
    loopback: bool = False


@dataclass(frozen=True)
class TimeSync:
    service: str | None  # chrony | systemd-timesyncd | ntp | None (none found)
    synchronized: bool | None


@dataclass(frozen=True)
class Firewall:
    active: bool
    kind: str | None = None  # ufw | firewalld | nftables | iptables
    open_ports: frozenset[int] = frozenset()  # TCP ports it allows, when it says


@dataclass(frozen=True)
class HostFacts:
    """Everything discovery learnt about one host."""

    address: str
    hostname: str | None = None
    fqdn: str | None = None
    os: OsRelease | None = None
    kernel: str | None = None
    arch: str | None = None
    cpu: Cpu | None = None
    memory: Memory | None = None
    swaps: tuple[SwapArea, ...] | None = None
    disks: tuple[BlockDevice, ...] | None = None
    volume_groups: tuple[VolumeGroup, ...] | None = None
    mounts: tuple[Mount, ...] | None = None
    nics: tuple[Nic, ...] | None = None
    default_gateway: str | None = None
    default_interface: str | None = None
    dns_servers: tuple[str, ...] | None = None
    machine_id: str | None = None
    product_uuid: str | None = None
    time_sync: TimeSync | None = None
    clock_epoch: float | None = None  # the host's clock when discovery ran
    cgroup_version: int | None = None
    systemd: bool | None = None
    listening_ports: frozenset[int] | None = None
    firewall: Firewall | None = None
    virtualization: str | None = None  # systemd-detect-virt: none, kvm, vmware...
    sudo_ok: bool | None = None
    installed: frozenset[str] | None = None  # containerd, docker, kubelet, microk8s, rke2...
    # The probed modules (facts.KERNEL_MODULE_PROBES) by name. A probed module that is not
    # here could not be told (no modinfo on the host); None: not probed at all.
    kernel_modules: dict[str, KernelModuleState] | None = None
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.hostname or self.address
