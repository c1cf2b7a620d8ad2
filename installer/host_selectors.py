"""Which hosts a step runs on (its ``on``) and which tasks it waits for (its ``needs``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HostSelector:
    """``all``, ``<role>``, ``first(<role>)``, ``rest(<role>)``, combined with
    ``!`` (not), ``&`` (and, binds tighter) and ``|`` (or), e.g.
    ``worker & !control-plane`` or ``first(control-plane) | etcd``."""

    text: str
    # A union of intersections of (negated?, kind, role) atoms.
    terms: tuple[tuple[tuple[bool, str, str | None], ...], ...]

    @property
    def roles(self) -> set[str]:
        return {role for term in self.terms for _, _, role in term if role is not None}

    def select(self, host_roles: Sequence[Sequence[str]]) -> list[int]:
        """Indexes of the selected hosts, given each host's roles in answers order."""
        chosen = []
        for i in range(len(host_roles)):
            if any(all(self._atom(atom, i, host_roles) for atom in term) for term in self.terms):
                chosen.append(i)
        return chosen

    @staticmethod
    def _atom(
        atom: tuple[bool, str, str | None], i: int, host_roles: Sequence[Sequence[str]]
    ) -> bool:
        negated, kind, role = atom
        if kind == "all":
            hit = True
        else:
            assert role is not None
            holders = [j for j, roles in enumerate(host_roles) if role in roles]
            if kind == "role":
                hit = i in holders
            elif kind == "first":
                hit = bool(holders) and holders[0] == i
            else:  # rest
                hit = i in holders[1:]
        return hit != negated


_ATOM_RE = re.compile(r"^(!?)\s*(?:(first|rest)\s*\(\s*([a-z][a-z-]*)\s*\)|(all)|([a-z][a-z-]*))$")


def parse_host_selector(text: str) -> HostSelector:
    """Parse a step's ``on``. Raises ValueError naming the accepted forms."""
    terms = []
    for alternative in text.split("|"):
        atoms = []
        for raw in alternative.split("&"):
            m = _ATOM_RE.match(raw.strip())
            if not m:
                raise ValueError(
                    f"'{text}' is not a host selector (expected all, <role>, first(<role>), "
                    "rest(<role>), combined with !, & and |)"
                )
            negated = m.group(1) == "!"
            if m.group(2):
                atoms.append((negated, m.group(2), m.group(3)))
            elif m.group(4):
                atoms.append((negated, "all", None))
            else:
                atoms.append((negated, "role", m.group(5)))
        terms.append(tuple(atoms))
    return HostSelector(text, tuple(terms))


def split_need(need: str) -> tuple[str, bool]:
    """``"etcd-start@all"`` → ("etcd-start", True); ``"swap-off"`` → ("swap-off", False)."""
    step, sep, scope = need.partition("@")
    if sep and scope != "all":
        raise ValueError(f"'{need}': the only scope is @all (every host running the step)")
    return step, bool(sep)
