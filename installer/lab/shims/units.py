"""systemd units of a node: where they come from, what starting one does."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system")
LOG_DIR = Path("/var/log/fmp-lab")

# Units of a fresh Ubuntu server, and of the packages the apt/snap shims install.
# behavior: noop (just active), real (run ExecStart), haproxy/keepalived (config
# check with the real binary), kubelet, rke2-server, rke2-agent.
BUILTIN: dict[str, dict[str, Any]] = {
    "ssh.service": {"description": "OpenBSD Secure Shell server", "behavior": "noop", "enabled": True, "active": True},
    "systemd-resolved.service": {"description": "Network Name Resolution", "behavior": "noop", "enabled": True, "active": True},
    "systemd-networkd.service": {"description": "Network Configuration", "behavior": "noop", "enabled": True, "active": True},
    "cron.service": {"description": "Regular background program processing daemon", "behavior": "noop", "enabled": True, "active": True},
    "rsyslog.service": {"description": "System Logging Service", "behavior": "noop", "enabled": True, "active": True},
    "snapd.service": {"description": "Snap Daemon", "behavior": "noop", "enabled": True, "active": True},
    "ufw.service": {"description": "Uncomplicated firewall", "behavior": "noop", "enabled": True, "active": True},
    "apparmor.service": {"description": "Load AppArmor profiles", "behavior": "noop", "enabled": True, "active": True},
    "multipathd.service": {"description": "Device-Mapper Multipath Device Controller", "behavior": "noop", "enabled": True, "active": True},
    "lvm2-monitor.service": {"description": "Monitoring of LVM2 mirrors", "behavior": "noop", "enabled": True, "active": True},
    "systemd-sysctl.service": {"description": "Apply Kernel Variables", "behavior": "sysctl", "enabled": True, "active": True},
    "systemd-modules-load.service": {"description": "Load Kernel Modules", "behavior": "noop", "enabled": True, "active": True},
    "multi-user.target": {"description": "Multi-User System", "behavior": "noop", "enabled": True, "active": True},
    "network-online.target": {"description": "Network is Online", "behavior": "noop", "enabled": True, "active": True},
}  # fmt: skip
TIME_UNITS = {
    "systemd-timesyncd": "systemd-timesyncd.service",
    "chrony": "chrony.service",
    "ntp": "ntp.service",
}
PACKAGE_UNITS: dict[str, dict[str, dict[str, Any]]] = {
    "etcd-server": {"etcd.service": {"description": "etcd - highly-available key value store",
                                     "behavior": "real", "enabled": True, "active": False,
                                     "unit": "[Unit]\nDescription=etcd - highly-available key value store\n"
                                             "[Service]\nType=notify\nEnvironmentFile=-/etc/default/etcd\n"
                                             "ExecStart=/usr/bin/etcd $DAEMON_ARGS\nRestart=on-abnormal\n"}},
    "haproxy": {"haproxy.service": {"description": "HAProxy Load Balancer", "behavior": "haproxy",
                                    "enabled": True, "active": True}},
    "keepalived": {"keepalived.service": {"description": "Keepalive Daemon (LVS and VRRP)",
                                          "behavior": "keepalived", "enabled": True, "active": False}},
    "kubelet": {"kubelet.service": {"description": "kubelet: The Kubernetes Node Agent",
                                    "behavior": "kubelet", "enabled": True, "active": True}},
    "containerd": {"containerd.service": {"description": "containerd container runtime", "behavior": "noop",
                                          "enabled": True, "active": True}},
    "containerd.io": {"containerd.service": {"description": "containerd container runtime", "behavior": "noop",
                                             "enabled": True, "active": True}},
    "docker-ce": {"docker.service": {"description": "Docker Application Container Engine", "behavior": "noop",
                                     "enabled": True, "active": True}},
    "docker.io": {"docker.service": {"description": "Docker Application Container Engine", "behavior": "noop",
                                     "enabled": True, "active": True}},
    "chrony": {"chrony.service": {"description": "chrony, an NTP client/server", "behavior": "noop",
                                  "enabled": True, "active": True}},
    "ntp": {"ntp.service": {"description": "Network Time Service", "behavior": "noop", "enabled": True,
                            "active": True}},
    "open-iscsi": {"iscsid.service": {"description": "iSCSI initiator daemon (iscsid)", "behavior": "noop",
                                      "enabled": True, "active": True}},
    "nfs-common": {"rpcbind.service": {"description": "RPC bind portmap service", "behavior": "noop",
                                       "enabled": True, "active": True}},
}  # fmt: skip


def canonical(name: str) -> str:
    if "." in name.rsplit("/", 1)[-1] and name.rsplit(".", 1)[-1] in (
        "service", "target", "socket", "timer", "mount", "path", "slice", "scope"
    ):  # fmt: skip
        return name
    return name + ".service"


def unit_file(unit: str) -> Path | None:
    for d in UNIT_DIRS:
        p = Path(d) / unit
        if p.is_file():
            return p
    return None


def parse_unit(text: str) -> dict[str, list[str]]:
    """[Service] (and [Unit]) keys -> values, with continuation lines joined."""
    keys: dict[str, list[str]] = {}
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def known(unit: str, states: dict[str, Any]) -> dict[str, Any] | None:
    """What a unit is on this node (None: no such unit)."""
    info: dict[str, Any] | None = None
    if unit in BUILTIN:
        info = dict(BUILTIN[unit])
    ts = base.facts().get("time_sync")
    if ts and TIME_UNITS.get(ts) == unit:
        info = {
            "description": "Network Time Synchronization",
            "behavior": "noop",
            "enabled": True,
            "active": True,
        }
    for package in base.peek_node("packages").get("installed", {}):
        if unit in PACKAGE_UNITS.get(package, {}):
            info = dict(PACKAGE_UNITS[package][unit])
    extra = states.get(unit, {}).get("provided")
    if extra:
        info = dict(extra)
    path = unit_file(unit)
    if path is not None:
        # A timer (or target, path) unit has no process: starting it arms or reaches it.
        passive = unit.endswith((".timer", ".target", ".path"))
        base_info = info or {"description": unit, "behavior": "noop" if passive else "real"}
        text = path.read_text(encoding="utf-8", errors="replace")
        desc = parse_unit(text).get("Description", [base_info.get("description", unit)])[-1]
        behavior = base_info.get("behavior", "real")
        info = {
            **base_info,
            "description": desc,
            "behavior": behavior,
            "path": str(path),
            "unit": text,
        }
    return info


def load_env(keys: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in keys.get("EnvironmentFile", []):
        optional = spec.startswith("-")
        path = Path(spec.lstrip("-"))
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    env[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
        except OSError:
            if not optional:
                raise base.ShimExit(1) from None
    for spec in keys.get("Environment", []):
        for item in shlex.split(spec):
            k, _, v = item.partition("=")
            env[k] = v
    return env


def expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: ${VAR} in place, $VAR split into words."""
    words: list[str] = []
    for word in shlex.split(command):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words += env.get(word[1:], "").split()
            continue
        words.append(
            re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word)
        )
    return [w for w in words if w != ""]


def _exec_path(words: list[str]) -> list[str]:
    # systemd accepts prefixes like "-", "@", "+", "!" on ExecStart.
    if words:
        words[0] = words[0].lstrip("-@+!:")
    return words


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class StartFailed(Exception):
    pass


def _log(unit: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{unit}.log"


def run_real(unit: str, info: dict[str, Any], timeout: float = 90.0) -> int | None:
    """Start a unit's ExecStart inside this node; returns its PID (None for oneshot)."""
    keys = parse_unit(info.get("unit", ""))
    env = {**base.clean_env(), **load_env(keys)}
    env.pop("NOTIFY_SOCKET", None)
    kind = keys.get("Type", ["simple"])[-1]
    log = open(_log(unit), "ab")  # noqa: SIM115 - handed to the child
    for pre in keys.get("ExecStartPre", []):
        words = _exec_path(expand(pre, env))
        try:
            rc = subprocess.call(words, stdout=log, stderr=log, env=env) if words else 0
        except OSError as exc:
            # systemd: a missing executable of a "-" command is skipped, else the unit fails.
            if not pre.startswith("-"):
                log.close()
                raise StartFailed("control process exited with error code") from None
            log.write(f"{unit}: Executable {words[0]} missing, skipping: {exc.strerror}\n".encode())
            rc = 0
        if rc != 0 and not pre.startswith("-"):
            raise StartFailed("control process exited with error code")
    exec_start = keys.get("ExecStart", [])
    if not exec_start:
        raise StartFailed("Service has no ExecStart= setting")
    words = _exec_path(expand(exec_start[-1], env))
    notify: socket.socket | None = None
    if kind == "notify":
        sock_path = f"/run/systemd/notify-{unit}-{os.getpid()}"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(sock_path)
        notify.settimeout(0.2)
        env["NOTIFY_SOCKET"] = sock_path
    cwd = keys.get("WorkingDirectory", [None])[-1]
    try:
        proc = subprocess.Popen(
            words, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            cwd=cwd.lstrip("-") if cwd else "/", start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        log.write(
            f"{unit}: Failed to execute {words[0] if words else '?'}: {exc.strerror}\n".encode()
        )
        raise StartFailed("control process exited with error code") from None
    finally:
        log.close()
    if kind == "oneshot" or kind == "forking":
        if proc.wait() != 0:
            raise StartFailed("control process exited with error code")
        return None
    if notify is not None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise StartFailed("the control process exited with error code")
                try:
                    msg = notify.recv(4096).decode(errors="replace")
                except TimeoutError:
                    continue
                if "READY=1" in msg.split("\n"):
                    return proc.pid
            os.kill(proc.pid, signal.SIGKILL)
            raise StartFailed("a timeout was exceeded")
        finally:
            notify.close()
            with contextlib.suppress(OSError):
                os.unlink(env["NOTIFY_SOCKET"])
    time.sleep(0.2)
    return proc.pid


def stop_pid(pid: int | None) -> None:
    if not alive(pid):
        return
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
    for _ in range(50):
        if not alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
