"""The wizard's one door into the engine.

Screens call an ``Engine`` and show what it returns; they hold no install
logic. ``RealEngine`` forwards to the ``installer`` modules, importing each one
only when it is first needed. An ``Engine`` that cannot provide something
raises ``EngineUnavailable`` (naming it): the screen then says so instead of
showing made-up results. Tests pass their own ``Engine`` with fixture data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from installer.answers import Answers, Host
from installer.events import Event, RunSummary
from installer.hostfacts import HostFacts
from installer.plan_model import Plan
from installer.profile import ProfileMeta

CheckStatus = Literal["pass", "warn", "fail"]
DiskStatus = Literal["allowed", "consent", "disallowed"]
Verdict = Literal["ok", "tight", "insufficient", "none"]


class EngineUnavailable(RuntimeError):
    """Something an Engine cannot provide (the screen says so rather than guess)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not available in this build of fmp-install yet")
        self.what = what


class DiscoveryFailed(Exception):
    """Discovery could not reach or read a host; ``kind`` is a FailureKind value."""

    def __init__(self, kind: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class HostKeyQuestion:
    """An unknown host key, for the operator to compare and accept."""

    host: str
    address: str
    key_type: str
    fingerprint: str  # SHA256:...
    known_hosts: str | None = None  # where an accepted key is written


HostKeyPrompt = Callable[[HostKeyQuestion], Awaitable[bool]]


@dataclass(frozen=True)
class CheckResult:
    """One cell of the preflight grid (``host`` None: a cluster-wide check)."""

    check: str
    host: str | None
    status: CheckStatus
    message: str
    fix: str = ""
    detail: str | None = None


@dataclass(frozen=True)
class PreflightView:
    findings: tuple[CheckResult, ...]
    order: tuple[str, ...] = ()  # check ids in display order
    titles: tuple[tuple[str, str], ...] = ()  # check id -> title

    def checks(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self.order)
        for f in self.findings:
            seen.setdefault(f.check, None)
        present = {f.check for f in self.findings}
        return [c for c in seen if c in present]

    def title(self, check: str) -> str:
        return dict(self.titles).get(check, check)

    def cell(self, check: str, host: str | None) -> CheckResult | None:
        """The host's finding for a check, else the cluster-wide one."""
        found = [f for f in self.findings if f.check == check and f.host == host]
        if not found:
            found = [f for f in self.findings if f.check == check and f.host is None]
        for status in ("fail", "warn", "pass"):
            for f in found:
                if f.status == status:
                    return f
        return None

    def count(self, status: CheckStatus) -> int:
        return sum(1 for f in self.findings if f.status == status)


@dataclass(frozen=True)
class DiskVerdict:
    """The storage core's word on one whole disk of one host."""

    path: str  # /dev/sdb
    stable_id: str  # /dev/disk/by-id/... (what answers.yaml records)
    status: DiskStatus
    reason: str  # why not, or what consent wipes; "" when simply allowed
    warning: str = ""  # e.g. "/dev/sdX names can change across reboots"
    aliases: tuple[str, ...] = ()  # every /dev path naming this disk

    def names(self, value: str | None) -> bool:
        return value is not None and value in (self.path, self.stable_id, *self.aliases)


@dataclass(frozen=True)
class VolumeSpec:
    """A volume to size, as the workload catalogue and the answers resolve it."""

    name: str
    size_gb: float
    shared: bool
    replicas: int | None = None
    title: str = ""
    feature: str | None = None  # None: a custom volume


@dataclass(frozen=True)
class Feature:
    name: str
    title: str
    volumes: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class StorageEstimateView:
    backend: str  # none | ceph | openebs
    verdict: Verdict
    lines: tuple[str, ...]  # the figures, as `fmp-install storage estimate` prints them
    problems: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    summary: tuple[tuple[str, str, Verdict], ...] = ()  # (what, required vs available, verdict)


@dataclass(frozen=True)
class RenderedFile:
    host: str
    path: str
    content: str
    secret: bool = False


@dataclass(frozen=True)
class PlanPreview:
    plan: Plan
    files: tuple[RenderedFile, ...] = ()
    findings: tuple[CheckResult, ...] = ()  # preflight on the final answers
    wipes: tuple[tuple[str, str], ...] = ()  # (host, disk) every destructive step wipes


@dataclass(frozen=True)
class ResumeInfo:
    cluster: str
    state_dir: str
    total: int
    done: int
    failed: tuple[str, ...]  # "host: step (exit 1)"
    last_run: str  # human time of the last run
    answers_path: str | None = None


@dataclass(frozen=True)
class DoneInfo:
    kubeconfig: str | None
    api_endpoint: str | None
    storage_classes: tuple[str, ...] = ()
    check_commands: tuple[str, ...] = ()
    state_dir: str | None = None


class RunHandle(Protocol):
    """A run in progress, owned by the App."""

    def stop(self) -> None:
        """Launch nothing more; running tasks finish; the checkpoint is kept."""

    async def wait(self) -> RunSummary | None: ...


@dataclass
class RunRequest:
    answers: Answers
    preview: PlanPreview
    environ: Mapping[str, str]
    emit: Callable[[Event], None]
    state_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    async def discover(
        self,
        answers: Answers,
        host: Host,
        environ: Mapping[str, str],
        on_unknown_key: HostKeyPrompt,
    ) -> HostFacts: ...

    def preflight(
        self,
        answers: Answers,
        meta: ProfileMeta,
        facts: Mapping[str, HostFacts],
        now: float | None = None,
    ) -> PreflightView: ...

    def disk_verdicts(
        self, answers: Answers, host: Host, facts: HostFacts
    ) -> list[DiskVerdict]: ...

    def features(self) -> list[Feature]: ...

    def volumes(self, answers: Answers) -> list[VolumeSpec]: ...

    def estimate(
        self, answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
    ) -> StorageEstimateView: ...

    def plan(
        self, answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
    ) -> PlanPreview: ...

    def state_dir(self, answers: Answers) -> Path: ...

    def unfinished_run(self) -> ResumeInfo | None: ...

    def discard_run(self, info: ResumeInfo) -> None: ...

    def start_run(self, request: RunRequest) -> RunHandle: ...

    def done_info(
        self, answers: Answers, summary: RunSummary | None, plan: Plan | None
    ) -> DoneInfo: ...


# --------------------------------------------------------------------------- the real engine


class RealEngine:
    """Forwards to ``installer.*``; see the module docstring."""

    async def discover(
        self,
        answers: Answers,
        host: Host,
        environ: Mapping[str, str],
        on_unknown_key: HostKeyPrompt,
    ) -> HostFacts:
        from screens import engine_real

        return await engine_real.discover(answers, host, environ, on_unknown_key)

    def preflight(
        self,
        answers: Answers,
        meta: ProfileMeta,
        facts: Mapping[str, HostFacts],
        now: float | None = None,
    ) -> PreflightView:
        from screens import engine_real

        return engine_real.preflight(answers, meta, facts, now)

    def disk_verdicts(self, answers: Answers, host: Host, facts: HostFacts) -> list[DiskVerdict]:
        from screens import engine_real

        return engine_real.disk_verdicts(answers, host, facts)

    def features(self) -> list[Feature]:
        from screens import engine_real

        return engine_real.features()

    def volumes(self, answers: Answers) -> list[VolumeSpec]:
        from screens import engine_real

        return engine_real.volumes(answers)

    def estimate(
        self, answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
    ) -> StorageEstimateView:
        from screens import engine_real

        return engine_real.estimate(answers, meta, facts)

    def plan(
        self, answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
    ) -> PlanPreview:
        from screens import engine_real

        return engine_real.plan(answers, meta, facts)

    def state_dir(self, answers: Answers) -> Path:
        from installer.journal import default_state_dir

        return default_state_dir(answers.cluster.name)

    def unfinished_run(self) -> ResumeInfo | None:
        from screens import engine_real

        return engine_real.unfinished_run()

    def discard_run(self, info: ResumeInfo) -> None:
        from screens import engine_real

        engine_real.discard_run(info)

    def start_run(self, request: RunRequest) -> RunHandle:
        from screens import engine_real

        return engine_real.start_run(request)

    def done_info(
        self, answers: Answers, summary: RunSummary | None, plan: Plan | None
    ) -> DoneInfo:
        from screens import engine_real

        return engine_real.done_info(answers, summary, plan, self.state_dir(answers))


def summarize_failures(findings: Sequence[CheckResult]) -> list[CheckResult]:
    return [f for f in findings if f.status == "fail"]
