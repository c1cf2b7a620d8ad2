"""snap: install (microk8s, helm, kubectl), list, remove, alias."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from installer.lab.shims import base
from installer.lab.shims.base import err, out

SNAPS = {"microk8s": {"version": "v1.35.0", "rev": "8300", "tools": ["microk8s"]},
         "helm": {"version": "3.18.4", "rev": "510", "tools": ["helm"]},
         "kubectl": {"version": "1.35.0", "rev": "3600", "tools": ["kubectl"]}}  # fmt: skip


def snap(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        err("The snap command lets you install, configure, refresh and remove snaps.")
        return 1
    verb = words[0]
    state = base.peek_node("snaps")
    if verb == "refresh" and any(
        a in ("--hold", "--unhold") or a.startswith("--hold=") for a in args
    ):
        # snapd 2.58+ (cmd_refresh.go): a hold with no duration is forever
        names = words[1:]
        unknown = [n for n in names if n not in state]
        if unknown:
            err(f'error: snap "{unknown[0]}" is not installed')
            return 1
        hold = "--unhold" not in args
        with base.node_state("snaps") as st:
            for n in names:
                st[n]["held"] = hold
        for n in names:
            out(
                f'General refreshes of "{n}" held indefinitely'
                if hold
                else f'Removed general refresh hold of "{n}"'
            )
        return 0
    if verb in ("wait", "version", "refresh", "connect", "set", "get"):
        if verb == "version":
            out("snap    2.63\nsnapd   2.63\nseries  16\nubuntu  22.04")
        return 0
    if verb == "list":
        wanted = words[1:]
        rows = [("core20", "20240227", "2264", "latest/stable", "base"),
                ("snapd", "2.63", "21759", "latest/stable", "snapd")]  # fmt: skip
        # Notes: "held" after snap refresh --hold NAME (snapd 2.58+)
        rows += [
            (
                n,
                s["version"],
                s["rev"],
                s["channel"],
                "classic,held" if s.get("held") else "classic",
            )
            for n, s in state.items()
        ]
        rows = sorted(r for r in rows if not wanted or r[0] in wanted)
        if not rows:
            # snapd cmd_list.go: ErrNoMatchingSnaps
            err("error: no matching snaps installed")
            return 1
        out("Name      Version        Rev    Tracking       Publisher   Notes")
        for row in rows:
            out(f"{row[0]:<10}{row[1]:<15}{row[2]:<7}{row[3]:<15}canonical✓  {row[4]}")
        return 0
    if verb == "install":
        channel = next(
            (a.split("=", 1)[1] for a in args if a.startswith("--channel=")), "latest/stable"
        )
        if "--channel" in args:
            channel = args[args.index("--channel") + 1]
            words = [w for w in words if w != channel]
        for name in words[1:]:
            if name not in SNAPS:
                err(f'error: snap "{name}" not found')
                return 1
            info = SNAPS[name]
            version = info["version"]
            m = re.match(r"(1\.\d+)", channel)
            if name == "microk8s" and m:
                version = f"v{m.group(1)}.0"
            if name in state:
                out(f"snap \"{name}\" is already installed, see 'snap help refresh'")
                continue
            if name == "microk8s" and "--classic" not in args:
                err(
                    'error: This revision of snap "microk8s" was published using classic confinement and thus\n       may perform arbitrary system changes outside of the security sandbox that snaps are\n       usually confined to, which may put your system at risk.\n\n       If you understand and want to proceed repeat the command including --classic.'
                )
                return 1
            for tool in info["tools"]:
                base.link_tool(tool)
            if name == "microk8s":
                for d in ("/var/snap/microk8s/current/args", "/var/snap/microk8s/current/certs"):
                    Path(d).mkdir(parents=True, exist_ok=True)
            with base.node_state("snaps") as st:
                st[name] = {"version": version, "rev": info["rev"], "channel": channel}
            out(f"{name} ({channel}) {version} from Canonical✓ installed")
        return 0
    if verb == "remove":
        for name in words[1:]:
            with base.node_state("snaps") as st:
                st.pop(name, None)
            for tool in SNAPS.get(name, {}).get("tools", []):
                base.unlink_tool(tool)
            out(f"{name} removed")
        return 0
    if verb == "alias" and len(words) >= 3:
        target, alias = words[1], words[2]
        snap_name, _, cmd = target.partition(".")
        script = base.PKGBIN_DIR / alias
        with contextlib.suppress(FileNotFoundError):
            script.unlink()
        script.write_text(f'#!/bin/sh\nexec {snap_name} {cmd} "$@"\n', encoding="utf-8")
        script.chmod(0o755)
        out(f"Added:\n  - {target} as {alias}")
        return 0
    if verb == "info" and len(words) > 1:
        out(
            f"name:      {words[1]}\nsummary:   {words[1]}\ninstalled: {state.get(words[1], {}).get('version', '')}"
        )
        return 0 if words[1] in SNAPS else 1
    return 0
