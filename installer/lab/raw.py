"""Nodes replayed from ``discover --save-raw DIR``: each DIR/<host>.txt becomes one node."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from installer.lab.spec import LabSpec, NodeSpec, SpecError

_BEGIN_END = re.compile(
    r"^@@FMP-BEGIN (?P<name>[\w-]+)@@\n(?P<body>.*?)\n?@@FMP-END (?P=name) rc=(?P<rc>\d+)@@$",
    re.MULTILINE | re.DOTALL,
)
_SECTION = re.compile(r"^@@FMP-SECTION (?P<name>[\w-]+) rc=(?P<rc>\d+)@@\n", re.MULTILINE)


def split_sections(raw: str) -> dict[str, tuple[str, int]]:
    """Section name -> (output, exit code); reads both the BEGIN/END and the SECTION formats."""
    raw = raw.replace("\r\n", "\n")
    found = {m["name"]: (m["body"], int(m["rc"])) for m in _BEGIN_END.finditer(raw)}
    marks = list(_SECTION.finditer(raw))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(raw)
        found.setdefault(m["name"], (raw[m.end() : end].rstrip("\n"), int(m["rc"])))
    return found


def _facts_from(sections: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The spec facts a replayed host implies (what the answers file and /etc need)."""
    facts: dict[str, Any] = {}

    def text(name: str) -> str | None:
        return sections[name][0] if name in sections and sections[name][1] == 0 else None

    if (cpu := text("cpuinfo")) is not None:
        facts["cpus"] = max(1, len(re.findall(r"^processor\s*:", cpu, re.MULTILINE)))
    if (mem := text("meminfo")) is not None and (m := re.search(r"MemTotal:\s+(\d+)", mem)):
        facts["memory_gb"] = int(m.group(1)) / 1024 / 1024
    if (mid := text("machine_id")) is not None and mid.strip():
        facts["machine_id"] = mid.strip()
    if (uuid := text("product_uuid")) is not None and uuid.strip():
        facts["product_uuid"] = uuid.strip().lower()
    if (k := text("kernel")) is not None and k.strip():
        facts["kernel"] = k.strip()
    if (osr := text("os_release")) is not None:
        kv = dict(re.findall(r'^(\w+)="?([^"\n]*)"?', osr, re.MULTILINE))
        facts["os"] = {
            "id": kv.get("ID", "linux"), "version_id": kv.get("VERSION_ID", ""),
            "pretty_name": kv.get("PRETTY_NAME", ""), "codename": kv.get("VERSION_CODENAME", ""),
            "id_like": kv.get("ID_LIKE", ""), "name": kv.get("NAME", ""),
        }  # fmt: skip
    if (lsblk := text("lsblk")) is not None:
        facts["disks"] = _disks(lsblk)
    return facts


def _disks(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    disks = []
    for dev in data.get("blockdevices", []):
        if dev.get("type") != "disk" or str(dev.get("name", "")).startswith(("zram", "loop", "sr")):
            continue
        size = dev.get("size") or 0
        size = int(size) if str(size).isdigit() else 0
        if not size:
            continue
        system = bool(dev.get("children")) or any(dev.get("mountpoints") or [])
        disks.append({"name": str(dev["name"]).removeprefix("/dev/"), "size_gb": size / 1024**3,
                      "model": (dev.get("model") or "disk").strip(), "serial": dev.get("serial"),
                      "wwn": dev.get("wwn") or "", "rotational": bool(dev.get("rota")), "system": system})  # fmt: skip
    return disks


def spec_from_raw(directory: Path, spec: LabSpec) -> LabSpec:
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise SpecError(f"{directory}: no <host>.txt files from `discover --save-raw` found")
    nodes = []
    used: set[str] = set()
    for i, f in enumerate(files):
        sections = split_sections(f.read_text(encoding="utf-8", errors="replace"))
        if not sections:
            raise SpecError(f"{f}: no discovery sections found")
        hostname = (sections.get("hostname", ("", 1))[0].strip().splitlines() or [""])[0]
        name = (
            re.sub(r"[^a-z0-9-]", "-", (hostname or f"node{i}").lower()).strip("-")[:63]
            or f"node{i}"
        )
        while name in used:
            name = f"{name}-{i}"
        used.add(name)
        nodes.append(
            NodeSpec(
                name=name,
                raw={k: v[0] for k, v in sections.items() if not k.startswith("_")},
                raw_rc={k: v[1] for k, v in sections.items() if not k.startswith("_")},
                facts=_facts_from(sections),
            )
        )
    return spec.model_copy(update={"nodes": nodes})
