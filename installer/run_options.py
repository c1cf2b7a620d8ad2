"""How a run behaves: the runner's options, and the retry backoff they set."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field

from installer.hostlock import HOST_LOCK_PATH


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunOptions:
    max_parallel: int = 32
    fail_fast: bool = False
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    retry_interrupted: bool = False
    break_locks: bool = False
    lock_ttl: float = 900.0  # a host lock not refreshed for this long is stale
    host_lock_path: str = HOST_LOCK_PATH
    operator: str = field(default_factory=default_operator)
    reconnect_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    grace_period: float = 30.0  # after a stop request, before running tasks are cancelled
    timeout_slack: float = 30.0  # our own backstop beyond a step's timeout


def backoff(base: float, cap: float, n: int) -> float:
    """Delay before retry ``n`` (1, 2, …): base, 2·base, 4·base, … up to ``cap``."""
    return float(min(cap, base * (2 ** max(0, n - 1))))
