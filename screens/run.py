"""Install: a status row per node, the focused node's live log, overall progress.

The run itself lives on the App (``WizardApp.run_controller``); this screen
only looks at it, ten times a second. Output is buffered per node by the
controller and written to the pane with one ``write_lines`` per flush.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Log, ProgressBar, Static

from screens.base import WizardScreen
from screens.format import fmt_duration
from screens.run_controller import MAX_LINES, NodeView, RunController
from screens.widgets.cells import Row, cell, fill_table

FLUSH_INTERVAL = 0.1

STATE_STYLE = {
    "waiting": ("· waiting", "$text-muted"),
    "running": ("▶ running", "bold $text-accent"),
    "done": ("✓ done", "$text-success"),
    "failed": ("✗ failed", "bold $text-error"),
    "blocked": ("⊘ blocked", "$text-warning"),
    "lost": ("⚠ reconnecting", "$text-warning"),
}


# The state first: at 80 columns the roles may scroll out of view, never the state.
NODE_COLUMNS = (
    ("node", "Node"),
    ("state", "State"),
    ("nm", "n/m"),
    ("time", "Time"),
    ("step", "Step"),
    ("roles", "Roles"),
)


class FullLogScreen(ModalScreen[None]):
    """One node's whole log, from the state directory."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, host: str, path: str | None, fallback: list[str]) -> None:
        super().__init__()
        self.host = host
        self.path = path
        self.fallback = fallback

    def compose(self) -> ComposeResult:
        with Vertical(id="fulllog"):
            yield Static(Content.styled(f"{self.host}: full log", "bold"), id="fulllog-title")
            yield Log(id="fulllog-log", max_lines=None)
            yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        lines: list[str]
        note = ""
        try:
            if self.path is None:
                raise FileNotFoundError
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
            note = self.path
        except OSError:
            lines = self.fallback
            note = "no log file yet: showing the lines kept in memory"
        self.app.call_from_thread(self._show, lines, note)

    def _show(self, lines: list[str], note: str) -> None:
        self.query_one("#fulllog-title", Static).update(
            Content.assemble(
                Content.styled(f"{self.host}: full log  ", "bold"),
                Content.styled(note, "$text-muted"),
            )
        )
        self.query_one("#fulllog-log", Log).write_lines(lines)

    def action_close(self) -> None:
        self.dismiss(None)


class RunScreen(WizardScreen):
    STEP = "run"
    HAS_BACK = False
    NEXT_LABEL = "Finish ▶"

    BINDINGS = [
        Binding("ctrl+n", "next", "Finish", show=False, priority=True),
        Binding("q", "app.quit_safely", "Quit safely"),
        Binding("n", "next_node", "Next node"),
        Binding("p", "prev_node", "Prev node"),
        Binding("f", "first_failure", "First failure"),
        Binding("R", "retry", "Retry failed"),
        Binding("l", "full_log", "Full log"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.node_focus: str | None = None
        self._seen_version = -1
        self._controller: RunController | None = None
        self._timer: Timer | None = None
        self._shown: dict[str, list[str]] = {}  # host -> the cells on screen, as text
        self._nav_state: tuple[bool, bool] | None = None
        self._summary_shown: Content | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="run-summary")
        yield ProgressBar(id="overall", show_eta=False)
        yield DataTable(id="nodes", cursor_type="row")
        yield Static("", id="pane-title")
        yield Log(id="pane", max_lines=MAX_LINES)

    def on_mount(self) -> None:
        table = self.query_one("#nodes", DataTable)
        super().on_mount()
        self._timer = self.set_interval(FLUSH_INTERVAL, self.flush)
        table.focus()

    @property
    def controller(self) -> RunController | None:
        return self.wizard.run_controller

    def refresh_view(self) -> None:
        if self._timer is not None:
            self._timer.resume()
        self.flush(force=True)

    def on_screen_suspend(self) -> None:
        # Nobody looks at the panes: the controller keeps buffering (capped).
        if self._timer is not None:
            self._timer.pause()

    # ------------------------------------------------------------------ the 10 Hz flush

    def flush(self, force: bool = False) -> None:
        ctl = self.controller
        if ctl is None or not self.is_mounted:
            return
        try:
            self._flush(ctl, force)
        except NoMatches:  # the app is closing and the panes are gone
            return

    def _flush(self, ctl: RunController, force: bool) -> None:
        if ctl is not self._controller:
            self._controller = ctl
            self._rebuild(ctl)
            force = True
        pane = self.query_one("#pane", Log)
        for host, node in ctl.nodes.items():
            if host == self.node_focus:
                if node.dropped:  # lines fell out while nobody flushed: redraw the tail
                    node.dropped = 0
                    node.pending.clear()
                    pane.clear()
                    pane.write_lines(list(node.lines))
                    continue
                lines = node.take_pending()
                if lines:
                    pane.write_lines(lines)
            else:
                node.pending.clear()  # kept in node.lines for when it gets the focus
        if force:
            self._seen_version = -1
            self._nav_state = None
            self._shown.clear()
        self._update_rows(ctl)  # cheap when nothing changed; the elapsed times tick

    def _rebuild(self, ctl: RunController) -> None:
        self._fill_nodes(ctl)
        self.node_focus = None
        if ctl.nodes:
            self._focus_node(next(iter(ctl.nodes)))

    def _fill_nodes(self, ctl: RunController) -> None:
        # Widths fixed up front from the plan: cells change in place ten times a second.
        preview = self.wizard.last_preview
        titles = [t.title for t in preview.plan.tasks] if preview is not None else []
        steps = max((len(t) for t in titles), default=20)
        rows: list[Row] = [(h, self._cells(ctl, n)) for h, n in ctl.nodes.items()]
        self._shown.clear()
        fill_table(
            self.query_one("#nodes", DataTable),
            NODE_COLUMNS,
            rows,
            min_widths={"step": min(steps, 36), "nm": 5, "time": 5, "state": 15},
            max_widths={"step": 36},
        )

    def _cells(self, ctl: RunController, node: NodeView) -> list[Content | str]:
        text, style = STATE_STYLE[node.state]
        roles = ",".join(r.replace("control-plane", "cp") for r in node.roles)
        step = node.title
        return [
            cell(node.host, "bold"),
            cell(text, style),
            f"{node.finished}/{node.total}" if node.total else "",
            fmt_duration(node.elapsed(ctl.clock())) if node.started_at is not None else "",
            step or "",
            roles,
        ]

    def _update_rows(self, ctl: RunController) -> None:
        table = self.query_one("#nodes", DataTable)
        keys = tuple(key for key, _ in NODE_COLUMNS)
        if any(host not in table.rows for host in ctl.nodes):
            self._fill_nodes(ctl)  # a host the plan did not announce: rare, redraw
        for host, node in ctl.nodes.items():
            cells = self._cells(ctl, node)
            seen = self._shown.get(host)
            shown = [str(c) for c in cells]
            if seen == shown:
                continue  # 30 nodes at 10 Hz: write only the cells that changed
            self._shown[host] = shown
            for i, (key, value) in enumerate(zip(keys, cells, strict=True)):
                if seen is None or seen[i] != shown[i]:
                    table.update_cell(host, key, value)
        if ctl.version != self._seen_version or self._nav_state != (ctl.done, ctl.stopping):
            self._seen_version = ctl.version
            bar = self.query_one("#overall", ProgressBar)
            bar.update(total=max(ctl.total, 1), progress=ctl.finished)
            self._update_title(ctl)
            if self._nav_state != (ctl.done, ctl.stopping):
                self._nav_state = (ctl.done, ctl.stopping)
                self.refresh_nav()
        self._update_summary(ctl)

    def _update_summary(self, ctl: RunController) -> None:
        cluster = self.state.answers.cluster.name
        elapsed = fmt_duration(ctl.clock() - ctl.started_at) if ctl.started_at else "00:00"
        s = ctl.summary
        if ctl.error is not None and s is None:
            text = Content.styled(f"✗ {ctl.error}", "bold $text-error")
        elif s is not None:
            if s.exit_code == 0 and not s.failures:
                text = Content.styled(
                    f"✓ {cluster} installed: {ctl.finished}/{ctl.total} steps in {fmt_duration(s.duration)}",
                    "bold $text-success",
                )
            else:
                failed = ", ".join(f"{f.host} {f.step}" for f in s.failures[:2])
                more = f" +{len(s.failures) - 2}" if len(s.failures) > 2 else ""
                text = Content.styled(
                    f"✗ {len(s.failures)} failed ({failed}{more}); R retries, f shows it",
                    "bold $text-error",
                )
        elif ctl.stopping:
            text = Content.styled("Stopping: waiting for running steps to finish…", "$text-warning")
        else:
            parts = [
                f"Installing {cluster}: {ctl.finished}/{ctl.total} steps",
                f"{ctl.running} running",
            ]
            if ctl.failed:
                parts.append(f"{ctl.failed} failed")
            parts.append(elapsed)
            text = Content.assemble(
                Content.styled(" · ".join(parts[:2]), "bold"),
                *(
                    Content.styled(f" · {p}", "$text-error" if "failed" in p else "$text-muted")
                    for p in parts[2:]
                ),
            )
        if text != self._summary_shown:
            self._summary_shown = text
            self.query_one("#run-summary", Static).update(text)

    def _update_title(self, ctl: RunController) -> None:
        if self.node_focus is None or self.node_focus not in ctl.nodes:
            return
        node = ctl.nodes[self.node_focus]
        text, style = STATE_STYLE[node.state]
        parts: list[Content | str] = [
            Content.styled(f" {node.host} ", "bold reverse"),
            " ",
            Content.styled(text, style),
        ]
        if node.roles:
            parts += ["  ", Content.styled(", ".join(node.roles), "$text-muted")]
        if node.title:
            parts += ["  ", node.title]
        if node.message:
            parts += ["  ", Content.styled(node.message, "$text-warning")]
        self.query_one("#pane-title", Static).update(Content.assemble(*parts))

    # ------------------------------------------------------------------ node focus

    def _focus_node(self, host: str) -> None:
        ctl = self.controller
        if ctl is None or host not in ctl.nodes or host == self.node_focus:
            return
        self.node_focus = host
        node = ctl.nodes[host]
        pane = self.query_one("#pane", Log)
        pane.clear()
        node.pending.clear()
        pane.write_lines(list(node.lines))
        table = self.query_one("#nodes", DataTable)
        index = list(ctl.nodes).index(host)
        if table.cursor_row != index:
            table.move_cursor(row=index)
        self._update_title(ctl)

    @on(DataTable.RowHighlighted, "#nodes")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._focus_node(str(event.row_key.value))

    def _step(self, delta: int) -> None:
        ctl = self.controller
        if ctl is None or not ctl.nodes:
            return
        hosts = list(ctl.nodes)
        i = hosts.index(self.node_focus) if self.node_focus in hosts else 0
        self._focus_node(hosts[(i + delta) % len(hosts)])

    def action_next_node(self) -> None:
        self._step(1)

    def action_prev_node(self) -> None:
        self._step(-1)

    def action_first_failure(self) -> None:
        ctl = self.controller
        host = ctl.first_failure() if ctl else None
        if host is None:
            self.notify("Nothing has failed.")
            return
        self._focus_node(host)

    def action_full_log(self) -> None:
        ctl = self.controller
        if ctl is None or self.node_focus is None:
            return
        path = f"{ctl.state_dir}/logs/{self.node_focus}.log" if ctl.state_dir else None
        self.app.push_screen(
            FullLogScreen(self.node_focus, path, list(ctl.nodes[self.node_focus].lines))
        )

    def action_retry(self) -> None:
        ctl = self.controller
        preview = self.wizard.last_preview
        if ctl is None or not ctl.done or preview is None:
            self.notify("Retry is possible once the run has stopped.")
            return
        if not ctl.failed and not (ctl.summary and ctl.summary.failures):
            self.notify("Nothing failed: nothing to retry.")
            return
        self.wizard.start_install(preview)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            ctl = self.controller
            return (
                True
                if ctl is not None and ctl.done and ctl.summary and ctl.summary.failures
                else None
            )
        return super().check_action(action, parameters)

    def next_reason(self) -> str | None:
        ctl = self.controller
        if ctl is None:
            return "Nothing is installing"
        if not ctl.done:
            return "Installing… ctrl+q stops safely"
        return None
