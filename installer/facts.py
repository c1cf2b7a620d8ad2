"""Pure parsers: one command's output in, one fact out.

Every ``parse_*`` takes the text a command printed and returns the fact, or
``None`` (or an empty value, where "nothing" is a real answer) when the text is
not what that command prints. They never raise on any input: a host with an odd
tool must make one fact unknown, not crash discovery. ``installer.discovery``
runs the commands and records why a fact stayed unknown.

Sizes are bytes everywhere: ``/proc`` counts in KiB, lsblk in bytes with ``-b``
(and in 1024-based units like ``128G`` without it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from installer.hostfacts import (
    BlockDevice,
    Cpu,
    Firewall,
    Memory,
    Mount,
    NetAddress,
    Nic,
    OsRelease,
    SwapArea,
    TimeSync,
    VolumeGroup,
)

KIB = 1024

# ---------------------------------------------------------------- helpers


def _lines(text: str) -> list[str]:
    # splitlines() also splits on \x0b, \x1c... which no /proc file uses as a line end.
    return text.replace("\r\n", "\n").split("\n")


def _colon_pairs(text: str) -> Iterator[tuple[str, str]]:
    """``key : value`` lines (cpuinfo, meminfo, chronyc), key lower-cased and stripped."""
    for line in _lines(text):
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip().lower(), value.strip()


def _to_int(value: object) -> int | None:
    """An int from JSON (int or the digit strings old tools print); bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    return None


def _to_bool(value: object) -> bool | None:
    """JSON bool, or util-linux < 2.33's "0"/"1" strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0 if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes"):
            return True
        if word in ("0", "false", "no"):
            return False
    return None


def _to_str(value: object) -> str | None:
    """A non-empty stripped string; lsblk pads MODEL with spaces and prints "" for none."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _first_word(text: str) -> str | None:
    for line in _lines(text):
        if line.strip():
            return line.split()[0]
    return None


def load_json(text: str) -> Any:
    """The first JSON document in ``text``, or None.

    Discovery merges stderr into stdout, so a warning line may come before the
    JSON (``vgs`` prints "WARNING: ..."): try each line that opens a document.
    """
    decoder = json.JSONDecoder()
    starts: list[int] = []
    offset = 0
    for line in text.split("\n"):
        body = line.lstrip()
        if body[:1] in ("{", "["):  # vgs indents its JSON by two spaces
            starts.append(offset + len(line) - len(body))
        offset += len(line) + 1
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        return value
    return None


def _unescape_octal(text: str) -> str:
    r"""/proc/mounts and /proc/swaps write space, tab, newline, \ as \040 \011 \012 \134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


# ---------------------------------------------------------------- os, kernel, host


def _os_release_value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r'\\([\\"$`])', r"\1", raw[1:-1])
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    return raw


def parse_os_release(text: str) -> OsRelease | None:
    """/etc/os-release. None when no ``KEY=value`` line is found."""
    values: dict[str, str] = {}
    for line in _lines(text):
        m = re.fullmatch(r"\s*([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            values[m.group(1)] = _os_release_value(m.group(2))
    if not values:
        return None
    # os-release(5): ID defaults to "linux" when absent.
    os_id = (values.get("ID") or "linux").lower()
    return OsRelease(
        id=os_id,
        version_id=values.get("VERSION_ID") or None,
        pretty_name=values.get("PRETTY_NAME") or values.get("NAME") or None,
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_codename=values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or None,
    )


def parse_single_token(text: str) -> str | None:
    """``uname -r``, ``uname -m``, ``hostname``, ``systemd-detect-virt``: one word, one line."""
    words = text.split()
    if len(words) != 1 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~:@-]*", words[0]):
        return None
    return words[0]


def parse_hostname(text: str) -> str | None:
    """``hostname`` / ``hostname -f``: DNS label characters only (errors have spaces or ':')."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", word):
        return None
    return word


def parse_machine_id(text: str) -> str | None:
    """/etc/machine-id: 32 hex digits."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[0-9a-fA-F]{32}", word):
        return None
    return word.lower()


def parse_product_uuid(text: str) -> str | None:
    """/sys/class/dmi/id/product_uuid: an 8-4-4-4-12 UUID, lower-cased for comparison."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(
        r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", word
    ):
        return None
    return word.lower()


def parse_epoch(text: str) -> float | None:
    """``date +%s.%N`` (busybox date prints ``%N`` literally: keep the seconds)."""
    m = re.fullmatch(r"\s*(\d{1,15})(?:\.(\d{1,9}|%N))?\s*", text)
    if not m:
        return None
    frac = m.group(2)
    return float(f"{m.group(1)}.{frac}") if frac and frac != "%N" else float(m.group(1))


def parse_cgroup_fs(text: str) -> int | None:
    """``stat -fc %T /sys/fs/cgroup``: cgroup2fs is the unified v2; tmpfs is v1 or hybrid."""
    word = parse_single_token(text)
    if word == "cgroup2fs":
        return 2
    if word == "tmpfs":
        return 1
    return None


def parse_systemd(text: str) -> bool | None:
    """The script's ``booted=yes|no`` line (sd_booted(3): /run/systemd/system exists)."""
    for line in _lines(text):
        if line.strip() == "booted=yes":
            return True
        if line.strip() == "booted=no":
            return False
    return None


def parse_virtualization(text: str) -> str | None:
    """``systemd-detect-virt``: ``none``, ``kvm``, ``docker``... (exit 1 with ``none``)."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[a-z][a-z0-9_-]*", word):
        return None
    return word


# ---------------------------------------------------------------- cpu, memory, swap

# /proc/cpuinfo on arm64 names no model: the implementer/part pair identifies it.
_ARM_PARTS = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd04"): "ARM Cortex-A35",
    ("0x41", "0xd05"): "ARM Cortex-A55",
    ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
}


def _cpu_model(first: Mapping[str, str]) -> str | None:
    for key in ("model name", "cpu"):  # x86 and arm32; ppc64 says "cpu : POWER8 ..."
        if first.get(key):
            return first[key]
    processor = first.get("processor", "")
    if processor and not processor.isdigit():  # old arm32 kernels: "Processor : ARMv7 ..."
        return processor
    impl, part = first.get("cpu implementer"), first.get("cpu part")
    if impl and part:
        return _ARM_PARTS.get((impl.lower(), part.lower()), f"ARM implementer {impl} part {part}")
    return None


def _s390_model(pairs: list[tuple[str, str]]) -> str | None:
    vendor = next((v for k, v in pairs if k == "vendor_id"), "")
    for key, value in pairs:
        m = re.search(r"machine\s*=\s*(\w+)", value)
        if key.startswith("processor") and m:
            return f"{vendor or 's390x'} machine {m.group(1)}".strip()
    return None


def parse_cpuinfo(text: str) -> Cpu | None:
    """/proc/cpuinfo on x86, arm, ppc64 and s390x.

    Count = ``processor : N`` blocks (s390x: ``processor N:`` lines, else
    ``# processors``). Flags are those every CPU has, so a flag present on only
    some cores (never seen, but cheap to respect) does not count.
    """
    pairs = list(_colon_pairs(text))
    blocks: list[dict[str, str]] = []
    for key, value in pairs:
        if key == "processor" and value.isdigit():
            blocks.append({})
        if blocks:
            blocks[-1].setdefault(key, value)
    header = dict(pairs)
    count = len(blocks)
    if count == 0:
        count = sum(1 for k, _ in pairs if re.fullmatch(r"processor \d+", k))
    if count == 0:
        count = _to_int(header.get("# processors")) or 0
    if count <= 0:
        return None
    flag_sets = [
        frozenset(b.get("flags", b.get("features", "")).split())
        for b in blocks
        if "flags" in b or "features" in b
    ]
    if not flag_sets and ("flags" in header or "features" in header):
        flag_sets = [frozenset(header.get("flags", header.get("features", "")).split())]
    flags = frozenset.intersection(*flag_sets) if flag_sets else frozenset()
    model = _cpu_model(blocks[0] if blocks else header) or _s390_model(pairs)
    if model is None:
        model = _to_str(header.get("model name")) or _to_str(header.get("cpu"))
    return Cpu(count=count, model=model, flags=flags)


def _meminfo_bytes(value: str) -> int | None:
    m = re.fullmatch(r"(\d{1,20})(?:\s*kB)?", value)
    if not m:
        return None
    # "kB" in /proc/meminfo is KiB; HugePages_* counts have no unit.
    return int(m.group(1)) * KIB if value.endswith("kB") else int(m.group(1))


def parse_meminfo(text: str) -> Memory | None:
    """/proc/meminfo. None without a MemTotal line."""
    values: dict[str, int] = {}
    for line in _lines(text):
        key, sep, value = line.partition(":")
        if sep:
            number = _meminfo_bytes(value.strip())
            if number is not None:
                values[key.strip()] = number
    total = values.get("MemTotal")
    if total is None:
        return None
    return Memory(
        total_bytes=total,
        available_bytes=values.get("MemAvailable"),
        hugepages_total=values.get("HugePages_Total"),
        hugepage_size_bytes=values.get("Hugepagesize"),
    )


def parse_swaps(text: str) -> tuple[SwapArea, ...] | None:
    """/proc/swaps (header line, then one line per area, sizes in KiB).

    An empty tuple means swap is off. None when a line does not parse: half a
    list would make "swap is off" look true.
    """
    lines = [line for line in _lines(text) if line.strip()]
    if not lines or not lines[0].startswith("Filename"):
        return None
    areas: list[SwapArea] = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 4:
            return None
        size, used = _to_int(fields[2]), _to_int(fields[3])
        if size is None or used is None or size < 0 or used < 0:
            return None
        areas.append(SwapArea(_unescape_octal(fields[0]), fields[1], size * KIB, used * KIB))
    return tuple(areas)


# ---------------------------------------------------------------- disks

_HUMAN_UNITS = {"": 1, "B": 1, "K": KIB, "M": KIB**2, "G": KIB**3, "T": KIB**4, "P": KIB**5}
_MAX_TREE_DEPTH = 32  # disk → part → crypt → lvm is 4; deeper is garbage


def _size_bytes(value: object) -> int:
    """lsblk SIZE: int with -b, "123" from util-linux < 2.33, "1.9G" without -b; else 0."""
    as_int = _to_int(value)
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
    one = _to_str(node.get("mountpoint"))
    return (one,) if one else ()


def _device_path(node: Mapping[str, Any], name: str, dev_type: str) -> str:
    path = _to_str(node.get("path"))
    if path:
        return path
    raw = _to_str(node.get("name")) or _to_str(node.get("kname")) or name
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
    raw_name = _to_str(node.get("name")) or _to_str(node.get("kname"))
    if raw_name is None:
        return None
    name = raw_name.rsplit("/", 1)[-1]  # --paths prints /dev/sda as the NAME
    kname_raw = _to_str(node.get("kname"))
    kname = kname_raw.rsplit("/", 1)[-1] if kname_raw else None
    dev_type = _to_str(node.get("type")) or "unknown"
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
        rotational=_to_bool(node.get("rota")),
        removable=_to_bool(node.get("rm")) or False,
        read_only=_to_bool(node.get("ro")) or False,
        transport=_to_str(node.get("tran")),
        model=_to_str(node.get("model")),
        serial=_to_str(node.get("serial")),
        wwn=_to_str(node.get("wwn")),
        by_id=tuple(links),
        fstype=_to_str(node.get("fstype")),
        label=_to_str(node.get("label")),
        uuid=_to_str(node.get("uuid")),
        mountpoints=_mountpoints(node),
        children=tuple(children),
        kname=kname,
        pttype=_to_str(node.get("pttype")),
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
    for line in _lines(text):
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
    for line in _lines(text):
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
    return _to_int(value.strip().removesuffix("B"))  # --units b prints "123B" without --nosuffix


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
    for line in _lines(text):
        fields = line.split()
        if len(fields) == 6 and fields[1].startswith("/"):
            source, target, fstype = (_unescape_octal(f) for f in fields[:3])
            mounts.append(Mount(source=source, target=target, fstype=fstype))
    return tuple(mounts) if mounts else None


# ---------------------------------------------------------------- network

_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5,19}")


def _mac(value: object) -> str | None:
    text = _to_str(value)
    if text is None:
        return None
    text = text.lower()
    # An all-zero MAC (loopback, some tunnels) identifies nothing; a sit tunnel's
    # "address" is an IPv4 address, not a MAC.
    if not _MAC_RE.fullmatch(text) or set(text) <= {"0", ":"}:
        return None
    return text


def _json_nic(entry: Mapping[str, Any]) -> Nic | None:
    name = _to_str(entry.get("ifname"))
    if name is None:
        return None
    addresses: list[NetAddress] = []
    infos = entry.get("addr_info")
    for info in infos if isinstance(infos, list) else []:
        if not isinstance(info, dict):
            continue
        family, local, prefix = (
            info.get("family"),
            _to_str(info.get("local")),
            info.get("prefixlen"),
        )
        prefixlen = _to_int(prefix)
        if family in ("inet", "inet6") and local and prefixlen is not None:
            addresses.append(
                NetAddress(str(family), local, prefixlen, dynamic=info.get("dynamic") is True)
            )
    flags = entry.get("flags")
    flag_list = [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []
    return Nic(
        name=name,
        mac=_mac(entry.get("address")),
        state=_to_str(entry.get("operstate")),
        addresses=tuple(addresses),
        loopback="LOOPBACK" in flag_list or entry.get("link_type") == "loopback",
    )


_IP_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(.*)$")
_IP_ADDR_RE = re.compile(r"^\s+(inet6?)\s+([0-9A-Fa-f.:]+)/(\d{1,3})\b(.*)$")


def _text_nics(text: str) -> tuple[Nic, ...] | None:
    """Plain ``ip addr`` (iproute2 without -j, before 4.14)."""
    nics: list[Nic] = []
    for line in _lines(text):
        link = _IP_LINK_RE.match(line)
        if link:
            name, flags, rest = link.groups()
            state = re.search(r"\bstate (\S+)", rest)
            nics.append(
                Nic(
                    name=name,
                    state=state.group(1) if state else None,
                    loopback="LOOPBACK" in flags.split(","),
                )
            )
            continue
        if not nics:
            continue
        current = nics[-1]
        ether = re.match(r"^\s+link/\S+\s+(\S+)", line)
        if ether and current.mac is None:
            nics[-1] = Nic(
                current.name,
                _mac(ether.group(1)),
                current.state,
                current.addresses,
                current.loopback,
            )
            continue
        addr = _IP_ADDR_RE.match(line)
        if addr:
            family, local, prefix, rest = addr.groups()
            item = NetAddress(family, local, int(prefix), dynamic="dynamic" in rest.split())
            nics[-1] = Nic(
                current.name,
                current.mac,
                current.state,
                (*current.addresses, item),
                current.loopback,
            )
    return tuple(nics) if nics else None


def parse_ip_addr(text: str) -> tuple[Nic, ...] | None:
    """``ip -j addr`` (also ``ip -d -j addr``), falling back to plain ``ip addr`` text."""
    data = load_json(text)
    if isinstance(data, list):
        nics = [_json_nic(e) for e in data if isinstance(e, dict)]
        found = tuple(n for n in nics if n is not None)
        return found if found else None
    return _text_nics(text)


@dataclass(frozen=True)
class DefaultRoute:
    gateway: str | None  # None for a device route (``default dev ppp0``)
    interface: str | None


def _route_candidates(text: str) -> list[tuple[int, int, DefaultRoute]] | None:
    """(family rank, metric, route) for each default route; None when not route output."""
    data = load_json(text)
    out: list[tuple[int, int, DefaultRoute]] = []
    if isinstance(data, list):
        for r in data:
            if isinstance(r, dict) and r.get("dst") == "default":
                gw, dev = _to_str(r.get("gateway")), _to_str(r.get("dev"))
                rank = 1 if gw and ":" in gw else 0
                out.append((rank, _to_int(r.get("metric")) or 0, DefaultRoute(gw, dev)))
        return out
    recognised = False
    for line in _lines(text):
        words = line.split()
        if not words:
            continue
        recognised = recognised or bool(re.fullmatch(r"default|[0-9a-fA-F.:]+(/\d+)?", words[0]))
        if words[0] != "default":
            continue
        opts = dict(zip(words[1::2], words[2::2], strict=False))
        gw, dev = opts.get("via"), opts.get("dev")
        metric = _to_int(opts.get("metric")) or 0
        out.append((1 if gw and ":" in gw else 0, metric, DefaultRoute(gw, dev)))
    return out if recognised or not text.strip() else None


def parse_default_route(text: str) -> DefaultRoute | None:
    """``ip route show default`` (text or ``-j``), v4 and v6 lines in any order.

    The IPv4 default with the lowest metric wins, else the IPv6 one. None when
    there is no default route or the text is not route output.
    """
    candidates = _route_candidates(text)
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


def parse_resolv_conf(text: str) -> tuple[str, ...] | None:
    """``nameserver`` lines of resolv.conf. An empty file is a real answer: no servers."""
    servers: list[str] = []
    for line in _lines(text):
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            if not re.fullmatch(r"[0-9A-Fa-f.:]+(%\w+)?", words[1]):
                return None
            servers.append(words[1])
        elif words and not words[0].startswith(("#", ";")) and not _is_resolv_option(words[0]):
            return None
    return tuple(servers)


def _is_resolv_option(word: str) -> bool:
    return word in ("search", "domain", "options", "sortlist", "lookup", "family")


def parse_listening_ports(text: str) -> frozenset[int] | None:
    """``ss -Hltn`` (or ``ss -ltn`` / ``netstat -ltn`` with headers): listening TCP ports."""
    ports: set[int] = set()
    for line in _lines(text):
        words = line.split()
        if not words or words[0] in ("State", "Netid", "Proto", "Active"):
            continue
        # ss: "LISTEN 0 128 0.0.0.0:22 ..."; netstat: "tcp 0 0 0.0.0.0:22 ... LISTEN"
        if "LISTEN" not in words or len(words) < 4 or words[0] not in ("LISTEN", "tcp", "tcp6"):
            return None
        local = words[3]
        port = _to_int(local.rsplit(":", 1)[-1]) if ":" in local else None
        if port is None or not 0 < port < 65536:
            return None
        ports.add(port)
    return frozenset(ports)


# ---------------------------------------------------------------- time


@dataclass(frozen=True)
class TimedatectlState:
    ntp_enabled: bool | None
    synchronized: bool | None


def _yes_no(value: str | None) -> bool | None:
    if value is None:
        return None
    word = value.strip().lower()
    if word in ("yes", "active", "true"):
        return True
    if word in ("no", "inactive", "false"):
        return False
    return None


def parse_timedatectl(text: str) -> TimedatectlState | None:
    """``timedatectl show`` (``NTP=yes``) or the status layouts of old and new systemd."""
    values: dict[str, str] = {}
    for line in _lines(text):
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z]+", key):
            values[key] = value
    for key, value in _colon_pairs(text):
        values.setdefault(key, value)
    enabled = _yes_no(values.get("NTP") or values.get("ntp enabled") or values.get("ntp service"))
    synced = _yes_no(
        values.get("NTPSynchronized")
        or values.get("ntp synchronized")
        or values.get("system clock synchronized")
    )
    if enabled is None and synced is None:
        return None
    return TimedatectlState(enabled, synced)


def parse_chronyc_tracking(text: str) -> bool | None:
    """``chronyc -n tracking``: synchronised unless the leap status says not."""
    values = dict(_colon_pairs(text))
    leap = values.get("leap status")
    if leap is None:
        return None  # "506 Cannot talk to daemon": chrony is not running
    return leap.strip().lower() != "not synchronised"


def parse_ntpq_peers(text: str) -> bool | None:
    """``ntpq -pn``: synchronised when a peer line starts with ``*`` (the system peer)."""
    lines = [line for line in _lines(text) if line.strip()]
    if not lines or "remote" not in lines[0]:
        return None
    return any(line.startswith("*") for line in lines[2:])


_TIME_SERVICES = {
    "chrony": "chrony",
    "chronyd": "chrony",
    "systemd-timesyncd": "systemd-timesyncd",
    "systemd-timesyn": "systemd-timesyncd",  # ps truncates comm to 15 characters
    "ntp": "ntp",
    "ntpd": "ntp",
    "ntpsec": "ntp",
    "openntpd": "ntp",
}


def parse_time_services(text: str) -> tuple[str, ...] | None:
    """Running time services from ``systemctl list-units`` or ``ps -eo comm=``.

    Expects the script's ``units:``/``ps:`` first line; an empty list is a real
    answer (nothing keeps the clock in step).
    """
    lines = [line for line in _lines(text) if line.strip()]
    if not lines or lines[0].strip() not in ("units:", "ps:"):
        return None
    found: list[str] = []
    for line in lines[1:]:
        word = line.split()[0].removesuffix(".service")
        service = _TIME_SERVICES.get(word)
        if service and service not in found:
            found.append(service)
    return tuple(found)


def combine_time_sync(
    services: tuple[str, ...] | None,
    timedatectl: TimedatectlState | None,
    chrony_synced: bool | None,
    ntpq_synced: bool | None,
) -> TimeSync | None:
    """One TimeSync from every source that answered; None when none did."""
    if services is None and timedatectl is None and chrony_synced is None and ntpq_synced is None:
        return None
    service = services[0] if services else None
    if service is None and chrony_synced is not None:
        service = "chrony"  # chronyd answered chronyc, so it runs
    if service is None and ntpq_synced is not None:
        service = "ntp"
    synced = timedatectl.synchronized if timedatectl else None
    for answer in (chrony_synced, ntpq_synced):
        if synced is None:
            synced = answer
    if synced is None and service is None and services is not None:
        synced = False  # nothing runs that could keep the clock in step
    return TimeSync(service=service, synchronized=synced)


# ---------------------------------------------------------------- firewall

_FIREWALLD_SERVICES = {
    "ssh": (22,),
    "http": (80,),
    "https": (443,),
    "kube-apiserver": (6443,),
    "kubelet": (10250,),
    "etcd-client": (2379,),
    "etcd-server": (2380,),
    "kube-control-plane": (6443, 2379, 2380, 10250, 10257, 10259),
    "ceph-mon": (3300, 6789),
}
_UFW_APPS = {"openssh": (22,), "ssh": (22,)}
_MAX_RANGE = 65535


def _port_spec(spec: str) -> set[int] | None:
    """``22``, ``80,443``, ``2379-2380`` or ``2379:2380`` → ports; None when not ports."""
    ports: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"(\d{1,5})(?:[-:](\d{1,5}))?", part.strip())
        if not m:
            return None
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else low
        if not 0 < low <= high < 65536 or high - low > _MAX_RANGE:
            return None
        ports.update(range(low, high + 1))
    return ports


def parse_ufw_status(text: str) -> Firewall | None:
    """``ufw status``: active or not, and the TCP ports its ALLOW/LIMIT rules open."""
    status = re.search(r"^Status:\s*(\w+)", text, re.MULTILINE)
    if not status:
        return None
    if status.group(1) != "active":
        return Firewall(active=False, kind="ufw")
    ports: set[int] = set()
    for line in _lines(text):
        # "22/tcp (v6)  ALLOW IN  Anywhere"; "22/tcp (OpenSSH (v6))" in verbose mode.
        m = re.match(r"^(\S+)(?:\s+\(.*\))?\s+(ALLOW|LIMIT)(?:\s+(IN|OUT|FWD))?(?:\s|$)", line)
        if not m or m.group(3) in ("OUT", "FWD"):  # outgoing and routed rules open nothing here
            continue
        target, _, proto = m.group(1).partition("/")
        if proto not in ("", "tcp"):
            continue
        parsed = _port_spec(target)
        ports.update(parsed if parsed is not None else _UFW_APPS.get(target.lower(), ()))
    return Firewall(active=True, kind="ufw", open_ports=frozenset(ports))


def parse_firewalld(text: str) -> Firewall | None:
    """The script's ``state:``/``ports:``/``services:`` lines from ``firewall-cmd``."""
    values = dict(_colon_pairs(text))
    state = values.get("state")
    if state is None:
        return None
    if state != "running":
        return Firewall(active=False, kind="firewalld")
    ports: set[int] = set()
    for item in values.get("ports", "").split():
        port, _, proto = item.partition("/")
        parsed = _port_spec(port) if proto == "tcp" else None
        ports.update(parsed or ())
    for service in values.get("services", "").split():
        ports.update(_FIREWALLD_SERVICES.get(service, ()))
    return Firewall(active=True, kind="firewalld", open_ports=frozenset(ports))


_NFT_UNCONDITIONAL_BLOCK = re.compile(r"^(counter( packets \d+ bytes \d+)? )?(drop|reject\b.*)$")


def _nft_input_chains(text: str) -> Iterator[list[str]]:
    """The rule lines of each chain hooked on input."""
    depth = 0
    chain: list[str] | None = None
    for raw in _lines(text):
        line = raw.strip()
        if chain is None and line.startswith("chain ") and line.endswith("{"):
            chain, depth = [], 1
            continue
        if chain is None:
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            if any(re.search(r"\bhook input\b", r) for r in chain):
                yield chain
            chain = None
            continue
        chain.append(line)


def parse_nft_ruleset(text: str) -> Firewall | None:
    """``nft list ruleset``: active when an input chain drops by policy or by a
    catch-all drop/reject rule; the ports its ``tcp dport ... accept`` rules open."""
    if re.search(r"(?i)operation not permitted|permission denied|command not found", text):
        return None
    if text.strip() and not re.search(r"^\s*table \S+", text, re.MULTILINE):
        return None
    active = False
    ports: set[int] = set()
    for chain in _nft_input_chains(text):
        for rule in chain:
            if re.search(r"\bpolicy drop\b", rule) or _NFT_UNCONDITIONAL_BLOCK.match(rule):
                active = True
            m = re.search(r"\btcp dport (\{[^}]*\}|\S+)(.*)\baccept$", rule)
            if m:
                parsed = _port_spec(m.group(1).strip("{} ").replace(" ", ""))
                ports.update(parsed or ())
    return Firewall(
        active=active, kind="nftables", open_ports=frozenset(ports) if active else frozenset()
    )


def parse_iptables_input(text: str) -> Firewall | None:
    """``iptables -S INPUT``: active with a DROP policy or a catch-all DROP/REJECT rule."""
    policy = re.search(r"^-P INPUT (\w+)", text, re.MULTILINE)
    if not policy:
        return None
    active = policy.group(1) == "DROP"
    ports: set[int] = set()
    for line in _lines(text):
        if re.fullmatch(r"-A INPUT -j (DROP|REJECT)( --reject-with \S+)?", line.strip()):
            active = True
        m = re.search(r"-p tcp .*--dports? (\S+) .*-j ACCEPT", line)
        if m:
            ports.update(_port_spec(m.group(1)) or ())
    return Firewall(
        active=active, kind="iptables", open_ports=frozenset(ports) if active else frozenset()
    )


def combine_firewall(readings: Iterable[Firewall | None]) -> Firewall | None:
    """The first active firewall in the order given (ufw, firewalld, nftables,
    iptables), else the first that answered as inactive; None when none answered."""
    known = [r for r in readings if r is not None]
    for reading in known:
        if reading.active:
            return reading
    if not known:
        return None
    return Firewall(
        active=False, kind=next((r.kind for r in known if r.kind in ("ufw", "firewalld")), None)
    )


# ---------------------------------------------------------------- sudo, installed pieces


def parse_sudo(text: str) -> bool | None:
    """The script's sudo probe: ``root``/``nopasswd`` → True, ``absent`` → False.

    ``password`` (sudo wants a password discovery does not have) → None: the
    SSH layer checks sudo with the password at connect time.
    """
    word = _first_word(text)
    if word in ("root", "nopasswd"):
        return True
    if word == "absent":
        return False
    return None


# What each probe line means: "bin NAME" (found on PATH) or "path PATH" (exists).
INSTALLED_BINARIES = {
    "containerd": "containerd",
    "docker": "docker",
    "dockerd": "docker",
    "podman": "podman",
    "crio": "cri-o",
    "runc": "runc",
    "crictl": "crictl",
    "kubelet": "kubelet",
    "kubeadm": "kubeadm",
    "kubectl": "kubectl",
    "microk8s": "microk8s",
    "rke2": "rke2",
    "rke": "rke",
    "k3s": "k3s",
    "etcd": "etcd",
    "etcdctl": "etcdctl",
    "ceph": "ceph",
    "cephadm": "cephadm",
    "haproxy": "haproxy",
    "keepalived": "keepalived",
    "helm": "helm",
}
INSTALLED_PATHS = {
    "/var/lib/rancher/rke2": "rke2",
    "/var/snap/microk8s": "microk8s",
    "/etc/kubernetes/admin.conf": "kubernetes-config",  # this host already runs a cluster
    "/etc/kubernetes/kubelet.conf": "kubernetes-config",
    "/var/lib/etcd/member": "etcd-data",
    "/etc/ceph/ceph.conf": "ceph-config",
    "/var/lib/containerd": "containerd-data",
    "/var/lib/docker": "docker-data",
}


def parse_installed(text: str) -> frozenset[str] | None:
    """The script's ``bin NAME`` / ``path PATH`` probe lines → installed piece names.

    Needs the closing ``done`` line, so a cut-off probe is unknown, not "nothing".
    """
    names: set[str] = set()
    finished = False
    for line in _lines(text):
        kind, _, value = line.strip().partition(" ")
        if kind == "bin" and value in INSTALLED_BINARIES:
            names.add(INSTALLED_BINARIES[value])
        elif kind == "path" and value in INSTALLED_PATHS:
            names.add(INSTALLED_PATHS[value])
        elif kind == "done":
            finished = True
    return frozenset(names) if finished else None
