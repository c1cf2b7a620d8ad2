"""A node's disks: lsblk, blkid, wipefs, sgdisk, df. The state lives in lab/disks.json (LVM: lvm.py)."""

from __future__ import annotations

import json
from typing import Any

from installer.lab.shims import base, render
from installer.lab.shims.base import err, out

DISKS = "disks"


def state() -> dict[str, Any]:
    return base.peek_node(DISKS)  # type: ignore[no-any-return]


def _strip(dev: str) -> str:
    return dev.removeprefix("/dev/")


def find(st: dict[str, Any], dev: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(disk, partition or None) for a /dev path, a by-id link or a kernel name."""
    name = _strip(dev)
    if name.startswith("disk/by-id/"):
        name = render.by_id_links(st).get(name.removeprefix("disk/by-id/"), "")
    for disk in st["disks"]:
        if disk["name"] == name:
            return disk, None
        for part in disk.get("parts", []):
            if part["name"] == name:
                return disk, part
    return None


def in_use(st: dict[str, Any], dev: str) -> str | None:
    """Why a device cannot be given to Ceph/LVM/OpenEBS as a whole (None: it is free)."""
    found = find(st, dev)
    if found is None:
        return "No such device"
    disk, part = found
    target = part or disk
    if part is None and disk.get("parts"):
        return "Has partitions"
    if target.get("fstype") == "LVM2_member" or target.get("ceph_osd"):
        return "LVM detected"
    if target.get("fstype"):
        return "Has a FileSystem"
    return None


def lsblk(args: list[str]) -> int:
    as_json = any(
        a in ("-J", "--json") or (a.startswith("-") and not a.startswith("--") and "J" in a)
        for a in args
    )
    if as_json:
        base.replay("lsblk")
    st = state()
    tree = render.lsblk_tree(st)
    letters = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    nodeps = "d" in letters or "--nodeps" in args
    paths = "p" in letters or "--paths" in args
    in_bytes = "b" in letters or "--bytes" in args
    noheadings = "n" in letters or "--noheadings" in args
    cols: list[str] | None = None
    for i, a in enumerate(args):
        if a in ("-o", "--output") and i + 1 < len(args):
            cols = [c.lower() for c in args[i + 1].split(",")]
        elif a.startswith("--output="):
            cols = [c.lower() for c in a.split("=", 1)[1].split(",")]
    if "O" in letters or "--output-all" in args:
        cols = None
    devices = [a for a in args if a.startswith("/dev/")]
    if devices:
        # lsblk follows symlinks such as /dev/disk/by-id/wwn-... to the kernel device
        links = render.by_id_links(st)
        wanted = {links.get(_strip(d).removeprefix("disk/by-id/"), _strip(d)) for d in devices}
        tree = [d for d in tree if d["name"] in wanted] or _find_children(tree, wanted)
        if not tree:
            err(f"lsblk: {devices[0]}: not a block device")
            return 32
    if nodeps:
        tree = [{k: v for k, v in d.items() if k != "children"} for d in tree]

    def shape(d: dict[str, Any]) -> dict[str, Any]:
        keys = cols or (
            render.LSBLK_ALL
            if cols is None and ("O" in letters or "--output-all" in args)
            else ["name", "maj:min", "rm", "size", "ro", "type", "mountpoints"]
        )
        row = {k: d.get(k) for k in keys}
        if paths and "name" in row:
            row["name"] = d["path"]
        if not in_bytes and "size" in row and isinstance(row["size"], int):
            row["size"] = _human(row["size"])
        if "children" in d:
            row["children"] = [shape(c) for c in d["children"]]
        return row

    shaped = [shape(d) for d in tree]
    if as_json:
        out(json.dumps({"blockdevices": shaped}, indent=3))
        return 0
    keys = [k for k in (shaped[0].keys() if shaped else []) if k != "children"]
    if not noheadings:
        out(" ".join(k.upper() for k in keys))

    def show(rows: list[dict[str, Any]], depth: int) -> None:
        for r in rows:
            vals = []
            for k in keys:
                v = r.get(k)
                if isinstance(v, list):
                    v = v[0]
                # the text columns RM/RO/ROTA are 0/1 (JSON has booleans)
                vals.append("" if v is None else str(int(v)) if isinstance(v, bool) else str(v))
            if vals and depth and "l" not in letters:
                vals[0] = "`-" * 1 + vals[0]
            out(" ".join(vals).rstrip())
            show(r.get("children", []), depth + 1)

    show(shaped, 0)
    return 0


def _find_children(tree: list[dict[str, Any]], wanted: set[str]) -> list[dict[str, Any]]:
    found = []
    for d in tree:
        for c in d.get("children", []):
            if c["name"] in wanted:
                found.append(c)
    return found


def _human(n: int) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.1f}{unit}".replace(".0", "") if unit != "B" else f"{n}B"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def blkid(args: list[str]) -> int:
    st = state()
    devs = [a for a in args if a.startswith("/dev/")]
    rc = 2
    for dev in devs:
        found = find(st, dev)
        if not found:
            continue
        disk, part = found
        t = part or disk
        if t.get("fstype"):
            rc = 0
            if "-o" in args and "value" in args:
                out(t["fstype"])
            else:
                out(f'{dev}: UUID="{t.get("uuid") or render.fake_uuid(dev)}" TYPE="{t["fstype"]}"')
    return rc


def wipefs(args: list[str]) -> int:
    devs = [a for a in args if a.startswith("/dev/")]
    wipe_all = any(
        a in ("-a", "--all") or (a.startswith("-") and not a.startswith("--") and "a" in a)
        for a in args
    )
    with base.node_state(DISKS) as st:
        for dev in devs:
            found = find(st, dev)
            if found is None:
                err(
                    f"wipefs: error: {dev}: probing initialization failed: No such file or directory"
                )
                return 1
            disk, part = found
            t = part or disk
            if _busy(st, t):
                err(f"wipefs: error: {dev}: probing initialization failed: Device or resource busy")
                return 1
            if not wipe_all:
                if t.get("fstype") or t.get("pttype"):
                    out(
                        f"DEVICE OFFSET TYPE UUID LABEL\n{_strip(dev)} 0x218 {t.get('fstype') or t.get('pttype')}"
                    )
                continue
            if t.get("fstype"):
                out(
                    f"{dev}: 8 bytes were erased at offset 0x00000218 ({t['fstype'].lower()}): 4c 56 4d 32 20 30 30 31"
                )
            if part is None and disk.get("pttype"):
                out(
                    f"{dev}: 8 bytes were erased at offset 0x00000200 (gpt): 45 46 49 20 50 41 52 54"
                )
                disk["pttype"] = None
            t["fstype"] = None
            t.pop("ceph_osd", None)
    return 0


def _busy(st: dict[str, Any], t: dict[str, Any]) -> bool:
    names = [t["name"]] + [p["name"] for p in t.get("parts", [])]
    if any(p.get("mountpoint") for p in t.get("parts", [])) or t.get("mountpoint"):
        return True
    return any(
        f"/dev/{n}" in vg["pvs"] and vg.get("lvs") for vg in st["vgs"].values() for n in names
    )


def sgdisk(args: list[str]) -> int:
    devs = [a for a in args if a.startswith("/dev/")]
    if any(a in ("-Z", "--zap-all") for a in args):
        with base.node_state(DISKS) as st:
            for dev in devs:
                found = find(st, dev)
                if found is None:
                    err(f"Problem opening {dev} for reading! Error is 2.")
                    return 2
                disk, _ = found
                if _busy(st, disk):
                    err("Warning: The kernel is still using the old partition table.")
                disk["parts"] = []
                disk["pttype"] = None
                disk["fstype"] = None
                disk.pop("ceph_osd", None)
        out(
            "GPT data structures destroyed! You may now partition the disk using fdisk or\nother utilities."
        )
    return 0


# ---------------------------------------------------------------- LVM


# ---------------------------------------------------------------- df


def df(args: list[str]) -> int:
    """df with the node's own sizes; a directory hit by the fill_disk fault shows 100%."""
    f = base.facts()
    full = [flt.get("path", "/var/lib") for flt in base.lab().get("faults", [])
            if flt.get("kind") == "fill_disk" and flt.get("node") in (None, base.node_name())]  # fmt: skip
    root_size = 0
    for vg in state()["vgs"].values():
        for info in vg["lvs"].values():
            if info.get("mountpoint") == "/":
                root_size = int(info["size"])
    if not root_size:
        root_size = int(f["disks"][0]["size_gb"] * 1024**3) if f["disks"] else 50 * 1024**3
    used = int(root_size * 0.22)
    rows = [("/dev/mapper/ubuntu--vg-ubuntu--lv", "ext4", root_size, used, "/"),
            ("/dev/sda2", "ext4", 2 * 1024**3, 262 * 1024**2, "/boot"),
            ("tmpfs", "tmpfs", int(f["memory_gb"] * 1024**3 / 10), 1024**2, "/run")]  # fmt: skip
    for path in full:
        rows.append(("/dev/mapper/ubuntu--vg-ubuntu--lv", "ext4", root_size, root_size, path))
    paths = [a for a in args if not a.startswith("-")]
    human = any(
        a in ("-h", "--human-readable")
        or (a.startswith("-") and "h" in a and not a.startswith("--"))
        for a in args
    )
    show_type = (
        "-T" in args
        or "--print-type" in args
        or any(a.startswith("-") and "T" in a and not a.startswith("--") for a in args)
    )
    if paths:
        picked = []
        for p in paths:
            best = max(
                (r for r in rows if p == r[4] or p.startswith(r[4].rstrip("/") + "/")),
                key=lambda r: len(r[4]),
                default=rows[0],
            )
            picked.append(best)
        rows = picked
    size_head = "Size" if human else "1K-blocks"
    out(f"Filesystem{' Type' if show_type else ''} {size_head} Used Avail Use% Mounted on")
    for src, fstype, size, used_b, mnt in rows:
        avail = max(size - used_b, 0)
        pct = f"{round(used_b * 100 / size) if size else 0}%"

        def v(n: int) -> str:
            return _human(n) if human else str(n // 1024)

        out(
            f"{src}{' ' + fstype if show_type else ''} {v(size)} {v(used_b)} {v(avail)} {pct} {mnt}"
        )
    return 0
