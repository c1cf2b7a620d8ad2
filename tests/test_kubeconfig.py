from __future__ import annotations

import base64
from pathlib import Path

from installer.kubeconfig import decode_capture, write_kubeconfig

KUBECONFIG = "apiVersion: v1\nclusters:\n- cluster: {server: 'https://127.0.0.100:6443'}\n"


def test_base64_capture_is_decoded(tmp_path: Path) -> None:
    captured = base64.b64encode(KUBECONFIG.encode()).decode()
    path = write_kubeconfig(tmp_path, captured)
    assert path.read_text() == KUBECONFIG
    assert path.stat().st_mode & 0o777 == 0o600


def test_plain_capture_is_kept() -> None:
    assert decode_capture("not base64 at all!") == "not base64 at all!"
    # valid base64 that is not a kubeconfig stays as it was
    assert decode_capture("aGVsbG8=") == "aGVsbG8="
