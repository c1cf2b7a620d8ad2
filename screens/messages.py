"""Messages the wizard's workers post back to their screens."""

from __future__ import annotations

from textual.message import Message

from installer.hostfacts import HostFacts
from screens.engine_adapters import PreflightView, ResumeInfo


class HostDiscovered(Message):
    def __init__(self, label: str, facts: HostFacts) -> None:
        super().__init__()
        self.label = label
        self.facts = facts


class HostDiscoveryChanged(Message):
    """A host's discovery status changed (connecting, failed, ...)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class DiscoveryFinished(Message):
    def __init__(self, ok: int, failed: int) -> None:
        super().__init__()
        self.ok = ok
        self.failed = failed


class PreflightFinished(Message):
    def __init__(self, view: PreflightView | None, error: str | None = None) -> None:
        super().__init__()
        self.view = view
        self.error = error


class UnfinishedRunFound(Message):
    def __init__(self, info: ResumeInfo | None, error: str | None = None) -> None:
        super().__init__()
        self.info = info
        self.error = error
