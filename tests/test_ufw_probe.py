"""The ufw probe reads ufw's own files; its parser against a real capture."""

from __future__ import annotations

from pathlib import Path

from installer.facts import parse_ufw, parse_ufw_rules

FIXTURE = Path(__file__).parent / "fixtures" / "ufw" / "captured__this-machine-ufw-probe.txt"


def test_real_rules() -> None:
    fw = parse_ufw_rules(FIXTURE.read_text())
    assert fw is not None and fw.active and fw.kind == "ufw"
    assert fw.open_ports == frozenset({22, 6443, 2379, 2380, 10250})


def test_disabled_and_garbage() -> None:
    disabled = parse_ufw_rules("ENABLED=no\n")
    assert disabled is not None and not disabled.active
    assert parse_ufw_rules("permission denied\n") is None
    assert parse_ufw_rules("ENABLED=yes\n### tuple ### allow\n") is not None


def test_old_raw_outputs_still_read() -> None:
    fw = parse_ufw("Status: active\n\nTo Action From\n-- ------ ----\n22/tcp ALLOW Anywhere\n")
    assert fw is not None and fw.open_ports == frozenset({22})
