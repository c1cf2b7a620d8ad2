"""A node's sandbox: its namespaces, its mount plan, and how commands enter it.

The node's init (``installer.lab.nsinit``) owns a user, mount, UTS and PID
namespace; every command enters them with ``nsenter``. The user namespace is the
node's own even when the lab runs as root, so root in a node has no capability
over the machine. Everything outside the node's own directories is mounted
read-only (and, when the lab runs as root, locked so by the kernel), /dev holds
only harmless devices and the node's sparse disk images, and tools that would
touch the machine (reboot, sysctl, swapoff, modprobe, iptables, ip...) are
replaced by shims even at their absolute paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import installer
from installer.lab.layout import LAB_RUN, NODE_MOUNTS, LabPaths, NodePaths
from installer.lab.shims.registry import ALWAYS, OVERRIDE_HOST, PACKAGE_BINARIES, REAL_TOOLS

HOST_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


class SandboxError(Exception):
    pass


# Parts of /proc that can act on the machine (IRQ affinity, PCI config space...); the node
# sees them read-only. /proc/sys is the node's own, /proc/sysrq-trigger is /dev/null.
PROC_READONLY = ("bus", "fs", "irq", "acpi", "driver", "scsi", "asound")


def host_binary(name: str) -> str | None:
    for d in HOST_BIN_DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _host_copies(name: str) -> list[str]:
    """Every path a host binary answers at, one per real directory (merged /usr counts once)."""
    seen: dict[str, str] = {}
    for d in HOST_BIN_DIRS:
        p = Path(d) / name
        if p.exists():
            seen.setdefault(os.path.realpath(d), str(Path(os.path.realpath(d)) / name))
    return list(seen.values())


def python_layout() -> tuple[str, str]:
    """(host directory to expose as <LAB_RUN>/py, interpreter path relative to it)."""
    prefix = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not exe.startswith(prefix + "/"):
        raise SandboxError(
            f"cannot locate the base Python interpreter under {prefix} (found {exe})"
        )
    return prefix, os.path.relpath(exe, prefix)


def write_shim_dir(paths: LabPaths) -> None:
    """D/shims: the launcher every shim name points at, seen by nodes as <LAB_RUN>/bin."""
    shims = paths.shims
    shims.mkdir(parents=True, exist_ok=True)
    _, exe = python_layout()
    launcher = shims / "fmp-shim"
    launcher.write_text(
        "#!/bin/bash\n"
        "# A lab shim: every tool name here points at this script.\n"
        f"LD_LIBRARY_PATH={LAB_RUN}/py/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} "
        f"exec {LAB_RUN}/py/{exe} -I -S -c "
        f'\'import sys; sys.path[:0] = ["{LAB_RUN}/lib", "{LAB_RUN}/site"]; '
        'from installer.lab.shims.main import main; main()\' "$0" "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    sftpd = shims / "fmp-sftpd"
    sftpd.write_text(
        "#!/bin/bash\n"
        "# The lab's own SFTP server, for hosts without OpenSSH's sftp-server.\n"
        f"LD_LIBRARY_PATH={LAB_RUN}/py/lib exec {LAB_RUN}/py/{exe} -I -S -c "
        f"'import sys; sys.path[:0] = [\"{LAB_RUN}/lib\"]; from installer.lab.sftpd import main; main()'\n",
        encoding="utf-8",
    )
    sftpd.chmod(0o755)
    for name in ALWAYS:
        link = shims / name
        if not link.is_symlink():
            link.symlink_to("fmp-shim")
    hidden = shims / ".hidden"
    hidden.write_text("", encoding="utf-8")
    hidden.chmod(0o644)


def build_plan(
    paths: LabPaths,
    node: dict[str, Any],
    installed: set[str],
    fill: list[tuple[str, int]],
) -> dict[str, Any]:
    np = paths.node(node["name"])
    facts = node["facts"]
    steps: list[dict[str, Any]] = []

    def bind(
        source: Path | str, target: str, rw: bool = False, rec: bool = False, optional: bool = False
    ) -> None:
        steps.append({"op": "bind", "source": str(source), "target": target, "rw": rw, "rec": rec,
                      "optional": optional})  # fmt: skip

    # /proc: the node's own PID namespace, its own facts and its own sysctls.
    steps.append({"op": "proc", "target": "/proc"})
    for name in ("cpuinfo", "meminfo", "swaps"):
        bind(np.proc / name, f"/proc/{name}")
    bind(np.proc / "sys", "/proc/sys", rw=True)
    bind("/dev/null", "/proc/sysrq-trigger", optional=True)
    for name in PROC_READONLY:
        steps.append({"op": "self_ro", "target": f"/proc/{name}"})

    # /sys: a small tmpfs with what discovery reads.
    steps += [{"op": "tmpfs", "target": "/sys", "options": "mode=755,size=1m"}]
    for d in ("class/dmi/id", "fs/cgroup", "devices/system/cpu", "class/net"):
        steps.append({"op": "mkdir", "path": f"/sys/{d}"})
    dmi = {"product_uuid": facts["product_uuid"], "product_name": "Standard PC (Q35 + ICH9, 2009)",
           "sys_vendor": "QEMU", "board_vendor": "QEMU"}  # fmt: skip
    for key, value in dmi.items():
        steps.append({"op": "write", "path": f"/sys/class/dmi/id/{key}", "content": value + "\n"})
    steps.append({"op": "write", "path": "/sys/devices/system/cpu/online",
                  "content": f"0-{facts['cpus'] - 1}\n" if facts["cpus"] > 1 else "0\n"})  # fmt: skip
    for disk in facts["disks"]:
        base = f"/sys/block/{disk['name']}"
        steps.append({"op": "mkdir", "path": f"{base}/queue"})
        steps.append({"op": "write", "path": f"{base}/queue/rotational",
                      "content": "1\n" if disk["rotational"] else "0\n"})  # fmt: skip
        steps.append({"op": "write", "path": f"{base}/size",
                      "content": f"{int(disk['size_gb'] * 1024**3) // 512}\n"})  # fmt: skip
    steps.append({"op": "cgroup2", "target": "/sys/fs/cgroup"})
    steps.append({"op": "ro", "target": "/sys"})

    # /dev: harmless devices and the node's disks (sparse files), never the host's.
    steps.append({"op": "tmpfs", "target": "/dev", "options": "mode=755,size=64k"})
    for dev in DEVICES:
        steps.append({"op": "touch", "path": f"/dev/{dev}"})
        bind(f"/dev/{dev}", f"/dev/{dev}", rw=True)
    for d in ("pts", "shm", "disk/by-id", "disk/by-uuid", "mapper"):
        steps.append({"op": "mkdir", "path": f"/dev/{d}"})
    steps.append({"op": "tmpfs", "target": "/dev/shm", "options": "mode=1777,size=64m"})
    for link, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                     ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        steps.append({"op": "symlink", "path": f"/dev/{link}", "to": to})
    disks = json.loads((np.lab / "disks.json").read_text(encoding="utf-8"))
    from installer.lab.shims import render

    for disk in disks["disks"]:
        steps.append({"op": "touch", "path": f"/dev/{disk['name']}"})
        image = np.disks / disk["name"]
        if image.exists():
            bind(image, f"/dev/{disk['name']}", rw=True)
        for part in disk.get("parts", []):
            steps.append({"op": "touch", "path": f"/dev/{part['name']}"})
    for link, kname in render.by_id_links(disks).items():
        steps.append({"op": "symlink", "path": f"/dev/disk/by-id/{link}", "to": f"../../{kname}"})
    for vg, info in disks["vgs"].items():
        steps.append({"op": "mkdir", "path": f"/dev/{vg}"})
        for lv in info["lvs"]:
            steps.append({"op": "touch", "path": f"/dev/mapper/{render.dm_name(vg, lv)}"})
            steps.append({"op": "symlink", "path": f"/dev/{vg}/{lv}",
                          "to": f"../mapper/{render.dm_name(vg, lv)}"})  # fmt: skip
    steps.append({"op": "ro", "target": "/dev"})

    # The node's own writable directories.
    for key, target in NODE_MOUNTS.items():
        bind(np.fs(key), target, rw=True)

    # The lab's corner of the node: shims, the interpreter they run on, shared state.
    steps.append({"op": "tmpfs", "target": LAB_RUN, "options": "mode=755,size=1m"})
    prefix, _ = python_layout()
    import yaml as yaml_module

    lab_dirs = {
        "py": (prefix, False),
        "lib/installer": (str(Path(installer.__file__).parent), False),
        "site/yaml": (str(Path(yaml_module.__file__).parent), False),
        "bin": (str(paths.shims), False),
        "pkgbin": (str(np.pkgbin), True),
        "node": (str(np.root), True),
        "state": (str(paths.state), True),
        "peers": (str(paths.nodes), True),
    }
    for sub, (source, rw) in lab_dirs.items():
        steps.append({"op": "mkdir", "path": f"{LAB_RUN}/{sub}"})
        bind(source, f"{LAB_RUN}/{sub}", rw=rw)
    steps.append({"op": "mkdir", "path": f"{LAB_RUN}/real"})
    for tool in REAL_TOOLS:
        real = host_binary(tool)
        if real:
            steps.append({"op": "touch", "path": f"{LAB_RUN}/real/{tool}"})
            bind(real, f"{LAB_RUN}/real/{tool}")
    steps.append({"op": "ro", "target": LAB_RUN})

    # Host binaries a fresh node must not have yet (their package is not installed): a
    # whiteout in the node's own /usr layer, or (without overlayfs) a non-executable file.
    for package, binaries in PACKAGE_BINARIES.items():
        if package in installed:
            continue
        for name in binaries:
            for path in _host_copies(name):
                if path.startswith("/usr/"):
                    steps.append({"op": "unlink", "path": path, "when": "overlay"})
                steps.append({"op": "bind", "source": str(paths.shims / ".hidden"), "target": path,
                              "rw": False, "rec": False, "optional": True,
                              "when": "no-overlay" if path.startswith("/usr/") else None})  # fmt: skip
    # ...and host binaries that would touch the machine: the shim answers instead.
    for name in OVERRIDE_HOST:
        for path in _host_copies(name):
            bind(paths.shims / "fmp-shim", path)
    for path, size_kb in fill:
        steps.append({"op": "mkdir", "path": path})
        steps.append({"op": "fill", "target": path, "size_kb": size_kb})
    for layer in (np.usr_upper, np.usr_work):
        layer.mkdir(parents=True, exist_ok=True)
    return {
        "hostname": node["name"],
        "readonly_host": True,
        # The node's own /usr layer: host /usr below, the node's changes (and whiteouts) above.
        "overlay": {
            "target": "/usr",
            "lower": "/usr",
            "upper": str(np.usr_upper),
            "work": str(np.usr_work),
        },
        "steps": steps,
        "chdir": "/root",
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(installer.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Sandbox:
    """One running node: its init's host PID and the launcher waiting on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid: int | None = None
        self.launcher: asyncio.subprocess.Process | None = None

    async def start(self, plan: dict[str, Any]) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "installer.lab.nsinit",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_env(), start_new_session=True,
        )  # fmt: skip
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps(plan).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        line = await proc.stdout.readline()
        try:
            answer = json.loads(line.decode() or "{}")
        except ValueError:
            answer = {}
        if "pid" not in answer:
            stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            reason = answer.get("error") or stderr.strip().splitlines()[-1:] or "no answer"
            raise SandboxError(f"node {self.name}: cannot create its namespaces: {reason}")
        self.pid = int(answer["pid"])
        self.launcher = proc

    def enter_argv(self, argv: list[str]) -> list[str]:
        if self.pid is None:
            raise SandboxError(f"node {self.name} is not running")
        # Always the node's user namespace: a command never keeps the lab's capabilities.
        return ["nsenter", "-t", str(self.pid), "-U", "--preserve-credentials",
                "-m", "-u", "-p", "-w", "--", *argv]  # fmt: skip

    def mount_ns(self) -> str | None:
        if self.pid is None:
            return None
        with contextlib.suppress(OSError):
            return os.readlink(f"/proc/{self.pid}/ns/pid")
        return None

    async def stop(self) -> None:
        """Kill the node's init: the kernel then kills every process of the node."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.launcher is not None:
            with contextlib.suppress(ProcessLookupError):
                self.launcher.kill()
            await self.launcher.wait()
        self.pid = None
        self.launcher = None


async def probe() -> str | None:
    """None when a node's namespaces can be created and entered here, else what failed."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        return "nsenter (util-linux), which runs every command inside a node, is not installed"
    box = Sandbox("probe")
    plan = {"hostname": "probe", "readonly_host": False,
            "steps": [{"op": "proc", "target": "/proc"}], "chdir": "/"}  # fmt: skip
    try:
        await box.start(plan)
        proc = await asyncio.create_subprocess_exec(
            *box.enter_argv(["true"]), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip() or f"exit {proc.returncode}"
            return f"{nsenter} cannot enter a node's namespaces ({detail})"
    except SandboxError as exc:
        why = str(exc).split(": ", 2)[-1]
        return f"cannot create a node's user, mount, UTS and PID namespaces ({why})"
    except OSError as exc:
        return f"cannot run {nsenter}: {exc}"
    finally:
        await box.stop()
    return None


def installed_packages(np: NodePaths) -> set[str]:
    try:
        data = json.loads((np.lab / "packages.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(data.get("installed", {}))
