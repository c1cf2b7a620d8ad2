"""The ufw probe reads ufw's own files; its parser against a real capture."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from installer import discovery as D
from installer.discovery import Section
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


def _run_ufw_probe(shell: str, etc: Path, env: dict[str, str]) -> Section:
    body = D.PROBES_BY_NAME["ufw"].body.replace("/etc/ufw", str(etc))
    script = f"{D._PREAMBLE}fmp_p_ufw() {{\n{body}\n}}\nfmp_run ufw\n"
    out = subprocess.run(
        [shell, "-c", script], capture_output=True, text=True, env=env, timeout=30, check=True
    )
    return D.split_sections(out.stdout)["ufw"]


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_probe_reads_the_files_with_builtins(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ufw").write_text("#!/bin/sh\nexit 99\n")  # present, never run
    (bin_dir / "ufw").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    etc = tmp_path / "ufw"
    etc.mkdir()
    tuples = [ln for ln in FIXTURE.read_text().splitlines() if ln.startswith("### tuple")]
    half = len(tuples) // 2
    (etc / "ufw.conf").write_text("# comment\nENABLED=yes\nLOGLEVEL=low\n")
    (etc / "user.rules").write_text("*filter\n" + "\n".join(tuples[:half]) + "\nCOMMIT\n")
    (etc / "user6.rules").write_text("*filter\n" + "\n".join(tuples[half:]))  # no final newline

    section = _run_ufw_probe(shell, etc, env)
    assert section.rc == 0
    assert section.output == FIXTURE.read_text()
    assert parse_ufw(section.output) == parse_ufw_rules(FIXTURE.read_text())

    (etc / "ufw.conf").write_text('ENABLED="no"\n')
    section = _run_ufw_probe(shell, etc, env)
    assert (section.rc, section.output) == (0, 'ENABLED="no"\n')

    (etc / "ufw.conf").write_text("LOGLEVEL=low\n")  # no ENABLED line: not readable as ufw's
    assert _run_ufw_probe(shell, etc, env).rc == 1

    (etc / "ufw.conf").unlink()
    section = _run_ufw_probe(shell, etc, env)
    assert section.rc == 1 and "No such file" in section.output
