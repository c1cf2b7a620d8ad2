"""Parse what an operator types or pastes into the host list.

Accepted, separated by commas, spaces or new lines:
``10.30.217.20``, ``kn0.our.cluster``, ``kn0=10.30.217.20``,
``10.30.217.17-23`` (last octet range) and ``10.30.217.17-10.30.217.23``.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import ValidationError

from installer.answers import Host

MAX_RANGE = 256
_RANGE_SHORT = re.compile(r"^(\d{1,3}\.\d{1,3}\.\d{1,3}\.)(\d{1,3})-(\d{1,3})$")
_RANGE_LONG = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,3}(?:\.\d{1,3}){3})$")


def _first_error(exc: ValidationError) -> str:
    msg = str(exc.errors()[0]["msg"])
    return msg.removeprefix("Value error, ")


def _host(address: str, name: str | None = None) -> Host:
    return Host(address=address, name=name)


def _expand(token: str) -> list[str]:
    m = _RANGE_SHORT.match(token)
    if m:
        prefix, lo, hi = m.group(1), int(m.group(2)), int(m.group(3))
        if lo > hi or hi > 255:
            raise ValueError(f"'{token}': the range must go up, within 0-255")
        return [f"{prefix}{i}" for i in range(lo, hi + 1)]
    m = _RANGE_LONG.match(token)
    if m:
        try:
            lo_ip = ipaddress.IPv4Address(m.group(1))
            hi_ip = ipaddress.IPv4Address(m.group(2))
        except ValueError as exc:
            raise ValueError(f"'{token}': {exc}") from None
        count = int(hi_ip) - int(lo_ip) + 1
        if count < 1:
            raise ValueError(f"'{token}': the range must go up")
        if count > MAX_RANGE:
            raise ValueError(f"'{token}' is {count} addresses; at most {MAX_RANGE} at once")
        return [str(lo_ip + i) for i in range(count)]
    return [token]


def parse_host_spec(text: str) -> tuple[list[Host], list[str]]:
    """The hosts in ``text``, and one plain-words error per token that is not a host."""
    hosts: list[Host] = []
    errors: list[str] = []
    for raw in re.split(r"[\s,;]+", text.strip()):
        token = raw.strip()
        if not token or token.startswith("#"):
            continue
        name: str | None = None
        if "=" in token:
            name, _, token = token.partition("=")
            name = name.strip() or None
            token = token.strip()
        try:
            addresses = _expand(token)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if name is not None and len(addresses) > 1:
            errors.append(f"'{raw}': a name goes with one address, not a range")
            continue
        for address in addresses:
            try:
                hosts.append(_host(address, name))
            except ValidationError as exc:
                errors.append(_first_error(exc))
    return hosts, errors


def merge_hosts(existing: list[Host], new: list[Host]) -> tuple[list[Host], list[str]]:
    """``existing`` plus the ``new`` hosts not already in it (by address or name)."""
    out = list(existing)
    skipped: list[str] = []
    for host in new:
        clash = next(
            (
                h
                for h in out
                if h.address.lower() == host.address.lower()
                or (host.name is not None and h.name is not None and h.name == host.name)
            ),
            None,
        )
        if clash is not None:
            skipped.append(f"{host.name or host.address} is already in the list ({clash.label})")
            continue
        out.append(host)
    return out, skipped
