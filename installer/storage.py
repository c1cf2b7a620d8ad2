"""Storage for an install: disk candidates, the workload catalogue and the capacity estimate.

Pure: facts and answers in, figures out. Both the wizard and
``fmp-install storage estimate`` call ``estimate_for_answers``. The pieces:
``storage_disks`` (which disks may be used, stable ids), ``workloads`` (the
catalogue: features and volumes), ``storage_model`` (inputs, figures, the
JSON shape), ``storage_backends`` (Ceph and OpenEBS arithmetic),
``storage_estimate`` (the whole estimate and its verdict), ``storage_text``
(lines to print) and ``storage_answers`` (write choices back into
answers.yaml, keeping its comments).

Who gives what:

- *storage hosts* (role ``storage``, or, if no host has that role yet, every
  host with a ``storage_disk``) give their ``storage_disk`` as a Ceph OSD or
  an OpenEBS pool;
- *workload nodes* keep the unshared (local) volumes in a volume group: the
  ``worker`` hosts, or every host if none is a worker; with OpenEBS
  (MicroK8s, which schedules pods on every node) always every host. A
  volume the catalogue places on ``nodes: all`` is kept on every host, workload
  node or not. The volume group is the one with the most free space that is
  not on the node's storage disk, unless one is named (``--vg``): a name no
  host has is bad input (``UnknownVolumeGroup``), one only some hosts lack is a
  problem of each of those hosts.

JSON shape of ``StorageEstimate.to_dict()`` (version 1; keys are only ever
added). Sizes are GiB (2^30 bytes), rounded to 0.01; ``null`` = unknown:

    {
      "version": 1, "profile": "rke-ceph", "backend": "ceph" | "openebs" | "none",
      "verdict": "ok" | "tight" | "insufficient", "units": "GiB", "tight_ratio": 0.85,
      "volumes": [{"name", "title", "feature", "source": "catalogue"|"answers"|"custom",
                   "size_gib", "shared", "replicas", "nodes": "all"|"workers"|null}],
      "shared": {"required_gib", "available_gib", "required_raw_gib", "available_raw_gib",
                 "utilization", "verdict", "volumes": [names]},
      "unshared": {"required_gib_per_node", "available_gib_tightest_node", "tightest_node",
                   "required_gib_tightest_node", "utilization", "verdict", "volumes": [names],
                   "nodes": [{"host", "vg", "vg_size_gib", "vg_free_gib", "workload",
                              "required_gib"}]},
      "ceph": null | {"osds", "osd_hosts", "raw_gib", "usable_gib", "replicas", "min_size",
                      "nearfull_ratio", "pg_num", "pg_target", "pg_autoscale",
                      "host_loss": null | {"host", "lost_raw_gib", "usable_gib_after",
                                           "can_recover", "fits"},
                      "disks": [DISK]},
      "openebs": null | {"pools": [DISK], "pool_count", "per_pool_required_gib",
                         "smallest_pool": DISK | null, "max_replicas"},
      "problems": [{"severity": "error"|"warning"|"info", "code", "host", "message", "fix"}]
    }
    DISK = {"host", "path", "storage_disk", "stable_id", "status", "size_gib"}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from installer.answers import Answers, Host
from installer.errors import OperatorError
from installer.hostfacts import HostFacts, VolumeGroup
from installer.storage_disks import (
    DiskCandidate,
    DiskMatch,
    disk_candidates,
    resolve_disk,
    wipe_key_matches,
)
from installer.storage_estimate import estimate
from installer.storage_model import (
    BACKENDS,
    GIB,
    Backend,
    EstimateInput,
    NodeSpace,
    PoolDisk,
    StorageEstimate,
    StorageProblem,
)
from installer.storage_text import format_estimate, format_host_storage, human
from installer.workloads import DEFAULT_REPLICAS, VolumeSpec


def backend_of(profile: str) -> Backend:
    """The storage backend a profile declares (``none`` | ``ceph`` | ``openebs``)."""
    from installer.profile import load_profile_meta

    name = load_profile_meta(profile).storage_backend
    for b in BACKENDS:
        if b == name:
            return b
    raise ValueError(f"profile {profile}: unknown storage_backend '{name}'")


def storage_hosts(answers: Answers) -> list[Host]:
    tagged = answers.hosts_with("storage")
    if tagged:
        return tagged
    return [h for h in answers.hosts if h.storage_disk is not None]


def workload_hosts(answers: Answers, backend: Backend) -> list[Host]:
    if backend == "openebs":
        return list(answers.hosts)
    workers = answers.hosts_with("worker")
    return workers or list(answers.hosts)


class UnknownVolumeGroup(OperatorError):
    """A volume group named for local volumes (``--vg``) that no host has: bad input."""


def facts_by_label(answers: Answers, facts: Iterable[HostFacts]) -> dict[str, HostFacts]:
    """Match discovered facts to the answers' hosts by address, then by hostname."""
    pool = list(facts)
    out: dict[str, HostFacts] = {}
    for host in answers.hosts:
        match = next((f for f in pool if f.address == host.address), None)
        if match is None and host.name:
            match = next(
                (f for f in pool if host.name in (f.hostname, (f.fqdn or "").split(".")[0])),
                None,
            )
        if match is not None:
            out[host.label] = match
    return out


def _facts(facts: Mapping[str, HostFacts], host: Host) -> HostFacts | None:
    for key in (host.label, host.name, host.address):
        if key is not None and key in facts:
            return facts[key]
    return None


@dataclass(frozen=True)
class HostDisk:
    """A storage host's ``storage_disk``, looked up in its facts."""

    host: str
    value: str | None
    match: DiskMatch | None
    candidates: tuple[DiskCandidate, ...]
    problem: StorageProblem | None = None  # why no disk was found: no storage_disk, no facts...


def no_facts_fix(host: Host) -> str:
    """What to do when a host has no facts at all."""
    names = f"{host.address}.txt" + (f" or {host.name}.txt" if host.name else "")
    return (
        f"check that discovery reaches {host.label} and run it again; with --from-raw DIR, "
        f"DIR needs {names}; with --facts FILE, FILE needs {host.label}'s facts"
    )


def resolve_storage_disks(
    answers: Answers, facts: Mapping[str, HostFacts]
) -> tuple[list[HostDisk], list[PoolDisk], list[StorageProblem]]:
    """Each storage host's disk: found, usable, consented to; problems otherwise."""
    problems: list[StorageProblem] = []
    host_disks: list[HostDisk] = []
    pool: list[PoolDisk] = []
    for host in storage_hosts(answers):
        label = host.label
        f = _facts(facts, host)
        cands = disk_candidates(f, label) if f is not None else ()
        value = host.storage_disk
        if value is None:
            problem = StorageProblem(
                "error",
                "no-storage-disk",
                f"{label} has role storage but no storage_disk",
                fix=_choices(label, cands),
                host=label,
            )
            problems.append(problem)
            host_disks.append(HostDisk(label, None, None, cands, problem))
            continue
        if f is None or f.disks is None:
            if f is None:
                why = f"no facts were found for {label}"
                fix = no_facts_fix(host)
            else:
                why = f.unknown.get("disks", "lsblk gave nothing")
                fix = "run discovery again (or pass --facts / --from-raw)"
            problem = StorageProblem(
                "error",
                "disks-unknown",
                f"{label}: cannot check {value}: its disks are unknown ({why})",
                fix=fix,
                host=label,
            )
            problems.append(problem)
            host_disks.append(HostDisk(label, value, None, cands, problem))
            continue
        m = resolve_disk(cands, value)
        if m.candidate is None:
            problem = StorageProblem(
                "error",
                "disk-not-found",
                f"{label}: {m.error}",
                fix=_choices(label, cands),
                host=label,
            )
            problems.append(problem)
            host_disks.append(HostDisk(label, value, m, cands, problem))
            continue
        host_disks.append(HostDisk(label, value, m, cands))
        cand = m.candidate
        if m.warning:
            problems.append(
                StorageProblem(
                    "warning",
                    "unstable-disk-name",
                    f"{label}: {m.warning}",
                    fix="run with --write to record the stable id" if cand.disk_id.stable else None,
                    host=label,
                )
            )
        if cand.status == "disallowed":
            problems.append(
                StorageProblem(
                    "error",
                    "disk-disallowed",
                    f"{label}: {value} cannot be used: "
                    + "; ".join(r.message for r in cand.reasons),
                    fix=_choices(label, cands),
                    host=label,
                )
            )
            continue
        if cand.status == "needs-wipe":
            labels = {label, host.address, *([host.name] if host.name else [])}
            if not any(wipe_key_matches(e, labels, cand) for e in answers.storage.wipe):
                problems.append(
                    StorageProblem(
                        "warning",
                        "wipe-consent-missing",
                        f"{label}: {value} holds data ("
                        + "; ".join(r.message for r in cand.wipe_reasons)
                        + "): the install wipes it only with consent",
                        fix=f"add '{label}:{value}' to storage.wipe, or choose a blank disk",
                        host=label,
                    )
                )
        pool.append(
            PoolDisk(
                host=label,
                path=cand.path,
                size_bytes=cand.size_bytes,
                answer_value=value,
                stable_id=cand.disk_id.answer_path,
                status=cand.status,
            )
        )
    return host_disks, pool, problems


def stable_disk_ids(answers: Answers, facts: Mapping[str, HostFacts]) -> dict[str, str]:
    """Host label -> a better ``storage_disk``: the stable id (by-id path, else serial:)
    of a disk given as /dev/sdX, or the by-id path of one given as serial:."""
    host_disks, _, _ = resolve_storage_disks(answers, facts)
    out: dict[str, str] = {}
    for hd in host_disks:
        cand = hd.match.candidate if hd.match else None
        if cand is None or hd.value is None or not cand.disk_id.stable:
            continue
        if hd.value != cand.disk_id.answer_path and not hd.value.startswith("/dev/disk/"):
            out[hd.host] = cand.disk_id.answer_path
    return out


def _choices(label: str, cands: Sequence[DiskCandidate]) -> str:
    usable = [f"{c.disk_id.answer_path} ({c.size_bytes / GIB:.1f} GiB)" for c in cands if c.usable]
    if not usable:
        return f"{label} has no usable disk: add one, or give the storage role to another host"
    return f"choose one of {label}'s usable disks: {', '.join(usable)}"


def choose_vg(
    f: HostFacts, *, exclude_paths: Iterable[str] = (), name: str | None = None
) -> VolumeGroup | None:
    """The volume group for local volumes: ``name``, or the one with the most free space.

    VGs with a physical volume in ``exclude_paths`` (the pool disk's tree) are skipped.
    """
    excluded = set(exclude_paths)
    vgs = [vg for vg in f.volume_groups or () if not excluded.intersection(vg.pvs)]
    if name is not None:
        return next((vg for vg in vgs if vg.name == name), None)
    if not vgs:
        return None
    return max(sorted(vgs, key=lambda v: v.name), key=lambda v: v.free_bytes)


def check_vg(answers: Answers, facts: Mapping[str, HostFacts], vg: str | None) -> None:
    """Raise ``UnknownVolumeGroup`` when ``vg`` is named but no host with known VGs has it.

    A volume group that only some hosts lack is their problem (``vg-not-found``),
    not bad input. Hosts whose volume groups are unknown cannot tell either way.
    """
    if vg is None:
        return
    found: dict[str, list[str]] = {}
    unknown: list[str] = []
    for host in answers.hosts:
        f = _facts(facts, host)
        if f is None or f.volume_groups is None:
            unknown.append(host.label)
            continue
        for group in f.volume_groups:
            found.setdefault(group.name, []).append(host.label)
    if vg in found or len(unknown) == len(answers.hosts):
        return
    have = "; ".join(f"{name} on {', '.join(hosts)}" for name, hosts in sorted(found.items()))
    tail = f" (the volume groups of {', '.join(unknown)} are unknown)" if unknown else ""
    raise UnknownVolumeGroup(
        f"no host has a volume group {vg}{tail}; found: {have or 'none'}",
        hint="pass --vg with one of those, or leave it out to use the one with the most free "
        "space on each node",
    )


def node_spaces(
    answers: Answers,
    facts: Mapping[str, HostFacts],
    backend: Backend,
    pool: Sequence[PoolDisk] = (),
    *,
    vg: str | None = None,
    report_unknown: bool = True,
    all_nodes: bool = False,
) -> tuple[list[NodeSpace], list[StorageProblem]]:
    """Each node's volume group for local volumes, and the problems finding it.

    The workload nodes, plus, with ``all_nodes`` (a local volume lives on every
    node), every other host; ``NodeSpace.workload`` tells them apart.
    """
    problems: list[StorageProblem] = []
    nodes: list[NodeSpace] = []
    workload = {h.label for h in workload_hosts(answers, backend)}
    for host in answers.hosts:
        label = host.label
        if label not in workload and not all_nodes:
            continue
        is_workload = label in workload
        f = _facts(facts, host)
        if f is None or f.volume_groups is None:
            nodes.append(NodeSpace(label, None, None, workload=is_workload))
            if report_unknown:
                why = (
                    "no facts" if f is None else f.unknown.get("volume_groups", "vgs gave nothing")
                )
                problems.append(
                    StorageProblem(
                        "error",
                        "vgs-unknown",
                        f"{label}: its volume groups are unknown ({why})",
                        fix=no_facts_fix(host)
                        if f is None
                        else "run discovery again (or pass --facts / --from-raw)",
                        host=label,
                    )
                )
            continue
        mine = [p.path for p in pool if p.host == label]
        exclude = {d.path for top in f.disks or () if top.path in mine for d in top.walk()}
        chosen = choose_vg(f, exclude_paths=exclude, name=vg)
        if chosen is None:
            if vg is not None and report_unknown:
                problems.append(_vg_not_found(label, f, vg, exclude))
            nodes.append(NodeSpace(label, None, 0, 0, workload=is_workload))
        else:
            nodes.append(
                NodeSpace(
                    label, chosen.name, chosen.free_bytes, chosen.size_bytes, workload=is_workload
                )
            )
    return nodes, problems


def _vg_not_found(label: str, f: HostFacts, vg: str, exclude: set[str]) -> StorageProblem:
    others = [g.name for g in f.volume_groups or () if not exclude.intersection(g.pvs)]
    return StorageProblem(
        "error",
        "vg-not-found",
        f"{label} has no volume group {vg} (it has: {', '.join(others) or 'none'})",
        fix=f"create {vg} on {label} (vgcreate {vg} <disk>)"
        + (", or leave out --vg to use each node's largest" if others else ""),
        host=label,
    )


def estimate_for_answers(
    answers: Answers,
    facts: Mapping[str, HostFacts],
    volumes: Sequence[VolumeSpec],
    *,
    backend: Backend | None = None,
    replicas: int = DEFAULT_REPLICAS,
    min_size: int = 2,
    vg: str | None = None,
) -> StorageEstimate:
    """The estimate for an answers file, given facts keyed by host label.

    Raises ``UnknownVolumeGroup`` when ``vg`` is on no host (see ``check_vg``).
    """
    backend = backend or backend_of(answers.profile)
    check_vg(answers, facts, vg)
    problems: list[StorageProblem] = []
    pool: list[PoolDisk] = []
    if backend != "none":
        _, pool, more = resolve_storage_disks(answers, facts)
        problems += more
    local = [v for v in volumes if not v.shared or backend == "none"]
    every_node = any(v.nodes == "all" for v in local)
    nodes, more = node_spaces(
        answers,
        facts,
        backend,
        pool,
        vg=vg,
        report_unknown=bool(local),
        all_nodes=every_node,
    )
    problems += more
    inp = EstimateInput(
        backend=backend,
        volumes=tuple(volumes),
        disks=tuple(pool),
        nodes=tuple(nodes),
        replicas=replicas,
        min_size=min_size,
        problems=tuple(problems),
    )
    return estimate(inp, profile=answers.profile)


__all__ = [
    "HostDisk",
    "UnknownVolumeGroup",
    "backend_of",
    "check_vg",
    "choose_vg",
    "estimate_for_answers",
    "facts_by_label",
    "format_estimate",
    "format_host_storage",
    "human",
    "no_facts_fix",
    "node_spaces",
    "resolve_storage_disks",
    "stable_disk_ids",
    "storage_hosts",
    "workload_hosts",
]
