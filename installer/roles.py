"""Role assignment: suggest one from the facts, validate one against the profile.

Pure: no I/O. The profile's ``suggest`` map says how to pick holders for each
role, with selectors over the hosts ranked strongest first:

- ``first(N)``: the N strongest hosts (the control plane);
- ``rest(N)``: every host outside ``first(N)``;
- ``all`` / ``none``;
- ``disk``: hosts with an eligible data disk.

Quorum roles (``odd: true``) are trimmed to an odd count: an even number of
members adds one more machine that can fail and no fault tolerance.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from installer.answer_checks import check_network, check_roles, quorum_text
from installer.answers import Answers, Host
from installer.hostfacts import BlockDevice, HostFacts
from installer.problems import Problem
from installer.profile import ProfileMeta, Requirements

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
SelectorKind = Literal["first", "rest", "all", "none", "disk"]

_SELECTOR_RE = re.compile(r"^\s*(first|rest)\s*\(\s*(\d+)\s*\)\s*$|^\s*(all|none|disk)\s*$")
_MIN_DATA_DISK = 5 * 2**30  # the storage core refuses smaller disks too


@dataclass(frozen=True)
class Selector:
    kind: SelectorKind
    count: int = 0

    def __str__(self) -> str:
        return f"{self.kind}({self.count})" if self.kind in ("first", "rest") else self.kind


def parse_selector(text: str) -> Selector:
    """``first(3)`` → Selector("first", 3). Raises ValueError with the accepted forms."""
    m = _SELECTOR_RE.match(text)
    if not m:
        raise ValueError(
            f"'{text}' is not a role selector (expected first(N), rest(N), all, none or disk)"
        )
    if m.group(1):
        kind: SelectorKind = "first" if m.group(1) == "first" else "rest"
        return Selector(kind, int(m.group(2)))
    word = m.group(3)
    if word == "all":
        return Selector("all")
    if word == "none":
        return Selector("none")
    return Selector("disk")


def facts_for(facts: Mapping[str, HostFacts], host: Host) -> HostFacts | None:
    """A host's facts, keyed by its label, name or address."""
    for key in (host.label, host.name, host.address):
        if key is not None and key in facts:
            return facts[key]
    return None


def meets(req: Requirements, f: HostFacts | None) -> bool:
    """Whether known facts meet a role's CPU, memory and CPU flag needs (unknown = no)."""
    if f is None or f.cpu is None or f.memory is None:
        return False
    if f.cpu.count < req.cpus:
        return False
    # A host "with 32 GB" reports a little less in /proc/meminfo (kernel reserve).
    if f.memory.total_bytes < req.memory_mb * 2**20 * 0.95:
        return False
    return all(flag in f.cpu.flags for flag in req.cpu_flags)


def strength(f: HostFacts | None) -> tuple[int, int]:
    """(CPUs, memory bytes); unknown facts rank last."""
    if f is None:
        return (0, 0)
    return (f.cpu.count if f.cpu else 0, f.memory.total_bytes if f.memory else 0)


def rank_hosts(answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]) -> list[Host]:
    """Hosts strongest first: meeting the control-plane needs, then CPUs, then memory.

    The sort is stable, so identical hosts keep the order the operator gave.
    """
    lead = meta.roles.get("control-plane")
    req = lead.requires if lead is not None else Requirements()

    def key(host: Host) -> tuple[bool, int, int]:
        f = facts_for(facts, host)
        cpus, mem = strength(f)
        return (meets(req, f), cpus, mem)

    return sorted(answers.hosts, key=key, reverse=True)


def _is_blank_data_disk(dev: BlockDevice) -> bool:
    return (
        dev.type == "disk"
        and not dev.children
        and not dev.mountpoints
        and dev.fstype is None
        and not dev.removable
        and not dev.read_only
        and dev.size_bytes >= _MIN_DATA_DISK
    )


def has_blank_disk(f: HostFacts | None) -> bool:
    """A fallback when no storage verdict is at hand: a whole, empty, unmounted disk.

    The storage core (``installer.storage``) decides eligibility for real; pass
    its answer to ``suggest_roles(disk_hosts=...)`` when you have it.
    """
    if f is None or not f.disks:
        return False
    return any(_is_blank_data_disk(d) for d in f.disks)


def suggest_roles(
    answers: Answers,
    meta: ProfileMeta,
    facts: Mapping[str, HostFacts],
    disk_hosts: Collection[str] | None = None,
) -> dict[str, list[str]]:
    """A role assignment (host label → roles, in the profile's role order).

    ``disk_hosts`` names the hosts (by label) that have an eligible data disk;
    without it, a host qualifies when it already names a storage_disk or its
    facts show a blank whole disk.
    """
    ranked = rank_hosts(answers, meta, facts)
    labels = [h.label for h in ranked]
    if disk_hosts is None:
        disk_set = {
            h.label
            for h in answers.hosts
            if h.storage_disk is not None or has_blank_disk(facts_for(facts, h))
        }
    else:
        disk_set = set(disk_hosts)

    selectors: dict[str, Selector] = {}
    for role, text in meta.suggest.items():
        if role in meta.roles:
            selectors[role] = parse_selector(text)

    holders: dict[str, list[str]] = {}
    for role, sel in selectors.items():
        if sel.kind != "first":
            continue
        chosen = labels[: sel.count]
        rule = meta.roles[role]
        if rule.max is not None:
            chosen = chosen[: rule.max]
        if rule.odd and len(chosen) % 2 == 0 and chosen:
            chosen = chosen[:-1]
        holders[role] = chosen

    # The VIP fronts the API: when both come from the same selector, the lb
    # holders follow the control plane instead of landing on a non-API host.
    cp_sel, lb_sel = selectors.get("control-plane"), selectors.get("lb")
    if cp_sel is not None and cp_sel == lb_sel and "control-plane" in holders:
        holders["lb"] = list(holders["control-plane"])

    for role, sel in selectors.items():
        if sel.kind == "first":
            continue
        rule = meta.roles[role]
        if sel.kind == "rest":
            first = set(labels[: sel.count])
            # A first(N) host trimmed out of every node role (odd counts, max)
            # would hold nothing that makes it a node: it joins the rest.
            node_roles = [r for r, s in selectors.items() if s.kind == "first" and r != "lb"]
            dropped = {
                label
                for label in first
                if node_roles and not any(label in holders[r] for r in node_roles)
            }
            chosen = [label for label in labels if label not in first or label in dropped]
        elif sel.kind == "all":
            chosen = list(labels)
        elif sel.kind == "disk":
            chosen = [label for label in labels if label in disk_set]
        else:
            chosen = []
        if rule.max is not None:
            chosen = chosen[: rule.max]
        if rule.odd and len(chosen) % 2 == 0 and chosen:
            chosen = chosen[:-1]
        holders[role] = chosen

    order = list(meta.roles)
    out: dict[str, list[str]] = {h.label: [] for h in answers.hosts}
    for role in order:
        for label in holders.get(role, []):
            out[label].append(role)
    return out


def apply_roles(answers: Answers, assignment: Mapping[str, Sequence[str]]) -> Answers:
    """A copy of ``answers`` with each host's roles replaced by the assignment's."""
    hosts = [
        h.model_copy(update={"roles": list(assignment.get(h.label, h.roles))})
        for h in answers.hosts
    ]
    return answers.model_copy(update={"hosts": hosts})


def host_networks_from_facts(answers: Answers, facts: Mapping[str, HostFacts]) -> dict[str, IPNet]:
    """Each host's subnet: the NIC address it is reached at, with its prefix."""
    out: dict[str, IPNet] = {}
    for host in answers.hosts:
        f = facts_for(facts, host)
        if f is None or not f.nics:
            continue
        for nic in f.nics:
            for addr in nic.addresses:
                if addr.address == host.address:
                    out[host.label] = ipaddress.ip_network(
                        f"{addr.address}/{addr.prefixlen}", strict=False
                    )
    return out


def validate_assignment(
    answers: Answers,
    meta: ProfileMeta,
    host_networks: Mapping[str, IPNet] | None = None,
    *,
    disks_chosen_later: bool = False,
) -> list[Problem]:
    """Everything wrong with a role assignment and its VIP, errors first.

    The counts and rules are ``check_roles``'s; this adds hosts left without a
    role and the VIP checks (against the hosts' subnets when discovery gave them).
    ``disks_chosen_later``: the storage disks are picked after the roles (as in
    the wizard), so a disk role without its disk is not reported yet.
    """
    checked = answers
    if disks_chosen_later:
        disk_roles = {r for r, rule in meta.roles.items() if rule.needs_disk}
        checked = answers.model_copy(
            update={
                "hosts": [
                    h.model_copy(update={"storage_disk": "/dev/to-be-chosen"})
                    if disk_roles & set(h.roles) and h.storage_disk is None
                    else h
                    for h in answers.hosts
                ]
            }
        )
    problems = list(check_roles(checked, meta))
    for i, host in enumerate(answers.hosts):
        if not host.roles:
            problems.append(
                Problem.at(
                    ("hosts", i, "roles"),
                    f"{host.label} has no role: it will not be part of the cluster",
                    "warning",
                )
            )
    seen = {p.message for p in problems}
    for p in check_network(answers, host_networks):
        if p.loc[:2] == ("network", "vip") and p.message not in seen:
            problems.append(p)
            seen.add(p.message)
    return sorted(problems, key=lambda p: p.severity != "error")


def assignment_summary(answers: Answers, meta: ProfileMeta) -> list[str]:
    """One line per role held: '3 etcd members: quorum 2, survives 1 failure'."""
    lines = []
    for role, rule in meta.roles.items():
        holders = answers.hosts_with(role)
        n = len(holders)
        if n == 0:
            continue
        names = ", ".join(h.label for h in holders)
        if rule.odd:
            text = quorum_text(n)  # "3 members: quorum 2, ..."
            count, _, rest = text.partition(" ")
            lines.append(f"{count} {role} {rest}")
        elif rule.needs_vip:
            vip = answers.network.vip
            target = f"the VIP {vip}" if vip is not None else "the VIP (not set yet)"
            lines.append(f"{n} {role} host{'s' if n != 1 else ''} hold {target}: {names}")
        else:
            lines.append(f"{n} {role} host{'s' if n != 1 else ''}: {names}")
    return lines


# --------------------------------------------------------------------------- profile fit


@dataclass(frozen=True)
class ProfileFit:
    """How well the discovered hosts suit one profile."""

    profile: str
    fitting: tuple[str, ...]  # hosts that meet what their suggested roles need
    short: dict[str, str]  # host -> what it lacks, in words
    disk_hosts: int  # hosts with a data disk, for a profile that needs them
    problems: tuple[str, ...]  # why the profile cannot work on these hosts

    @property
    def usable(self) -> bool:
        return not self.problems and not self.short


def _lacks(req: Requirements, f: HostFacts | None) -> str | None:
    if f is None or f.cpu is None or f.memory is None:
        return "not discovered"
    missing = []
    if f.cpu.count < req.cpus:
        missing.append(f"{req.cpus} CPUs (has {f.cpu.count})")
    if f.memory.total_bytes < req.memory_mb * 2**20 * 0.95:
        missing.append(
            f"{req.memory_mb / 1024:.1f} GiB RAM (has {f.memory.total_bytes / 2**30:.1f})"
        )
    flags = [flag for flag in req.cpu_flags if flag not in f.cpu.flags]
    if flags:
        missing.append("CPU " + ", ".join(flags))
    return "needs " + ", ".join(missing) if missing else None


def profile_fit(
    answers: Answers,
    meta: ProfileMeta,
    facts: Mapping[str, HostFacts],
    disk_hosts: Collection[str] | None = None,
) -> ProfileFit:
    """Which hosts meet the profile with the roles it would suggest for them."""
    suggestion = suggest_roles(answers, meta, facts, disk_hosts)
    fitting: list[str] = []
    short: dict[str, str] = {}
    for host in answers.hosts:
        roles = suggestion.get(host.label) or list(meta.roles)[:1]
        lacks = [
            (role, why)
            for role in roles
            if (why := _lacks(meta.roles[role].requires, facts_for(facts, host))) is not None
        ]
        if lacks:
            role, why = lacks[0]
            short[host.label] = f"{why} for {role}"
        else:
            fitting.append(host.label)
    n_disk = sum(1 for roles in suggestion.values() if "storage" in roles)
    problems = []
    for role, rule in meta.roles.items():
        held = sum(1 for roles in suggestion.values() if role in roles)
        if held < rule.min:
            what = "a data disk" if rule.needs_disk else f"role {role}"
            problems.append(f"needs {rule.min} host(s) with {what}; {held} available")
    return ProfileFit(meta.name, tuple(fitting), short, n_disk, tuple(problems))


def best_profile(fits: Sequence[ProfileFit], metas: Mapping[str, ProfileMeta]) -> str | None:
    """The profile to preselect: one every host fits, using the most of the machines.

    Among usable profiles, prefer one with a storage backend when the hosts have
    the disks for it, then the one asking the most of the hosts (a profile whose
    needs they meet comfortably leaves capacity unused). Otherwise the profile
    the most hosts fit.
    """
    if not fits:
        return None

    def weight(fit: ProfileFit) -> tuple[bool, int, bool, int]:
        meta = metas[fit.profile]
        demand = max(
            (r.requires.cpus * 1024 + r.requires.memory_mb for r in meta.roles.values()), default=0
        )
        has_storage = meta.storage_backend != "none" and fit.disk_hosts > 0
        return (fit.usable, len(fit.fitting), has_storage, demand)

    return max(fits, key=weight).profile
