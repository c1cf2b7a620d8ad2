"""Firewalls: ufw, firewalld, nftables and iptables, and which one is in charge."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from installer.facts.textparse import (
    colon_pairs,
    split_lines,
)
from installer.hostfacts import (
    Firewall,
)

_FIREWALLD_SERVICES = {
    "ssh": (22,),
    "http": (80,),
    "https": (443,),
    "kube-apiserver": (6443,),
    "kubelet": (10250,),
    "etcd-client": (2379,),
    "etcd-server": (2380,),
    "kube-control-plane": (6443, 2379, 2380, 10250, 10257, 10259),
    "ceph-mon": (3300, 6789),
}
_UFW_APPS = {"openssh": (22,), "ssh": (22,)}
_MAX_RANGE = 65535


def _port_spec(spec: str) -> set[int] | None:
    """``22``, ``80,443``, ``2379-2380`` or ``2379:2380`` → ports; None when not ports."""
    ports: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"(\d{1,5})(?:[-:](\d{1,5}))?", part.strip())
        if not m:
            return None
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else low
        if not 0 < low <= high < 65536 or high - low > _MAX_RANGE:
            return None
        ports.update(range(low, high + 1))
    return ports


def parse_ufw_status(text: str) -> Firewall | None:
    """``ufw status``: active or not, and the TCP ports its ALLOW/LIMIT rules open."""
    status = re.search(r"^Status:\s*(\w+)", text, re.MULTILINE)
    if not status:
        return None
    if status.group(1) != "active":
        return Firewall(active=False, kind="ufw")
    ports: set[int] = set()
    for line in split_lines(text):
        # "22/tcp (v6)  ALLOW IN  Anywhere"; "22/tcp (OpenSSH (v6))" in verbose mode.
        m = re.match(r"^(\S+)(?:\s+\(.*\))?\s+(ALLOW|LIMIT)(?:\s+(IN|OUT|FWD))?(?:\s|$)", line)
        if not m or m.group(3) in ("OUT", "FWD"):  # outgoing and routed rules open nothing here
            continue
        target, _, proto = m.group(1).partition("/")
        if proto not in ("", "tcp"):
            continue
        parsed = _port_spec(target)
        ports.update(parsed if parsed is not None else _UFW_APPS.get(target.lower(), ()))
    return Firewall(active=True, kind="ufw", open_ports=frozenset(ports))


def parse_ufw_rules(text: str) -> Firewall | None:
    """The script's ufw probe: ``ENABLED=`` from /etc/ufw/ufw.conf, then the
    ``### tuple ###`` lines of user.rules and user6.rules.

    The same facts as ``ufw status`` without starting ufw, a Python program that
    cost 40% of the discovery script's CPU. Tuple fields: action, protocol,
    destination port, destination, source port, source, [application,]
    direction. A rule limited to some sources still counts its port as open.
    """
    enabled = re.search(r'^ENABLED=\s*"?(\w+)', text, re.MULTILINE)
    if not enabled:
        return None
    if enabled.group(1).lower() != "yes":
        return Firewall(active=False, kind="ufw")
    ports: set[int] = set()
    for line in split_lines(text):
        if not line.startswith("### tuple ###"):
            continue
        fields = line.split()[3:]
        if len(fields) < 6:
            continue
        action, proto, dport = fields[0], fields[1], fields[2]
        direction = fields[-1] if fields[-1] in ("in", "out") else "in"
        if action in ("allow", "limit") and proto in ("tcp", "any") and direction == "in":
            ports.update(_port_spec(dport) or ())
    return Firewall(active=True, kind="ufw", open_ports=frozenset(ports))


def parse_ufw(text: str) -> Firewall | None:
    """The ufw section: the rule files (this script) or ``ufw status`` (older raw outputs)."""
    if re.search(r"^Status:", text, re.MULTILINE):
        return parse_ufw_status(text)
    return parse_ufw_rules(text)


def parse_firewalld(text: str) -> Firewall | None:
    """The script's ``state:``/``ports:``/``services:`` lines from ``firewall-cmd``."""
    values = dict(colon_pairs(text))
    state = values.get("state")
    if state is None:
        return None
    if state != "running":
        return Firewall(active=False, kind="firewalld")
    ports: set[int] = set()
    for item in values.get("ports", "").split():
        port, _, proto = item.partition("/")
        parsed = _port_spec(port) if proto == "tcp" else None
        ports.update(parsed or ())
    for service in values.get("services", "").split():
        ports.update(_FIREWALLD_SERVICES.get(service, ()))
    return Firewall(active=True, kind="firewalld", open_ports=frozenset(ports))


_NFT_UNCONDITIONAL_BLOCK = re.compile(r"^(counter( packets \d+ bytes \d+)? )?(drop|reject\b.*)$")


def _nft_input_chains(text: str) -> Iterator[list[str]]:
    """The rule lines of each chain hooked on input."""
    depth = 0
    chain: list[str] | None = None
    for raw in split_lines(text):
        line = raw.strip()
        if chain is None and line.startswith("chain ") and line.endswith("{"):
            chain, depth = [], 1
            continue
        if chain is None:
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            if any(re.search(r"\bhook input\b", r) for r in chain):
                yield chain
            chain = None
            continue
        chain.append(line)


def parse_nft_ruleset(text: str) -> Firewall | None:
    """``nft list ruleset``: active when an input chain drops by policy or by a
    catch-all drop/reject rule; the ports its ``tcp dport ... accept`` rules open."""
    if re.search(r"(?i)operation not permitted|permission denied|command not found", text):
        return None
    if text.strip() and not re.search(r"^\s*table \S+", text, re.MULTILINE):
        return None
    active = False
    ports: set[int] = set()
    for chain in _nft_input_chains(text):
        for rule in chain:
            if re.search(r"\bpolicy drop\b", rule) or _NFT_UNCONDITIONAL_BLOCK.match(rule):
                active = True
            m = re.search(r"\btcp dport (\{[^}]*\}|\S+)(.*)\baccept$", rule)
            if m:
                parsed = _port_spec(m.group(1).strip("{} ").replace(" ", ""))
                ports.update(parsed or ())
    return Firewall(
        active=active, kind="nftables", open_ports=frozenset(ports) if active else frozenset()
    )


def parse_iptables_input(text: str) -> Firewall | None:
    """``iptables -S INPUT``: active with a DROP policy or a catch-all DROP/REJECT rule."""
    policy = re.search(r"^-P INPUT (\w+)", text, re.MULTILINE)
    if not policy:
        return None
    active = policy.group(1) == "DROP"
    ports: set[int] = set()
    for line in split_lines(text):
        if re.fullmatch(r"-A INPUT -j (DROP|REJECT)( --reject-with \S+)?", line.strip()):
            active = True
        m = re.search(r"-p tcp .*--dports? (\S+) .*-j ACCEPT", line)
        if m:
            ports.update(_port_spec(m.group(1)) or ())
    return Firewall(
        active=active, kind="iptables", open_ports=frozenset(ports) if active else frozenset()
    )


def combine_firewall(readings: Iterable[Firewall | None]) -> Firewall | None:
    """The first active firewall in the order given (ufw, firewalld, nftables,
    iptables), else the first that answered as inactive; None when none answered."""
    known = [r for r in readings if r is not None]
    for reading in known:
        if reading.active:
            return reading
    if not known:
        return None
    return Firewall(
        active=False, kind=next((r.kind for r in known if r.kind in ("ufw", "firewalld")), None)
    )
