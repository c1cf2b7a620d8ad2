"""The shared-storage arithmetic of the two cluster backends: Ceph and OpenEBS.

Pure. Called by ``installer.storage_estimate.estimate``; see its docstring for
the rules in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from installer.storage_model import (
    NEARFULL_RATIO,
    TIGHT_RATIO,
    CephFigures,
    EstimateInput,
    HostLoss,
    OpenEbsFigures,
    SharedFigures,
    StorageProblem,
    Verdict,
    fmt,
    gib,
    names,
    verdict_for,
    worst,
)
from installer.workloads import DEFAULT_REPLICAS, VolumeSpec


def pg_count(osds: int, replicas: int) -> tuple[int, Fraction] | None:
    """(pg_num, target) for one pool: OSDs x 100 / replicas to a power of two.

    The nearest power of two, but the next one up when the nearest is more
    than 25% below the target (Ceph's placement-group guidance).
    """
    if osds <= 0 or replicas <= 0:
        return None
    target = Fraction(osds * 100, replicas)
    if target <= 1:
        return 1, target
    lower = 1 << (math.floor(target).bit_length() - 1)
    if lower == target:
        return lower, target
    upper = lower * 2
    nearest = lower if target - lower < upper - target else upper
    if nearest == lower and lower < target * Fraction(3, 4):
        nearest = upper
    return nearest, target


def ceph_shared(
    inp: EstimateInput, shared: Sequence[VolumeSpec]
) -> tuple[SharedFigures, CephFigures, list[StorageProblem], Verdict]:
    problems: list[StorageProblem] = []
    r = inp.replicas
    raw_by_host: dict[str, int] = {}
    for d in inp.disks:
        raw_by_host[d.host] = raw_by_host.get(d.host, 0) + d.size_bytes
    raw = gib(sum(raw_by_host.values()))
    usable = raw * NEARFULL_RATIO / r
    required = sum(v.size_gib for v in shared)
    required_raw = required * r
    verdict, util = verdict_for(required, usable)
    hosts = len(raw_by_host)
    pg = pg_count(len(inp.disks), r)

    if hosts < r:
        verdict = "insufficient"
        problems.append(
            StorageProblem(
                "error",
                "osd-hosts-below-replicas",
                f"Ceph keeps each of the {r} replicas on a different host, but only {hosts} "
                f"host{'s have' if hosts != 1 else ' has'} an OSD disk",
                fix=f"give a storage_disk (and role storage) to {r - hosts} more host(s), "
                "or lower the pool size with --ceph-replicas (fewer copies: less safety)",
            )
        )

    if verdict != "ok" and required > 0:
        target = 1.0 if verdict == "insufficient" else TIGHT_RATIO
        need_raw = required * r / (NEARFULL_RATIO * target)
        short_raw = max(0.0, need_raw - raw)
        cut = max(0.0, required - usable * target)
        where = ", ".join(sorted(raw_by_host)) or "the storage hosts"
        each = short_raw / max(1, hosts)
        msg = (
            f"shared volumes need {fmt(required)} x {r} replicas = {fmt(required_raw)} raw; "
            f"{len(inp.disks)} OSD(s) give {fmt(raw)} raw, {fmt(raw)} x {NEARFULL_RATIO} / {r} "
            f"= {fmt(usable)} usable"
        )
        if short_raw > 0 or cut > 0:
            problems.append(
                StorageProblem(
                    "error" if verdict == "insufficient" else "warning",
                    "ceph-capacity" if verdict == "insufficient" else "ceph-tight",
                    msg,
                    fix=f"add {fmt(short_raw)} of OSD disks (about {fmt(each)} more on each of "
                    f"{where}), or shrink the shared volumes by {fmt(cut)} "
                    f"(largest: {names(shared)})",
                )
            )

    loss: HostLoss | None = None
    if raw_by_host:
        big = max(sorted(raw_by_host), key=lambda h: raw_by_host[h])
        lost = gib(raw_by_host[big])
        after = (raw - lost) * NEARFULL_RATIO / r
        can_recover = hosts - 1 >= r
        fits = required <= after
        loss = HostLoss(big, lost, after, can_recover, fits)
        if can_recover and not fits and required > 0:
            verdict = worst(verdict, "tight")
            problems.append(
                StorageProblem(
                    "warning",
                    "host-loss",
                    f"if {big} ({fmt(lost)} of OSDs) fails, Ceph re-replicates onto the other "
                    f"{hosts - 1} hosts: usable drops to ({fmt(raw)} - {fmt(lost)}) x "
                    f"{NEARFULL_RATIO} / {r} = {fmt(after)}, below the {fmt(required)} stored",
                    fix=f"add {fmt((required - after) * r / NEARFULL_RATIO)} of OSD disks on "
                    "the other hosts, or shrink the shared volumes",
                    host=big,
                )
            )
        elif not can_recover and hosts >= r:
            problems.append(
                StorageProblem(
                    "info",
                    "host-loss-degraded",
                    f"with {hosts} OSD hosts for {r} replicas, a failed host leaves "
                    f"{r - 1} copies (min_size {inp.min_size} keeps I/O going) until it returns; "
                    "there is no other host to re-replicate to, so no extra space is needed",
                    fix=f"a {hosts + 1}th OSD host lets Ceph heal by itself",
                )
            )

    figures = CephFigures(
        osds=len(inp.disks),
        osd_hosts=hosts,
        raw_gib=raw,
        usable_gib=usable,
        replicas=r,
        min_size=inp.min_size,
        pg_num=pg[0] if pg else None,
        pg_target=float(pg[1]) if pg else None,
        host_loss=loss,
        disks=inp.disks,
    )
    shared_fig = SharedFigures(
        required_gib=required,
        available_gib=usable,
        required_raw_gib=required_raw,
        available_raw_gib=raw,
        utilization=util,
        verdict=verdict_for(required, usable)[0],
        volumes=tuple(v.name for v in shared),
    )
    return shared_fig, figures, problems, verdict


def replicated_fit(capacities: Sequence[float], volumes: Sequence[tuple[float, int]]) -> float:
    """Utilization of pools holding whole replicas on distinct pools (>1: does not fit).

    ``volumes`` are (size, replicas). For sorted capacities c1 >= c2 >= ... and
    each k, the k largest pools hold at most one copy of each volume, so the
    others must hold sum(size x max(0, replicas - k)). Returns the largest
    ratio of that need to the capacity of the other pools; ``inf`` when some
    need meets no capacity.
    """
    caps = sorted((c for c in capacities if c > 0), reverse=True)
    need_any = any(s > 0 and r > 0 for s, r in volumes)
    if not need_any:
        return 0.0
    worst_u = 0.0
    for k in range(max(r for _, r in volumes)):
        need = sum(s * max(0, r - k) for s, r in volumes)
        have = sum(caps[k:])
        if need <= 0:
            continue
        if have <= 0:
            return math.inf
        worst_u = max(worst_u, need / have)
    return worst_u


def openebs_shared(
    inp: EstimateInput, shared: Sequence[VolumeSpec]
) -> tuple[SharedFigures, OpenEbsFigures, list[StorageProblem], Verdict]:
    problems: list[StorageProblem] = []
    pools = inp.disks
    n = len(pools)
    caps = [gib(p.size_bytes) for p in pools]
    required = sum(v.size_gib for v in shared)
    required_raw = sum(v.size_gib * v.replicas for v in shared)
    util = replicated_fit(caps, [(v.size_gib, v.replicas) for v in shared])
    if required > 0:
        available = required / util if util > 0 and not math.isinf(util) else 0.0
    else:
        available = _dmax(caps, DEFAULT_REPLICAS)
    verdict, u = verdict_for(required, available if required > 0 else None)
    smallest = min(pools, key=lambda p: (p.size_bytes, p.host)) if pools else None

    for v in shared:
        if v.replicas > n:
            verdict = "insufficient"
            problems.append(
                StorageProblem(
                    "error",
                    "replicas-exceed-pools",
                    f"shared volume {v.name} wants {v.replicas} replicas, each on its own pool, "
                    f"but there {'is' if n == 1 else 'are'} {n} pool{'s' if n != 1 else ''}",
                    fix=f"give a storage_disk to {v.replicas - n} more host(s), or set "
                    f"replicas: {max(n, 1)} for {v.name} in storage.volumes",
                )
            )
            continue
        big_enough = [c for c in caps if c >= v.size_gib]
        if len(big_enough) < v.replicas:
            verdict = "insufficient"
            problems.append(
                StorageProblem(
                    "error",
                    "volume-exceeds-pools",
                    f"shared volume {v.name} ({fmt(v.size_gib)}) needs {v.replicas} pools of at "
                    f"least its size for its whole copies; {len(big_enough)} are that large",
                    fix=f"use larger pool disks, or shrink {v.name}",
                )
            )
    if verdict != "ok" and required > 0 and smallest is not None and not math.isinf(util):
        target = 1.0 if verdict == "insufficient" else TIGHT_RATIO
        cut = max(0.0, required - available * target)
        problems.append(
            StorageProblem(
                "error" if verdict == "insufficient" else "warning",
                "openebs-capacity" if verdict == "insufficient" else "openebs-tight",
                f"shared volumes need {fmt(required)} ({fmt(required_raw)} with replicas) on "
                f"{n} pools of {', '.join(fmt(c) for c in caps)}: about "
                f"{fmt(required_raw / n)} per pool; they hold {fmt(available)} of such data",
                fix=f"use a larger pool disk (smallest: {smallest.host} {smallest.path}, "
                f"{fmt(gib(smallest.size_bytes))}), or shrink the shared volumes by {fmt(cut)} "
                f"(largest: {names(shared)})",
                host=smallest.host,
            )
        )
    if required > 0 and n == 0:
        problems.append(
            StorageProblem(
                "error",
                "no-pools",
                "shared volumes need replicated pools, but no host has a storage_disk",
                fix="give a storage_disk (and role storage) to at least 3 hosts",
            )
        )
        verdict = "insufficient"
    fig = OpenEbsFigures(
        pools=pools,
        per_pool_required_gib=required_raw / n if n else required_raw,
        smallest_pool=smallest,
        max_replicas=max((v.replicas for v in shared), default=0),
    )
    shared_fig = SharedFigures(
        required_gib=required,
        available_gib=available,
        required_raw_gib=required_raw,
        available_raw_gib=sum(caps),
        utilization=u,
        verdict=verdict_for(required, available if required > 0 else None)[0],
        volumes=tuple(v.name for v in shared),
    )
    return shared_fig, fig, problems, verdict


def _dmax(caps: Sequence[float], replicas: int) -> float:
    """The most data (one copy) that pools can hold at ``replicas`` whole copies each."""
    c = sorted(caps, reverse=True)
    if len(c) < replicas or replicas <= 0:
        return 0.0
    return min(sum(c[k:]) / (replicas - k) for k in range(replicas))
