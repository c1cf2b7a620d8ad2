"""Small formatting helpers shared by the screens."""

from __future__ import annotations

from installer.hostfacts import BlockDevice, HostFacts


def fmt_bytes(n: float) -> str:
    """'200.0 GiB', '1.8 TiB', '512 MiB': powers of two, like lsblk."""
    if n < 2**30:
        return f"{n / 2**20:.0f} MiB"
    if n < 2**40:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**40:.1f} TiB"


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def os_name(f: HostFacts) -> str:
    if f.os is None:
        return "unknown OS"
    return f.os.pretty_name or " ".join(p for p in (f.os.id, f.os.version_id) if p)


def facts_line(f: HostFacts) -> str:
    """'Ubuntu 24.04.2 LTS · 8 CPUs · 32.0 GiB · 2 disks'."""
    parts = [os_name(f)]
    if f.cpu is not None:
        parts.append(f"{f.cpu.count} CPUs")
    if f.memory is not None:
        parts.append(fmt_bytes(f.memory.total_bytes))
    if f.disks is not None:
        disks = [d for d in f.disks if d.type == "disk"]
        parts.append(f"{len(disks)} disk{'s' if len(disks) != 1 else ''}")
    return " · ".join(parts)


def disk_line(d: BlockDevice) -> str:
    """'sdb  200.0 GiB  HDD  ST2000NM'."""
    kind = ""
    if d.type == "disk":
        kind = "HDD" if d.rotational else "SSD" if d.rotational is False else ""
        if d.transport == "nvme":
            kind = "NVMe"
    bits = [d.name, fmt_bytes(d.size_bytes)]
    if d.type != "disk":
        bits.append(d.type)
    if kind:
        bits.append(kind)
    if d.model:
        bits.append(d.model)
    if d.fstype:
        bits.append(d.fstype)
    if d.mountpoints:
        bits.append("on " + ", ".join(d.mountpoints))
    return "  ".join(bits)
