"""Where the shipped data lives: profiles/ and assets/.

In an installed wheel they are package data under ``installer/_data``; in a
source checkout they sit at the top of the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    override = os.environ.get("FMP_DATA_DIR")
    if override:
        return Path(override)
    packaged = _PACKAGE / "_data"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent


def profiles_dir() -> Path:
    return data_root() / "profiles"


def assets_dir() -> Path:
    return data_root() / "assets"


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fmp-install"
