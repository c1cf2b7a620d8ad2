"""One live SSH connection per host, opened concurrently and shared.

Discovery, the sudo check and the runner all go through one ``Connections``,
so each host is logged in to once per run (and again only to reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from installer.answers import Answers
from installer.errors import OperatorError
from installer.transport import FailureKind, Transport, TransportError

# (host label, SHA256 fingerprint) -> accept?
HostKeyPrompt = Callable[[str, str], Awaitable[bool] | bool]
PasswordPrompt = Callable[[str], str | None]
Connector = Callable[[str], Awaitable[Transport]]


@dataclass(frozen=True)
class Reach:
    """The outcome of reaching one host."""

    label: str
    transport: Transport | None
    error: TransportError | OperatorError | None = None


def ssh_connector(
    answers: Answers,
    environ: Mapping[str, str],
    *,
    on_unknown_host_key: HostKeyPrompt | None = None,
    prompt_password: PasswordPrompt | None = None,
) -> Connector:
    """A function that opens a verified SSH connection to a host, by label."""
    from installer.ssh import connect
    from installer.ssh_target import target_for

    async def open_one(label: str) -> Transport:
        target = target_for(answers, label, environ, prompt_password)
        return await connect(target, on_unknown_host_key=on_unknown_host_key)

    return open_one


class Connections:
    """Opens and caches one connection per host label."""

    def __init__(self, labels: list[str], connector: Connector) -> None:
        self.labels = labels
        self._connector = connector
        self._open: dict[str, Transport] = {}
        self._locks = {label: asyncio.Lock() for label in labels}

    async def get(self, label: str) -> Transport:
        """The host's connection, opened on first use; raises TransportError."""
        async with self._locks[label]:
            if label not in self._open:
                self._open[label] = await self._connector(label)
            return self._open[label]

    async def reconnect(self, label: str) -> Transport:
        """Drop the cached connection and open a new one (the runner's connect factory)."""
        async with self._locks[label]:
            old = self._open.pop(label, None)
        if old is not None:
            await _close_quietly(old)
        return await self.get(label)

    def runner_connector(self) -> Connector:
        """For the runner: the connection discovery opened first, a fresh one after that.

        The runner asks again only after it dropped (and closed) a lost connection.
        """
        handed: set[str] = set()

        async def connect(label: str) -> Transport:
            if label in handed:
                return await self.reconnect(label)
            handed.add(label)
            return await self.get(label)

        return connect

    async def reach_all(self) -> list[Reach]:
        """Connect to every host at once; failures are returned, not raised."""

        async def one(label: str) -> Reach:
            try:
                return Reach(label, await self.get(label))
            except (TransportError, OperatorError) as exc:
                return Reach(label, None, exc)
            except OSError as exc:
                err = TransportError(label, FailureKind.UNREACHABLE, str(exc))
                return Reach(label, None, err)

        return list(await asyncio.gather(*(one(label) for label in self.labels)))

    async def close(self) -> None:
        opened, self._open = list(self._open.values()), {}
        await asyncio.gather(*(_close_quietly(t) for t in opened))


async def _close_quietly(transport: Transport) -> None:
    # Closing a connection that already died is not worth reporting.
    with contextlib.suppress(OSError, TransportError):
        await transport.close()
