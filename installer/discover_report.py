"""What ``fmp-install discover`` shows: a facts table, a check-by-host grid, the fixes.

Renders to text (rich, colour only on a terminal) or to a stable JSON shape:

    {
      "version": 1,
      "profile": "kubeadm-etcd",
      "hosts": [
        {"label": "kn0", "address": "10.30.217.20", "reached": true,
         "problem": null,            # or {"message": ..., "hint": ...}
         "facts": {...}}             # installer.factsio.facts_to_dict, or null
      ],
      "preflight": {...}             # installer.preflight.findings_to_dict
    }

Keys are only ever added, never renamed, while "version" stays 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from installer.factsio import facts_to_dict
from installer.hostfacts import HostFacts
from installer.pipeline import Checked
from installer.preflight import PreflightReport, check_title, findings_to_dict

if TYPE_CHECKING:  # rich loads only to render text: `discover --json` never needs it
    from rich.console import Console
    from rich.text import Text

GIB = 1024**3
_CELL = {"pass": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}


def discover_json(checked: Checked) -> dict[str, Any]:
    hosts = []
    for host in checked.answers.hosts:
        facts = checked.gathered.facts.get(host.label)
        problem = checked.gathered.problems.get(host.label)
        hosts.append(
            {
                "label": host.label,
                "address": host.address,
                "reached": facts is not None,
                "problem": None
                if problem is None
                else {"message": problem.message, "hint": problem.hint},
                "facts": None if facts is None else facts_to_dict(facts),
            }
        )
    return {
        "version": 1,
        "profile": checked.answers.profile,
        "hosts": hosts,
        "preflight": findings_to_dict(checked.report),
    }


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.0f} GiB"


def _facts_row(label: str, address: str, f: HostFacts | None) -> list[str]:
    if f is None:
        return [label, address, "not reached", "", "", "", ""]
    os_name = f.os.pretty_name or f"{f.os.id} {f.os.version_id or ''}" if f.os else "?"
    cpu = "?" if f.cpu is None else f"{f.cpu.count}" + (" avx" if "avx" in f.cpu.flags else "")
    disks = (
        "?"
        if f.disks is None
        else ", ".join(f"{d.name} {_gib(d.size_bytes)}" for d in f.disks if d.type == "disk")
    )
    nics = "?" if f.nics is None else str(sum(1 for n in f.nics if not n.loopback and n.mac))
    mem = "?" if f.memory is None else _gib(f.memory.total_bytes)
    return [label, address, os_name.strip(), cpu, mem, disks or "none", nics]


def render_discover(checked: Checked, console: Console) -> None:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    facts = Table(title="Hosts", title_justify="left", expand=False)
    for col in ("host", "address", "OS", "CPUs", "RAM", "disks", "NICs"):
        facts.add_column(col, overflow="fold")
    for host in checked.answers.hosts:
        facts.add_row(*_facts_row(host.label, host.address, checked.gathered.facts.get(host.label)))

    report = checked.report
    grid = Table(title="Preflight", title_justify="left")
    grid.add_column("check")
    for label in report.hosts:
        grid.add_column(label, justify="center")
    cells = report.grid()
    for check in report.checks():
        row: list[Text | str] = [check_title(check)]
        for label in report.hosts:
            finding = cells.get(label, {}).get(check)
            if finding is None:
                row.append(Text("-", style="dim"))
            else:
                word, style = _CELL[finding.status]
                row.append(Text(word, style=style))
        grid.add_row(*row)

    console.print(Group(facts, grid))
    render_findings(report, console)


def render_findings(report: PreflightReport, console: Console) -> None:
    """Every warning and failure with its fix, then the verdict."""
    from rich.console import Group
    from rich.text import Text

    lines: list[Text] = []
    for f in sorted(report.findings, key=lambda f: (f.status != "fail", f.host or "", f.check)):
        if f.status == "pass":
            continue
        word, style = _CELL[f.status]
        lines.append(Text.assemble((f"{word:<4} ", style), f.message))
        if f.fix:
            lines.append(Text(f"     fix: {f.fix}", style="dim"))
    counts = report.counts()
    verdict = (
        Text(f"preflight failed: {counts.get('fail', 0)} failing check(s)", style="bold red")
        if report.failed
        else Text(f"preflight passed ({counts.get('warn', 0)} warning(s))", style="bold green")
    )
    console.print(Group(*lines, verdict))
