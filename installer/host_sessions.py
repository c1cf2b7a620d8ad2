"""A run's hold on its hosts: one connection and one host lock per host.

Hosts are connected and locked before any task runs (``lock_all``), and again
on demand. A lost connection is made again with backoff, and the lock taken
again (after a reboot ``/run`` is empty). A heartbeat keeps the locks fresh
while the run goes on; ``release_all`` drops the locks and closes the
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from installer.events import EventBus, HostLost, HostReconnected
from installer.hostlock import HostLock, HostLocked
from installer.journal import Journal
from installer.redact import Redactor
from installer.run_options import RunOptions, backoff
from installer.transport import FailureKind, Transport, TransportError

ConnectFactory = Callable[[str], Awaitable[Transport]]
Sleep = Callable[[float], Awaitable[None]]

_CONNECT_FAILURES = (
    FailureKind.UNREACHABLE,
    FailureKind.REFUSED,
    FailureKind.TIMEOUT,
    FailureKind.CONNECTION_LOST,
)


class HostSessions:
    """The connections and host locks of one run (``run_id``), by host label."""

    def __init__(
        self,
        connect: ConnectFactory,
        journal: Journal,
        bus: EventBus,
        redactor: Redactor,
        options: RunOptions,
        *,
        run_id: str,
        sleep: Sleep,
    ) -> None:
        self.connect = connect
        self.journal = journal
        self.bus = bus
        self.redactor = redactor
        self.options = options
        self.run_id = run_id
        self._sleep = sleep
        self._transports: dict[str, Transport] = {}
        self._host_mutex: dict[str, asyncio.Lock] = {}
        self._locks: dict[str, HostLock] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False  # release_all has begun: the heartbeat stops

    async def lock_all(self, hosts: list[str]) -> None:
        """Connect to and lock ``hosts``. An unreachable host is left for its tasks to
        retry; raises HostLocked naming every host another install holds."""
        sem = asyncio.Semaphore(max(1, self.options.max_parallel))

        async def one(host: str) -> None:
            async with sem:
                # Unreachable now: its tasks try again and fail with the reason.
                with contextlib.suppress(TransportError):
                    await self.ensure(host)

        results = await asyncio.gather(*(one(h) for h in hosts), return_exceptions=True)
        refused = [r for r in results if isinstance(r, HostLocked)]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, HostLocked):
                raise r
        if refused:
            msg = "\n".join(r.message for r in refused)
            hint = refused[0].hint
            raise HostLocked(msg, hint=hint)

    async def ensure(self, host: str) -> Transport:
        """The host's connection, made and locked on first use."""
        mutex = self._host_mutex.setdefault(host, asyncio.Lock())
        async with mutex:
            transport = self._transports.get(host)
            if transport is None:
                transport = await self.connect(host)
                self._transports[host] = transport
            if host not in self._locks:
                lock = HostLock(
                    host,
                    run_id=self.run_id,
                    installation=self.journal.installation_id,
                    options=self.options,
                )
                await lock.acquire(transport)
                self._locks[host] = lock
            return transport

    async def transport_for(self, host: str) -> Transport:
        """The host's connection; if it cannot be made, retry with backoff first."""
        try:
            return await self.ensure(host)
        except TransportError as exc:
            if exc.kind not in _CONNECT_FAILURES:
                raise
            return await self.reconnect(host, str(exc))

    async def reconnect(self, host: str, why: str) -> Transport:
        """Drop the connection and connect again with backoff; re-take the host lock."""
        old = self._transports.pop(host, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        # After a reboot /run is empty: take the lock again.
        self._locks.pop(host, None)
        self._emit_host_lost(host, why)
        o = self.options
        last: Exception | None = None
        for n in range(1, o.reconnect_attempts + 1):
            await self._sleep(backoff(o.backoff_base, o.backoff_max, n))
            try:
                transport = await self.ensure(host)
            except TransportError as exc:
                last = exc
                continue
            self.bus.emit(HostReconnected(host=host, attempts=n))
            self.journal.note(host, f"reconnected after {n} attempt(s)")
            return transport
        raise TransportError(
            host,
            FailureKind.UNREACHABLE,
            f"could not reconnect after {o.reconnect_attempts} attempts: {last}",
            hint=f"check that {host} is up and reachable, then rerun to resume",
        )

    def _emit_host_lost(self, host: str, why: str) -> None:
        msg = self.redactor.redact(why)
        self.bus.emit(HostLost(host=host, message=msg))
        self.journal.note(host, f"connection lost: {msg}")

    def start_heartbeat(self) -> None:
        self._heartbeat = asyncio.create_task(
            self._refresh_locks(max(1.0, self.options.lock_ttl / 3))
        )

    async def _refresh_locks(self, interval: float) -> None:
        """Keep our host locks fresh, so that only a dead run's lock goes stale.

        It ends when ``release_all`` sets ``_closing``, not only when it is cancelled: a
        refresh that ends in the turn of the event loop in which the cancellation comes
        makes ``asyncio.wait_for`` (Python 3.11) return its result and drop the cancellation.
        """
        while not self._closing:
            await asyncio.sleep(interval)
            for host, lock in list(self._locks.items()):
                if self._closing:
                    return
                transport = self._transports.get(host)
                if transport is None:
                    continue
                try:
                    state = await asyncio.wait_for(lock.refresh(transport), 60)
                except Exception:  # noqa: S112 (a missed beat: the next one tries again)
                    continue
                if state == "retaken":
                    self.journal.note(host, "host lock had vanished (a reboot?): taken again")
                elif state == "other":
                    self.journal.note(
                        host,
                        f"host lock {self.options.host_lock_path} is now held by another "
                        "install: check who else is working on this host",
                    )

    async def release_all(self) -> None:
        """Stop the heartbeat, release every lock we hold and close every connection."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
            self._heartbeat = None

        async def release(host: str, lock: HostLock) -> None:
            transport = self._transports.get(host)
            if transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lock.release(transport), 60)

        await asyncio.gather(*(release(h, lk) for h, lk in self._locks.items()))
        self._locks.clear()
        for transport in self._transports.values():
            with contextlib.suppress(Exception):
                await transport.close()
        self._transports.clear()
