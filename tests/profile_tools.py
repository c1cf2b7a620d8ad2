"""Helpers shared by the profile tests (tests/test_<profile>_profile.py).

Synthetic discovery facts for an answers file, picking rendered files out of a
plan, feeding files to a real tool, and the golden plan.txt comparison.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from installer.answers import Answers
from installer.hostfacts import HostFacts, NetAddress, Nic, OsRelease
from installer.plan_model import FileSpec, Plan, Task


def host_interface() -> str:
    """A real non-loopback interface of this machine (keepalived -t checks the name exists)."""
    names = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    return "eth0" if "eth0" in names else (names[0] if names else "eth0")


def synthetic_facts(
    answers: Answers, nic: str = "ens160", prefixlen: int = 24
) -> dict[str, HostFacts]:
    """Facts as discovery would report them for every host of ``answers``: Ubuntu 24.04,
    amd64, one NIC carrying the host's address."""
    return {
        h.label: HostFacts(
            address=h.address,
            hostname=h.name,
            arch="x86_64",
            os=OsRelease(id="ubuntu", version_id="24.04", version_codename="noble"),
            nics=(Nic(nic, addresses=(NetAddress("inet", h.address, prefixlen),)),),
            default_interface=nic,
        )
        for h in answers.hosts
    }


def files_at(plans: Iterable[Plan], suffix: str) -> list[tuple[Task, FileSpec]]:
    """(task, file) for every rendered file whose path ends with ``suffix``."""
    return [(t, f) for p in plans for t in p.tasks for f in t.files if f.path.endswith(suffix)]


def distinct_files(plans: Iterable[Plan], suffix: str) -> dict[str, FileSpec]:
    """``host:path`` -> file, one entry per distinct content (the same file in two plans once)."""
    out: dict[str, FileSpec] = {}
    seen: set[tuple[str, str, str]] = set()
    for t, f in files_at(plans, suffix):
        key = (t.host, f.path, f.content)
        if key in seen:
            continue
        seen.add(key)
        name = f"{t.host}:{f.path}"
        n = 1
        while name in out:
            n += 1
            name = f"{t.host}:{f.path}#{n}"
        out[name] = f
    return out


def run_tool(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a real tool, capturing its output as text (never raises on a non-zero exit)."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
        timeout=120,
    )


def check_golden(path: Path, text: str) -> None:
    """Compare ``text`` with the golden file; FMP_UPDATE_GOLDEN=1 (or a missing file) rewrites it."""
    update = os.environ.get("FMP_UPDATE_GOLDEN") == "1"
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not update:
            pytest.fail(f"{path} was missing and has been written; check it in")
    assert text == path.read_text(), (
        f"{path.name} changed; if intended, regenerate with FMP_UPDATE_GOLDEN=1 and review the diff"
    )
