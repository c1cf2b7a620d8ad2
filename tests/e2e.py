"""End-to-end harness: headless installs of a profile against a lab.

Each profile's e2e test module builds on this: start a lab for the profile,
run ``fmp-install --answers D/answers.yaml --yes`` as a real subprocess, kill
it with SIGKILL at chosen moments, read the journal and the shims' call logs,
and scan everything written for secrets.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.labkit import REPO, Lab, cli

INSTALL_TIMEOUT = 900.0


@dataclass
class Install:
    """One cluster's install: the lab it runs on and its state directory."""

    lab: Lab
    state: Path

    @property
    def answers(self) -> Path:
        return self.lab.root / "answers.yaml"

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "installer.cli", "--answers", str(self.answers),
            "--yes", "--state-dir", str(self.state), *extra,
        ]  # fmt: skip

    def run(
        self, *extra: str, timeout: float = INSTALL_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*extra), capture_output=True, text=True, timeout=timeout, cwd=REPO
        )

    def run_killed_after(self, seconds: float) -> bool:
        """Start an install and SIGKILL it (its whole process group) after ``seconds``.

        Returns False when the install finished before the kill.
        """
        proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=seconds)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True

    # ---------------------------------------------------------------- journal

    def tasks(self) -> dict[str, dict[str, Any]]:
        """The journal's task rows by task id (read-only, safe while nothing runs)."""
        db = self.state / "journal.sqlite"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            return {row["task_id"]: dict(row) for row in con.execute("SELECT * FROM tasks")}
        finally:
            con.close()

    def integrity(self) -> str:
        con = sqlite3.connect(f"file:{self.state / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            return str(con.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            con.close()

    def shim_calls(self) -> dict[str, int]:
        """How many shim calls each node has logged so far."""
        return {n["name"]: len(self.lab.calls(n["name"])) for n in self.lab.config["nodes"]}

    # ---------------------------------------------------------------- secrets

    def secret_values(self) -> list[str]:
        data = yaml.safe_load((self.state / "secrets.yaml").read_text()) or {}
        values: list[str] = []
        for section in ("generated", "captured"):
            for name, value in (data.get(section) or {}).items():
                # A CA's certificate is public; its key is not.
                if isinstance(value, str) and len(value) >= 8 and not name.endswith(".crt"):
                    values.append(value)
        return values

    def leaked(self, *outputs: str) -> list[str]:
        """Where a secret value appears: in the given outputs, the logs or the journal."""
        places: dict[str, str] = {f"output[{i}]": text for i, text in enumerate(outputs)}
        for path in sorted(self.state.rglob("*")):
            if path.is_file() and path.name not in ("secrets.yaml", "kubeconfig"):
                places[str(path)] = path.read_bytes().decode("utf-8", "replace")
        found = []
        for secret in self.secret_values():
            for line in secret.strip().splitlines():
                if len(line) < 8:
                    continue
                for where, text in places.items():
                    if line in text:
                        found.append(f"{where} holds a secret ({line[:4]}...)")
        return found


def isolated_spec(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """``spec`` with a loopback /24 of its own, so labs of concurrent tests never collide."""
    out = dict(spec or {})
    if "base_address" not in out:
        net = f"127.{random.randint(100, 199)}.{random.randint(1, 254)}"
        out["base_address"] = f"{net}.11"
        out.setdefault("vip", f"{net}.100")
    return out


@contextmanager
def lab_install(
    root: Path, profile: str, *extra: str, spec: dict[str, Any] | None = None
) -> Iterator[Install]:
    """A fresh lab for ``profile`` and an empty state directory; always torn down.

    ``spec`` (or ``--spec FILE`` in ``extra``) is the lab spec, faults included;
    it gets its own loopback addresses unless it names some.
    """
    args = list(extra)
    if "--spec" in args:
        i = args.index("--spec")
        spec = {**(yaml.safe_load(Path(args[i + 1]).read_text()) or {}), **(spec or {})}
        del args[i : i + 2]
    spec_file = root / "lab-spec.yaml"
    root.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(yaml.safe_dump(isolated_spec(spec)))
    lab_dir = root / "lab"
    r = cli(
        "lab", "up", "--dir", str(lab_dir), "--profile", profile, "--spec", str(spec_file), *args,
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    lab = Lab(lab_dir)
    try:
        yield Install(lab, root / "state")
    finally:
        cli("lab", "down", "--dir", str(lab_dir), timeout=120)


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
