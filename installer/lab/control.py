"""``lab up``, ``lab status``, ``lab down``: prepare D, start the daemon detached, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh

import installer
from installer.errors import OperatorError
from installer.lab import answers_gen, namespaces
from installer.lab.layout import LabPaths
from installer.lab.raw import spec_from_raw
from installer.lab.seed import seed_node
from installer.lab.spec import (
    LabSpec,
    ResolvedNode,
    SpecError,
    load_spec,
    resolve_nodes,
    with_node_count,
)

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


class LabError(OperatorError):
    pass


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_status(paths: LabPaths) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(paths.status.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return None


def daemon_pid(paths: LabPaths) -> int | None:
    try:
        return int(paths.pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _keys(paths: LabPaths, nodes: list[ResolvedNode]) -> str:
    """The client key (reused if D has one) and a host key per node; returns the client's public key."""
    if not paths.key.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="fmp-lab")
        key.write_private_key(str(paths.key))
        key.write_public_key(str(paths.key.with_suffix(".pub")))
        paths.key.chmod(0o600)
    pub = paths.key.with_suffix(".pub").read_text(encoding="utf-8")
    lines = []
    for n in nodes:
        np = paths.node(n.name)
        np.root.mkdir(parents=True, exist_ok=True)
        if not np.host_key.exists():
            hk = asyncssh.generate_private_key("ssh-ed25519", comment=f"root@{n.name}")
            hk.write_private_key(str(np.host_key))
            np.host_key.chmod(0o600)
        host_pub = (
            asyncssh.read_private_key(str(np.host_key))
            .export_public_key("openssh")
            .decode()
            .split()
        )
        where = n.address if n.port == 22 else f"[{n.address}]:{n.port}"
        lines.append(f"{where} {host_pub[0]} {host_pub[1]}")
    paths.known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pub


def _config(spec: LabSpec, nodes: list[ResolvedNode], profile: str) -> dict[str, Any]:
    return {
        "vip": spec.vip,
        # keepalived -t wants interfaces that exist where it runs: the node's NICs are fake.
        "host_nics": sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
        if Path("/sys/class/net").is_dir()
        else [],
        "api_port": 8443,
        "profile": profile,
        "reboot_seconds": spec.reboot_seconds,
        "nodes": [n.model_dump(mode="json") for n in nodes],
        "faults": [f.model_dump(mode="json") for f in spec.faults],
        "durations": [d.model_dump(mode="json") for d in spec.durations],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(installer.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _answers_ssh(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def up(
    root: Path, *, nodes: int | None, profile: str | None, spec_path: Path | None,
    from_raw: Path | None, quiet: bool = False,
) -> int:  # fmt: skip
    paths = LabPaths(root.resolve())
    pid = daemon_pid(paths)
    if pid_alive(pid):
        raise LabError(
            f"a lab already runs in {paths.root} (pid {pid})",
            hint=f"fmp-install lab down --dir {root}",
        )
    try:
        spec = load_spec(spec_path) if spec_path else LabSpec()
        if from_raw is not None:
            spec = spec_from_raw(from_raw, spec)
        spec = with_node_count(spec, nodes)
        resolved = resolve_nodes(spec)
    except SpecError as exc:
        raise LabError(str(exc)) from None
    profile = profile or answers_gen.DEFAULT_PROFILE
    why = asyncio.run(namespaces.probe())
    if why is not None:
        if shutil.which("nsenter") is None:
            hint = "install util-linux (it provides nsenter)"
        elif os.geteuid() == 0:
            hint = (
                "allow user, mount and PID namespaces here (sysctl user.max_user_namespaces, "
                "user.max_mnt_namespaces; a container's seccomp profile)"
            )
        else:
            hint = (
                "run as root, or enable unprivileged user namespaces (sysctl "
                "kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0)"
            )
        raise LabError(
            f"cannot sandbox the lab's nodes: {why}; "
            "the lab never runs node commands outside a sandbox",
            hint=hint,
        )
    for n in resolved:
        if _answers_ssh(n.address, n.port, 0.2):
            raise LabError(
                f"{n.address}:{n.port} is already in use",
                hint="pick another base_address or ssh_port in the spec",
            )
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.state.mkdir(exist_ok=True)
    pub = _keys(paths, resolved)
    namespaces.write_shim_dir(paths)
    config = _config(spec, resolved, profile)
    paths.config.write_text(json.dumps(config, indent=1), encoding="utf-8")
    for n in resolved:
        np = paths.node(n.name)
        if not np.node_json.exists():
            seed_node(np, n.model_dump(mode="json"), pub)
        else:
            np.node_json.write_text(
                json.dumps(n.model_dump(mode="json"), indent=1), encoding="utf-8"
            )
    answers = answers_gen.build_answers(spec, resolved, profile, paths.root)
    answers_gen.write_answers(paths.answers, answers)
    paths.status.unlink(missing_ok=True)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "installer.lab.daemon", str(paths.root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_env(),
            start_new_session=True, close_fds=True, cwd=str(paths.root),
        )  # fmt: skip
    paths.pidfile.write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        status = read_status(paths)
        if (
            status
            and status.get("state") == "ready"
            and all(_answers_ssh(n.address, n.port) for n in resolved)
        ):
            break
        if proc.poll() is not None or (status and status.get("state") == "failed"):
            proc.wait()
            tail = paths.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            reason = (status or {}).get("error") or "\n  ".join(tail) or "the lab daemon exited"
            _cleanup(paths)
            raise LabError(f"the lab did not start: {reason}", hint=f"see {paths.log}")
        if time.monotonic() > deadline:
            _stop(paths)
            raise LabError(
                f"the lab did not start within {START_TIMEOUT_S:.0f} s", hint=f"see {paths.log}"
            )
        time.sleep(0.1)
    if not quiet:
        print(f"lab up in {paths.root}: {len(resolved)} nodes, profile {profile}")
        _print_nodes(paths, read_status(paths) or {})
        first = resolved[0]
        port = "" if first.port == 22 else f" -p {first.port}"
        print(
            f"\n  ssh -i {paths.key} -o UserKnownHostsFile={paths.known_hosts}{port} root@{first.address}"
        )
        print(f"  fmp-install --answers {paths.answers}")
        print(f"  fmp-install lab down --dir {root}")
    return 0


def _print_nodes(paths: LabPaths, status: dict[str, Any]) -> None:
    config = (
        json.loads(paths.config.read_text(encoding="utf-8"))
        if paths.config.exists()
        else {"nodes": []}
    )
    roles: dict[str, list[str]] = {}
    with contextlib.suppress(Exception):
        from installer.answers import load_answers

        for h in load_answers(paths.answers, semantic=False).hosts:
            roles[h.label] = h.roles
    print(f"  {'NODE':<8} {'ADDRESS':<18} {'STATE':<10} ROLES")
    for n in config["nodes"]:
        st = status.get("nodes", {}).get(n["name"], {})
        state = st.get("state", "down")
        if state == "up" and not _answers_ssh(n["address"], n["port"], 0.5):
            state = "no-ssh"
        print(
            f"  {n['name']:<8} {n['address'] + ':' + str(n['port']):<18} {state:<10} {','.join(roles.get(n['name'], [])) or '-'}"
        )


def status(root: Path) -> int:
    paths = LabPaths(root.resolve())
    pid = daemon_pid(paths)
    st = read_status(paths)
    if not pid_alive(pid) or st is None:
        print(f"no lab runs in {paths.root}")
        return 1
    print(f"lab in {paths.root}: {st.get('state')} (pid {pid})")
    _print_nodes(paths, st)
    return 0


def _stop(paths: LabPaths) -> None:
    pid = daemon_pid(paths)
    st = read_status(paths) or {}
    if pid_alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # Whatever the daemon could not stop: each node's init (its PID namespace goes with it).
    for node in st.get("nodes", {}).values():
        for key in ("init_pid", "launcher_pid"):
            p = node.get(key)
            if pid_alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
    for _ in range(100):
        if not any(
            pid_alive(n.get("init_pid")) for n in st.get("nodes", {}).values()
        ) and not pid_alive(pid):
            break
        time.sleep(0.05)


def _cleanup(paths: LabPaths) -> None:
    for entry in paths.created_entries():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        paths.root.rmdir()  # only when nothing else was in D


def down(root: Path, keep: bool = False) -> int:
    paths = LabPaths(root.resolve())
    if not paths.root.exists():
        print(f"no lab in {paths.root}")
        return 0
    running = pid_alive(daemon_pid(paths))
    _stop(paths)
    if keep:
        paths.pidfile.unlink(missing_ok=True)
    else:
        _cleanup(paths)
    print(
        f"lab in {paths.root} {'stopped' if running else 'was not running'}{'' if keep else '; its files are removed'}"
    )
    return 0
