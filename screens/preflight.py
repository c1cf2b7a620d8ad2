"""Checks: the host x check grid (pass / warn / fail) with fix hints, and the facts table."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import Button, DataTable, Static, TabbedContent, TabPane

from screens.base import WizardScreen
from screens.discovery_flow import discover_hosts, mark_waiting
from screens.engine_adapters import CheckResult, EngineUnavailable, PreflightView
from screens.format import fmt_bytes, os_name
from screens.messages import PreflightFinished
from screens.widgets.cells import Row, cell, fill_table

CELL = {
    "pass": ("✓ ok", "$text-success"),
    "warn": ("! warn", "$text-warning"),
    "fail": ("✗ fail", "bold $text-error"),
}


def cell_text(result: CheckResult | None) -> Content:
    if result is None:
        return cell("-", "$text-muted")
    text, style = CELL[result.status]
    return cell(text, style)


FACT_COLUMNS = (
    ("host", "Host"),
    ("os", "OS"),
    ("cpu", "CPUs"),
    ("ram", "RAM"),
    ("disks", "Disks"),
    ("swap", "Swap"),
    ("time", "Time sync"),
    ("kernel", "Kernel"),
)


class PreflightScreen(WizardScreen):
    STEP = "preflight"

    BINDINGS = [
        Binding("ctrl+r", "rerun", "Re-run", priority=True),
        Binding("f", "first_failure", "First failure"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: PreflightView | None = None
        self.error: str | None = None
        self.checked_version = -1  # facts_version the grid was computed from
        self.checked_profile = ""
        self.busy = False

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="preflight-tabs"):
            with TabPane("Checks", id="tab-checks"):
                yield DataTable(id="grid", cursor_type="cell", fixed_columns=1)
            with TabPane("Facts", id="tab-facts"):
                yield DataTable(id="facts", cursor_type="row", fixed_columns=1)
        yield Static("", id="check-detail")
        with Horizontal(classes="buttons"):
            yield Button("Re-run checks", id="rerun", compact=True)
            yield Static("", id="preflight-status")

    def on_mount(self) -> None:
        super().on_mount()

    def refresh_view(self) -> None:
        self._fill_facts()
        stale = (
            self.checked_version != self.state.facts_version
            or self.checked_profile != self.state.answers.profile
        )
        if stale and not self.busy:
            self.run_checks()
        else:
            self._fill_grid()

    # ------------------------------------------------------------------ running

    def run_checks(self) -> None:
        self.busy = True
        self._status(Content.styled("⋯ Checking the hosts…", "$text-accent"))
        self.checked_version = self.state.facts_version
        self.checked_profile = self.state.answers.profile
        self._check()

    @work(thread=True, exclusive=True, group="preflight", exit_on_error=False)
    def _check(self) -> None:
        state = self.state
        meta = state.meta
        if meta is None:
            self.post_message(
                PreflightFinished(None, f"profile {state.answers.profile} cannot be loaded")
            )
            return
        try:
            view = self.wizard.engine.preflight(
                state.answers, meta, dict(state.facts), self.wizard.clock()
            )
        except EngineUnavailable as exc:
            self.post_message(PreflightFinished(None, str(exc)))
            return
        except Exception as exc:
            self.post_message(
                PreflightFinished(None, f"the checks failed to run: {type(exc).__name__}: {exc}")
            )
            return
        self.post_message(PreflightFinished(view))

    @on(PreflightFinished)
    def _finished(self, message: PreflightFinished) -> None:
        self.busy = False
        self.view, self.error = message.view, message.error
        self._fill_grid()
        self.refresh_nav()

    def action_rerun(self) -> None:
        """Discover again (the fix changed the host), then check again."""
        if self.busy:
            return
        labels = [h.label for h in self.state.answers.hosts]
        self.busy = True
        mark_waiting(self.wizard, labels)
        self._status(Content.styled(f"⋯ Discovering {len(labels)} hosts again…", "$text-accent"))
        self.refresh_nav()
        self._rediscover(labels)

    @work(exclusive=True, group="rediscover", exit_on_error=False)
    async def _rediscover(self, labels: list[str]) -> None:
        _ok, failed = await discover_hosts(self.wizard, labels, lambda _label: None)
        self.busy = False
        self._fill_facts()
        if failed:
            self._status(
                Content.styled(f"✗ {failed} host(s) could not be reached: see Hosts", "$text-error")
            )
            self.refresh_nav()
            return
        self.run_checks()

    @on(Button.Pressed, "#rerun")
    def _rerun_pressed(self) -> None:
        self.action_rerun()

    # ------------------------------------------------------------------ view

    def _status(self, text: Content) -> None:
        self.query_one("#preflight-status", Static).update(text)

    def _fill_grid(self) -> None:
        grid = self.query_one("#grid", DataTable)
        grid.clear(columns=True)
        view = self.view
        if view is None:
            self._status(Content.styled(self.error or "", "$text-warning"))
            self.query_one("#check-detail", Static).update(
                Content.styled(
                    "The checks could not run here; the install checks the hosts again before it starts."
                    if self.error
                    else "",
                    "$text-muted",
                )
            )
            return
        hosts = [h.label for h in self.state.answers.hosts]
        rows: list[Row] = [
            (check, [view.title(check), *(cell_text(view.cell(check, h)) for h in hosts)])
            for check in view.checks()
        ]
        fill_table(
            grid,
            [("check", "Check"), *((h, h) for h in hosts)],
            rows,
            min_widths=dict.fromkeys(hosts, 6),
        )
        fails, warns = view.count("fail"), view.count("warn")
        if fails:
            summary = Content.styled(f"✗ {fails} failed, {warns} warnings", "$text-error")
        elif warns:
            summary = Content.styled(f"! {warns} warnings, nothing failed", "$text-warning")
        else:
            summary = Content.styled("✓ every check passed", "$text-success")
        profile = Content.styled(f"  (profile {self.state.answers.profile})", "$text-muted")
        self._status(Content.assemble(summary, profile))
        if grid.row_count and len(hosts):
            grid.move_cursor(row=0, column=1)
        self._show_detail()

    def _fill_facts(self) -> None:
        table = self.query_one("#facts", DataTable)
        rows: list[Row] = []
        for host in self.state.answers.hosts:
            f = self.state.facts.get(host.label)
            if f is None:
                rows.append(
                    (host.label, [host.label, cell("not discovered", "$text-muted")] + [""] * 6)
                )
                continue
            disks = [d for d in (f.disks or ()) if d.type == "disk"]
            swap = sum(s.size_bytes for s in f.swaps or ())
            ts = f.time_sync
            time_text = (
                "unknown"
                if ts is None
                else f"{ts.service or 'none'}{'' if ts.synchronized else ' (not synced)'}"
            )
            rows.append(
                (
                    host.label,
                    [
                        host.label,
                        os_name(f),
                        str(f.cpu.count) if f.cpu else "?",
                        fmt_bytes(f.memory.total_bytes) if f.memory else "?",
                        str(len(disks)),
                        fmt_bytes(swap) if swap else "off",
                        time_text,
                        f.kernel or "?",
                    ],
                )
            )
        fill_table(table, FACT_COLUMNS, rows)

    @on(DataTable.CellHighlighted, "#grid")
    def _cell_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#check-detail", Static)
        grid = self.query_one("#grid", DataTable)
        view = self.view
        if view is None or not grid.row_count:
            return
        coord = grid.cursor_coordinate
        check = view.checks()[coord.row] if coord.row < len(view.checks()) else None
        hosts = [h.label for h in self.state.answers.hosts]
        host = hosts[coord.column - 1] if 0 < coord.column <= len(hosts) else None
        if check is None:
            return
        if host is None:
            detail.update(
                Content.styled(
                    f"{view.title(check)}: pick a host's cell for its detail", "$text-muted"
                )
            )
            return
        result = view.cell(check, host)
        if result is None:
            detail.update(Content.styled(f"{host} · {check}: not checked", "$text-muted"))
            return
        text, style = CELL[result.status]
        parts: list[Content | str] = [
            Content.styled(f"{host} · {view.title(check)}  ", "bold"),
            Content.styled(text, style),
            "\n",
            result.message,
        ]
        if result.detail:
            parts += ["\n", Content.styled(result.detail, "$text-muted")]
        if result.fix and result.status != "pass":
            parts += ["\n", Content.styled(f"Fix: {result.fix}", "$text-warning")]
        detail.update(Content.assemble(*parts))

    def action_first_failure(self) -> None:
        view = self.view
        if view is None:
            return
        grid = self.query_one("#grid", DataTable)
        hosts = [h.label for h in self.state.answers.hosts]
        for r, check in enumerate(view.checks()):
            for c, host in enumerate(hosts, start=1):
                cell = view.cell(check, host)
                if cell is not None and cell.status == "fail":
                    self.query_one("#preflight-tabs", TabbedContent).active = "tab-checks"
                    grid.cursor_coordinate = Coordinate(r, c)
                    grid.focus()
                    return

    def next_reason(self) -> str | None:
        if self.busy:
            return "Checks are running…"
        if not self.state.all_discovered():
            return "Some hosts are not discovered: see Hosts"
        return None

    def next_note(self) -> str | None:
        # Failures may come from the profile (chosen next) or roles (after it),
        # so they do not block here; the install does not start while any fails.
        if self.view is not None and (fails := self.view.count("fail")):
            return f"{fails} fail: fix + Re-run (ctrl+r), or change profile next"
        return None
