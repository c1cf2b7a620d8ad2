"""Which disks of a host may become a Ceph OSD or an OpenEBS pool, and why not.

Pure: decides from ``HostFacts`` only. The rules follow ceph-volume's
(``ceph_volume/util/device.py``: removable, read-only, under 5 GiB, in use by
LVM, partitions, filesystem/BlueStore signatures), split in two:

- **disallowed** (never offered, not even with consent): the system disk,
  anything mounted, active swap, removable or read-only devices, devices under
  5 GiB, physical volumes of an active volume group, disks held by
  device-mapper (LVs, dm-crypt, multipath paths) or software RAID, and
  anything that is not a whole disk;
- **needs wipe consent**: disks with partitions, filesystem signatures, LVM
  labels outside any active volume group, or Ceph (BlueStore / OSD LV) labels;
- **allowed**: everything else.

Each candidate carries a stable id for answers.yaml: a ``/dev/disk/by-id``
link (``wwn-`` preferred), else one derived from the WWN, else
``serial:<serial>`` (matched against lsblk's SERIAL), else the kernel name
with a warning, since ``/dev/sdX`` can change across reboots. A ``serial:``
id is no device path: whatever runs a command on the disk resolves it first
(``device_path``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from installer.hostfacts import BlockDevice, HostFacts

GIB = 2**30
MIN_DISK_BYTES = 5 * GIB  # ceph-volume: "Insufficient space (<5GB)" below 5368709120 bytes
SERIAL_PREFIX = "serial:"  # storage_disk: serial:<lsblk SERIAL>, for a disk with no by-id link

Status = Literal["allowed", "needs-wipe", "disallowed"]
IdKind = Literal["by-id", "wwn", "serial", "kernel"]

# Mount points that make a disk the system disk rather than just "mounted".
SYSTEM_MOUNTS = frozenset({"/", "/boot", "/boot/efi", "/usr", "/var", "/home"})
DM_TYPES = frozenset({"lvm", "crypt", "mpath", "dm"})
WHOLE_DISK_TYPES = frozenset({"disk", "mpath"})
CEPH_FSTYPES = frozenset({"ceph_bluestore", "ceph_filestore"})
LVM_FSTYPES = frozenset({"LVM2_member", "LVM1_member"})

# Codes of the reasons, for the UI and the JSON. Disallowed first.
DISALLOWED_CODES = (
    "not-a-disk",
    "system-disk",
    "mounted",
    "swap",
    "removable",
    "read-only",
    "too-small",
    "active-vg",
    "dm-child",
    "raid-member",
)
WIPE_CODES = ("partitions", "filesystem", "lvm-label", "ceph-label")


@dataclass(frozen=True)
class DiskReason:
    code: str
    message: str


@dataclass(frozen=True)
class DiskId:
    """What to write in answers.yaml ``storage_disk`` for this disk."""

    kind: IdKind
    value: str  # the link, WWN, serial or kernel path
    answer_path: str  # a /dev path, or serial:<serial> (see SERIAL_PREFIX)

    @property
    def stable(self) -> bool:
        return self.kind in ("by-id", "wwn", "serial")


@dataclass(frozen=True)
class DiskCandidate:
    host: str
    device: BlockDevice
    status: Status
    reasons: tuple[DiskReason, ...]  # why disallowed (empty unless disallowed)
    wipe_reasons: tuple[DiskReason, ...]  # what a wipe would destroy
    disk_id: DiskId

    @property
    def path(self) -> str:
        return self.device.path

    @property
    def size_bytes(self) -> int:
        return self.device.size_bytes

    @property
    def usable(self) -> bool:
        """Allowed, possibly after a wipe the operator consents to."""
        return self.status != "disallowed"

    def aliases(self) -> frozenset[str]:
        """Every name of this disk: its /dev paths, and ``serial:<serial>`` if it has one."""
        names = {self.device.path, f"/dev/{self.device.name}", *self.device.by_id}
        if self.device.wwn:
            names.add(_wwn_link(self.device.wwn))
        serial = _serial(self.device)
        if serial:
            names.add(SERIAL_PREFIX + serial)
        return frozenset(names)

    def explain(self) -> str:
        """One line: 'disallowed: system disk (holds /)' or 'allowed'."""
        if self.status == "disallowed":
            return "disallowed: " + "; ".join(r.message for r in self.reasons)
        if self.status == "needs-wipe":
            return "needs wipe consent: " + "; ".join(r.message for r in self.wipe_reasons)
        return "allowed"


def _serial(device: BlockDevice) -> str | None:
    return (device.serial or "").strip() or None


def _wwn_link(wwn: str) -> str:
    # udev's 60-persistent-storage.rules: disk/by-id/wwn-$ID_WWN_WITH_EXTENSION for
    # SCSI/SATA; NVMe namespaces get nvme-<eui/nguid> links.
    w = wwn.strip()
    if w.startswith(("eui.", "nvme.")):
        return f"/dev/disk/by-id/nvme-{w}"
    return f"/dev/disk/by-id/wwn-{w}"


def _by_id_rank(link: str) -> tuple[int, int, str]:
    base = link.rsplit("/", 1)[-1]
    if base.startswith("wwn-"):
        rank = 0
    elif base.startswith(("nvme-eui.", "nvme-nvme.")):
        rank = 1
    elif base.startswith("dm-uuid-mpath-"):
        rank = 2
    else:
        rank = 3
    return (rank, len(link), link)


def disk_id(device: BlockDevice) -> DiskId:
    """The most stable way to name ``device`` in answers.yaml."""
    links = [link for link in device.by_id if link.startswith("/dev/disk/by-id/")]
    if links:
        best = min(links, key=_by_id_rank)
        return DiskId("by-id", best, best)
    if device.wwn:
        return DiskId("wwn", device.wwn, _wwn_link(device.wwn))
    serial = _serial(device)
    if serial:
        return DiskId("serial", serial, SERIAL_PREFIX + serial)
    return DiskId("kernel", device.path, device.path)


def device_path(candidate: DiskCandidate) -> str:
    """A /dev path to run commands on: the by-id link the id names, else the kernel path.

    For a ``serial:`` id this is the kernel path found in the facts, so it is
    only as current as they are: resolve it from fresh discovery.
    """
    did = candidate.disk_id
    return did.answer_path if did.answer_path.startswith("/dev/") else candidate.path


def _descendants(device: BlockDevice) -> tuple[BlockDevice, ...]:
    return device.walk()[1:]


def _short(dev: BlockDevice) -> str:
    return dev.path.rsplit("/", 1)[-1] if dev.path else dev.name


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _mounts_of(tree: Sequence[BlockDevice], facts: HostFacts) -> list[tuple[str, BlockDevice]]:
    """(mount point, device) for every mount in the subtree, from lsblk and /proc/mounts."""
    out: list[tuple[str, BlockDevice]] = []
    by_path = {d.path: d for d in tree}
    for dev in tree:
        out.extend((mp, dev) for mp in dev.mountpoints if mp)
    for m in facts.mounts or ():
        found = by_path.get(m.source)
        if found is not None and (m.target, found) not in out:
            out.append((m.target, found))
    return out


def _active_swaps(tree: Sequence[BlockDevice], facts: HostFacts) -> list[BlockDevice]:
    paths = {s.path for s in facts.swaps or () if s.kind == "partition"}
    return [d for d in tree if "[SWAP]" in d.mountpoints or d.path in paths]


def _disallowed(device: BlockDevice, facts: HostFacts) -> list[DiskReason]:
    reasons: list[DiskReason] = []
    tree = device.walk()
    is_dm_path = device.path.startswith(("/dev/mapper/", "/dev/dm-"))
    if device.type not in WHOLE_DISK_TYPES or (is_dm_path and device.type != "mpath"):
        what = (
            "a device-mapper device"
            if device.type in DM_TYPES or is_dm_path
            else f"a {device.type} device"
        )
        reasons.append(DiskReason("not-a-disk", f"{what}, not a whole disk"))

    mounts = _mounts_of(tree, facts)
    system = sorted({mp for mp, _ in mounts if mp in SYSTEM_MOUNTS})
    if system:
        reasons.append(DiskReason("system-disk", f"system disk (holds {', '.join(system)})"))
    other = [(mp, d) for mp, d in mounts if mp not in SYSTEM_MOUNTS and mp != "[SWAP]"]
    if other:
        where = ", ".join(f"{_short(d)} at {mp}" for mp, d in other)
        reasons.append(DiskReason("mounted", f"mounted: {where}"))

    swaps = _active_swaps(tree, facts)
    if swaps:
        reasons.append(DiskReason("swap", f"active swap on {', '.join(_short(d) for d in swaps)}"))
    if device.removable:
        reasons.append(DiskReason("removable", "removable device"))
    if device.read_only:
        reasons.append(DiskReason("read-only", "read-only device"))
    if device.size_bytes < MIN_DISK_BYTES:
        reasons.append(
            DiskReason("too-small", f"{_gib(device.size_bytes)}, under the 5 GiB minimum")
        )

    paths = {d.path for d in tree}
    for vg in facts.volume_groups or ():
        pvs = [pv for pv in vg.pvs if pv in paths]
        if pvs:
            reasons.append(
                DiskReason(
                    "active-vg",
                    f"in volume group {vg.name} ({', '.join(pvs)}; "
                    f"{_gib(vg.size_bytes)}, {_gib(vg.free_bytes)} free)",
                )
            )

    dm = [d for d in _descendants(device) if d.type in DM_TYPES]
    if dm:
        held = ", ".join(f"{_short(d)} ({d.type})" for d in dm[:4])
        more = f" and {len(dm) - 4} more" if len(dm) > 4 else ""
        reasons.append(DiskReason("dm-child", f"held by device-mapper: {held}{more}"))
    raid = [d for d in _descendants(device) if d.type.startswith("raid") or d.type == "md"]
    if raid:
        reasons.append(
            DiskReason(
                "raid-member", f"member of software RAID {', '.join(_short(d) for d in raid)}"
            )
        )
    return reasons


def _wipe(device: BlockDevice) -> list[DiskReason]:
    reasons: list[DiskReason] = []
    parts = [c for c in device.children if c.type == "part"]
    if parts:
        reasons.append(
            DiskReason(
                "partitions",
                f"has {len(parts)} partition{'s' if len(parts) != 1 else ''} "
                f"({', '.join(_short(p) for p in parts)})",
            )
        )
    tree = device.walk()
    fs = [
        d
        for d in tree
        if d.fstype
        and d.fstype not in LVM_FSTYPES
        and d.fstype not in CEPH_FSTYPES
        and d.type not in DM_TYPES
    ]
    if fs:
        reasons.append(
            DiskReason(
                "filesystem",
                "filesystem signature: " + ", ".join(f"{d.fstype} on {_short(d)}" for d in fs),
            )
        )
    lvm = [d for d in tree if d.fstype in LVM_FSTYPES]
    if lvm:
        reasons.append(
            DiskReason(
                "lvm-label",
                "LVM physical volume label on " + ", ".join(_short(d) for d in lvm),
            )
        )
    ceph = [
        d
        for d in tree
        if d.fstype in CEPH_FSTYPES
        or "ceph" in (d.label or "").lower()
        or (d.type == "lvm" and _short(d).startswith("ceph-"))
    ]
    if ceph:
        reasons.append(
            DiskReason(
                "ceph-label",
                "Ceph OSD data (an old OSD) on " + ", ".join(_short(d) for d in ceph),
            )
        )
    return reasons


def classify_disk(host: str, device: BlockDevice, facts: HostFacts) -> DiskCandidate:
    """One top-level block device of ``facts``, judged."""
    reasons = tuple(_disallowed(device, facts))
    wipe = tuple(_wipe(device))
    status: Status = "disallowed" if reasons else ("needs-wipe" if wipe else "allowed")
    return DiskCandidate(host, device, status, reasons, wipe, disk_id(device))


def disk_candidates(facts: HostFacts, host: str | None = None) -> tuple[DiskCandidate, ...]:
    """Every top-level device of the host, each allowed / needs-wipe / disallowed.

    Empty when the host's disks are unknown (``facts.disks is None``).
    """
    label = host or facts.name
    cands = [classify_disk(label, d, facts) for d in facts.disks or ()]
    # A serial two disks share (multipath paths, cheap USB bridges) names neither.
    serials = [c.disk_id.value for c in cands if c.disk_id.kind == "serial"]
    return tuple(
        replace(c, disk_id=DiskId("kernel", c.path, c.path))
        if c.disk_id.kind == "serial" and serials.count(c.disk_id.value) > 1
        else c
        for c in cands
    )


@dataclass(frozen=True)
class DiskMatch:
    """The result of looking up an answers ``storage_disk`` among a host's candidates."""

    value: str
    candidate: DiskCandidate | None
    warning: str | None = None  # e.g. /dev/sdX can change across reboots
    error: str | None = None  # not found, a partition, ...


def resolve_disk(candidates: Iterable[DiskCandidate], value: str) -> DiskMatch:
    """Find the disk an answers ``storage_disk`` names: a by-id link, a /dev path or a serial."""
    cands = list(candidates)
    found = [c for c in cands if value in c.aliases()]
    if len(found) > 1 and value.startswith(SERIAL_PREFIX):  # see disk_candidates
        paths = ", ".join(c.path for c in found)
        return DiskMatch(
            value,
            None,
            error=f"{value} names {len(found)} disks ({paths}): name one by its /dev path",
        )
    for cand in found:
        warning = None
        if not value.startswith(("/dev/disk/", SERIAL_PREFIX)):
            stable = cand.disk_id
            better = (
                f"use {stable.answer_path} instead"
                if stable.stable
                else "no stable id is known for this disk (no by-id link, WWN or unique serial)"
            )
            warning = f"{value} is a kernel name and can change across reboots: {better}"
        return DiskMatch(value, cand, warning=warning)
    for cand in cands:
        for dev in _descendants(cand.device):
            if value == dev.path or value == f"/dev/{dev.name}":
                return DiskMatch(
                    value,
                    None,
                    error=f"{value} is a {dev.type} on {cand.path}, not a whole disk: "
                    f"name the disk ({cand.disk_id.answer_path})",
                )
    known = ", ".join(c.disk_id.answer_path for c in cands if c.usable) or "none"
    what = (
        f"no disk with serial {value.removeprefix(SERIAL_PREFIX)}"
        if value.startswith(SERIAL_PREFIX)
        else f"no disk {value}"
    )
    return DiskMatch(value, None, error=f"{what} on this host (usable disks: {known})")


def device_path_for(facts: HostFacts, value: str, host: str | None = None) -> str | None:
    """The /dev path (see ``device_path``) of the disk ``value`` names, None if not found."""
    cand = resolve_disk(disk_candidates(facts, host), value).candidate
    return device_path(cand) if cand is not None else None


def wipe_key_matches(entry: str, host_labels: Iterable[str], candidate: DiskCandidate) -> bool:
    """Whether an answers ``storage.wipe`` entry (``kn3:/dev/sdb``) names this disk."""
    host, sep, path = entry.partition(":")
    return bool(sep) and host in set(host_labels) and path in candidate.aliases()
