"""The cluster's admin kubeconfig, handed to the operator at the end of an install.

A profile's last step captures it as the secret ``kubeconfig``: the file's
content in base64 on one line (a capture is one line of output). A capture
that is not base64 is taken as the file itself.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

FILE_NAME = "kubeconfig"


def decode_capture(value: str) -> str:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return value
    return text if "apiVersion" in text or "clusters:" in text else value


def write_kubeconfig(state_dir: Path, captured: str) -> Path:
    """Write ``<state>/kubeconfig`` with mode 0600 (created so, never wider)."""
    path = state_dir / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(decode_capture(captured))
    tmp.replace(path)
    return path
