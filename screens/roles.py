"""Roles: the host x role matrix, suggested from the facts, validated as you edit; the VIP."""

from __future__ import annotations

import ipaddress

from pydantic import ValidationError
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Static

from installer.problems import Problem
from installer.roles import (
    apply_roles,
    assignment_summary,
    host_networks_from_facts,
    suggest_roles,
    validate_assignment,
)
from screens.base import WizardScreen
from screens.widgets.cells import Row, cell, fill_table


class RoleMatrix(DataTable[Content | str]):
    """A DataTable where one click on a cell toggles it (the table's own click only
    moves the cursor unless the cell is already highlighted)."""

    class Toggle(Message):
        def __init__(self, row: int, column: int) -> None:
            super().__init__()
            self.row = row
            self.column = column

    async def _on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        if "row" not in meta or "column" not in meta or meta.get("out_of_bounds", False):
            return
        row, column = int(meta["row"]), int(meta["column"])
        # On the highlighted cell, DataTable posts CellSelected itself.
        if row >= 0 and column >= 1 and Coordinate(row, column) != self.cursor_coordinate:
            self.post_message(self.Toggle(row, column))


HELD = cell("■", "bold $text-success")
NOT_HELD = cell("·", "$text-muted")


class RolesScreen(WizardScreen):
    STEP = "roles"

    BINDINGS = [
        Binding("space", "toggle_role", "Toggle role"),
        Binding("s", "suggest", "Suggest"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[Problem] = []
        self._roles: list[str] = []

    def compose_body(self) -> ComposeResult:
        yield RoleMatrix(id="matrix", cursor_type="cell", fixed_columns=1)
        with Horizontal(classes="field", id="vip-fields"):
            yield Label("Virtual IP", classes="field-label-wide")
            yield Input(id="vip", placeholder="a free address in the hosts' subnet", compact=True)
            yield Label(" API port", classes="field-label-short")
            yield Input(id="api-port", compact=True)
            yield Button("Suggest roles", id="suggest", compact=True)
        yield VerticalScroll(Static("", id="role-check"), id="role-check-box")

    def on_mount(self) -> None:
        net = self.state.answers.network
        self.query_one("#vip", Input).value = str(net.vip) if net.vip else ""
        self.query_one("#api-port", Input).value = str(net.api_port)
        super().on_mount()
        self.query_one("#matrix", DataTable).focus()

    def refresh_view(self) -> None:
        meta = self.state.meta
        if meta is None:
            return
        if not self.state.roles_edited and not any(h.roles for h in self.state.answers.hosts):
            self._suggest()
        self._roles = list(meta.roles)
        table = self.query_one("#matrix", DataTable)
        coord = table.cursor_coordinate
        rows: list[Row] = [
            (
                host.label,
                [host.label, *(HELD if role in host.roles else NOT_HELD for role in self._roles)],
            )
            for host in self.state.answers.hosts
        ]
        fill_table(table, [("host", "Host"), *((r, r) for r in self._roles)], rows)
        if table.row_count:
            table.cursor_coordinate = (
                coord
                if table.is_valid_coordinate(coord) and coord.column
                else table.cursor_coordinate
            )
            if table.cursor_column == 0:
                table.move_cursor(column=1)
        self._validate()

    def _suggest(self) -> None:
        meta = self.state.meta
        if meta is None or not self.state.answers.hosts:
            return
        assignment = suggest_roles(
            self.state.answers, meta, self.state.facts, self.wizard.disk_hosts()
        )
        self.state.answers = apply_roles(self.state.answers, assignment)

    def action_suggest(self) -> None:
        self._suggest()
        self.state.roles_edited = False
        self.refresh_view()
        self.refresh_nav()

    @on(Button.Pressed, "#suggest")
    def _suggest_pressed(self) -> None:
        self.action_suggest()

    # ------------------------------------------------------------------ editing

    def action_toggle_role(self) -> None:
        table = self.query_one("#matrix", DataTable)
        if not table.has_focus:
            return
        self._toggle(table.cursor_row, table.cursor_column)

    @on(DataTable.CellSelected, "#matrix")
    def _cell_selected(self, event: DataTable.CellSelected) -> None:
        self._toggle(event.coordinate.row, event.coordinate.column)

    @on(RoleMatrix.Toggle)
    def _clicked(self, event: RoleMatrix.Toggle) -> None:
        self._toggle(event.row, event.column)

    def _toggle(self, row: int, column: int) -> None:
        hosts = self.state.answers.hosts
        if not (0 <= row < len(hosts)) or not (1 <= column <= len(self._roles)):
            return
        role = self._roles[column - 1]
        host = hosts[row]
        roles = [r for r in host.roles if r != role] if role in host.roles else [*host.roles, role]
        roles = [r for r in self._roles if r in roles]  # keep the profile's order
        self.state.answers = apply_roles(self.state.answers, {host.label: roles})
        self.state.roles_edited = True
        table = self.query_one("#matrix", DataTable)
        table.update_cell(host.label, role, HELD if role in roles else NOT_HELD)
        self._validate()
        self.refresh_nav()

    @on(Input.Changed, "#vip, #api-port")
    def _network_changed(self, event: Input.Changed) -> None:
        net = self.state.answers.network
        value = event.value.strip()
        try:
            if event.input.id == "vip":
                if value:
                    try:
                        ip = ipaddress.ip_address(value)
                    except ValueError:
                        raise ValueError(f"'{value}' is not an IP address") from None
                    net.vip = ip
                else:
                    net.vip = None
            else:
                net.api_port = int(value) if value else 8443
        except (ValueError, ValidationError) as exc:
            msg = str(exc.errors()[0]["msg"]) if isinstance(exc, ValidationError) else str(exc)
            if event.input.id == "api-port" and not isinstance(exc, ValidationError):
                msg = f"'{value}' is not a port number"
            event.input.add_class("-invalid")
            self._input_error = msg.removeprefix("Value error, ")
        else:
            event.input.remove_class("-invalid")
            self._input_error = None
        self._validate()
        self.refresh_nav()

    _input_error: str | None = None

    # ------------------------------------------------------------------ validation

    def _validate(self) -> None:
        meta = self.state.meta
        if meta is None:
            return
        answers = self.state.answers
        nets = host_networks_from_facts(answers, self.state.facts)
        self.problems = validate_assignment(answers, meta, nets, disks_chosen_later=True)
        lines: list[Content] = []
        if self._input_error:
            lines.append(Content.styled(f"✗ {self._input_error}", "$text-error"))
        for p in self.problems:
            if p.severity == "error":
                lines.append(Content.styled(f"✗ {p.message}", "$text-error"))
            else:
                lines.append(Content.styled(f"! {p.message}", "$text-warning"))
        has_errors = self._input_error is not None or any(
            p.severity == "error" for p in self.problems
        )
        for line in assignment_summary(answers, meta):
            if has_errors:
                lines.append(Content.styled(f"• {line}", "$text-muted"))
            else:
                lines.append(Content.styled(f"✓ {line}", "$text-success"))
        self.query_one("#role-check", Static).update(Content("\n").join(lines))

    def next_reason(self) -> str | None:
        if self._input_error:
            return "Fix the VIP or API port"
        errors = [p for p in self.problems if p.severity == "error"]
        if errors:
            return (
                f"{len(errors)} problem{'s' if len(errors) > 1 else ''} with the roles: see below"
            )
        return None
