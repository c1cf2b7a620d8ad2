"""Reach every host, discover it, and prove sudo works: before anything changes.

Used by ``discover``, the headless install, ``plan`` and ``storage estimate``,
so that all of them learn the hosts the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from installer.answers import Answers
from installer.connections import Connections
from installer.discovery import DiscoveryResult, discover_all
from installer.hostfacts import HostFacts
from installer.transport import Transport, TransportError

SUDO_CHECK_TIMEOUT = 30.0


@dataclass
class HostProblem:
    """Why a host could not be used: plain words plus what to do."""

    label: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


@dataclass
class Gathered:
    facts: dict[str, HostFacts] = field(default_factory=dict)  # by host label, reached hosts
    results: dict[str, DiscoveryResult] = field(default_factory=dict)
    problems: dict[str, HostProblem] = field(default_factory=dict)  # by host label
    # The installer's own sudo check (with the password), by host label:
    # None = sudo works; a problem = it does not. Absent = not needed (root, NOPASSWD).
    sudo: dict[str, HostProblem | None] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.problems


# The first host reached (label, its connection), or None when no host was reached.
FirstReached = asyncio.Future[tuple[str, Transport] | None]


async def gather(
    answers: Answers,
    conns: Connections,
    *,
    save_raw: Path | None = None,
    check_sudo: bool = True,
    on_result: Callable[[str, DiscoveryResult], None] | None = None,
    first_reached: FirstReached | None = None,
) -> Gathered:
    """Connect to every host at once, run discovery, and check that sudo works.

    ``first_reached`` is resolved as soon as every host has been tried, before
    discovery starts, so a caller can use that host's connection meanwhile.
    """
    try:
        return await _gather(answers, conns, save_raw, check_sudo, on_result, first_reached)
    finally:
        if first_reached is not None and not first_reached.done():
            first_reached.set_result(None)


async def _gather(
    answers: Answers,
    conns: Connections,
    save_raw: Path | None,
    check_sudo: bool,
    on_result: Callable[[str, DiscoveryResult], None] | None,
    first_reached: FirstReached | None,
) -> Gathered:
    out = Gathered()
    by_address: dict[str, str] = {}
    transports: dict[str, Transport] = {}  # by address, as discovery keys them
    for reach in await conns.reach_all():
        host = answers.host(reach.label)
        assert host is not None
        if reach.transport is None:
            err = reach.error
            out.problems[reach.label] = HostProblem(
                reach.label,
                str(err.message if err is not None else "not reached"),
                getattr(err, "hint", None),
            )
            continue
        by_address[host.address] = reach.label
        transports[host.address] = reach.transport
        if first_reached is not None and not first_reached.done():
            first_reached.set_result((reach.label, reach.transport))
    if first_reached is not None and not first_reached.done():
        first_reached.set_result(None)

    def report(result: DiscoveryResult) -> None:
        if on_result is not None:
            on_result(by_address[result.address], result)

    for result in await discover_all(transports, save_raw=save_raw, on_result=report):
        label = by_address[result.address]
        out.results[label] = result
        out.facts[label] = result.facts
        if result.error:
            out.problems[label] = HostProblem(
                label,
                f"{label}: discovery stopped: {result.error}",
                "the facts read before it are kept; fix the connection and run again",
            )
    if check_sudo:
        by_label = {label: transports[address] for address, label in by_address.items()}
        # Discovery already saw root or passwordless sudo; only a password needs proving.
        labels = [
            label
            for label, facts in out.facts.items()
            if label not in out.problems and facts.sudo_ok is not True
        ]
        results = await asyncio.gather(*(_sudo_works(lb, by_label[lb]) for lb in labels))
        for label, problem in zip(labels, results, strict=True):
            out.sudo[label] = problem
            if problem is not None:
                out.problems[label] = problem
    return out


async def _sudo_works(label: str, transport: Transport) -> HostProblem | None:
    try:
        result = await transport.run("true", sudo=True, timeout=SUDO_CHECK_TIMEOUT)
    except TransportError as exc:
        return HostProblem(label, exc.message, exc.hint)
    if result.exit_status != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        return HostProblem(
            label,
            f"{label}: sudo failed with exit status {result.exit_status}"
            + (f": {said[-1]}" if said else ""),
            "the install needs root: allow the login user to use sudo",
        )
    return None
