"""LVM of a node: pvcreate, vgcreate, lvcreate and friends, vgs/pvs/lvs reports (JSON too)."""

from __future__ import annotations

import json
from typing import Any

from installer.lab.shims import base, render
from installer.lab.shims.base import err, out
from installer.lab.shims.disks import DISKS, find, state


def _pv_entry(st: dict[str, Any], dev: str) -> dict[str, Any] | None:
    found = find(st, dev)
    if not found:
        return None
    disk, part = found
    return part or disk


def pvcreate(args: list[str]) -> int:
    devs = [a for a in args if a.startswith("/dev/")]
    with base.node_state(DISKS) as st:
        for dev in devs:
            t = _pv_entry(st, dev)
            if t is None:
                err(f"  No device found for {dev}.")
                return 5
            if t.get("fstype") == "LVM2_member":
                err(
                    f'  Can\'t initialize physical volume "{dev}" of volume group "{_vg_name(st, dev)}" without -ff'
                )
                return 5
            if (
                (t.get("fstype") or t.get("parts"))
                and "-f" not in args
                and "-ff" not in args
                and "-y" not in args
            ):
                err(
                    f"  Cannot use {dev}: device is partitioned"
                    if t.get("parts")
                    else f"WARNING: {t['fstype']} signature detected on {dev}. Wipe it? [y/n]: [n]\n  Aborted wiping of {t['fstype']}.\n  1 existing signature left on the device."
                )
                return 5
            t["fstype"] = "LVM2_member"
            t["uuid"] = render.fake_uuid(dev, "pv")
            out(f'  Physical volume "{dev}" successfully created.')
    return 0


def _vg_name(st: dict[str, Any], dev: str) -> str:
    for name, vg in st["vgs"].items():
        if dev in vg["pvs"]:
            return str(name)
    return ""


def vgcreate(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if len(words) < 2:
        err("  No command with matching syntax recognised.")
        return 3
    name, devs = words[0], words[1:]
    with base.node_state(DISKS) as st:
        if name in st["vgs"]:
            err(f"  A volume group called {name} already exists.")
            return 5
        size = 0
        for dev in devs:
            t = _pv_entry(st, dev)
            if t is None:
                err(f"  No device found for {dev}.")
                return 5
            if _vg_name(st, dev):
                err(f"  Physical volume '{dev}' is already in volume group '{_vg_name(st, dev)}'")
                return 5
            if t.get("fstype") not in (None, "LVM2_member"):
                err(f"  Cannot use {dev}: device has a signature")
                return 5
            t["fstype"] = "LVM2_member"
            size += (t["size"] - 4 * 1024**2) // (4 * 1024**2) * (4 * 1024**2)
        st["vgs"][name] = {
            "pvs": [d if d.startswith("/dev/") else f"/dev/{d}" for d in devs],
            "size": size,
            "lvs": {},
        }
        out(f'  Volume group "{name}" successfully created')
    return 0


def vgextend(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    with base.node_state(DISKS) as st:
        vg = st["vgs"].get(words[0]) if words else None
        if vg is None:
            err(f'  Volume group "{words[0] if words else ""}" not found')
            return 5
        for dev in words[1:]:
            t = _pv_entry(st, dev)
            if t is None:
                err(f"  No device found for {dev}.")
                return 5
            t["fstype"] = "LVM2_member"
            vg["pvs"].append(dev)
            vg["size"] += t["size"] // (4 * 1024**2) * (4 * 1024**2)
        out(f'  Volume group "{words[0]}" successfully extended')
    return 0


def _size(spec: str, free: int) -> int:
    spec = spec.strip()
    if spec.endswith(("%FREE", "%VG")):
        return free * int(spec.split("%")[0]) // 100
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    unit = spec[-1].lower() if spec[-1].isalpha() else "m"
    number = float(spec[:-1] if spec[-1].isalpha() else spec)
    return int(number * units.get(unit, 1024**2))


def _free(vg: dict[str, Any]) -> int:
    return int(vg["size"]) - sum(int(lv["size"]) for lv in vg["lvs"].values())


def lvcreate(args: list[str]) -> int:
    size_spec = name = None
    thin = False
    words = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-L", "--size", "-l", "--extents"):
            size_spec = args[i + 1]
            i += 2
            continue
        if a in ("-n", "--name"):
            name = args[i + 1]
            i += 2
            continue
        if a.startswith(("-L", "-l")) and len(a) > 2:
            size_spec = a[2:]
        elif a in ("-T", "--thin", "--thinpool"):
            thin = True
        elif not a.startswith("-"):
            words.append(a)
        i += 1
    if not words:
        err("  Please specify a logical volume path.")
        return 3
    vg_name = words[0].split("/")[0]
    with base.node_state(DISKS) as st:
        vg = st["vgs"].get(vg_name)
        if vg is None:
            err(f'  Volume group "{vg_name}" not found')
            err(f"  Cannot process volume group {vg_name}")
            return 5
        name = name or f"lvol{len(vg['lvs'])}"
        if name in vg["lvs"]:
            err(f'  Logical Volume "{name}" already exists in volume group "{vg_name}"')
            return 5
        size = _size(size_spec or "100%FREE", _free(vg))
        if size > _free(vg):
            err(
                f'  Volume group "{vg_name}" has insufficient free space ({_free(vg) // (4 * 1024**2)} extents): {size // (4 * 1024**2)} required.'
            )
            return 5
        vg["lvs"][name] = {"size": size, "fstype": None, "mountpoint": None, "thin": thin}
        out(f'  Logical volume "{name}" created.')
    return 0


def lvremove(args: list[str]) -> int:
    with base.node_state(DISKS) as st:
        for a in args:
            if a.startswith("-"):
                continue
            vg_name, _, lv = a.removeprefix("/dev/").partition("/")
            vg = st["vgs"].get(vg_name, {})
            if lv in vg.get("lvs", {}):
                del vg["lvs"][lv]
                out(f'  Logical volume "{lv}" successfully removed.')
            else:
                err(f'  Failed to find logical volume "{a}"')
                return 5
    return 0


def lvextend(args: list[str]) -> int:
    return 0


def vgremove(args: list[str]) -> int:
    with base.node_state(DISKS) as st:
        for a in args:
            if a.startswith("-"):
                continue
            vg = st["vgs"].pop(a, None)
            if vg is None:
                err(f'  Volume group "{a}" not found')
                return 5
            out(f'  Volume group "{a}" successfully removed')
    return 0


def pvremove(args: list[str]) -> int:
    with base.node_state(DISKS) as st:
        for dev in (a for a in args if a.startswith("/dev/")):
            if _vg_name(st, dev):
                err(f"  PV {dev} is used by VG {_vg_name(st, dev)} so please use vgreduce first.")
                return 5
            t = _pv_entry(st, dev)
            if t is not None:
                t["fstype"] = None
                out(f'  Labels on physical volume "{dev}" successfully wiped.')
    return 0


def _report(args: list[str], kind: str, rows: list[dict[str, Any]], default_cols: list[str]) -> int:
    cols = default_cols
    for i, a in enumerate(args):
        if a in ("-o", "--options") and i + 1 < len(args):
            cols = args[i + 1].lstrip("+").split(",")
    nosuffix = "--nosuffix" in args
    units = (
        "b"
        if any(a in ("--units", "--units=b") for a in args) and ("b" in args or "--units=b" in args)
        else "g"
    )

    def fmt(v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            if units == "b":
                return f"{v}" if nosuffix else f"{v}B"
            return f"{v / 1024**3:.2f}" + ("" if nosuffix else "g")
        return str(v)

    if "--reportformat" in args and args[args.index("--reportformat") + 1] == "json":
        out(
            json.dumps(
                {"report": [{kind: [{c: fmt(r.get(c, "")) for c in cols} for r in rows]}]}, indent=2
            )
        )
        return 0
    sep = args[args.index("--separator") + 1] if "--separator" in args else "  "
    if "--noheadings" not in args:
        out("  " + sep.join(c.upper().replace("_NAME", "").replace("VG_", "") for c in cols))
    for r in rows:
        out("  " + sep.join(fmt(r.get(c, "")) for c in cols))
    return 0


def vgs(args: list[str]) -> int:
    base.replay("vgs")
    st = state()
    rows = []
    for name, vg in sorted(st["vgs"].items()):
        for pv in vg["pvs"]:
            rows.append({"vg_name": name, "vg_size": vg["size"], "vg_free": _free(vg), "pv_name": pv,
                         "pv_count": len(vg["pvs"]), "lv_count": len(vg["lvs"]), "vg_attr": "wz--n-"})  # fmt: skip
    if not rows and "--reportformat" not in args:
        err("  No volume groups found")
    if "pv_name" not in " ".join(args):
        seen = set()
        rows = [r for r in rows if not (r["vg_name"] in seen or seen.add(r["vg_name"]))]  # type: ignore[func-returns-value]
    return _report(
        args, "vg", rows, ["vg_name", "pv_count", "lv_count", "vg_attr", "vg_size", "vg_free"]
    )


def _positional(args: list[str]) -> list[str]:
    """The report's arguments (devices, VGs), past the options and their values."""
    valued = {"-o", "--options", "-O", "--sort", "--separator", "--units", "--reportformat", "-S",
              "--select", "--config", "--configreport"}  # fmt: skip
    words, i = [], 0
    while i < len(args):
        if args[i] in valued:
            i += 2
            continue
        if not args[i].startswith("-"):
            words.append(args[i])
        i += 1
    return words


def pvs(args: list[str]) -> int:
    st = state()
    rows = []
    for disk in st["disks"]:
        for t in [disk, *disk.get("parts", [])]:
            if t.get("fstype") == "LVM2_member":
                dev = f"/dev/{t['name']}"
                vg = _vg_name(st, dev)
                rows.append({"pv_name": dev, "vg_name": vg, "pv_size": t["size"],
                             "pv_free": _free(st["vgs"][vg]) if vg else t["size"], "pv_fmt": "lvm2",
                             "pv_attr": "a--" if vg else "---", "pv_uuid": t.get("uuid", "")})  # fmt: skip
    wanted = _positional(args)
    if wanted:
        picked = []
        for dev in wanted:
            found = find(st, dev)
            name = f"/dev/{(found[1] or found[0])['name']}" if found else None
            match = [r for r in rows if r["pv_name"] == name]
            if not match:
                err(f'  Failed to find physical volume "{dev}".')
                return 5
            picked += match
        rows = picked
    return _report(
        args, "pv", rows, ["pv_name", "vg_name", "pv_fmt", "pv_attr", "pv_size", "pv_free"]
    )


def lvs(args: list[str]) -> int:
    st = state()
    rows = [{"lv_name": lv, "vg_name": vg_name, "lv_size": info["size"], "lv_attr": "-wi-ao----" if info.get("mountpoint") else "-wi-a-----",
             "lv_tags": info.get("tags", ""), "lv_path": f"/dev/{vg_name}/{lv}", "devices": ",".join(f"{d}(0)" for d in vg["pvs"])}
            for vg_name, vg in sorted(st["vgs"].items()) for lv, info in sorted(vg["lvs"].items())]  # fmt: skip
    wanted = _positional(args)
    if wanted:
        picked = []
        for w in wanted:
            vg_name, _, lv_name = w.removeprefix("/dev/").partition("/")
            if vg_name not in st["vgs"]:
                err(f'  Volume group "{vg_name}" not found')
                err(f"  Cannot process volume group {vg_name}")
                return 5
            picked += [r for r in rows if r["vg_name"] == vg_name and lv_name in ("", r["lv_name"])]
        rows = picked
    return _report(args, "lv", rows, ["lv_name", "vg_name", "lv_attr", "lv_size"])
