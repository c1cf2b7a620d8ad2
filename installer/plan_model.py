"""The Plan: what the profile renderer produces and the runner executes.

A Plan is a DAG of tasks, one per (host, step). Values that only exist at run
time (a join token printed by ``kubeadm init``) appear in commands and files as
``capture_placeholder(name)`` tokens; the runner substitutes them when the
task starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CAPTURE_RE = re.compile(r"@@FMP_CAPTURE:([A-Za-z0-9_.-]+)@@")


def capture_placeholder(name: str) -> str:
    return f"@@FMP_CAPTURE:{name}@@"


def captures_used(text: str) -> set[str]:
    return set(CAPTURE_RE.findall(text))


@dataclass(frozen=True)
class FileSpec:
    path: str  # absolute path on the host
    content: str
    mode: int = 0o644
    owner: str | None = None  # "user:group"; None = the login user (or root with sudo)
    secret: bool = False  # holds secrets: never shown, only written


@dataclass(frozen=True)
class CaptureSpec:
    name: str  # global name, e.g. "kubeadm.join_command"
    pattern: str  # a regex; group "value" (or group 1) is the captured value
    secret: bool = False
    stream: str = "stdout"


@dataclass(frozen=True)
class Task:
    id: str  # "<host>:<step>"
    host: str  # host label (name or address)
    step: str
    title: str
    needs: tuple[str, ...]  # task ids that must be done first
    run: str  # bash script
    check: str | None = None  # exit 0 = already satisfied, the task is a no-op
    files: tuple[FileSpec, ...] = ()
    captures: tuple[CaptureSpec, ...] = ()
    retries: int = 0
    timeout: float = 600.0
    serial: bool = False  # one host at a time across the step
    destructive: bool = False
    idempotent: bool = True
    sudo: bool = True
    wipes: tuple[str, ...] = ()  # disks this task wipes (for consent and plan.txt)
    # Per entry of ``wipes``, every name of that disk the discovery facts know (its /dev
    # paths and serial:<SERIAL>), so that consent may name it by any of them; () = only itself.
    wipe_names: tuple[tuple[str, ...], ...] = ()
    fresh_for: float | None = None  # seconds its products stay valid (StepSpec.fresh_for)
    input_hash: str = ""  # over everything rendered into the task, placeholders included

    @property
    def uses(self) -> set[str]:
        """Capture names this task reads at run time."""
        names = captures_used(self.run) | captures_used(self.check or "")
        for f in self.files:
            names |= captures_used(f.content)
        return names


@dataclass(frozen=True)
class PlanHost:
    label: str
    address: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class PlanResult:
    """What the install leaves the operator with (the profile's ``result``, rendered)."""

    storage_classes: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    cluster: str
    profile: str
    hosts: tuple[PlanHost, ...]
    tasks: tuple[Task, ...]  # in a topological order
    result: PlanResult = PlanResult()

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def wipe_consent(self, task: Task, disk: str, consented: Iterable[str]) -> str | None:
        """The ``storage.wipe`` entry that consents to ``task`` wiping ``disk``, if any.

        An entry is ``host:disk`` with the host's label or address, and the disk by any
        of its names (``Task.wipe_names``), as ``installer.storage_disks.wipe_key_matches``
        matches it: ``kn3:/dev/sdb``, ``kn3:/dev/disk/by-id/wwn-...`` and
        ``kn3:serial:S3Z8...`` all consent to wiping the same disk. The entry that names it
        as the task does comes first.
        """
        entries = list(consented)
        exact = f"{task.host}:{disk}"
        if exact in entries:
            return exact
        labels = {task.host} | {h.address for h in self.hosts if h.label == task.host}
        names = dict(zip(task.wipes, task.wipe_names, strict=False)).get(disk, (disk,))
        for entry in entries:
            host, sep, path = entry.partition(":")
            if sep and host in labels and path in names:
                return entry
        return None
