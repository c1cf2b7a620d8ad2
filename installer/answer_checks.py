"""Checks of what an answers file means, beyond its shape. Pure: no I/O but reading profiles."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from installer.answers import Answers, Host, Network, Sections, Storage, find_host
from installer.problems import Problem, Severity
from installer.profile import (
    ProfileError,
    ProfileMeta,
    available_profiles,
    load_profile_meta,
    option_errors,
)

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def quorum_text(n: int) -> str:
    """'3 members: quorum 2, survives 1 failure'."""
    quorum = n // 2 + 1
    tolerated = (n - 1) // 2
    members = "member" if n == 1 else "members"
    failures = "failure" if tolerated == 1 else "failures"
    return f"{n} {members}: quorum {quorum}, survives {tolerated} {failures}"


def check_answers(answers: Answers) -> list[Problem]:
    return check_sections(Sections.of(answers))


def check_sections(parts: Sections) -> list[Problem]:
    """The meaning checks of every part with a valid shape; those that need a
    part that is not valid are skipped (see ``Sections``)."""
    problems: list[Problem] = []
    problems += _check_unique(parts.hosts)
    meta = _profile(parts.profile, problems) if parts.profile is not None else None
    if meta is not None:
        problems += _check_roles(parts, meta)
        if parts.versions is not None:
            problems += _check_versions(parts.versions, meta)
        if parts.options is not None:
            problems += [
                Problem.at(("options", key), message)
                for key, message in option_errors(meta, parts.options).items()
            ]
    if parts.network is not None:
        problems += _check_network(parts.network, parts.hosts)
    if parts.storage is not None:
        if parts.all_hosts:
            problems += _check_wipe(parts.storage, parts.hosts)
        problems += _check_volumes(parts.storage)
    return problems


def _check_volumes(storage: Storage) -> list[Problem]:
    """Features and volume overrides against the workload catalogue."""
    from installer.workloads import CatalogueError, load_catalogue, resolve_volumes

    try:
        catalogue = load_catalogue()
    except CatalogueError as exc:
        return [
            Problem.at(("storage", "features"), f"the workload catalogue cannot be read: {exc}")
        ]
    return resolve_volumes(catalogue, storage)[1]


def _profile(profile: str, problems: list[Problem]) -> ProfileMeta | None:
    if profile not in available_profiles():
        known = " | ".join(available_profiles())
        problems.append(Problem.at(("profile",), f"unknown profile '{profile}' (expected {known})"))
        return None
    try:
        return load_profile_meta(profile)
    except ProfileError as exc:
        problems.append(Problem.at(("profile",), f"profile cannot be loaded: {exc}"))
        return None


def _check_unique(hosts: dict[int, Host]) -> list[Problem]:
    problems = []
    seen_addr: dict[str, int] = {}
    seen_name: dict[str, int] = {}
    for i, host in hosts.items():
        addr = host.address.lower()
        if addr in seen_addr:
            problems.append(
                Problem.at(
                    ("hosts", i, "address"), f"'{host.address}' is already hosts[{seen_addr[addr]}]"
                )
            )
        else:
            seen_addr[addr] = i
        if host.name is not None:
            name = host.name.lower()
            if name in seen_name:
                problems.append(
                    Problem.at(
                        ("hosts", i, "name"), f"'{host.name}' is already hosts[{seen_name[name]}]"
                    )
                )
            else:
                seen_name[name] = i
    return problems


def check_roles(answers: Answers, meta: ProfileMeta) -> list[Problem]:
    """Role names, counts and per-role needs against the profile's rules."""
    return _check_roles(Sections.of(answers), meta)


def _check_roles(parts: Sections, meta: ProfileMeta) -> list[Problem]:
    problems = []
    known = ", ".join(meta.roles)
    for i, host in parts.hosts.items():
        for j, role in enumerate(host.roles):
            if role not in meta.roles:
                problems.append(
                    Problem.at(
                        ("hosts", i, "roles", j),
                        f"role '{role}' is not used by profile {meta.name} (its roles: {known})",
                    )
                )
                continue
            rule = meta.roles[role]
            if rule.needs_disk and host.storage_disk is None:
                problems.append(
                    Problem.at(
                        ("hosts", i),
                        f"{host.label} has role '{role}' but no storage_disk: name the disk it contributes",
                    )
                )
    if not parts.all_hosts:
        return problems  # counting what is there would miscount
    vip = parts.network.vip if parts.network is not None else None
    for role, rule in meta.roles.items():
        n = sum(role in h.roles for h in parts.hosts.values())
        if n < rule.min:
            problems.append(
                Problem.at(
                    ("hosts",),
                    f"profile {meta.name} needs at least {rule.min} '{role}' host(s); {n} assigned",
                )
            )
        if rule.max is not None and n > rule.max:
            problems.append(
                Problem.at(
                    ("hosts",),
                    f"profile {meta.name} allows at most {rule.max} '{role}' host(s); {n} assigned",
                )
            )
        if rule.odd and n > 0 and n % 2 == 0:
            problems.append(
                Problem.at(
                    ("hosts",),
                    f"{n} '{role}' hosts is an even number: {quorum_text(n)}, no better than "
                    f"{quorum_text(n - 1)}, and one more machine that can fail. Use {n - 1} or {n + 1}",
                )
            )
        if rule.needs_vip and n > 0 and parts.network is not None and vip is None:
            problems.append(
                Problem.at(
                    ("network", "vip"),
                    f"hosts with role '{role}' hold the virtual IP: set network.vip",
                )
            )
    if meta.requires_vip and parts.network is not None and vip is None and len(parts.hosts) > 1:
        problems.append(
            Problem.at(
                ("network",), f"profile {meta.name} needs network.vip, the cluster's virtual IP"
            )
        )
    return problems


def _check_versions(versions: Mapping[str, str], meta: ProfileMeta) -> list[Problem]:
    problems = []
    for key in versions:
        if key not in meta.versions:
            problems.append(
                Problem.at(
                    ("versions", key),
                    f"profile {meta.name} has no version '{key}' (it pins: {', '.join(meta.versions)})",
                )
            )
    problems += [
        Problem.at(("versions", key), message)
        for key, message in meta.version_errors(versions).items()
    ]
    return problems


def _host_ips(
    hosts: dict[int, Host],
) -> list[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    out = []
    for i, host in hosts.items():
        try:
            out.append((i, ipaddress.ip_address(host.address)))
        except ValueError:
            continue  # a hostname: resolved only at discovery
    return out


def check_network(
    answers: Answers, host_networks: Mapping[str, IPNet] | None = None
) -> list[Problem]:
    """VIP and subnet sanity. ``host_networks`` (host label -> its subnet) comes from discovery."""
    return _check_network(answers.network, dict(enumerate(answers.hosts)), host_networks)


def _check_network(
    net: Network, hosts: dict[int, Host], host_networks: Mapping[str, IPNet] | None = None
) -> list[Problem]:
    problems = []
    named: list[tuple[str, IPNet]] = [
        ("pod_subnet", net.pod_subnet),
        ("service_subnet", net.service_subnet),
    ]
    if net.host_subnet is not None:
        named.append(("host_subnet", net.host_subnet))
    for a in range(len(named)):
        for b in range(a + 1, len(named)):
            (name_a, net_a), (name_b, net_b) = named[a], named[b]
            if net_a.version == net_b.version and net_a.overlaps(net_b):
                problems.append(
                    Problem.at(
                        ("network", name_b),
                        f"{net_b} overlaps {name_a} {net_a}: pick a disjoint range",
                    )
                )
    for i, ip in _host_ips(hosts):
        for name, subnet in named[:2]:
            if ip.version == subnet.version and ip in subnet:
                problems.append(
                    Problem.at(
                        ("hosts", i, "address"),
                        f"{ip} lies inside {name} {subnet}: cluster traffic to it would be misrouted; "
                        f"choose another {name}",
                    )
                )
        if (
            net.host_subnet is not None
            and ip.version == net.host_subnet.version
            and ip not in net.host_subnet
        ):
            problems.append(
                Problem.at(
                    ("hosts", i, "address"),
                    f"{ip} is outside host_subnet {net.host_subnet}",
                    "warning",
                )
            )
    vip = net.vip
    if vip is None:
        return problems
    for i, ip in _host_ips(hosts):
        if ip == vip:
            problems.append(
                Problem.at(
                    ("network", "vip"),
                    f"{vip} is the address of hosts[{i}] ({hosts[i].label}); the VIP must be "
                    "a free address that moves between hosts",
                )
            )
    for name, subnet in named[:2]:
        if vip.version == subnet.version and vip in subnet:
            problems.append(Problem.at(("network", "vip"), f"{vip} lies inside {name} {subnet}"))
    subnets: list[tuple[str, IPNet]] = []
    if net.host_subnet is not None:
        subnets.append(("host_subnet", net.host_subnet))
    subnets += list((host_networks or {}).items())
    for label, subnet in subnets:
        if vip.version != subnet.version or vip not in subnet:
            problems.append(
                Problem.at(
                    ("network", "vip"),
                    f"{vip} is outside {label} {subnet}: a VIP must be in the hosts' subnet "
                    "so that ARP can move it between them",
                )
            )
            break
        if vip in (subnet.network_address, subnet.broadcast_address) and subnet.prefixlen < 31:
            problems.append(
                Problem.at(
                    ("network", "vip"), f"{vip} is the network or broadcast address of {subnet}"
                )
            )
            break
    return problems


def _check_wipe(storage: Storage, hosts: dict[int, Host]) -> list[Problem]:
    problems = []
    for i, item in enumerate(storage.wipe):
        label, _, disk = item.partition(":")
        host = find_host(hosts.values(), label)
        if host is None:
            problems.append(
                Problem.at(("storage", "wipe", i), f"'{label}' is not one of the hosts")
            )
        elif host.storage_disk is not None and host.storage_disk != disk:
            problems.append(
                Problem.at(
                    ("storage", "wipe", i),
                    f"{label}'s storage_disk is {host.storage_disk}, not {disk}: the consent "
                    "counts only if discovery finds that both name the same disk (a by-id "
                    f"link, WWN or serial of it); name {host.storage_disk} to be sure",
                    "warning",
                )
            )
    return problems


def check_environment(
    answers: Answers,
    environ: Mapping[str, str],
    severity: Severity = "error",
) -> list[Problem]:
    """Every env var that answers.yaml names must be set when the run needs it."""
    problems = []
    seen: set[str] = set()

    def need(loc: tuple[str | int, ...], var: str | None, what: str) -> None:
        if var is None or var in seen:
            return
        seen.add(var)
        if not environ.get(var):
            problems.append(
                Problem.at(
                    loc,
                    f"environment variable {var} ({what}) is not set: export it first",
                    severity,
                )
            )

    need(("ssh", "password_env"), answers.ssh.password_env, "SSH password")
    need(("ssh", "sudo_password_env"), answers.ssh.sudo_password_env, "sudo password")
    for i, host in enumerate(answers.hosts):
        if host.ssh is not None:
            need(
                ("hosts", i, "ssh", "password_env"),
                host.ssh.password_env,
                f"SSH password of {host.label}",
            )
            need(
                ("hosts", i, "ssh", "sudo_password_env"),
                host.ssh.sudo_password_env,
                f"sudo password of {host.label}",
            )
    return problems
