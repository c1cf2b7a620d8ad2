"""Shared test helpers.

``require_tool(name)``: a test that needs a system tool skips without it, but
fails under FMP_REQUIRE_TOOLS=1 (CI), so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def require_tool(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if path:
        return path
    if os.environ.get("FMP_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{name} is required (FMP_REQUIRE_TOOLS=1) but not installed")
    pytest.skip(f"{name} not installed")


@pytest.fixture
def repo() -> Path:
    return REPO
