"""systemctl, service, journalctl, reboot/shutdown: a node's units and its boot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, units
from installer.lab.shims.base import die, err, out

JOB_FAILED = (
    "Job for {u} failed because {why}.\n"
    'See "systemctl status {u}" and "journalctl -xeu {u}" for details.'
)


def _states() -> dict[str, Any]:
    return base.peek_node("units")  # type: ignore[no-any-return]


def _state(unit: str) -> dict[str, Any]:
    st = _states().get(unit)
    return dict(st) if st else {}


def _save(unit: str, **changes: Any) -> None:
    with base.node_state("units") as states:
        st = states.setdefault(unit, {})
        st.update(changes)


def active_state(unit: str, info: dict[str, Any] | None = None) -> str:
    info = info if info is not None else units.known(unit, _states())
    if info is None:
        return "inactive"
    st = _state(unit)
    behavior = info.get("behavior")
    if behavior == "kubelet":
        if not st.get("active", info.get("active", False)):
            return "inactive"
        return "active" if Path("/var/lib/kubelet/config.yaml").exists() else "activating"
    if st.get("failed"):
        return "failed"
    if behavior == "real":
        if not st.get("active"):
            return "inactive"
        return "active" if units.alive(st.get("pid")) or st.get("oneshot") else "failed"
    if "active" not in st:
        return "active" if info.get("active") else "inactive"
    return "active" if st["active"] else "inactive"


def is_enabled(unit: str, info: dict[str, Any]) -> bool:
    return bool(_state(unit).get("enabled", info.get("enabled", False)))


def start(unit: str, quiet: bool = False) -> int:
    states = _states()
    info = units.known(unit, states)
    if info is None:
        err(f"Failed to start {unit}: Unit {unit} not found.")
        return 5
    if states.get(unit, {}).get("masked"):
        err(f"Failed to start {unit}: Unit {unit} is masked.")
        return 1
    if active_state(unit, info) == "active" and info.get("behavior") != "kubelet":
        return 0
    behavior = info.get("behavior", "noop")
    try:
        pid = _start_behavior(unit, info, behavior)
    except units.StartFailed as exc:
        _save(unit, active=False, failed=True, pid=None, since=time.time())
        if not quiet:
            err(JOB_FAILED.format(u=unit, why=str(exc)))
        return 1
    _save(unit, active=True, failed=False, pid=pid, oneshot=pid is None, since=time.time())
    return 0


def _check(unit: str, argv: list[str]) -> None:
    """Run a real config check; its output goes to the unit's journal, a failure fails the start."""
    log = units._log(unit)
    if not Path(argv[0]).exists():
        return  # the real tool is not installed here: nothing to check with
    result = subprocess.run(argv, capture_output=True, text=True, env=base.clean_env())
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise units.StartFailed("the control process exited with error code")


def _start_behavior(unit: str, info: dict[str, Any], behavior: str) -> int | None:
    if behavior == "haproxy":
        cfg = units.load_env(units.parse_unit(info.get("unit", ""))).get(
            "CONFIG", "/etc/haproxy/haproxy.cfg"
        )
        if not Path(cfg).exists():
            raise units.StartFailed("the control process exited with error code")
        _check(unit, [str(base.REAL_DIR / "haproxy"), "-c", "-f", cfg])
        return None
    if behavior == "keepalived":
        cfg = "/etc/keepalived/keepalived.conf"
        if not Path(cfg).exists():
            raise units.StartFailed(
                "of an unmet condition check (ConditionFileNotEmpty=/etc/keepalived/keepalived.conf)"
            )
        copy = _keepalived_host_copy(cfg)
        if copy is not None:
            try:
                _check(unit, [str(base.REAL_DIR / "keepalived"), "-t", "-f", str(copy)])
            finally:
                copy.unlink(missing_ok=True)
        _keepalived_state(cfg, active=True)
        return None
    if behavior == "real":
        return units.run_real(unit, info)
    if behavior in ("rke2-server", "rke2-agent"):
        from installer.lab.shims import rke

        rke.service_start(behavior.removeprefix("rke2-"))
        return None
    if behavior == "sysctl":
        from installer.lab.shims import kernel

        kernel.sysctl(["--system", "-q"])
        return None
    return None


def _keepalived_host_copy(cfg: str) -> Path | None:
    """keepalived -t looks the interfaces up in the real network namespace, where the node's
    NICs do not exist: a copy of ``cfg`` that names one of the host's NICs instead (None: the
    host has no NIC to name)."""
    import re

    host_nics = base.lab().get("host_nics") or []
    if not host_nics:
        return None
    nics = "|".join(re.escape(n["name"]) for n in base.facts()["nics"]) or "ens18"
    text = Path(cfg).read_text(encoding="utf-8", errors="replace")
    copy = Path(f"/run/fmp-lab-keepalived-check-{os.getpid()}.conf")
    copy.write_text(
        # "interface NIC" and the "dev NIC" of virtual_ipaddress / virtual_routes lines.
        re.sub(rf"(\b(?:interface|dev)\s+)({nics})\b", rf"\g<1>{host_nics[0]}", text),
        encoding="utf-8",
    )
    return copy


def keepalived(args: list[str]) -> int:
    """The real keepalived (installed by its package); -t checks the config against the
    node's NICs, as it would on the node's own network."""
    real = base.REAL_DIR / "keepalived"
    if not real.exists():
        err("keepalived: command not found")
        return 127
    test = any(a in ("-t", "--config-test") or a.startswith("--config-test=") for a in args)
    cfg = base.opt(args, "-f", "--use-file") or "/etc/keepalived/keepalived.conf"
    copy = _keepalived_host_copy(cfg) if test and Path(cfg).is_file() else None
    if copy is None:
        os.execv(str(real), ["keepalived", *args])  # noqa: S606 - the real binary, same argv
    argv = [
        a for a in args if a not in ("-f", "--use-file", cfg) and not a.startswith("--use-file=")
    ]
    try:
        result = subprocess.run(
            [str(real), *argv, "-f", str(copy)],
            capture_output=True,
            text=True,
            env=base.clean_env(),
        )
    finally:
        copy.unlink(missing_ok=True)
    sys.stdout.write(result.stdout.replace(str(copy), cfg))
    sys.stderr.write(result.stderr.replace(str(copy), cfg))
    return result.returncode


def _keepalived_state(cfg: str, active: bool) -> None:
    """Who holds the VIP is decided across nodes: the highest priority among active keepalived."""
    import re

    text = base.read_node_file(cfg) or ""
    prio = re.search(r"^\s*priority\s+(\d+)", text, re.MULTILINE)
    iface = re.search(r"^\s*interface\s+(\S+)", text, re.MULTILINE)
    block = re.search(r"virtual_ipaddress\s*\{([^}]*)\}", text)
    vips = [
        line.split()[0] for line in (block.group(1) if block else "").splitlines() if line.split()
    ]
    with base.cluster_state("keepalived") as st:
        st[base.node_name()] = {
            "active": active,
            "priority": int(prio.group(1)) if prio else 100,
            "interface": iface.group(1) if iface else None,
            "vips": vips,
        }


def stop(unit: str) -> int:
    info = units.known(unit, _states())
    if info is None:
        err(f"Failed to stop {unit}: Unit {unit} not loaded.")
        return 5
    st = _state(unit)
    units.stop_pid(st.get("pid"))
    if info.get("behavior") in ("rke2-server", "rke2-agent"):
        from installer.lab.shims import rke

        rke.service_stop()
    if info.get("behavior") == "keepalived":
        _keepalived_state("/etc/keepalived/keepalived.conf", active=False)
    _save(unit, active=False, failed=False, pid=None)
    return 0


def _wants(unit: str) -> Path:
    return Path("/etc/systemd/system/multi-user.target.wants") / unit


def enable(unit: str, now: bool) -> int:
    info = units.known(unit, _states())
    if info is None:
        err(f"Failed to enable unit: Unit file {unit} does not exist.")
        return 1
    if not is_enabled(unit, info):
        target = info.get("path") or f"/lib/systemd/system/{unit}"
        link = _wants(unit)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
        err(f"Created symlink {link} → {target}.")
    _save(unit, enabled=True)
    return start(unit) if now else 0


def disable(unit: str, now: bool) -> int:
    info = units.known(unit, _states())
    if info is None:
        err(f"Failed to disable unit: Unit file {unit} does not exist.")
        return 1
    if is_enabled(unit, info):
        link = _wants(unit)
        if link.is_symlink():
            link.unlink()
        err(f"Removed {link}.")
    _save(unit, enabled=False)
    return stop(unit) if now else 0


def status(unit: str) -> int:
    info = units.known(unit, _states())
    if info is None:
        err(f"Unit {unit} could not be found.")
        return 4
    state = active_state(unit, info)
    st = _state(unit)
    enabled = "enabled" if is_enabled(unit, info) else "disabled"
    since = time.strftime(
        "%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(st.get("since", time.time() - 3600))
    )
    sub = {
        "active": "running",
        "inactive": "dead",
        "failed": "failed",
        "activating": "auto-restart",
    }[state]
    dot = {"active": "●", "failed": "×"}.get(state, "○")  # noqa: RUF001 - systemctl prints this very glyph
    out(f"{dot} {unit} - {info.get('description', unit)}")
    out(
        f"     Loaded: loaded ({info.get('path') or '/lib/systemd/system/' + unit}; {enabled}; vendor preset: enabled)"
    )
    out(f"     Active: {state} ({sub}) since {since}")
    if st.get("pid") and state == "active":
        out(f"   Main PID: {st['pid']} ({unit.split('.')[0]})")
    log = units.LOG_DIR / f"{unit}.log"
    if log.exists():
        out("")
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]:
            out(
                f"{time.strftime('%b %d %H:%M:%S')} {base.node_name()} {unit.split('.')[0]}[{st.get('pid') or 1}]: {line}"
            )
    return {"active": 0, "activating": 3, "inactive": 3, "failed": 3}[state]


def list_units(args: list[str]) -> int:
    import fnmatch

    patterns = [a for a in args if not a.startswith("-")]
    want_state = next((a.split("=", 1)[1] for a in args if a.startswith("--state=")), None)
    want_type = next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), None)
    names = set(units.BUILTIN) | set(_states())
    ts = base.facts().get("time_sync")
    if ts in units.TIME_UNITS:
        names.add(units.TIME_UNITS[ts])
    for package in base.peek_node("packages").get("installed", {}):
        names |= set(units.PACKAGE_UNITS.get(package, {}))
    rows = []
    for unit in sorted(names):
        info = units.known(unit, _states())
        if info is None:
            continue
        if patterns and not any(
            fnmatch.fnmatch(unit, p) or fnmatch.fnmatch(unit, p + ".service") for p in patterns
        ):
            continue
        if want_type and not unit.endswith("." + want_type):
            continue
        state = active_state(unit, info)
        if want_state and state not in want_state.split(","):
            continue
        sub = {
            "active": "running",
            "inactive": "dead",
            "failed": "failed",
            "activating": "auto-restart",
        }[state]
        rows.append(f"{unit} loaded {state} {sub} {info.get('description', unit)}")
    for row in rows:
        out(row)
    return 0


def systemctl(args: list[str]) -> int:
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    quiet = "-q" in flags or "--quiet" in flags
    if "--fmp-lab-boot" in flags:
        return boot()
    if not words:
        return list_units(args)
    verb, names = words[0], [units.canonical(w) for w in words[1:]]
    if verb in ("daemon-reload", "daemon-reexec", "reset-failed"):
        return 0
    if verb in ("reboot", "poweroff", "halt"):
        return request_power("reboot" if verb == "reboot" else "poweroff")
    if verb in ("list-units", "list-unit-files"):
        return list_units(args[1:])
    if verb in ("start", "stop", "restart", "reload", "try-restart", "reload-or-restart", "enable",
                "disable", "is-active", "is-enabled", "is-failed", "status", "mask", "unmask", "show",
                "kill") and not names and verb != "status":  # fmt: skip
        die("Too few arguments.", 1)
    rc = 0
    if verb == "show":
        return show(names, args)
    if (
        "--no-block" in flags
        and verb in ("start", "restart", "try-restart", "reload-or-restart", "reload")
        and all(units.known(u, _states()) is not None for u in names)
    ):
        return _no_block([a for a in args if a != "--no-block"])
    for unit in names:
        if verb == "start":
            rc = rc or start(unit)
        elif verb == "stop":
            rc = rc or stop(unit)
        elif verb in ("restart", "try-restart", "reload-or-restart", "reload"):
            info = units.known(unit, _states())
            if info is None:
                err(f"Failed to {verb} {unit}: Unit {unit} not found.")
                rc = rc or 5
                continue
            if verb == "try-restart" and active_state(unit, info) != "active":
                continue
            if info.get("behavior") == "real" or verb != "reload":
                stop(unit)
            rc = rc or start(unit)
        elif verb == "enable":
            rc = rc or enable(unit, "--now" in flags)
        elif verb == "disable":
            rc = rc or disable(unit, "--now" in flags)
        elif verb == "is-active":
            state = active_state(unit)
            if not quiet:
                out(state)
            rc = rc or (0 if state == "active" else 3)
        elif verb == "is-failed":
            state = active_state(unit)
            if not quiet:
                out(state)
            rc = rc or (0 if state == "failed" else 1)
        elif verb == "is-enabled":
            info = units.known(unit, _states())
            if info is None:
                if not quiet:
                    err(f"Failed to get unit file state for {unit}: No such file or directory")
                rc = rc or 1
                continue
            if _state(unit).get("masked"):
                state = "masked"
            else:
                state = "enabled" if is_enabled(unit, info) else "disabled"
            if not quiet:
                out(state)
            rc = rc or (0 if state == "enabled" else 1)
        elif verb == "status":
            rc = rc or status(unit)
        elif verb in ("mask", "unmask"):
            _save(unit, masked=verb == "mask")
            if verb == "mask":
                err(f"Created symlink /etc/systemd/system/{unit} → /dev/null.")
        elif verb == "kill":
            units.stop_pid(_state(unit).get("pid"))
        else:
            die(f"Unknown command verb {verb}.", 1)
    return rc


def _no_block(args: list[str]) -> int:
    """--no-block: queue the job and return at once; the start goes on (a unit waiting for
    READY=1 is "activating" meanwhile, as under systemd)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        return 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        systemctl(args)
    finally:
        os._exit(0)


def show(names: list[str], args: list[str]) -> int:
    props: list[str] = []
    for i, a in enumerate(args):
        if a in ("-p", "--property") and i + 1 < len(args):
            props += args[i + 1].split(",")
        elif a.startswith("--property="):
            props += a.split("=", 1)[1].split(",")
    value_only = "--value" in args
    for unit in names:
        info = units.known(unit, _states())
        st = _state(unit)
        state = active_state(unit, info) if info else "inactive"
        values = {
            "Id": unit,
            "LoadState": "loaded" if info else "not-found",
            "ActiveState": state,
            "SubState": {
                "active": "running",
                "inactive": "dead",
                "failed": "failed",
                "activating": "auto-restart",
            }[state],
            "MainPID": str(st.get("pid") or 0),
            "UnitFileState": ("enabled" if info and is_enabled(unit, info) else "disabled")
            if info
            else "",
            "Description": (info or {}).get("description", unit),
        }
        for p in props or list(values):
            v = values.get(p, "")
            out(v if value_only else f"{p}={v}")
    return 0


def boot() -> int:
    """What systemd does at boot: load modules, apply sysctls, start enabled units."""
    from installer.lab.shims import kernel

    modules: list[str] = []
    for d in ("/etc/modules-load.d", "/usr/local/lib/modules-load.d"):
        for f in sorted(Path(d).glob("*.conf")) if Path(d).is_dir() else []:
            modules += [
                ln.strip()
                for ln in f.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith(("#", ";"))
            ]
    for ln in (base.read_node_file("/etc/modules") or "").splitlines():
        if ln.strip() and not ln.startswith("#"):
            modules.append(ln.strip())
    for m in modules:
        kernel.load_module(m.split()[0], quiet=True)
    kernel.sysctl(["--system", "-q"])
    for unit, st in sorted(_states().items()):
        if st.get("enabled") and not st.get("masked"):
            start(unit, quiet=True)
    return 0


def request_power(kind: str) -> int:
    """Ask the lab to reboot (or power off) this node; the connection drops, as on a real host."""
    path = base.NODE_DIR / "lab" / "reboot.request"
    path.write_text(kind, encoding="utf-8")
    sys.stdout.flush()
    time.sleep(30)  # the lab kills the node long before this
    return 0


def reboot(args: list[str]) -> int:
    return request_power("reboot")


def shutdown(args: list[str]) -> int:
    if "-c" in args:
        return 0
    return request_power("reboot" if "-r" in args or "--reboot" in args else "poweroff")


def poweroff(args: list[str]) -> int:
    return request_power("poweroff")


halt = poweroff


def service(args: list[str]) -> int:
    if len(args) < 2:
        die(
            "Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]",
            1,
        )
    return systemctl([args[1], args[0]])


def journalctl(args: list[str]) -> int:
    unit = None
    lines = 50
    for i, a in enumerate(args):
        if a in ("-u", "--unit") and i + 1 < len(args):
            unit = units.canonical(args[i + 1])
        elif a.startswith("--unit="):
            unit = units.canonical(a.split("=", 1)[1])
        elif a in ("-n", "--lines") and i + 1 < len(args):
            lines = int(args[i + 1]) if args[i + 1].isdigit() else lines
    if unit is None:
        out("-- No entries --")
        return 0
    log = units.LOG_DIR / f"{unit}.log"
    text = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    if not text:
        out("-- No entries --")
    for line in text[-lines:]:
        out(f"{time.strftime('%b %d %H:%M:%S')} {base.node_name()} {unit.split('.')[0]}: {line}")
    return 0


# ---------------------------------------------------------------- identity and time


# ---------------------------------------------------------------- sudo
