"""Time sync: timedatectl, chronyc, ntpq and the running time services, combined."""

from __future__ import annotations

import re
from dataclasses import dataclass

from installer.facts.textparse import (
    colon_pairs,
    split_lines,
)
from installer.hostfacts import (
    TimeSync,
)


@dataclass(frozen=True)
class TimedatectlState:
    ntp_enabled: bool | None
    synchronized: bool | None


def _yes_no(value: str | None) -> bool | None:
    if value is None:
        return None
    word = value.strip().lower()
    if word in ("yes", "active", "true"):
        return True
    if word in ("no", "inactive", "false"):
        return False
    return None


def parse_timedatectl(text: str) -> TimedatectlState | None:
    """``timedatectl show`` (``NTP=yes``) or the status layouts of old and new systemd."""
    values: dict[str, str] = {}
    for line in split_lines(text):
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z]+", key):
            values[key] = value
    for key, value in colon_pairs(text):
        values.setdefault(key, value)
    enabled = _yes_no(values.get("NTP") or values.get("ntp enabled") or values.get("ntp service"))
    synced = _yes_no(
        values.get("NTPSynchronized")
        or values.get("ntp synchronized")
        or values.get("system clock synchronized")
    )
    if enabled is None and synced is None:
        return None
    return TimedatectlState(enabled, synced)


def parse_chronyc_tracking(text: str) -> bool | None:
    """``chronyc -n tracking``: synchronised unless the leap status says not."""
    values = dict(colon_pairs(text))
    leap = values.get("leap status")
    if leap is None:
        return None  # "506 Cannot talk to daemon": chrony is not running
    return leap.strip().lower() != "not synchronised"


def parse_ntpq_peers(text: str) -> bool | None:
    """``ntpq -pn``: synchronised when a peer line starts with ``*`` (the system peer)."""
    lines = [line for line in split_lines(text) if line.strip()]
    if not lines or "remote" not in lines[0]:
        return None
    return any(line.startswith("*") for line in lines[2:])


_TIME_SERVICES = {
    "chrony": "chrony",
    "chronyd": "chrony",
    "systemd-timesyncd": "systemd-timesyncd",
    "systemd-timesyn": "systemd-timesyncd",  # ps truncates comm to 15 characters
    "ntp": "ntp",
    "ntpd": "ntp",
    "ntpsec": "ntp",
    "openntpd": "ntp",
}


def parse_time_services(text: str) -> tuple[str, ...] | None:
    """Running time services from ``systemctl list-units`` or ``ps -eo comm=``.

    Expects the script's ``units:``/``ps:`` first line; an empty list is a real
    answer (nothing keeps the clock in step).
    """
    lines = [line for line in split_lines(text) if line.strip()]
    if not lines or lines[0].strip() not in ("units:", "ps:"):
        return None
    found: list[str] = []
    for line in lines[1:]:
        word = line.split()[0].removesuffix(".service")
        service = _TIME_SERVICES.get(word)
        if service and service not in found:
            found.append(service)
    return tuple(found)


def combine_time_sync(
    services: tuple[str, ...] | None,
    timedatectl: TimedatectlState | None,
    chrony_synced: bool | None,
    ntpq_synced: bool | None,
) -> TimeSync | None:
    """One TimeSync from every source that answered; None when none did."""
    if services is None and timedatectl is None and chrony_synced is None and ntpq_synced is None:
        return None
    service = services[0] if services else None
    if service is None and chrony_synced is not None:
        service = "chrony"  # chronyd answered chronyc, so it runs
    if service is None and ntpq_synced is not None:
        service = "ntp"
    synced = timedatectl.synchronized if timedatectl else None
    for answer in (chrony_synced, ntpq_synced):
        if synced is None:
            synced = answer
    if synced is None and service is None and services is not None:
        synced = False  # nothing runs that could keep the clock in step
    return TimeSync(service=service, synchronized=synced)
