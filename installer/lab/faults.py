"""Injected faults and simulated durations, as the SSH server applies them to each command."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from installer.lab.spec import DurationSpec, FaultSpec


@dataclass
class CommandPlan:
    """What the lab does to one command before, during and after running it."""

    delay_s: float = 0.0  # latency before it starts
    fail: FaultSpec | None = None  # answer with this exit code instead of running it
    drop_after_s: float | None = None  # drop the connection this long into the command
    min_duration_s: float = 0.0  # the command takes at least this long


@dataclass
class Faults:
    faults: list[FaultSpec]
    durations: list[DurationSpec]
    _used: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _applies(self, index: int, fault: FaultSpec, node: str, command: str) -> bool:
        if fault.node not in (None, node):
            return False
        if fault.match is not None and not re.search(fault.match, command):
            return False
        return fault.times is None or self._used.get(index, 0) < fault.times

    def plan(self, node: str, command: str) -> CommandPlan:
        plan = CommandPlan()
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.kind not in ("fail", "drop", "latency"):
                    continue
                if not self._applies(i, fault, node, command):
                    continue
                if fault.kind == "latency":
                    plan.delay_s += fault.ms / 1000
                elif fault.kind == "fail" and plan.fail is None:
                    plan.fail = fault
                elif fault.kind == "drop" and plan.drop_after_s is None:
                    plan.drop_after_s = fault.after_s
                else:
                    continue
                self._used[i] = self._used.get(i, 0) + 1
        for d in self.durations:
            if d.node in (None, node) and re.search(d.match, command):
                plan.min_duration_s = max(plan.min_duration_s, d.seconds)
        return plan

    def fills(self, node: str) -> list[tuple[str, int]]:
        return [
            (f.path, f.size_kb)
            for f in self.faults
            if f.kind == "fill_disk" and f.node in (None, node)
        ]
