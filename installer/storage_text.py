"""Storage as text: a host's volume groups and disk tree, and the estimate's figures.

Pure: returns lines; the caller prints them (the CLI) or shows them (the wizard).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from installer.hostfacts import BlockDevice, HostFacts
from installer.storage_disks import DiskCandidate
from installer.storage_model import GIB, NEARFULL_RATIO, StorageEstimate, fmt

VERDICT_TEXT = {
    "ok": "The configuration looks OK",
    "tight": "The configuration fits, but tightly: over 85% of what is available",
    "insufficient": "Not enough storage for this configuration",
}


def human(n_bytes: int) -> str:
    """lsblk-like sizes: 50G, 93.1G, 1M."""
    value = float(n_bytes)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{n_bytes}B"  # pragma: no cover


def format_host_storage(
    label: str, f: HostFacts | None, cands: Sequence[DiskCandidate]
) -> list[str]:
    """A host's volume groups and disk tree, as ``kloudspot storage estimate`` shows them."""
    if f is None:
        return [f"{label}: no facts"]
    lines = [f"{label} ({f.address})" if label != f.address else label, "Volume Groups:"]
    if f.volume_groups is None:
        lines.append(f"   unknown ({f.unknown.get('volume_groups', 'vgs gave nothing')})")
    elif not f.volume_groups:
        lines.append("   none")
    for vg in f.volume_groups or ():
        lines.append(
            f"-  {vg.name} ({vg.size_bytes / GIB:.1f} GiB - {vg.free_bytes / GIB:.1f} GiB free)"
        )
        if vg.pvs:
            lines.append(f"   on {', '.join(vg.pvs)}")
    total = sum(vg.free_bytes for vg in f.volume_groups or ())
    lines += [f"Total Free space: {total / GIB:.1f} GiB", "", "Disks:"]
    if f.disks is None:
        lines.append(f"   unknown ({f.unknown.get('disks', 'lsblk gave nothing')})")
    vg_of = {pv: vg.name for vg in f.volume_groups or () for pv in vg.pvs}
    for cand in cands:
        lines.append(f"{cand.path} ({human(cand.size_bytes)})  [{_badge(cand)}]")
        lines += _tree(cand.device.children, 1, vg_of)
    return lines


def _tree(devices: Sequence[BlockDevice], depth: int, vg_of: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for dev in devices:
        note = f" in Volume Group {vg_of[dev.path]}" if dev.path in vg_of else ""
        mps = [m for m in dev.mountpoints if m]
        if mps:
            note += " mounted as " + ", ".join(mps)
        lines.append(f"{'  ' * depth}{dev.path} ({human(dev.size_bytes)}){note}")
        lines += _tree(dev.children, depth + 1, vg_of)
    return lines


def _badge(cand: DiskCandidate) -> str:
    if cand.status == "allowed":
        return f"usable as {cand.disk_id.answer_path}"
    return cand.explain()


def _part_line(
    what: str,
    required: float,
    available: float | None,
    util: float | None,
    verdict: str,
    where: str = "",
) -> str:
    ratio = f" = {util:.0%}" if util is not None and required > 0 else ""
    return f"  {what}: {fmt(required)} of {fmt(available)}{where}{ratio} -> {verdict}"


def format_estimate(est: StorageEstimate) -> list[str]:
    """Available versus required, the backend's figures and the verdict, as text."""
    lines: list[str] = []
    s, u = est.shared, est.unshared
    lines.append(f"Storage backend: {est.backend}" + (f" ({est.profile})" if est.profile else ""))
    if est.volumes:
        lines.append("Volumes:")
        width = max(len(v.name) for v in est.volumes)
        for v in est.volumes:
            if v.shared:
                kind = f"shared x{v.replicas}"
            elif v.nodes == "all" and not all(n.workload for n in u.nodes):
                kind = "local, on every node"
            elif not all(n.workload for n in u.nodes):
                kind = "local, on each workload node"
            else:
                kind = "local, on each node"
            origin = v.feature or "custom"
            lines.append(f"  {v.name:<{width}}  {v.size_gib:>7.1f} GiB  {kind}  ({origin})")
    else:
        lines.append("Volumes: none (no feature enabled)")
    tight = f" (tightest node {u.tightest_node})" if u.tightest_node else ""
    lines.append(
        f"Available: Shared {fmt(s.available_gib)}, Unshared {fmt(u.available_gib_tightest_node)}{tight}"
    )
    lines.append(
        f"Required: Shared {fmt(s.required_gib)}, Unshared {fmt(u.required_gib_per_node)} per node"
    )
    lines.append(_part_line("Shared", s.required_gib, s.available_gib, s.utilization, s.verdict))
    uneven = len(set(u.required_gib_by_node)) > 1
    tight_need = u.required_gib_tightest_node
    lines.append(
        _part_line(
            "Unshared (each node)",
            u.required_gib_per_node if tight_need is None else tight_need,
            u.available_gib_tightest_node,
            u.utilization,
            u.verdict,
            f" on {u.tightest_node}" if u.tightest_node else "",
        )
    )
    c = est.ceph
    if c is not None:
        lines.append(
            f"Ceph: {c.osds} OSD(s) on {c.osd_hosts} host(s): {fmt(c.raw_gib)} raw x "
            f"{NEARFULL_RATIO} (nearfull) / {c.replicas} replicas = {fmt(c.usable_gib)} usable "
            f"(min_size {c.min_size})"
        )
        if c.pg_num is not None and c.pg_target is not None:
            lines.append(
                f"  PGs for the kubernetes pool: {c.osds} x 100 / {c.replicas} = "
                f"{c.pg_target:.0f} -> pg_num {c.pg_num} (the PG autoscaler is on and adjusts it)"
            )
        if c.host_loss is not None:
            hl = c.host_loss
            lines.append(
                f"  losing {hl.host} ({fmt(hl.lost_raw_gib)} raw) leaves {fmt(hl.usable_gib_after)}"
                f" usable: {'fits' if hl.fits else 'does not fit'}"
                + ("" if hl.can_recover else " (no spare host to re-replicate to)")
            )
    o = est.openebs
    if o is not None:
        pools = ", ".join(f"{p.host} {human(p.size_bytes)}" for p in o.pools) or "none"
        lines.append(
            f"OpenEBS: {len(o.pools)} replicated pool(s) ({pools}); shared needs "
            f"{fmt(s.required_raw_gib)} with replicas = {fmt(o.per_pool_required_gib)} per pool"
        )
    if u.nodes and (u.required_gib_per_node > 0 or est.backend == "openebs"):
        if uneven:
            lines.append("Local volumes (a workload node needs the unshared total):")
        else:
            lines.append("Local volumes (each node needs the unshared total):")
        for i, n in enumerate(u.nodes):
            free = fmt(n.free_bytes / GIB) if n.free_bytes is not None else "unknown"
            needs = f", needs {fmt(u.required_on(i))}" if uneven else ""
            lines.append(f"  {n.host}: {n.vg or 'no volume group'}, {free} free{needs}")
    lines.append(f"Verdict: {est.verdict} - {VERDICT_TEXT[est.verdict]}")
    if u.required_gib_per_node > 0:
        lines.append("Remember each node needs this amount of storage")
    for p in est.problems:
        where = f"{p.host}: " if p.host and not p.message.startswith(p.host) else ""
        lines.append(f"  {p.severity}: {where}{p.message}")
        if p.fix:
            lines.append(f"    fix: {p.fix}")
    return lines
