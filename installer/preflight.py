"""Preflight: a verdict (pass / warn / fail, with a fix) per host and check. Pure: no I/O.

``run_preflight(answers, meta, facts)`` runs every check of ``CHECKS`` on every
host and returns a ``PreflightReport``: a host x check grid of ``Finding``s.
Requirements (CPUs, memory, CPU flags, ports, OS) come from the profile, per
role, so a new profile brings its own. A fact discovery could not learn gives a
warn "could not check ...: <reason>", never an exception.

Cells: a check gives at most one finding per host. A check that does not apply
to a host gives none (``storage-disk`` on a host without ``storage_disk``), and
a host discovery did not reach gets only its ``reachable`` fail. ``vip-free`` is
about the cluster, not a host: its finding has ``host`` None, and it is absent
when there is no VIP or the caller did not probe it (``vip_answers`` None).

Checks, in display order (``check_ids()``):

- ``reachable``, ``sudo``: discovery reached the host; sudo works.
- ``os``: the profile's ``requires.os`` when set, else Ubuntu 22.04/24.04, Debian
  12/13, RHEL-family 9/10; other versions and known derivatives warn, the rest fail.
- ``cpu-count``, ``memory``, ``cpu-flags``: the max over the host's roles (memory
  within 5 % below the minimum warns: MemTotal hides the kernel's reserve).
- ``hugepages``: the role's ``requires.hugepages_mib`` of 2 MiB pages are reserved already,
  or MemTotal holds them besides the role's memory_mb (within 5 % below warns); a default
  huge page size other than 2 MiB fails. Only on hosts whose roles ask for huge pages.
- ``kernel-modules``: every module of the roles' ``requires.kernel_modules`` is loaded,
  built in or loadable (``modinfo``); missing fails, not known warns. Only where asked.
- ``swap`` (warn), ``cgroup`` (v1 fails from Kubernetes 1.35, warns before).
- ``hostname`` (RFC 1123, not localhost), ``duplicate-hostname``,
  ``duplicate-machine-id``, ``duplicate-product-uuid``, ``duplicate-mac`` (cloned VMs).
- ``clock-skew`` (> 30 s from the median of the hosts' clocks), ``time-sync`` (warn).
- ``nics`` (fewer than two: warn), ``subnet`` (hosts and VIP on one subnet, via
  ``answer_checks.check_network``), ``ports`` (required ports already listening),
  ``firewall`` (active without the required ports).
- ``container-storage``: the runtime's image store on its own disk or LV (warn).
- ``storage-disk``: the chosen disk, judged by ``installer.storage_disks``; a disk
  that holds data fails unless ``storage.wipe`` consents, then warns.
- ``vip-free``: the VIP does not already answer (cluster-wide).

JSON shape (``findings_to_dict``, for ``discover --json``; keys are stable, new
keys may be added, ``version`` changes if one is renamed or removed)::

    {
      "version": 1,
      "failed": true,                       # any finding is "fail"
      "counts": {"pass": 40, "warn": 3, "fail": 1},
      "checks": [{"id": "reachable", "title": "Reachable"}, ...],   # columns, in order
      "hosts": ["kn0", "kn1", ...],         # rows: host labels, answers order
      "grid": {"kn0": {"reachable": "pass", "swap": "warn", ...}, ...},  # cell statuses
      "cluster": [<finding>, ...],          # findings about the whole cluster (vip-free)
      "findings": [<finding>, ...]          # all of them: hosts in order, then checks in order
    }

    <finding> = {"check": "swap", "host": "kn0" | null, "status": "pass" | "warn" | "fail",
                 "message": "...", "fix": "..." , "detail": "..." | null}

``grid`` has a key for every host, and in it a key for every check that gave a
finding on that host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from installer.answers import Answers, Host
from installer.hostfacts import HostFacts
from installer.preflight_cluster import (
    check_clock_skew,
    check_duplicate_hostname,
    check_duplicate_mac,
    check_duplicate_machine_id,
    check_duplicate_product_uuid,
    check_subnet,
    check_vip_free,
)
from installer.preflight_disk import check_container_storage, check_storage_disk
from installer.preflight_host import (
    check_cgroup,
    check_cpu_count,
    check_cpu_flags,
    check_hostname,
    check_hugepages,
    check_kernel_modules,
    check_memory,
    check_os,
    check_reachable,
    check_sudo,
    check_swap,
    check_time_sync,
)
from installer.preflight_model import STATUS_RANK, Context, Finding, Status, worst
from installer.preflight_network import check_firewall, check_nics, check_ports
from installer.profile import ProfileMeta

__all__ = [
    "CHECKS",
    "CheckSpec",
    "Finding",
    "PreflightReport",
    "Status",
    "check_ids",
    "check_title",
    "finding_to_dict",
    "findings_to_dict",
    "run_preflight",
    "status_rank",
]

HostCheck = Callable[[Context, Host, HostFacts], Finding | None]
ClusterCheck = Callable[[Context], Finding | None]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str  # a short column header
    scope: Literal["host", "cluster"]
    host_fn: HostCheck | None = None
    cluster_fn: ClusterCheck | None = None


def _host(id: str, title: str, fn: HostCheck) -> CheckSpec:
    return CheckSpec(id, title, "host", host_fn=fn)


# The registry, in display order. A new check is one line here.
CHECKS: tuple[CheckSpec, ...] = (
    _host("reachable", "Reachable", check_reachable),
    _host("sudo", "sudo", check_sudo),
    _host("os", "OS", check_os),
    _host("cpu-count", "CPUs", check_cpu_count),
    _host("memory", "Memory", check_memory),
    _host("cpu-flags", "CPU flags", check_cpu_flags),
    _host("hugepages", "Huge pages", check_hugepages),
    _host("kernel-modules", "Kernel modules", check_kernel_modules),
    _host("swap", "Swap", check_swap),
    _host("cgroup", "cgroup", check_cgroup),
    _host("hostname", "Hostname", check_hostname),
    _host("duplicate-hostname", "Unique name", check_duplicate_hostname),
    _host("duplicate-machine-id", "Unique machine-id", check_duplicate_machine_id),
    _host("duplicate-product-uuid", "Unique product_uuid", check_duplicate_product_uuid),
    _host("duplicate-mac", "Unique MACs", check_duplicate_mac),
    _host("clock-skew", "Clock", check_clock_skew),
    _host("time-sync", "Time sync", check_time_sync),
    _host("nics", "NICs", check_nics),
    _host("subnet", "Subnet", check_subnet),
    _host("ports", "Ports free", check_ports),
    _host("firewall", "Firewall", check_firewall),
    _host("container-storage", "Container storage", check_container_storage),
    _host("storage-disk", "Storage disk", check_storage_disk),
    CheckSpec("vip-free", "VIP free", "cluster", cluster_fn=check_vip_free),
)
_BY_ID = {c.id: c for c in CHECKS}
_ORDER = {c.id: i for i, c in enumerate(CHECKS)}


def check_ids() -> tuple[str, ...]:
    """Every check id, in the stable display order."""
    return tuple(c.id for c in CHECKS)


def check_title(check_id: str) -> str:
    spec = _BY_ID.get(check_id)
    return spec.title if spec is not None else check_id


@dataclass(frozen=True)
class PreflightReport:
    """Findings as a host x check grid, plus cluster-wide findings (``host`` None)."""

    hosts: tuple[str, ...]  # host labels, answers order
    findings: tuple[Finding, ...]  # hosts in order, then checks in order; cluster last

    @property
    def failed(self) -> bool:
        return any(f.status == "fail" for f in self.findings)

    @property
    def status(self) -> Status:
        return worst([f.status for f in self.findings])

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == "fail")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == "warn")

    @property
    def cluster(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.host is None)

    def checks(self) -> tuple[str, ...]:
        """Ids of the checks that gave at least one finding, in display order."""
        seen = {f.check for f in self.findings}
        return tuple(c for c in check_ids() if c in seen)

    def cell(self, host: str, check: str) -> Finding | None:
        return next((f for f in self.findings if f.host == host and f.check == check), None)

    def row(self, host: str) -> tuple[Finding, ...]:
        """A host's findings, in check order."""
        return tuple(f for f in self.findings if f.host == host)

    def column(self, check: str) -> tuple[Finding, ...]:
        """One check's findings, hosts in order."""
        return tuple(f for f in self.findings if f.check == check)

    def grid(self) -> dict[str, dict[str, Finding]]:
        """host -> check id -> finding (a check that does not apply has no key)."""
        out: dict[str, dict[str, Finding]] = {h: {} for h in self.hosts}
        for f in self.findings:
            if f.host is not None:
                out.setdefault(f.host, {})[f.check] = f
        return out

    def counts(self) -> dict[Status, int]:
        out: dict[Status, int] = {"pass": 0, "warn": 0, "fail": 0}
        for f in self.findings:
            out[f.status] += 1
        return out


def _internal_error(check: str, host: str | None, exc: Exception) -> Finding:
    where = f"{host}: " if host else ""
    return Finding(
        check,
        host,
        "warn",
        f"{where}internal error in check {check}: {type(exc).__name__}: {exc}",
        "report this as a bug in fmp-install, with `fmp-install discover --save-raw DIR`",
    )


def run_preflight(
    answers: Answers,
    meta: ProfileMeta,
    facts: Mapping[str, HostFacts],
    *,
    vip_answers: bool | None = None,
    now: float | None = None,
    unreached: Mapping[str, tuple[str, str]] | None = None,
    installed_before: bool = False,
    sudo_checked: Mapping[str, tuple[str, str] | None] | None = None,
) -> PreflightReport:
    """Run every check on every host.

    ``facts`` is keyed by host label (``Host.label``), name or address; a host with
    no entry was not reached. ``vip_answers`` is the caller's probe of network.vip
    (True: something answers it; None: not probed). ``now`` is the installer's clock
    at discovery (epoch seconds), used as a tie-breaker for the clock median.
    ``unreached`` maps a host label to why it was not reached and what to do
    (from the SSH layer), so the ``reachable`` finding says it in plain words.
    ``sudo_checked``: the installer's own sudo check with the password, by host
    label: None when it worked, else (why, fix); it decides the ``sudo`` check.
    ``installed_before``: an earlier run of this install holds the ports and the
    consented storage disks now, so those failures become warnings on a re-run.
    """
    ctx = Context(
        answers, meta, facts, vip_answers=vip_answers, now=now, sudo_checked=sudo_checked or {}
    )
    findings: list[Finding] = []
    for host in answers.hosts:
        label = host.label
        f = ctx.facts_for(host)
        if f is None:
            why, fix = (unreached or {}).get(label) or (
                f"{label}: not discovered: no facts for {host.address}",
                f"check that `ssh {host.address}` works with the answers' ssh settings, "
                "then run discovery again",
            )
            findings.append(Finding("reachable", label, "fail", why, fix))
            continue
        for spec in CHECKS:
            if spec.host_fn is None:
                continue
            try:
                finding = spec.host_fn(ctx, host, f)
            except Exception as exc:  # a check bug must not hide the other checks
                finding = _internal_error(spec.id, label, exc)
            if finding is not None:
                findings.append(finding)
    for spec in CHECKS:
        if spec.cluster_fn is None:
            continue
        try:
            finding = spec.cluster_fn(ctx)
        except Exception as exc:
            finding = _internal_error(spec.id, None, exc)
        if finding is not None:
            findings.append(finding)
    if installed_before:
        findings = [_after_earlier_run(answers, f) for f in findings]
    return PreflightReport(tuple(h.label for h in answers.hosts), tuple(findings))


def _after_earlier_run(answers: Answers, finding: Finding) -> Finding:
    """A re-run finds its own earlier work: listening ports, and OSD/pool disks in use."""
    if finding.status != "fail" or finding.host is None:
        return finding
    host = answers.host(finding.host)
    consented = host is not None and any(
        w.partition(":")[0] in (host.name, host.address)
        and w.partition(":")[2] == host.storage_disk
        for w in answers.storage.wipe
    )
    if finding.check == "ports" or (finding.check == "storage-disk" and consented):
        return replace(
            finding,
            status="warn",
            message=finding.message + " (expected: an earlier run of this install holds it)",
        )
    return finding


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "check": f.check,
        "host": f.host,
        "status": f.status,
        "message": f.message,
        "fix": f.fix,
        "detail": f.detail,
    }


def findings_to_dict(report: PreflightReport) -> dict[str, Any]:
    """The stable JSON shape documented in this module's docstring."""
    present = report.checks()
    grid = {
        host: {check: f.status for check, f in sorted(row.items(), key=lambda kv: _ORDER[kv[0]])}
        for host, row in report.grid().items()
    }
    return {
        "version": 1,
        "failed": report.failed,
        "counts": dict(report.counts()),
        "checks": [{"id": c, "title": check_title(c)} for c in present],
        "hosts": list(report.hosts),
        "grid": grid,
        "cluster": [finding_to_dict(f) for f in report.cluster],
        "findings": [finding_to_dict(f) for f in report.findings],
    }


def status_rank(status: Status) -> int:
    """0 pass, 1 warn, 2 fail: for sorting or colouring."""
    return STATUS_RANK[status]
