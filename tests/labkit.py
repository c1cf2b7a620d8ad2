"""Helpers for the lab tests: start a lab with the real CLI, run commands with OpenSSH's ssh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip


@dataclass
class Lab:
    root: Path

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "state" / "lab.json").read_text())
        return data

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.config["nodes"] if n["name"] == name)

    def ssh_argv(self, name: str, *extra: str) -> list[str]:
        n = self.node(name)
        return [
            "ssh", "-i", str(self.root / "id_ed25519"), "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-p", str(n["port"]), *extra, f"root@{n['address']}",
        ]  # fmt: skip

    def run(
        self, name: str, command: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ssh_argv(name), command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, name: str, command: str, input: str | None = None) -> str:
        r = self.run(name, command, input=input)
        assert r.returncode == 0, (
            f"{name}: {command!r} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        )
        return r.stdout

    def calls(self, name: str) -> list[dict[str, Any]]:
        path = self.root / "nodes" / name / "calls.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_lab(
    root: Path, spec: dict[str, Any], *extra: str, env: dict[str, str] | None = None
) -> Lab:
    root.mkdir(parents=True, exist_ok=True)
    spec_file = root.parent / f"{root.name}-spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    r = cli("lab", "up", "--dir", str(root), "--spec", str(spec_file), *extra, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return Lab(root)


def stop_lab(lab: Lab) -> None:
    cli("lab", "down", "--dir", str(lab.root))
