"""Discover hosts concurrently, asking the operator about unknown host keys.

Shared by the Hosts screen (Discover all, Retry failed) and the Checks screen
(Re-run after a fix). Must run inside a Textual worker: the host key question
is a modal awaited with ``push_screen_wait``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from installer.answers import Host
from screens.engine_adapters import DiscoveryFailed, EngineUnavailable, HostKeyQuestion
from screens.format import facts_line
from screens.state import HostStatus
from screens.widgets.dialogs import HostKeyDialog

if TYPE_CHECKING:
    from screens.app import WizardApp

MAX_CONCURRENT = 64


def mark_waiting(app: WizardApp, labels: Sequence[str]) -> None:
    for label in labels:
        app.state.discovery[label] = HostStatus("waiting")
        app.state.facts.pop(label, None)


async def discover_hosts(
    app: WizardApp, labels: Sequence[str], changed: Callable[[str], None]
) -> tuple[int, int]:
    """Discover the hosts named by ``labels``; ``changed(label)`` after each status change.

    Returns (reached, failed). Facts land in ``app.state.facts``; statuses in
    ``app.state.discovery``.
    """
    state = app.state
    answers = state.answers
    environ = state.environ()
    engine = app.engine
    key_lock = asyncio.Lock()  # one fingerprint question at a time
    limit = asyncio.Semaphore(MAX_CONCURRENT)

    async def ask(question: HostKeyQuestion) -> bool:
        status = state.status(question.host)
        status.state = "waiting"
        changed(question.host)
        async with key_lock:
            accepted = bool(await app.push_screen_wait(HostKeyDialog(question)))  # type: ignore[arg-type]
        status.state = "connecting" if accepted else "rejected"
        changed(question.host)
        return accepted

    async def one(host: Host) -> None:
        status = state.status(host.label)
        async with limit:
            status.state, status.message, status.hint, status.kind = "connecting", "", None, None
            changed(host.label)
            try:
                facts = await engine.discover(answers, host, environ, ask)
            except DiscoveryFailed as exc:
                before: str = status.state  # "rejected" when the operator refused the key
                status.state = "rejected" if before == "rejected" else "failed"
                status.kind, status.message, status.hint = exc.kind, exc.message, exc.hint
            except EngineUnavailable as exc:
                status.state, status.kind, status.message = "failed", "not available", str(exc)
            except Exception as exc:  # shown in words, never a traceback on screen
                status.state, status.kind = "failed", "error"
                status.message = f"{type(exc).__name__}: {exc}"
            else:
                state.facts[host.label] = facts
                status.state, status.message = "ok", facts_line(facts)
            changed(host.label)

    hosts = [h for h in answers.hosts if h.label in set(labels)]
    await asyncio.gather(*(one(h) for h in hosts))
    ok = sum(1 for h in hosts if state.status(h.label).state == "ok")
    state.facts_version += 1
    return ok, len(hosts) - ok
