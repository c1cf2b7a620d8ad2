"""Capacity arithmetic per storage backend. Pure: numbers in, figures and a verdict out.

All sizes are GiB (2^30 bytes). Three backends:

- **ceph** (rke-ceph): raw = sum of the OSD disks; usable = raw x 0.85
  (nearfull) / replicas (pool size, default 3, min_size 2). Shared volumes must
  fit in usable. The failure domain is the host: Ceph needs at least as many
  OSD hosts as replicas, and after losing the largest host the data must
  still fit if Ceph can re-replicate (more OSD hosts than replicas). PG count
  for the Kubernetes pool: OSDs x 100 / replicas, to the nearest power of
  two, rounding up when the nearest is more than 25% below (the autoscaler,
  on by default, adjusts it later).
- **openebs** (microk8s-openebs): shared volumes are replicated, each replica
  a whole copy on a different pool (one pool disk per storage host): replicas
  must not exceed pools, each volume needs ``replicas`` pools at least its
  size, and the pools together must hold sum(size x replicas) with no pool
  holding two copies of one volume (for sorted pool sizes c1 >= c2 >= ..., for
  every k: sum(size x max(0, replicas - k)) <= c(k+1) + c(k+2) + ...).
- **none** (kubeadm-etcd): no cluster storage; every volume is local.

Unshared (local) volumes live in a volume group on the nodes they name
(Local PV LVM): a workload node needs the sum of them all, any other node
the sum of those placed on every node (``nodes: all``); each node's need is
compared with the free space of its volume group, and the tightest node is
the one with the highest utilization.

Verdict per part: *ok*, *tight* (over 85% of what is available) or
*insufficient*; the overall verdict is the worst part, and any error problem
makes it insufficient. See ``StorageEstimate.to_dict`` for the JSON shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from installer.storage_backends import ceph_shared, openebs_shared, pg_count, replicated_fit
from installer.storage_model import (
    BACKENDS,
    GIB,
    NEARFULL_RATIO,
    TIGHT_RATIO,
    Backend,
    CephFigures,
    EstimateInput,
    HostLoss,
    NodeSpace,
    OpenEbsFigures,
    PoolDisk,
    SharedFigures,
    StorageEstimate,
    StorageProblem,
    UnsharedFigures,
    Verdict,
    fmt,
    gib,
    names,
    verdict_for,
    worst,
)
from installer.workloads import VolumeSpec

# Problems found while resolving a node's volume group that already say what is wrong with it.
_NODE_REPORTED = frozenset({"vg-not-found", "vgs-unknown"})


def _ratio(need: float, free_bytes: int | None) -> float:
    free = gib(free_bytes or 0)
    if need <= 0:
        return 0.0
    return need / free if free > 0 else math.inf


def _unshared(
    inp: EstimateInput, local: Sequence[VolumeSpec]
) -> tuple[UnsharedFigures, list[StorageProblem]]:
    problems: list[StorageProblem] = []
    required = sum(v.size_gib for v in local)  # a workload node keeps every local volume
    nodes = inp.nodes
    need = tuple(sum(v.size_gib for v in local if n.holds(v)) for n in nodes)
    tight: int | None = None
    if nodes:
        # The highest utilization; with nothing required, the least free space.
        tight = min(
            range(len(nodes)),
            key=lambda i: (-_ratio(need[i], nodes[i].free_bytes), nodes[i].free_bytes or 0, i),
        )
    tight_node = nodes[tight] if tight is not None else None
    tight_need = need[tight] if tight is not None else None
    available = gib(tight_node.free_bytes or 0) if tight_node is not None else None
    verdict, util = verdict_for(tight_need or 0.0, available)
    if required > 0 and not nodes:
        problems.append(
            StorageProblem(
                "error",
                "no-workload-nodes",
                "local volumes need workload nodes, and none is known",
            )
        )
    reported = {p.host for p in inp.problems if p.code in _NODE_REPORTED}
    for node, needed in zip(nodes, need, strict=True):
        free = gib(node.free_bytes) if node.free_bytes is not None else None
        if needed <= 0 or free is None:
            continue  # nothing to keep here, or reported when the facts were resolved
        mine = [v for v in local if node.holds(v)]
        if needed == required:
            what = f"each node needs {fmt(needed)} for its local volumes"
        else:
            what = f"it needs {fmt(needed)} for the local volumes every node keeps"
        if node.vg is None:
            if node.host in reported:
                continue  # one problem per node: its volume group was already reported
            problems.append(
                StorageProblem(
                    "error",
                    "no-volume-group",
                    f"{node.host} has no volume group for local volumes; {what} ({names(mine)})",
                    fix=f"create one on {node.host} (vgcreate <name> <disk>), or enable fewer "
                    "local volumes",
                    host=node.host,
                )
            )
            continue
        v, _ = verdict_for(needed, free)
        if v == "ok":
            continue
        target = 1.0 if v == "insufficient" else TIGHT_RATIO
        grow = needed / target - free
        problems.append(
            StorageProblem(
                "error" if v == "insufficient" else "warning",
                "node-vg-too-small" if v == "insufficient" else "node-vg-tight",
                f"{node.host}: volume group {node.vg} has {fmt(free)} free; {what} ({names(mine)})",
                fix=f"grow {node.vg} on {node.host} by {fmt(grow)} (vgextend {node.vg} <disk>), "
                f"or shrink the local volumes by {fmt(max(0.0, needed - free * target))}",
                host=node.host,
            )
        )
    fig = UnsharedFigures(
        required_gib_per_node=required,
        available_gib_tightest_node=available,
        tightest_node=tight_node.host if tight_node else None,
        utilization=util,
        verdict=verdict,
        nodes=nodes,
        volumes=tuple(v.name for v in local),
        required_gib_by_node=need,
        required_gib_tightest_node=tight_need,
    )
    return fig, problems


def estimate(inp: EstimateInput, profile: str | None = None) -> StorageEstimate:
    """The whole estimate for one backend."""
    if inp.backend not in BACKENDS:
        raise ValueError(f"unknown storage backend {inp.backend!r}")
    if inp.replicas < 1 or not 1 <= inp.min_size <= inp.replicas:
        raise ValueError(f"need 1 <= min_size ({inp.min_size}) <= replicas ({inp.replicas})")
    problems = list(inp.problems)
    volumes = inp.volumes
    if inp.backend == "none":
        moved = [v for v in volumes if v.shared]
        for v in moved:
            problems.append(
                StorageProblem(
                    "warning",
                    "no-shared-backend",
                    f"{v.name} is shared, but this profile has no cluster storage: it becomes a "
                    "local volume, lost with its node",
                    fix="choose rke-ceph or microk8s-openebs for replicated volumes, or set "
                    f"shared: false for {v.name}",
                )
            )
        volumes = tuple(replace(v, shared=False, replicas=1) for v in volumes)
    if inp.backend == "ceph":
        for v in volumes:
            if v.shared and v.source != "catalogue" and v.replicas != inp.replicas:
                problems.append(
                    StorageProblem(
                        "info",
                        "ceph-pool-replicas",
                        f"{v.name} asks for {v.replicas} replicas, but every RBD volume in the "
                        f"kubernetes pool has the pool's size, {inp.replicas}",
                        fix="set the pool size with --ceph-replicas",
                    )
                )
        volumes = tuple(replace(v, replicas=inp.replicas) if v.shared else v for v in volumes)
    shared = [v for v in volumes if v.shared]
    local = [v for v in volumes if not v.shared]

    ceph: CephFigures | None = None
    openebs: OpenEbsFigures | None = None
    if inp.backend == "ceph":
        shared_fig, ceph, more, shared_verdict = ceph_shared(inp, shared)
    elif inp.backend == "openebs":
        shared_fig, openebs, more, shared_verdict = openebs_shared(inp, shared)
    else:
        shared_fig = SharedFigures(0.0, 0.0, 0.0, 0.0, None, "ok", ())
        more, shared_verdict = [], "ok"
    problems += more
    unshared_fig, more = _unshared(inp, local)
    problems += more
    verdict = worst(shared_verdict, unshared_fig.verdict)
    if any(p.severity == "error" for p in problems):
        verdict = "insufficient"
    order = {"error": 0, "warning": 1, "info": 2}
    problems.sort(key=lambda p: order[p.severity])
    return StorageEstimate(
        backend=inp.backend,
        verdict=verdict,
        volumes=volumes,
        shared=shared_fig,
        unshared=unshared_fig,
        ceph=ceph,
        openebs=openebs,
        problems=tuple(problems),
        profile=profile,
    )


__all__ = [
    "BACKENDS",
    "GIB",
    "NEARFULL_RATIO",
    "TIGHT_RATIO",
    "Backend",
    "CephFigures",
    "EstimateInput",
    "HostLoss",
    "NodeSpace",
    "OpenEbsFigures",
    "PoolDisk",
    "SharedFigures",
    "StorageEstimate",
    "StorageProblem",
    "UnsharedFigures",
    "Verdict",
    "estimate",
    "pg_count",
    "replicated_fit",
    "verdict_for",
    "worst",
]
