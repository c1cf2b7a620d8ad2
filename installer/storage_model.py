"""The storage estimate's data: inputs, figures, problems, and the JSON shape.

Plain frozen dataclasses; ``StorageEstimate.to_dict`` is the stable JSON
contract of ``fmp-install storage estimate --json`` (documented in
``installer/storage.py`` and docs/STORAGE.md). Sizes are GiB (2^30 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from installer.workloads import DEFAULT_REPLICAS, VolumeSpec

GIB = 2**30
NEARFULL_RATIO = 0.85  # Ceph's mon_osd_nearfull_ratio: warnings start here
TIGHT_RATIO = 0.85  # over this share of what is available: "tight"
JSON_VERSION = 1

Backend = Literal["ceph", "openebs", "none"]
Verdict = Literal["ok", "tight", "insufficient"]
Severity = Literal["error", "warning", "info"]
BACKENDS: tuple[Backend, ...] = ("ceph", "openebs", "none")
_RANK: dict[Verdict, int] = {"ok": 0, "tight": 1, "insufficient": 2}


def worst(*verdicts: Verdict) -> Verdict:
    return max(verdicts, key=lambda v: _RANK[v], default="ok")


def gib(n_bytes: int) -> float:
    return n_bytes / GIB


def rnd(x: float | None, digits: int = 2) -> float | None:
    return None if x is None or math.isinf(x) else round(x, digits)


def fmt(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.1f} GiB"


@dataclass(frozen=True)
class StorageProblem:
    severity: Severity
    code: str
    message: str
    fix: str | None = None
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "host": self.host,
            "message": self.message,
            "fix": self.fix,
        }

    def __str__(self) -> str:
        tail = f"\n    fix: {self.fix}" if self.fix else ""
        return f"{self.severity}: {self.message}{tail}"


@dataclass(frozen=True)
class PoolDisk:
    """A disk given to the cluster storage: a Ceph OSD or an OpenEBS pool."""

    host: str
    path: str
    size_bytes: int
    answer_value: str = ""  # as written in answers.yaml
    stable_id: str = ""  # what answers.yaml should say
    status: str = "allowed"  # allowed | needs-wipe


@dataclass(frozen=True)
class NodeSpace:
    """Where a node keeps its local volumes: its volume group.

    ``workload``: the node holds the volumes placed on the workload nodes
    (``nodes: workers``); every node listed holds those on ``nodes: all``.
    """

    host: str
    vg: str | None
    free_bytes: int | None  # None: unknown (no facts)
    size_bytes: int | None = None
    workload: bool = True

    def holds(self, volume: VolumeSpec) -> bool:
        """Whether this node keeps a local copy of the unshared ``volume``."""
        return self.workload or volume.nodes == "all"


@dataclass(frozen=True)
class EstimateInput:
    backend: Backend
    volumes: tuple[VolumeSpec, ...]
    disks: tuple[PoolDisk, ...] = ()
    nodes: tuple[NodeSpace, ...] = ()
    replicas: int = DEFAULT_REPLICAS  # Ceph pool size
    min_size: int = 2  # Ceph pool min_size
    problems: tuple[StorageProblem, ...] = ()  # found while resolving disks and nodes


@dataclass(frozen=True)
class SharedFigures:
    required_gib: float  # sum of the shared volumes (one copy)
    available_gib: float  # what fits, one copy (Ceph: usable)
    required_raw_gib: float  # sum(size x replicas)
    available_raw_gib: float  # sum of the OSD / pool disks
    utilization: float | None  # required / available
    verdict: Verdict
    volumes: tuple[str, ...]


@dataclass(frozen=True)
class UnsharedFigures:
    required_gib_per_node: float  # what a workload node needs: every local volume
    available_gib_tightest_node: float | None
    tightest_node: str | None  # the node with the highest utilization (least free on a tie)
    utilization: float | None  # of the tightest node: its required / its free
    verdict: Verdict
    nodes: tuple[NodeSpace, ...]
    volumes: tuple[str, ...]
    required_gib_by_node: tuple[float, ...] = ()  # per entry of ``nodes``
    required_gib_tightest_node: float | None = None

    def required_on(self, i: int) -> float:
        if i < len(self.required_gib_by_node):
            return self.required_gib_by_node[i]
        return self.required_gib_per_node


@dataclass(frozen=True)
class HostLoss:
    host: str
    lost_raw_gib: float
    usable_gib_after: float
    can_recover: bool  # more OSD hosts than replicas: Ceph re-replicates elsewhere
    fits: bool


@dataclass(frozen=True)
class CephFigures:
    osds: int
    osd_hosts: int
    raw_gib: float
    usable_gib: float
    replicas: int
    min_size: int
    pg_num: int | None
    pg_target: float | None
    host_loss: HostLoss | None
    disks: tuple[PoolDisk, ...]
    nearfull_ratio: float = NEARFULL_RATIO
    pg_autoscale: bool = True


@dataclass(frozen=True)
class OpenEbsFigures:
    pools: tuple[PoolDisk, ...]
    per_pool_required_gib: float  # sum(size x replicas) / pools: the even spread
    smallest_pool: PoolDisk | None
    max_replicas: int


@dataclass(frozen=True)
class StorageEstimate:
    backend: Backend
    verdict: Verdict
    volumes: tuple[VolumeSpec, ...]
    shared: SharedFigures
    unshared: UnsharedFigures
    ceph: CephFigures | None
    openebs: OpenEbsFigures | None
    problems: tuple[StorageProblem, ...]
    profile: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape (documented in docs/STORAGE.md)."""
        return {
            "version": JSON_VERSION,
            "profile": self.profile,
            "backend": self.backend,
            "verdict": self.verdict,
            "units": "GiB",
            "tight_ratio": TIGHT_RATIO,
            "volumes": [
                {
                    "name": v.name,
                    "title": v.title,
                    "feature": v.feature,
                    "source": v.source,
                    "size_gib": rnd(v.size_gib),
                    "shared": v.shared,
                    "replicas": v.replicas,
                    "nodes": None if v.shared else v.nodes,
                }
                for v in self.volumes
            ],
            "shared": {
                "required_gib": rnd(self.shared.required_gib),
                "available_gib": rnd(self.shared.available_gib),
                "required_raw_gib": rnd(self.shared.required_raw_gib),
                "available_raw_gib": rnd(self.shared.available_raw_gib),
                "utilization": rnd(self.shared.utilization, 4),
                "verdict": self.shared.verdict,
                "volumes": list(self.shared.volumes),
            },
            "unshared": {
                "required_gib_per_node": rnd(self.unshared.required_gib_per_node),
                "available_gib_tightest_node": rnd(self.unshared.available_gib_tightest_node),
                "required_gib_tightest_node": rnd(self.unshared.required_gib_tightest_node),
                "tightest_node": self.unshared.tightest_node,
                "utilization": rnd(self.unshared.utilization, 4),
                "verdict": self.unshared.verdict,
                "volumes": list(self.unshared.volumes),
                "nodes": [
                    {
                        "host": n.host,
                        "vg": n.vg,
                        "vg_size_gib": rnd(gib(n.size_bytes)) if n.size_bytes is not None else None,
                        "vg_free_gib": rnd(gib(n.free_bytes)) if n.free_bytes is not None else None,
                        "workload": n.workload,
                        "required_gib": rnd(self.unshared.required_on(i)),
                    }
                    for i, n in enumerate(self.unshared.nodes)
                ],
            },
            "ceph": _ceph_dict(self.ceph) if self.ceph else None,
            "openebs": _openebs_dict(self.openebs) if self.openebs else None,
            "problems": [p.to_dict() for p in self.problems],
        }


def _disk_dict(d: PoolDisk) -> dict[str, Any]:
    return {
        "host": d.host,
        "path": d.path,
        "storage_disk": d.answer_value or d.path,
        "stable_id": d.stable_id or None,
        "status": d.status,
        "size_gib": rnd(gib(d.size_bytes)),
    }


def _ceph_dict(c: CephFigures) -> dict[str, Any]:
    loss = c.host_loss
    return {
        "osds": c.osds,
        "osd_hosts": c.osd_hosts,
        "raw_gib": rnd(c.raw_gib),
        "usable_gib": rnd(c.usable_gib),
        "replicas": c.replicas,
        "min_size": c.min_size,
        "nearfull_ratio": c.nearfull_ratio,
        "pg_num": c.pg_num,
        "pg_target": rnd(c.pg_target),
        "pg_autoscale": c.pg_autoscale,
        "host_loss": None
        if loss is None
        else {
            "host": loss.host,
            "lost_raw_gib": rnd(loss.lost_raw_gib),
            "usable_gib_after": rnd(loss.usable_gib_after),
            "can_recover": loss.can_recover,
            "fits": loss.fits,
        },
        "disks": [_disk_dict(d) for d in c.disks],
    }


def _openebs_dict(o: OpenEbsFigures) -> dict[str, Any]:
    return {
        "pools": [_disk_dict(d) for d in o.pools],
        "pool_count": len(o.pools),
        "per_pool_required_gib": rnd(o.per_pool_required_gib),
        "smallest_pool": _disk_dict(o.smallest_pool) if o.smallest_pool else None,
        "max_replicas": o.max_replicas,
    }


def verdict_for(required: float, available: float | None) -> tuple[Verdict, float | None]:
    """(verdict, utilization) for one part. Nothing required is always ok."""
    if required <= 0:
        return "ok", (0.0 if available else None)
    if available is None or available <= 0:
        return "insufficient", None
    u = required / available
    if u > 1:
        return "insufficient", u
    if u > TIGHT_RATIO:
        return "tight", u
    return "ok", u


def names(vols: Sequence[VolumeSpec]) -> str:
    top = sorted(vols, key=lambda v: -v.size_gib)[:3]
    return ", ".join(f"{v.name} {v.size_gib:g} GiB" for v in top)
