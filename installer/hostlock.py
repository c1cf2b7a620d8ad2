"""The host lock: ``/run/fmp-install.lock`` on each host, so two operators
cannot install on the same host at once.

The lock is a file created with ``noclobber`` under sudo; it names the
operator, the run and the installation (the state directory) that holds it.
The runner refreshes it while the run goes on, so only a dead run's lock goes
stale, and creates it again if it vanished (a reboot empties ``/run``); a stale lock is broken only with ``--break-locks``. A lock left by an
earlier run of the same installation is taken over. Every lock script starts
with ``LOCK_MARKER``, so a test transport can recognise it.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from installer import exitcodes
from installer.errors import OperatorError
from installer.transport import Transport

HOST_LOCK_PATH = "/run/fmp-install.lock"
LOCK_MARKER = "# fmp-install:host-lock"


class HostLocked(OperatorError):
    exit_code = exitcodes.LOCKED


class LockSettings(Protocol):
    """What a host lock reads from the run options (``runner.RunOptions``)."""

    @property
    def host_lock_path(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def lock_ttl(self) -> float: ...

    @property
    def break_locks(self) -> bool: ...


_LOCK_ACQUIRE = """{marker} acquire
lock={path}
content={content}
set -o noclobber
if {{ printf '%s\\n' "$content" > "$lock"; }} 2>/dev/null; then echo FMP_LOCK=acquired; exit 0; fi
set +o noclobber
now=$(date +%s)
mt=$(stat -c %Y "$lock" 2>/dev/null || echo "$now")
echo FMP_LOCK=held
echo "age=$((now - mt))"
cat "$lock" 2>/dev/null
exit 3
"""

_LOCK_REPLACE = """{marker} replace
lock={path}
content={content}
{remove}printf '%s\\n' "$content" > "$lock.$$" && mv -f "$lock.$$" "$lock" && echo FMP_LOCK=acquired
"""

_LOCK_BREAK = """{marker} break
lock={path}
old={old_run}
grep -qxF "run=$old" "$lock" 2>/dev/null && rm -f "$lock"
true
"""

# Ours: touch it. Gone (the host rebooted and /run is empty; the connection came
# back by itself): create it again. Someone else's: leave it and say so.
_LOCK_TOUCH = """{marker} refresh
lock={path}
content={content}
if grep -qxF {run} "$lock" 2>/dev/null; then touch "$lock"; echo FMP_LOCK=ours; exit 0; fi
set -o noclobber
if {{ printf '%s\\n' "$content" > "$lock"; }} 2>/dev/null; then echo FMP_LOCK=retaken; exit 0; fi
echo FMP_LOCK=other
"""

_LOCK_RELEASE = """{marker} release
lock={path}
grep -qxF {run} "$lock" 2>/dev/null && rm -f "$lock"
true
"""


@dataclass(frozen=True)
class LockInfo:
    age: int
    fields: Mapping[str, str]

    def describe(self) -> str:
        f = self.fields
        return (
            f"operator {f.get('operator', '?')}, run {f.get('run', '?')}, "
            f"since {f.get('since', '?')}, last refreshed {self.age}s ago"
        )


def _parse_lock(stdout: str) -> LockInfo:
    fields: dict[str, str] = {}
    age = 0
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "age":
            with contextlib.suppress(ValueError):
                age = int(value)
        elif key != "FMP_LOCK":
            fields[key] = value
    return LockInfo(age, fields)


class HostLock:
    """``/run/fmp-install.lock`` on one host: who is installing there."""

    def __init__(self, host: str, *, run_id: str, installation: str, options: LockSettings) -> None:
        self.host = host
        self.run_id = run_id
        self.installation = installation
        self.options = options
        q = shlex.quote
        self._path = q(options.host_lock_path)
        content = "\n".join(
            [
                f"operator={options.operator}",
                f"host={host}",
                f"run={run_id}",
                f"installation={installation}",
                f"since={time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
            ]
        )
        self._content = q(content)

    async def acquire(self, transport: Transport) -> None:
        o = self.options
        res = await transport.run(
            _LOCK_ACQUIRE.format(marker=LOCK_MARKER, path=self._path, content=self._content),
            timeout=60,
            sudo=True,
        )
        if "FMP_LOCK=acquired" in res.stdout:
            return
        if "FMP_LOCK=held" not in res.stdout:
            raise HostLocked(
                f"{self.host}: could not create the host lock {o.host_lock_path} "
                f"(exit {res.exit_status}): {res.stderr.strip() or res.stdout.strip()}",
                hint="check that the login user can write to /run with sudo",
            )
        info = _parse_lock(res.stdout)
        if info.fields.get("run") == self.run_id:
            return
        if info.fields.get("installation") == self.installation:
            # Left by an earlier run from this same state directory, which we
            # hold locked: that run is over, so the lock is ours to take over.
            await self._replace(transport, remove=False)
            return
        stale = info.age > o.lock_ttl
        if stale and o.break_locks:
            old = shlex.quote(info.fields.get("run", ""))
            await transport.run(
                _LOCK_BREAK.format(marker=LOCK_MARKER, path=self._path, old_run=old),
                timeout=60,
                sudo=True,
            )
            res = await transport.run(
                _LOCK_ACQUIRE.format(marker=LOCK_MARKER, path=self._path, content=self._content),
                timeout=60,
                sudo=True,
            )
            if "FMP_LOCK=acquired" in res.stdout:
                return
            info = _parse_lock(res.stdout)
            stale = False
        if stale:
            raise HostLocked(
                f"{self.host} is locked by another install ({info.describe()}); the lock is "
                f"stale (not refreshed for more than {int(o.lock_ttl)}s)",
                hint="if no other fmp-install is working on this host, rerun with --break-locks",
            )
        raise HostLocked(
            f"{self.host} is locked by another install ({info.describe()})",
            hint=f"wait for that install to finish; if you are sure none is running, remove "
            f"{o.host_lock_path} on {self.host} (or wait {int(o.lock_ttl)}s and use --break-locks)",
        )

    async def _replace(self, transport: Transport, *, remove: bool) -> None:
        await transport.run(
            _LOCK_REPLACE.format(
                marker=LOCK_MARKER,
                path=self._path,
                content=self._content,
                remove='rm -f "$lock"\n' if remove else "",
            ),
            timeout=60,
            sudo=True,
        )

    async def refresh(self, transport: Transport) -> str:
        """Keep the lock fresh: "ours" (touched), "retaken" (it had vanished, e.g. after a
        reboot, and is ours again) or "other" (another install holds it now)."""
        res = await transport.run(
            _LOCK_TOUCH.format(
                marker=LOCK_MARKER,
                path=self._path,
                content=self._content,
                run=shlex.quote(f"run={self.run_id}"),
            ),
            timeout=60,
            sudo=True,
        )
        for state in ("ours", "retaken", "other"):
            if f"FMP_LOCK={state}" in res.stdout:
                return state
        return "unknown"

    async def release(self, transport: Transport) -> None:
        await transport.run(
            _LOCK_RELEASE.format(
                marker=LOCK_MARKER, path=self._path, run=shlex.quote(f"run={self.run_id}")
            ),
            timeout=60,
            sudo=True,
        )
