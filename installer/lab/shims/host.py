"""Who and what the node is: hostnamectl, timedatectl, systemd-detect-virt, uname, nproc, sudo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from installer.lab.shims import base
from installer.lab.shims.base import err, out


def hostnamectl(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if words[:1] == ["set-hostname"] and len(words) > 1:
        name = words[1]
        Path("/etc/hostname").write_text(name + "\n", encoding="utf-8")
        subprocess.run(["hostname", name], check=False)
        return 0
    if words[:1] == ["hostname"]:
        out(os.uname().nodename)
        return 0
    f = base.facts()
    out(
        f"   Static hostname: {(base.read_node_file('/etc/hostname') or os.uname().nodename).strip()}"
    )
    out("         Icon name: computer-vm")
    out("           Chassis: vm")
    out(f"        Machine ID: {f['machine_id']}")
    out(f"    Virtualization: {f['virtualization']}")
    out(f"  Operating System: {f['os']['pretty_name']}")
    out(f"            Kernel: Linux {f['kernel']}")
    out("      Architecture: x86-64")
    return 0


def timedatectl(args: list[str]) -> int:
    base.replay("timedatectl")
    f = base.facts()
    words = [a for a in args if not a.startswith("-")]
    st = base.peek_node("time")
    ntp = st.get("ntp", f.get("time_sync") is not None)
    synced = bool(ntp and f.get("ntp_synchronized", True))
    tz = st.get("timezone", f["timezone"])
    if words[:1] == ["set-ntp"] and len(words) > 1:
        with base.node_state("time") as s:
            s["ntp"] = words[1] in ("true", "yes", "1", "on")
        return 0
    if words[:1] == ["set-timezone"] and len(words) > 1:
        with base.node_state("time") as s:
            s["timezone"] = words[1]
        Path("/etc/timezone").write_text(words[1] + "\n", encoding="utf-8")
        return 0
    now = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if words[:1] == ["show"]:
        values = {
            "Timezone": tz, "LocalRTC": "no", "CanNTP": "yes", "NTP": "yes" if ntp else "no",
            "NTPSynchronized": "yes" if synced else "no", "TimeUSec": now, "RTCTimeUSec": now,
        }  # fmt: skip
        props = [
            args[i + 1]
            for i, a in enumerate(args)
            if a in ("-p", "--property") and i + 1 < len(args)
        ]
        for k, v in values.items():
            if props and k not in props:
                continue
            out(v if "--value" in args else f"{k}={v}")
        return 0
    out(f"               Local time: {now}")
    out(f"           Universal time: {now}")
    out(f"                 RTC time: {time.strftime('%a %Y-%m-%d %H:%M:%S', time.gmtime())}")
    out(f"                Time zone: {tz} (UTC, +0000)")
    out(f"System clock synchronized: {'yes' if synced else 'no'}")
    out(f"              NTP service: {'active' if ntp else 'inactive'}")
    out("          RTC in local TZ: no")
    return 0


def systemd_detect_virt(args: list[str]) -> int:
    base.replay("virt")
    virt = str(base.facts().get("virtualization", "none"))
    if "-c" in args or "--container" in args:
        virt = "none"
    if "-q" not in args and "--quiet" not in args:
        out(virt)
    return 1 if virt == "none" else 0


def chronyc(args: list[str]) -> int:
    base.replay("chronyc")
    out(
        "Reference ID    : 0A000101 (10.0.1.1)\nStratum         : 3\nSystem time     : 0.000012 seconds fast of NTP time"
    )
    out("Leap status     : Normal")
    return 0


def ntpq(args: list[str]) -> int:
    base.replay("ntpq")
    out("     remote           refid      st t when poll reach   delay   offset  jitter")
    out("==============================================================================")
    out("*10.0.1.1        .GPS.            1 u   33   64  377    0.211    0.012   0.008")
    return 0


def uname(args: list[str]) -> int:
    f = base.facts()
    raw_kernel = base.raw_section("kernel")
    raw_arch = base.raw_section("arch")
    kernel = raw_kernel[0].strip() if raw_kernel else f["kernel"]
    arch = raw_arch[0].strip() if raw_arch else f["arch"]
    fields = {
        "s": "Linux", "n": os.uname().nodename, "r": kernel,
        "v": "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023", "m": arch, "p": arch, "i": arch,
        "o": "GNU/Linux",
    }  # fmt: skip
    long = {"--kernel-name": "s", "--nodename": "n", "--kernel-release": "r", "--kernel-version": "v",
            "--machine": "m", "--processor": "p", "--hardware-platform": "i", "--operating-system": "o"}  # fmt: skip
    wanted: list[str] = []
    for a in args:
        if a in ("-a", "--all"):
            wanted = list("snrvmpio")
        elif a in long:
            wanted.append(long[a])
        elif a.startswith("-") and not a.startswith("--"):
            wanted += list(a[1:])
    order = [k for k in "snrvmpio" if k in wanted] or ["s"]
    out(" ".join(fields[k] for k in order))
    return 0


def nproc(args: list[str]) -> int:
    n = int(base.facts().get("cpus", 1))
    for a in args:
        if a.startswith("--ignore="):
            n = max(1, n - int(a.split("=", 1)[1]))
    out(str(n))
    return 0


def sudo(args: list[str]) -> int:
    """sudo as root runs the command; the sudo_reject fault refuses every password."""
    read_stdin = False
    non_interactive = False
    prompt = "[sudo] password for root: "
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a in ("-u", "-g", "-p", "-C", "-h", "-U", "-r", "-t", "-D"):
            if a == "-p" and i + 1 < len(args):
                prompt = args[i + 1]
            i += 2
            continue
        if a.startswith("--prompt="):
            prompt = a.split("=", 1)[1]
        if a.startswith("--") and "=" in a:
            i += 1
            continue
        if a.startswith("-") and not a.startswith("--"):
            read_stdin = read_stdin or "S" in a
            non_interactive = non_interactive or "n" in a
            if a in ("-V", "--version"):
                out("Sudo version 1.9.9")
                return 0
            if a in ("-v", "-k", "-K"):
                return 0
        elif a == "--stdin":
            read_stdin = True
        elif a == "--non-interactive":
            non_interactive = True
        i += 1
    command = args[i:]
    if _sudo_rejects():
        if non_interactive:
            err("sudo: a password is required")
            return 1
        if not read_stdin:
            err(
                "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper"
            )
            err("sudo: a password is required")
            return 1
        # As sudo -S: the prompt on stderr before each read, three tries.
        tries = 0
        for attempt in range(3):
            err(prompt, end="")
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                break
            tries += 1
            err("Sorry, try again." if attempt < 2 else "")
        if tries == 0:
            err("sudo: no password was provided")
            err("sudo: a password is required")
        else:
            err(f"sudo: {tries} incorrect password attempt{'s' if tries != 1 else ''}")
        return 1
    if not command:
        err("usage: sudo -h | -K | -k | -V")
        return 1
    env = base.clean_env()
    env.setdefault("SUDO_USER", "root")
    base.log_call("sudo", args, 0, time.time())
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - sudo becomes the command
    except FileNotFoundError:
        err(f"sudo: {command[0]}: command not found")
        return 1
    except PermissionError:
        err(f"sudo: unable to execute {command[0]}: Permission denied")
        return 126


def _sudo_rejects() -> bool:
    name = base.node_name()
    for fault in base.lab().get("faults", []):
        if fault.get("kind") == "sudo_reject" and fault.get("node") in (None, name):
            return True
    return False
