"""Disks and what is on them: lsblk, /dev/disk/by-id, LVM volume groups, mounts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from installer.facts.textparse import (
    KIB,
    load_json,
    split_lines,
    to_bool,
    to_int,
    to_str,
    unescape_octal,
)
from installer.hostfacts import (
    BlockDevice,
    Mount,
    VolumeGroup,
)

_HUMAN_UNITS = {"": 1, "B": 1, "K": KIB, "M": KIB**2, "G": KIB**3, "T": KIB**4, "P": KIB**5}
_MAX_TREE_DEPTH = 32  # disk → part → crypt → lvm is 4; deeper is garbage


def _size_bytes(value: object) -> int:
    """lsblk SIZE: int with -b, "123" from util-linux < 2.33, "1.9G" without -b; else 0."""
    as_int = to_int(value)
    if as_int is not None:
        return max(as_int, 0)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,20}(?:[.,]\d{1,6})?)\s*([BKMGTP]?)(?:i?B)?\s*", value)
        if m:
            return int(float(m.group(1).replace(",", ".")) * _HUMAN_UNITS[m.group(2)])
    return 0


def _mountpoints(node: Mapping[str, Any]) -> tuple[str, ...]:
    many = node.get("mountpoints")
    if isinstance(many, list):  # util-linux >= 2.37: every mount, [null] when none
        return tuple(m for m in many if isinstance(m, str) and m)
    one = to_str(node.get("mountpoint"))
    return (one,) if one else ()


def _device_path(node: Mapping[str, Any], name: str, dev_type: str) -> str:
    path = to_str(node.get("path"))
    if path:
        return path
    raw = to_str(node.get("name")) or to_str(node.get("kname")) or name
    if raw.startswith("/"):  # lsblk --paths
        return raw
    # Without PATH (util-linux < 2.33) a device-mapper NAME (vg-lv) lives under
    # /dev/mapper; a kernel name (dm-0) is directly under /dev.
    if dev_type in ("lvm", "crypt", "mpath", "dm") and not re.fullmatch(r"dm-\d+", raw):
        return f"/dev/mapper/{raw}"
    return f"/dev/{raw}"


def _block_device(
    node: Mapping[str, Any], by_id: Mapping[str, tuple[str, ...]], depth: int
) -> BlockDevice | None:
    raw_name = to_str(node.get("name")) or to_str(node.get("kname"))
    if raw_name is None:
        return None
    name = raw_name.rsplit("/", 1)[-1]  # --paths prints /dev/sda as the NAME
    kname_raw = to_str(node.get("kname"))
    kname = kname_raw.rsplit("/", 1)[-1] if kname_raw else None
    dev_type = to_str(node.get("type")) or "unknown"
    path = _device_path(node, raw_name, dev_type)
    children_raw = node.get("children")
    children: list[BlockDevice] = []
    if isinstance(children_raw, list) and depth < _MAX_TREE_DEPTH:
        for child in children_raw:
            if isinstance(child, dict):
                parsed = _block_device(child, by_id, depth + 1)
                if parsed is not None:
                    children.append(parsed)
    links = by_id.get(kname or name) or by_id.get(path.rsplit("/", 1)[-1]) or ()
    return BlockDevice(
        name=name,
        path=path,
        type=dev_type,
        size_bytes=_size_bytes(node.get("size")),
        rotational=to_bool(node.get("rota")),
        removable=to_bool(node.get("rm")) or False,
        read_only=to_bool(node.get("ro")) or False,
        transport=to_str(node.get("tran")),
        model=to_str(node.get("model")),
        serial=to_str(node.get("serial")),
        wwn=to_str(node.get("wwn")),
        by_id=tuple(links),
        fstype=to_str(node.get("fstype")),
        label=to_str(node.get("label")),
        uuid=to_str(node.get("uuid")),
        mountpoints=_mountpoints(node),
        children=tuple(children),
        kname=kname,
        pttype=to_str(node.get("pttype")),
    )


def parse_lsblk(
    text: str, by_id: Mapping[str, tuple[str, ...]] | None = None
) -> tuple[BlockDevice, ...] | None:
    """``lsblk -J -b -O`` (or any ``lsblk -J`` column set) as a tree of BlockDevice.

    ``by_id`` (from :func:`parse_by_id`) maps a kernel name to its
    /dev/disk/by-id links. None when the text is not lsblk JSON.
    """
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        return None
    links = by_id or {}
    devices = [
        _block_device(node, links, 0) for node in data["blockdevices"] if isinstance(node, dict)
    ]
    return tuple(d for d in devices if d is not None)


_BY_ID_LINE = re.compile(r"(?:^|\s)([\w.:@+,=-]+) -> (?:\.\./)*(?:/dev/)?([\w.:+-]+)$")


def parse_by_id(text: str) -> dict[str, tuple[str, ...]] | None:
    """``ls -l /dev/disk/by-id/`` → kernel name → sorted by-id link paths.

    An empty listing (``total 0``) is a real answer: a VM whose disks have no
    serial has no links. None when a line is neither a link nor ``total N``.
    """
    found: dict[str, set[str]] = {}
    seen_total = False
    for line in split_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if re.fullmatch(r"total \d+", stripped):
            seen_total = True
            continue
        m = _BY_ID_LINE.search(stripped)
        if not m or not stripped.startswith("l"):  # ls -l marks a symlink with "l"
            return None
        found.setdefault(m.group(2), set()).add(f"/dev/disk/by-id/{m.group(1)}")
    if not found and not seen_total:
        return None
    return {k: tuple(sorted(v)) for k, v in found.items()}


def _vg_rows(text: str) -> list[dict[str, str]] | None:
    data = load_json(text)
    if isinstance(data, dict) and isinstance(data.get("report"), list):
        rows: list[dict[str, str]] = []
        for report in data["report"]:
            vgs = report.get("vg") if isinstance(report, dict) else None
            if isinstance(vgs, list):
                rows.extend(
                    {str(k): str(v) for k, v in r.items()} for r in vgs if isinstance(r, dict)
                )
        return rows
    # Fallback for lvm2 without JSON: the script asks for
    # --noheadings --separator '|' -o vg_name,vg_size,vg_free,pv_name
    rows = []
    for line in split_lines(text):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 4:
            if line.strip() and not _is_lvm_notice(line):
                return None
            continue
        rows.append(dict(zip(("vg_name", "vg_size", "vg_free", "pv_name"), fields, strict=True)))
    return rows


def _is_lvm_notice(line: str) -> bool:
    return bool(re.match(r"\s*(WARNING|No volume groups found|File descriptor)", line))


def _lvm_bytes(value: str | None) -> int | None:
    if value is None:
        return None
    return to_int(value.strip().removesuffix("B"))  # --units b prints "123B" without --nosuffix


def parse_vgs(text: str) -> tuple[VolumeGroup, ...] | None:
    """``vgs --reportformat json --units b -o vg_name,vg_size,vg_free,pv_name`` (or the
    ``|``-separated fallback): one row per PV, folded into one VolumeGroup each."""
    rows = _vg_rows(text)
    if rows is None:
        return None
    groups: dict[str, tuple[int, int, list[str]]] = {}
    for row in rows:
        name = row.get("vg_name", "").strip()
        size, free = _lvm_bytes(row.get("vg_size")), _lvm_bytes(row.get("vg_free"))
        if not name or size is None or free is None:
            return None
        pvs = groups.setdefault(name, (size, free, []))[2]
        pv = row.get("pv_name", "").strip()
        if pv and pv not in pvs:
            pvs.append(pv)
    return tuple(VolumeGroup(n, s, f, tuple(p)) for n, (s, f, p) in groups.items())


def parse_mounts(text: str) -> tuple[Mount, ...] | None:
    """/proc/self/mounts (fstab format). None when no line has the six fields."""
    mounts: list[Mount] = []
    for line in split_lines(text):
        fields = line.split()
        if len(fields) == 6 and fields[1].startswith("/"):
            source, target, fstype = (unescape_octal(f) for f in fields[:3])
            mounts.append(Mount(source=source, target=target, fstype=fstype))
    return tuple(mounts) if mounts else None
