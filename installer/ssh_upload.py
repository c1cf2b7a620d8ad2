"""Atomic file uploads: SFTP to a temporary name, then one rename.

Without sudo, the file is written next to its destination (created 0600,
then given its mode and owner) and renamed over it: readers see the old
file or the new one, never a half-written one. With sudo, SFTP (as the SSH
user) can only write to a private staging directory; ``install -m -o -g``
(as root) copies it next to the destination and ``mv -T`` renames it there.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import secrets
import shlex

import asyncssh

from installer.transport import FailureKind, TransportError

STAGING_PREFIX = "/tmp/fmp-upload."
MAKE_STAGING = f"mktemp -d {STAGING_PREFIX}XXXXXXXXXX"
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_OWNER_RE = re.compile(rf"^{_NAME}(?::{_NAME})?$")


def check_path(path: str) -> None:
    if not path.startswith("/") or path.endswith("/"):
        raise ValueError(f"upload path must be an absolute file path, not '{path}'")


def owner_args(owner: str | None) -> tuple[str | None, str | None]:
    """``user`` or ``user:group`` -> (user, group); anything else is refused."""
    if owner is None:
        return None, None
    if not _OWNER_RE.match(owner):
        raise ValueError(f"owner '{owner}' is not of the form user or user:group")
    user, _, group = owner.partition(":")
    return user, group or None


def temp_name(path: str) -> str:
    """A hidden name in the destination's directory, so the rename stays atomic."""
    parent, name = posixpath.split(path)
    return posixpath.join(parent, f".{name}.fmp-{secrets.token_hex(6)}")


def _rename_or_clean(tmp: str, path: str) -> str:
    q = shlex.quote
    return f"mv -fT {q(tmp)} {q(path)} || {{ rc=$?; rm -f {q(tmp)}; exit $rc; }}"


def chown_script(tmp: str, path: str, owner: str) -> str:
    q = shlex.quote
    return f"{{ chown {q(owner)} {q(tmp)} && {_rename_or_clean(tmp, path)}; }} || {{ rc=$?; rm -f {q(tmp)}; exit $rc; }}"


def install_script(staged: str, path: str, mode: int, user: str | None, group: str | None) -> str:
    q = shlex.quote
    tmp = temp_name(path)
    opts = f"-m {mode:04o}"
    if user:
        opts += f" -o {q(user)}"
    if group:
        opts += f" -g {q(group)}"
    return (
        f"mkdir -p {q(posixpath.dirname(path))} && "
        f"{{ install {opts} -T {q(staged)} {q(tmp)} || {{ rc=$?; rm -f {q(tmp)}; exit $rc; }}; }} && "
        f"{_rename_or_clean(tmp, path)}"
    )


def upload_error(host: str, path: str, why: str) -> TransportError:
    return TransportError(
        host,
        FailureKind.UPLOAD_FAILED,
        f"cannot write {path}: {why}",
        hint="check the directory is writable by the SSH user (or upload with sudo) "
        "and that the owner exists on the host",
    )


def last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no message")


async def sftp_write(
    sftp: asyncssh.SFTPClient, host: str, data: bytes, tmp: str, mode: int, final: str | None
) -> None:
    """Create ``tmp`` (0600, exclusively), write it, chmod ``mode``; rename to ``final`` if given.

    On failure nothing is left behind.
    """
    created = False
    try:
        await sftp.makedirs(posixpath.dirname(tmp), exist_ok=True)
        f = await sftp.open(tmp, "xb", asyncssh.SFTPAttrs(permissions=0o600))
        created = True
        try:
            await f.write(data)
        finally:
            await f.close()
        await sftp.chmod(tmp, mode)
        if final is not None:
            await sftp.posix_rename(tmp, final)
        created = False
    except asyncssh.SFTPError as exc:
        raise upload_error(host, final or tmp, exc.reason) from None
    finally:
        if created:
            with contextlib.suppress(asyncssh.Error, OSError):
                await sftp.remove(tmp)
