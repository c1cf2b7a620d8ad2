"""Snapshots of every wizard screen at 80x24 and 120x40, error states included.

Deterministic: fixture facts (installer.hostfacts), the fixture engine, a
fixed clock, no cursor blink, no animations. ``snap_compare`` is synchronous,
so the async setup of each scenario runs through ``run_before``.
Update with ``--snapshot-update`` only after looking at the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.wizard_scenarios import SCENARIOS

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing a test does may read or write the operator's real state or answers.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_screen(scenario: str, size: str, snap_compare: Callable[..., bool]) -> None:
    app, setup = SCENARIOS[scenario]()
    assert snap_compare(app, terminal_size=SIZES[size], run_before=setup)
