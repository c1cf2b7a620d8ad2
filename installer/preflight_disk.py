"""Preflight checks of storage: the chosen ``storage_disk`` and where container images live.

Pure: no I/O. Whether a disk may hold cluster data is decided in one place,
``installer.storage_disks`` (ceph-volume's rules: disallowed / needs wipe consent /
allowed), so that the disks screen, the plan and preflight never disagree; this
module turns its verdict on the chosen disk into a finding.
"""

from __future__ import annotations

from installer.answers import Host
from installer.hostfacts import HostFacts, Mount
from installer.preflight_model import Context, Finding, fmt_bytes, unknown_finding
from installer.storage_disks import DiskCandidate, disk_candidates, resolve_disk, wipe_key_matches

# What fixes each reason storage_disks gives for refusing a disk.
_DISALLOWED_FIX = {
    "not-a-disk": "name the whole disk in storage_disk, not a partition or volume",
    "system-disk": "choose another disk: the system disk is never wiped",
    "mounted": "unmount it (sudo umount <mount point>) and remove it from /etc/fstab",
    "swap": "sudo swapoff the swap on it and remove that line from /etc/fstab",
    "removable": "use a fixed disk for cluster data",
    "read-only": "choose a writable disk",
    "too-small": "choose a disk of at least 5 GiB",
    "active-vg": "if its data may go, remove its volume group (sudo vgremove <vg> && "
    "sudo pvremove <pv>); otherwise choose another disk",
    "dm-child": "close what holds it (sudo dmsetup ls --tree) or choose another disk",
    "raid-member": "stop the array (sudo mdadm --stop) and zero its superblock, "
    "or choose another disk",
}


def _consented(ctx: Context, host: Host, cand: DiskCandidate) -> bool:
    labels = {host.label, host.address} | ({host.name} if host.name else set())
    return any(wipe_key_matches(entry, labels, cand) for entry in ctx.answers.storage.wipe)


def check_storage_disk(ctx: Context, host: Host, f: HostFacts) -> Finding | None:
    path = host.storage_disk
    if path is None:
        return None  # answer validation asks for one where a role needs it
    label = host.label
    check = "storage-disk"
    if f.disks is None:
        return unknown_finding(check, label, f, "disks", f"storage_disk {path}")
    match = resolve_disk(disk_candidates(f, label), path)
    cand = match.candidate
    if cand is None:
        return Finding(
            check,
            label,
            "fail",
            f"{label}: storage_disk {path}: {match.error or 'not found'}",
            f"set storage_disk of {label} to one of its usable disks, "
            "preferably by its /dev/disk/by-id/ path",
        )
    what = f"{label}: storage_disk {path}"
    if cand.path != path:
        what += f" ({cand.device.name})"
    what += f", {fmt_bytes(cand.size_bytes)}"
    detail = match.warning
    if cand.status == "disallowed":
        fixes = dict.fromkeys(
            _DISALLOWED_FIX.get(r.code, "choose another disk") for r in cand.reasons
        )
        return Finding(
            check,
            label,
            "fail",
            f"{what}: cannot be used: " + "; ".join(r.message for r in cand.reasons),
            "; ".join(fixes),
            detail,
        )
    if cand.status == "needs-wipe":
        held = "; ".join(r.message for r in cand.wipe_reasons)
        if _consented(ctx, host, cand):
            return Finding(
                check,
                label,
                "warn",
                f"{what}: will be wiped (consent given): {held}",
                f"nothing to do if its data may go; to keep it, remove '{label}:{path}' "
                "from storage.wipe and choose another disk",
                detail,
            )
        return Finding(
            check,
            label,
            "fail",
            f"{what}: not empty: {held}; wiping it needs consent",
            f"if its data may go, add '{label}:{path}' to storage.wipe (or confirm in the "
            "wizard); otherwise choose an empty disk",
            detail,
        )
    return Finding(check, label, "pass", f"{what}: empty", detail=detail)


# --------------------------------------------------------------------------- container storage

# Where the container runtime keeps images, most specific first, by a version key
# that identifies the flavour of the profile; the default covers containerd/docker.
RUNTIME_STORAGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rke2", ("/var/lib/rancher/rke2", "/var/lib/rancher")),
    ("k3s", ("/var/lib/rancher/k3s", "/var/lib/rancher")),
    ("microk8s_channel", ("/var/snap/microk8s/common", "/var/snap/microk8s", "/var/snap")),
)
DEFAULT_RUNTIME_STORAGE = ("/var/lib/containerd", "/var/lib/docker")


def container_storage_paths(ctx: Context) -> tuple[str, ...]:
    for key, paths in RUNTIME_STORAGE:
        if key in ctx.meta.versions:
            return paths
    return DEFAULT_RUNTIME_STORAGE


def mount_of(mounts: tuple[Mount, ...], path: str) -> Mount | None:
    """The mount that holds ``path``: the longest mount target that is a prefix of it."""
    best: Mount | None = None
    for m in mounts:
        target = m.target.rstrip("/") or "/"
        if (path == target or target == "/" or path.startswith(target + "/")) and (
            best is None or len(target) > len(best.target.rstrip("/") or "/")
        ):
            best = m
    return best


def check_container_storage(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.mounts is None:
        return unknown_finding("container-storage", label, f, "mounts", "container storage")
    paths = container_storage_paths(ctx)
    root = mount_of(f.mounts, "/")
    for path in paths:
        m = mount_of(f.mounts, path)
        if m is None or m.target.rstrip("/") in ("", "/"):
            continue
        if root is not None and m.source == root.source:
            continue  # a bind mount of the root filesystem is not a disk of its own
        return Finding(
            "container-storage",
            label,
            "pass",
            f"{label}: {path} is on its own filesystem ({m.source} at {m.target})",
        )
    path = paths[0]
    vgs = [vg for vg in f.volume_groups or () if vg.free_bytes >= 20 * 2**30]
    if vgs:
        vg = max(vgs, key=lambda v: v.free_bytes)
        lv = path.rstrip("/").rsplit("/", 1)[-1] or "containers"
        fix = (
            f"volume group {vg.name} has {fmt_bytes(vg.free_bytes)} free: "
            f"sudo lvcreate -n {lv} -L 100G {vg.name} && sudo mkfs.xfs /dev/{vg.name}/{lv} && "
            f"sudo mkdir -p {path} && echo '/dev/{vg.name}/{lv} {path} xfs defaults 0 2' | "
            f"sudo tee -a /etc/fstab && sudo mount {path}"
        )
    else:
        fix = f"add a disk (or an LV) and mount it at {path} through /etc/fstab before the install"
    on = f"on {root.source} (the root filesystem)" if root is not None else "on the root filesystem"
    return Finding(
        "container-storage",
        label,
        "warn",
        f"{label}: {path} is {on}, not on a disk or LV of its own: images can fill /",
        fix,
    )
