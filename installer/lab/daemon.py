"""The lab daemon: boots every node, serves SSH, reboots nodes on request, tears down on SIGTERM.

Started detached by ``fmp-install lab up`` as ``python -m installer.lab.daemon D``;
it prints to D/daemon.log and keeps its state in D/lab.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import asyncssh

from installer.lab.faults import Faults
from installer.lab.layout import LabPaths
from installer.lab.namespaces import (
    Sandbox,
    SandboxError,
    build_plan,
    installed_packages,
)
from installer.lab.seed import prepare_boot
from installer.lab.server import NodeServer
from installer.lab.spec import DurationSpec, FaultSpec

POLL_S = 0.1


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def write_status(paths: LabPaths, status: dict[str, Any]) -> None:
    tmp = paths.status.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=1), encoding="utf-8")
    os.replace(tmp, paths.status)


class NodeRuntime:
    def __init__(self, lab: Lab, node: dict[str, Any]) -> None:
        self.lab = lab
        self.node = node
        self.name: str = node["name"]
        self.paths = lab.paths.node(self.name)
        self.sandbox = Sandbox(self.name)
        self.server: NodeServer | None = None
        self.state = "down"

    async def boot(self) -> None:
        self.state = "booting"
        prepare_boot(self.paths, self.node, self.node.get("raw") or {})
        self._forget_vip()
        plan = build_plan(
            self.lab.paths, self.node, installed_packages(self.paths),
            self.lab.faults.fills(self.name),
        )  # fmt: skip
        await self.sandbox.start(plan)
        await self._boot_hook()
        self.server = NodeServer(
            self.name, self.node["address"], self.node["port"],
            asyncssh.read_private_key(str(self.paths.host_key)), self.lab.client_key,
            self.sandbox, self.lab.faults,
        )  # fmt: skip
        await self.server.start()
        self.state = "up"
        log(
            f"{self.name}: up on {self.node['address']}:{self.node['port']} (init pid {self.sandbox.pid})"
        )

    async def _boot_hook(self) -> None:
        """systemd's part of a boot: modules, sysctls, enabled units (the systemctl shim does it)."""
        proc = await asyncio.create_subprocess_exec(
            *self.sandbox.enter_argv(["/run/fmp-lab/bin/systemctl", "--fmp-lab-boot"]),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"PATH": "/run/fmp-lab/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"},
        )  # fmt: skip
        output, _ = await proc.communicate()
        if proc.returncode:
            log(
                f"{self.name}: boot hook exited {proc.returncode}: {output.decode(errors='replace').strip()}"
            )

    def _forget_vip(self) -> None:
        path = self.lab.paths.state / "keepalived.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if self.name in data:
                data[self.name]["active"] = False
                path.write_text(json.dumps(data), encoding="utf-8")

    async def shutdown(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        await self.sandbox.stop()
        self.state = "down"

    async def reboot(self, kind: str) -> None:
        log(f"{self.name}: {kind} requested")
        self.state = "rebooting" if kind == "reboot" else "off"
        self.lab.save()
        await self.shutdown()
        if kind != "reboot":
            self.state = "off"
            self.lab.save()
            return
        self.state = "rebooting"
        await asyncio.sleep(self.lab.reboot_seconds)
        await self.boot()
        self.lab.save()


class Lab:
    def __init__(self, root: Path) -> None:
        self.paths = LabPaths(root)
        config = json.loads(self.paths.config.read_text(encoding="utf-8"))
        self.config = config
        self.reboot_seconds = float(config.get("reboot_seconds", 3.0))
        self.faults = Faults(
            [FaultSpec.model_validate(f) for f in config.get("faults", [])],
            [DurationSpec.model_validate(d) for d in config.get("durations", [])],
        )
        self.client_key = asyncssh.read_public_key(str(self.paths.key.with_suffix(".pub")))
        self.nodes = {n["name"]: NodeRuntime(self, n) for n in config["nodes"]}
        self.state = "starting"
        self.error: str | None = None
        self.stopping = asyncio.Event()
        self.busy: set[str] = set()

    def save(self) -> None:
        write_status(
            self.paths,
            {
                "pid": os.getpid(), "state": self.state, "error": self.error,
                "nodes": {
                    name: {"address": rt.node["address"], "port": rt.node["port"], "state": rt.state,
                           "init_pid": rt.sandbox.pid,
                           "launcher_pid": rt.sandbox.launcher.pid if rt.sandbox.launcher else None}
                    for name, rt in self.nodes.items()
                },
            },
        )  # fmt: skip

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await asyncio.gather(*(rt.boot() for rt in self.nodes.values()))
        except (SandboxError, OSError, asyncssh.Error) as exc:
            self.error = str(exc)
            self.state = "failed"
            log(f"start failed: {exc}")
            await self.teardown()
            self.state = "failed"
            self.save()
            return 1
        self.state = "ready"
        self.save()
        log("lab ready")
        while not self.stopping.is_set():
            for name, rt in self.nodes.items():
                req = rt.paths.reboot_request
                if name in self.busy or not req.exists():
                    continue
                kind = req.read_text(encoding="utf-8").strip() or "reboot"
                req.unlink(missing_ok=True)
                self.busy.add(name)
                task = asyncio.create_task(rt.reboot(kind))
                task.add_done_callback(functools.partial(self._rebooted, name))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), POLL_S)
        log("stopping")
        self.state = "stopping"
        self.save()
        await self.teardown()
        self.state = "stopped"
        self.save()
        log("stopped")
        return 0

    def _rebooted(self, name: str, task: asyncio.Task[None]) -> None:
        self.busy.discard(name)
        if task.exception() is not None:
            log(f"{name}: reboot failed: {task.exception()}")
            self.nodes[name].state = "failed"
            self.save()

    async def teardown(self) -> None:
        await asyncio.gather(*(rt.shutdown() for rt in self.nodes.values()), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    root = Path(args[0]).resolve()
    os.chdir(root)
    try:
        return asyncio.run(Lab(root).run())
    except Exception:
        traceback.print_exc()
        return 70


if __name__ == "__main__":
    sys.exit(main())
