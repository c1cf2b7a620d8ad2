"""Small builders for the storage tests: block device trees, hosts, volumes."""

from __future__ import annotations

from installer.hostfacts import BlockDevice, HostFacts, Mount, SwapArea, VolumeGroup
from installer.storage_estimate import NodeSpace, PoolDisk
from installer.workloads import NodePlacement, VolumeSpec

GiB = 2**30


def dev(
    name: str,
    size_gib: float,
    *,
    type: str = "disk",  # lsblk's column name
    children: tuple[BlockDevice, ...] = (),
    path: str | None = None,
    **kw: object,
) -> BlockDevice:
    return BlockDevice(
        name=name,
        path=path or f"/dev/{name}",
        type=type,
        size_bytes=int(size_gib * GiB),
        children=children,
        **kw,  # type: ignore[arg-type]
    )


def part(name: str, size_gib: float, **kw: object) -> BlockDevice:
    return dev(name, size_gib, type="part", **kw)


def system_disk() -> BlockDevice:
    return dev(
        "sda",
        100,
        children=(
            part("sda1", 1, fstype="vfat", mountpoints=("/boot/efi",)),
            part("sda2", 99, fstype="ext4", mountpoints=("/",)),
        ),
    )


def blank(name: str, size_gib: float, index: int = 0) -> BlockDevice:
    wwn = f"0x5000c500a1b2c3d{index}"
    return dev(
        name,
        size_gib,
        wwn=wwn,
        serial=f"ZC1{index:05d}",
        by_id=(f"/dev/disk/by-id/ata-ST2000NM_ZC1{index:05d}", f"/dev/disk/by-id/wwn-{wwn}"),
    )


def host(
    address: str = "10.0.0.1",
    *,
    hostname: str | None = None,
    disks: tuple[BlockDevice, ...] | None = None,
    vgs: tuple[VolumeGroup, ...] | None = (),
    mounts: tuple[Mount, ...] = (),
    swaps: tuple[SwapArea, ...] = (),
) -> HostFacts:
    return HostFacts(
        address=address,
        hostname=hostname,
        disks=disks,
        volume_groups=vgs,
        mounts=mounts,
        swaps=swaps,
    )


def vol(
    name: str, size: float, shared: bool, replicas: int = 3, nodes: NodePlacement = "workers"
) -> VolumeSpec:
    return VolumeSpec(
        name=name,
        title=name,
        size_gib=size,
        shared=shared,
        replicas=replicas if shared else 1,
        feature=None,
        source="custom",
        nodes=nodes,
    )


def pool(host_name: str, size_gib: float, path: str = "/dev/sdb") -> PoolDisk:
    return PoolDisk(host_name, path, int(size_gib * GiB))


def node(
    host_name: str, free_gib: float, vg: str | None = "vg_data", *, workload: bool = True
) -> NodeSpace:
    return NodeSpace(
        host_name, vg, int(free_gib * GiB), int(max(free_gib, 100) * GiB), workload=workload
    )
