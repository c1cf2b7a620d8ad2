"""known_hosts: which keys a host is trusted with, and where each came from.

We read the file ourselves (instead of handing the path to asyncssh) so that a
changed key can be reported with the file and line to fix, and so that an
accepted key can be appended in OpenSSH's own format. Matching follows
OpenSSH: a host on port 22 is ``host``, on any other port ``[host]:port``;
patterns may be comma lists with ``*``/``?`` wildcards and ``!`` negation, or
hashed (``|1|salt|hmac``). Host verification is never turned off: a host with
no entry is *unknown*, never trusted.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)


class Marker(StrEnum):
    NONE = ""
    CERT_AUTHORITY = "@cert-authority"
    REVOKED = "@revoked"


@dataclass(frozen=True)
class KnownHostEntry:
    """One key line of a known_hosts file."""

    path: Path
    line: int
    marker: Marker
    key: asyncssh.SSHKey

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


@dataclass(frozen=True)
class HostKeys:
    """The known_hosts entries that apply to one host and port."""

    host: str
    port: int
    entries: tuple[KnownHostEntry, ...]

    @property
    def trusted(self) -> list[asyncssh.SSHKey]:
        return [e.key for e in self.entries if e.marker is Marker.NONE]

    @property
    def authorities(self) -> list[asyncssh.SSHKey]:
        return [e.key for e in self.entries if e.marker is Marker.CERT_AUTHORITY]

    @property
    def revoked(self) -> list[asyncssh.SSHKey]:
        return [e.key for e in self.entries if e.marker is Marker.REVOKED]

    def plain_entries(self) -> list[KnownHostEntry]:
        return [e for e in self.entries if e.marker is Marker.NONE]

    def for_asyncssh(
        self,
    ) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
        # A tuple of three lists is what asyncssh takes "without doing any
        # matching". It is never empty, so asyncssh never falls back to its
        # own default file, and an empty trusted list still means "verify".
        return (self.trusted, self.authorities, self.revoked)


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:...`` as printed by ``ssh-keygen -l``."""
    return str(key.get_fingerprint("sha256"))


def key_type(key: asyncssh.SSHKey) -> str:
    return str(key.get_algorithm())


def host_pattern(host: str, port: int) -> str:
    """The name OpenSSH writes and looks up for ``host`` on ``port``."""
    return host if port == 22 else f"[{host}]:{port}"


def _hashed_match(pattern: str, name: str) -> bool:
    # |1|base64(salt)|base64(hmac-sha1(salt, name))
    parts = pattern.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    mine = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(mine, digest)


def _wildcard(pattern: str) -> re.Pattern[str]:
    # OpenSSH wildcards are only '*' and '?': '[' in "[host]:port" is literal
    # (fnmatch would read it as a character class).
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )


def patterns_match(patterns: str, name: str) -> bool:
    """OpenSSH ``match_hostname``: one negated match vetoes, else any positive match."""
    name = name.lower()
    if patterns.startswith("|"):
        return _hashed_match(patterns, name)
    matched = False
    for raw in patterns.split(","):
        pattern = raw.strip().lower()
        if not pattern:
            continue
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if _wildcard(pattern).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def read_entries(path: Path) -> list[tuple[str, KnownHostEntry]]:
    """Every parsable key line of ``path`` with its host patterns; a missing file is empty."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[tuple[str, KnownHostEntry]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = Marker.NONE
        if fields[0].startswith("@"):
            try:
                marker = Marker(fields[0])
            except ValueError:
                log.warning("%s:%d: unknown marker %s, line ignored", path, number, fields[0])
                continue
            fields = fields[1:]
        if len(fields) < 3:
            log.warning("%s:%d: not a known_hosts line, ignored", path, number)
            continue
        try:
            key = asyncssh.import_public_key(f"{fields[1]} {fields[2]}")
        except (asyncssh.KeyImportError, ValueError):
            log.warning("%s:%d: unreadable key, line ignored", path, number)
            continue
        out.append((fields[0], KnownHostEntry(path, number, marker, key)))
    return out


def lookup(path: Path, host: str, port: int) -> HostKeys:
    name = host_pattern(host, port)
    entries = tuple(e for patterns, e in read_entries(path) if patterns_match(patterns, name))
    return HostKeys(host, port, entries)


def append(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> int:
    """Add ``key`` for ``host``:``port`` to ``path``; returns the line it was written on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{host_pattern(host, port)} {key_type(key)} {_key_blob(key)}\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as f:
        # Several installers (or hosts of one install) may accept keys at once.
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            existing = f.read()
            prefix = b"\n" if existing and not existing.endswith(b"\n") else b""
            f.write(prefix + line.encode())
            f.flush()
            os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_UN)
    return existing.count(b"\n") + (1 if prefix else 0) + 1


def _key_blob(key: asyncssh.SSHKey) -> str:
    exported = bytes(key.export_public_key("openssh")).decode()
    return exported.split()[1]


def remove_hint(path: Path, host: str, port: int) -> str:
    return f"ssh-keygen -R '{host_pattern(host, port)}' -f {path}"
