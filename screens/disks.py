"""Disks: per host, the disk tree; choose the storage disk of every storage host.

Eligibility is the storage core's (``Engine.disk_verdicts``): this screen only
explains it. Ineligible disks are greyed out with the reason; a disk that the
install will wipe is red.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import DataTable, Static

from installer.answers import Host
from installer.hostfacts import BlockDevice
from screens.base import WizardScreen
from screens.engine_adapters import DiskVerdict, EngineUnavailable
from screens.format import fmt_bytes
from screens.widgets.cells import Row, cell, fill_table

DISK_COLUMNS = (
    ("device", "Device"),
    ("size", "Size"),
    ("kind", "Kind"),
    ("model", "Model"),
    ("verdict", "For the install"),
)


@dataclass(frozen=True)
class DiskRow:
    host: str
    device: BlockDevice | None  # None: the host's header row
    verdict: DiskVerdict | None


def _kind(d: BlockDevice) -> str:
    if d.type != "disk":
        return d.fstype or d.type
    if d.transport == "nvme":
        return "NVMe"
    return (
        {True: "HDD", False: "SSD"}.get(d.rotational, "disk")
        if d.rotational is not None
        else "disk"
    )


class DisksScreen(WizardScreen):
    STEP = "disks"

    BINDINGS = [Binding("enter", "choose", "Use this disk", show=True)]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[DiskRow] = []
        self.verdicts: dict[str, list[DiskVerdict]] = {}
        self.unavailable: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="disks-intro")
        yield DataTable(id="disks", cursor_type="row")
        yield Static("", id="disk-detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#disks", DataTable).focus()

    # ------------------------------------------------------------------ data

    def storage_hosts(self) -> list[Host]:
        meta = self.state.meta
        if meta is None:
            return []
        disk_roles = {r for r, rule in meta.roles.items() if rule.needs_disk}
        return [h for h in self.state.answers.hosts if disk_roles & set(h.roles)]

    def _load_verdicts(self) -> None:
        self.verdicts.clear()
        self.unavailable = None
        for host in self.storage_hosts():
            facts = self.state.facts.get(host.label)
            if facts is None:
                continue
            try:
                self.verdicts[host.label] = self.wizard.engine.disk_verdicts(
                    self.state.answers, host, facts
                )
            except EngineUnavailable as exc:
                self.unavailable = str(exc)
                self.verdicts.clear()
                return

    def _verdict(self, host: str, device: BlockDevice) -> DiskVerdict | None:
        for v in self.verdicts.get(host, []):
            if v.path == device.path or v.names(device.path):
                return v
        return None

    def _preselect(self) -> None:
        """The first eligible disk of each storage host that has none chosen."""
        for i, host in enumerate(self.state.answers.hosts):
            if host not in self.storage_hosts() or host.label in self.state.disks_chosen:
                continue
            if host.storage_disk and any(
                v.names(host.storage_disk) for v in self.verdicts.get(host.label, [])
            ):
                continue
            first = next(
                (v for v in self.verdicts.get(host.label, []) if v.status == "allowed"), None
            )
            if first is not None:
                self._use(i, host, first, chosen=False)

    def _use(self, index: int, host: Host, verdict: DiskVerdict, *, chosen: bool = True) -> None:
        state = self.state
        state.replace_host(index, host.model_copy(update={"storage_disk": verdict.stable_id}))
        wipe = [w for w in state.answers.storage.wipe if w.partition(":")[0] != host.label]
        if verdict.status == "consent":
            wipe.append(f"{host.label}:{verdict.stable_id}")
        state.answers.storage.wipe = wipe
        if chosen:
            state.disks_chosen.add(host.label)

    # ------------------------------------------------------------------ view

    def refresh_view(self) -> None:
        self._load_verdicts()
        self._preselect()
        intro = self.query_one("#disks-intro", Static)
        hosts = self.storage_hosts()
        meta = self.state.meta
        if meta is not None and not any(r.needs_disk for r in meta.roles.values()):
            intro.update(
                Content.styled(
                    f"Profile {meta.name} uses no dedicated data disks: nothing to choose here.",
                    "$text-muted",
                )
            )
        elif not hosts:
            intro.update(
                Content.styled("No host has the storage role: see Roles.", "$text-warning")
            )
        elif self.unavailable:
            intro.update(Content.styled(self.unavailable, "$text-error"))
        else:
            intro.update(
                Content.assemble(
                    "Pick the data disk of each storage host (enter). ",
                    Content.styled("Red", "$text-error"),
                    " disks will be wiped; grey ones cannot be used.",
                )
            )
        table = self.query_one("#disks", DataTable)
        row = table.cursor_row
        self.rows = []
        out: list[Row] = []
        for host in hosts:
            self._add_host(out, host)
        fill_table(table, DISK_COLUMNS, out)
        if self.rows:
            table.move_cursor(row=min(max(row, 0), len(self.rows) - 1))
        self._show_detail()

    def _add_host(self, out: list[Row], host: Host) -> None:
        facts = self.state.facts.get(host.label)
        roles = ", ".join(host.roles)
        self.rows.append(DiskRow(host.label, None, None))
        out.append((None, [cell(host.label, "bold"), "", "", "", cell(roles, "$text-muted")]))
        if facts is None or not facts.disks:
            self.rows.append(DiskRow(host.label, None, None))
            out.append((None, [cell("  no disks reported", "$text-muted"), "", "", "", ""]))
            return
        disks = list(facts.disks)
        for n, disk in enumerate(disks):
            self._add_device(out, host, disk, "", n == len(disks) - 1)

    def _add_device(
        self,
        out: list[Row],
        host: Host,
        dev: BlockDevice,
        indent: str,
        last: bool,
    ) -> None:
        verdict = self._verdict(host.label, dev) if dev.type == "disk" else None
        selected = verdict is not None and verdict.names(host.storage_disk)
        wiped = selected and verdict is not None and verdict.status == "consent"
        branch = "└ " if last else "├ "
        mark = "● " if selected else "○ " if verdict and verdict.status != "disallowed" else "  "
        style = ""
        if wiped:
            style = "bold $text-error"
        elif selected:
            style = "bold $text-success"
        elif dev.type != "disk" or verdict is None or verdict.status == "disallowed":
            style = "$text-muted"
        cells: list[Content | str] = [
            cell(f"{indent}{branch}{mark}{dev.name}", style),
            cell(fmt_bytes(dev.size_bytes), style),
            cell(_kind(dev), style),
            cell(dev.model or "", style),
            cell(self._verdict_text(dev, verdict, selected, wiped)),
        ]
        self.rows.append(DiskRow(host.label, dev, verdict))
        out.append((None, cells))
        children = list(dev.children)
        for n, child in enumerate(children):
            self._add_device(
                out, host, child, indent + ("  " if last else "│ "), n == len(children) - 1
            )

    def _verdict_text(
        self, dev: BlockDevice, verdict: DiskVerdict | None, selected: bool, wiped: bool
    ) -> Content:
        if dev.type != "disk":
            where = f" on {', '.join(dev.mountpoints)}" if dev.mountpoints else ""
            return Content.styled(f"{dev.fstype or dev.type}{where}", "$text-muted")
        if verdict is None:
            return Content.styled("not checked", "$text-muted")
        if wiped:
            return Content.styled(f"WILL BE WIPED: {verdict.reason}", "bold $text-error")
        if selected:
            return Content.styled("✓ storage disk", "bold $text-success")
        if verdict.status == "disallowed":
            return Content.styled(f"✗ {verdict.reason}", "$text-muted")
        if verdict.status == "consent":
            return Content.styled(f"needs wiping: {verdict.reason}", "$text-warning")
        return Content.styled("eligible", "$text-success")

    @on(DataTable.RowHighlighted, "#disks")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#disk-detail", Static)
        table = self.query_one("#disks", DataTable)
        if not self.rows or not (0 <= table.cursor_row < len(self.rows)):
            detail.update("")
            return
        row = self.rows[table.cursor_row]
        host = self.state.answers.host(row.host)
        if row.device is None:
            disk = host.storage_disk if host else None
            detail.update(
                Content.assemble(
                    Content.styled(f"{row.host}: ", "bold"),
                    f"storage disk {disk}"
                    if disk
                    else Content.styled("no storage disk chosen", "$text-warning"),
                )
            )
            return
        v = row.verdict
        parts: list[Content | str] = [Content.styled(f"{row.host} {row.device.path}", "bold")]
        if v is not None:
            parts += ["  id ", v.stable_id]
            if v.reason:
                parts += ["\n", Content.styled(v.reason, "$text-muted")]
            if v.warning:
                parts += ["\n", Content.styled(f"! {v.warning}", "$text-warning")]
        detail.update(Content.assemble(*parts))

    def action_choose(self) -> None:
        table = self.query_one("#disks", DataTable)
        if not (0 <= table.cursor_row < len(self.rows)):
            return
        row = self.rows[table.cursor_row]
        if row.verdict is None:
            return
        if row.verdict.status == "disallowed":
            self.notify(
                f"{row.device.name if row.device else 'This disk'} cannot be used: {row.verdict.reason}",
                severity="warning",
            )
            return
        for i, host in enumerate(self.state.answers.hosts):
            if host.label == row.host:
                self._use(i, host, row.verdict)
        self.refresh_view()
        self.refresh_nav()

    @on(DataTable.RowSelected, "#disks")
    def _selected(self) -> None:
        self.action_choose()

    def next_reason(self) -> str | None:
        if self.unavailable and self.storage_hosts():
            return "Disk checks are not available"
        for host in self.storage_hosts():
            if not host.storage_disk:
                eligible = any(v.status != "disallowed" for v in self.verdicts.get(host.label, []))
                if eligible:
                    return f"Choose a disk for {host.label}"
                return f"{host.label} has no usable disk: change its roles"
        return None
