"""Shared test helpers.

``require_tool(name)``: a test that needs a system tool skips without it, but
fails under FMP_REQUIRE_TOOLS=1 (CI), so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def require_tool(name: str) -> str:
    # Besides PATH: this interpreter's own bin directory (the venv's, where pip puts
    # yamllint even when pytest runs without .venv/bin on PATH), then the sbin
    # directories a normal user's PATH often lacks.
    dirs = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent), "/usr/sbin", "/sbin"]
    path = shutil.which(name) or next(
        (
            str(p)
            for d in dict.fromkeys(d for d in dirs if d)
            if (p := Path(d) / name).is_file() and os.access(p, os.X_OK)
        ),
        None,
    )
    if path:
        return path
    if os.environ.get("FMP_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{name} is required (FMP_REQUIRE_TOOLS=1) but not installed")
    pytest.skip(f"{name} not installed")


@pytest.fixture
def repo() -> Path:
    return REPO
