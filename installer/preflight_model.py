"""Shared pieces of the preflight checks: findings, the check context, role needs.

Pure: no I/O. ``installer.preflight`` is the public entry point; this module and
the other ``preflight_*`` modules hold its parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, TypeVar

from installer.answers import Answers, Host
from installer.hostfacts import HostFacts
from installer.profile import ProfileMeta

Status = Literal["pass", "warn", "fail"]
STATUS_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}

RERUN_FIX = "fix what stopped discovery from reading it (see the reason), then run discovery again"


@dataclass(frozen=True)
class Finding:
    """The verdict of one check on one host (``host`` None: the cluster as a whole)."""

    check: str
    host: str | None
    status: Status
    message: str  # names the host and the value found
    fix: str = ""  # the command or setting that fixes it; empty on a pass
    detail: str | None = None


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=STATUS_RANK.__getitem__, default="pass")


def fmt_bytes(n: int | float) -> str:
    """'931.5 GiB', '2.0 TiB', '512 MiB' (powers of two, as lsblk and meminfo count)."""
    if not math.isfinite(n):
        return str(n)
    size = float(n)
    if abs(size) < 2**30:
        return f"{size / 2**20:.0f} MiB"
    if abs(size) < 2**40:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**40:.1f} TiB"


def unknown_finding(check: str, label: str, facts: HostFacts, fact: str, what: str) -> Finding:
    """A warn for a fact discovery could not learn, with the reason it gave."""
    reason = facts.unknown.get(fact) or "not reported by discovery"
    return Finding(
        check, label, "warn", f"{label}: could not check {what}: {reason}", RERUN_FIX, None
    )


def facts_for(facts: Mapping[str, HostFacts], host: Host) -> HostFacts | None:
    """A host's facts, keyed by its label, name or address."""
    for key in (host.label, host.name, host.address):
        if key is not None and key in facts:
            return facts[key]
    return None


@dataclass(frozen=True)
class RoleNeeds:
    """What one host needs: the maximum over the roles it holds.

    With no role assigned yet, the host is measured against the least that any
    role of the profile needs (``assigned`` False): it fails only if it could
    hold no role at all.
    """

    roles: tuple[str, ...]
    assigned: bool
    cpus: int
    cpus_role: str | None
    memory_mb: int
    memory_role: str | None
    cpu_flags: Mapping[str, tuple[str, ...]]  # flag -> roles needing it
    ports: Mapping[int, tuple[str, ...]]  # TCP port -> roles needing it
    os: tuple[tuple[str, tuple[str, ...]], ...]  # (role, allowed os entries), roles that set one

    def why(self, role: str | None) -> str:
        if not self.assigned:
            return f"the least any role needs (no role assigned yet: {', '.join(self.roles)})"
        return f"role {role}" if role else "its roles"


def role_needs(host: Host, meta: ProfileMeta) -> RoleNeeds:
    held = [r for r in host.roles if r in meta.roles]
    if held:
        rules = [(r, meta.roles[r].requires) for r in held]
        cpu_role, cpu_req = max(rules, key=lambda rr: rr[1].cpus)
        mem_role, mem_req = max(rules, key=lambda rr: rr[1].memory_mb)
        flags: dict[str, list[str]] = {}
        ports: dict[int, list[str]] = {}
        for role, req in rules:
            for flag in req.cpu_flags:
                flags.setdefault(flag.lower(), []).append(role)
            for port in req.ports:
                ports.setdefault(port, []).append(role)
        return RoleNeeds(
            roles=tuple(held),
            assigned=True,
            cpus=cpu_req.cpus,
            cpus_role=cpu_role,
            memory_mb=mem_req.memory_mb,
            memory_role=mem_role,
            cpu_flags={k: tuple(v) for k, v in flags.items()},
            ports={k: tuple(v) for k, v in sorted(ports.items())},
            os=tuple((role, req.os) for role, req in rules if req.os),
        )
    all_rules = [rule.requires for rule in meta.roles.values()]
    if not all_rules:
        return RoleNeeds((), False, 1, None, 0, None, {}, {}, ())
    common = set.intersection(*(set(f.lower() for f in r.cpu_flags) for r in all_rules))
    return RoleNeeds(
        roles=tuple(meta.roles),
        assigned=False,
        cpus=min(r.cpus for r in all_rules),
        cpus_role=None,
        memory_mb=min(r.memory_mb for r in all_rules),
        memory_role=None,
        cpu_flags={flag: () for flag in sorted(common)},
        ports={},
        os=(),
    )


_T = TypeVar("_T")


@dataclass
class Context:
    """Everything a check may read: the answers, the profile, every host's facts."""

    answers: Answers
    meta: ProfileMeta
    facts: Mapping[str, HostFacts]
    vip_answers: bool | None = None
    now: float | None = None
    # The installer's sudo check with the password: label -> None (works) or (why, fix).
    sudo_checked: Mapping[str, tuple[str, str] | None] = field(default_factory=dict)
    _needs: dict[str, RoleNeeds] = field(default_factory=dict, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: str, compute: Callable[[], _T]) -> _T:
        """``compute()`` once per run: what a per-host check derives from every host."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: _T = self._memo[key]
        return value

    def facts_for(self, host: Host) -> HostFacts | None:
        return facts_for(self.facts, host)

    def needs(self, host: Host) -> RoleNeeds:
        if host.label not in self._needs:
            self._needs[host.label] = role_needs(host, self.meta)
        return self._needs[host.label]

    @cached_property
    def discovered(self) -> tuple[tuple[Host, HostFacts], ...]:
        """(host, facts) of every host discovery reached, in answers order."""
        out = []
        for host in self.answers.hosts:
            f = self.facts_for(host)
            if f is not None:
                out.append((host, f))
        return tuple(out)

    def version(self, key: str) -> str | None:
        return self.meta.version(key, self.answers.versions.get(key))
