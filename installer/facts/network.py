"""Network: interfaces and addresses, the default route, resolv.conf, listening ports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from installer.facts.textparse import (
    load_json,
    split_lines,
    to_int,
    to_str,
)
from installer.hostfacts import (
    NetAddress,
    Nic,
)

_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5,19}")


def _mac(value: object) -> str | None:
    text = to_str(value)
    if text is None:
        return None
    text = text.lower()
    # An all-zero MAC (loopback, some tunnels) identifies nothing; a sit tunnel's
    # "address" is an IPv4 address, not a MAC.
    if not _MAC_RE.fullmatch(text) or set(text) <= {"0", ":"}:
        return None
    return text


def _json_nic(entry: Mapping[str, Any]) -> Nic | None:
    name = to_str(entry.get("ifname"))
    if name is None:
        return None
    addresses: list[NetAddress] = []
    infos = entry.get("addr_info")
    for info in infos if isinstance(infos, list) else []:
        if not isinstance(info, dict):
            continue
        family, local, prefix = (
            info.get("family"),
            to_str(info.get("local")),
            info.get("prefixlen"),
        )
        prefixlen = to_int(prefix)
        if family in ("inet", "inet6") and local and prefixlen is not None:
            addresses.append(
                NetAddress(str(family), local, prefixlen, dynamic=info.get("dynamic") is True)
            )
    flags = entry.get("flags")
    flag_list = [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []
    return Nic(
        name=name,
        mac=_mac(entry.get("address")),
        state=to_str(entry.get("operstate")),
        addresses=tuple(addresses),
        loopback="LOOPBACK" in flag_list or entry.get("link_type") == "loopback",
    )


_IP_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(.*)$")
_IP_ADDR_RE = re.compile(r"^\s+(inet6?)\s+([0-9A-Fa-f.:]+)/(\d{1,3})\b(.*)$")


def _text_nics(text: str) -> tuple[Nic, ...] | None:
    """Plain ``ip addr`` (iproute2 without -j, before 4.14)."""
    nics: list[Nic] = []
    for line in split_lines(text):
        link = _IP_LINK_RE.match(line)
        if link:
            name, flags, rest = link.groups()
            state = re.search(r"\bstate (\S+)", rest)
            nics.append(
                Nic(
                    name=name,
                    state=state.group(1) if state else None,
                    loopback="LOOPBACK" in flags.split(","),
                )
            )
            continue
        if not nics:
            continue
        current = nics[-1]
        ether = re.match(r"^\s+link/\S+\s+(\S+)", line)
        if ether and current.mac is None:
            nics[-1] = Nic(
                current.name,
                _mac(ether.group(1)),
                current.state,
                current.addresses,
                current.loopback,
            )
            continue
        addr = _IP_ADDR_RE.match(line)
        if addr:
            family, local, prefix, rest = addr.groups()
            item = NetAddress(family, local, int(prefix), dynamic="dynamic" in rest.split())
            nics[-1] = Nic(
                current.name,
                current.mac,
                current.state,
                (*current.addresses, item),
                current.loopback,
            )
    return tuple(nics) if nics else None


def parse_ip_addr(text: str) -> tuple[Nic, ...] | None:
    """``ip -j addr`` (also ``ip -d -j addr``), falling back to plain ``ip addr`` text."""
    data = load_json(text)
    if isinstance(data, list):
        nics = [_json_nic(e) for e in data if isinstance(e, dict)]
        found = tuple(n for n in nics if n is not None)
        return found if found else None
    return _text_nics(text)


@dataclass(frozen=True)
class DefaultRoute:
    gateway: str | None  # None for a device route (``default dev ppp0``)
    interface: str | None


def _route_candidates(text: str) -> list[tuple[int, int, DefaultRoute]] | None:
    """(family rank, metric, route) for each default route; None when not route output."""
    data = load_json(text)
    out: list[tuple[int, int, DefaultRoute]] = []
    if isinstance(data, list):
        for r in data:
            if isinstance(r, dict) and r.get("dst") == "default":
                gw, dev = to_str(r.get("gateway")), to_str(r.get("dev"))
                rank = 1 if gw and ":" in gw else 0
                out.append((rank, to_int(r.get("metric")) or 0, DefaultRoute(gw, dev)))
        return out
    recognised = False
    for line in split_lines(text):
        words = line.split()
        if not words:
            continue
        recognised = recognised or bool(re.fullmatch(r"default|[0-9a-fA-F.:]+(/\d+)?", words[0]))
        if words[0] != "default":
            continue
        opts = dict(zip(words[1::2], words[2::2], strict=False))
        gw, dev = opts.get("via"), opts.get("dev")
        metric = to_int(opts.get("metric")) or 0
        out.append((1 if gw and ":" in gw else 0, metric, DefaultRoute(gw, dev)))
    return out if recognised or not text.strip() else None


def parse_default_route(text: str) -> DefaultRoute | None:
    """``ip route show default`` (text or ``-j``), v4 and v6 lines in any order.

    The IPv4 default with the lowest metric wins, else the IPv6 one. None when
    there is no default route or the text is not route output.
    """
    candidates = _route_candidates(text)
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


def parse_resolv_conf(text: str) -> tuple[str, ...] | None:
    """``nameserver`` lines of resolv.conf. An empty file is a real answer: no servers."""
    servers: list[str] = []
    for line in split_lines(text):
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            if not re.fullmatch(r"[0-9A-Fa-f.:]+(%\w+)?", words[1]):
                return None
            servers.append(words[1])
        elif words and not words[0].startswith(("#", ";")) and not _is_resolv_option(words[0]):
            return None
    return tuple(servers)


def _is_resolv_option(word: str) -> bool:
    return word in ("search", "domain", "options", "sortlist", "lookup", "family")


def parse_listening_ports(text: str) -> frozenset[int] | None:
    """``ss -Hltn`` (or ``ss -ltn`` / ``netstat -ltn`` with headers): listening TCP ports."""
    ports: set[int] = set()
    for line in split_lines(text):
        words = line.split()
        if not words or words[0] in ("State", "Netid", "Proto", "Active"):
            continue
        # ss: "LISTEN 0 128 0.0.0.0:22 ..."; netstat: "tcp 0 0 0.0.0.0:22 ... LISTEN"
        if "LISTEN" not in words or len(words) < 4 or words[0] not in ("LISTEN", "tcp", "tcp6"):
            return None
        local = words[3]
        port = to_int(local.rsplit(":", 1)[-1]) if ":" in local else None
        if port is None or not 0 < port < 65536:
            return None
        ports.add(port)
    return frozenset(ports)
