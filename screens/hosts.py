"""Hosts: add them, set how to reach them over SSH, and discover them all at once."""

from __future__ import annotations

from pydantic import ValidationError
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Static

from installer.answers import DNS_LABEL_RE, Host, SshOverride
from screens.base import WizardScreen
from screens.discovery_flow import discover_hosts, mark_waiting
from screens.format import facts_line
from screens.hostspec import merge_hosts, parse_host_spec
from screens.messages import DiscoveryFinished, HostDiscoveryChanged
from screens.state import SSH_PASSWORD_ENV, SUDO_PASSWORD_ENV, HostStatus, host_secret_var
from screens.widgets.cells import Row, cell, fill_table
from screens.widgets.dialogs import PromptDialog
from screens.widgets.form import FormDialog, FormField, Values, field_errors
from screens.widgets.note import Note

STATUS_STYLE = {
    "new": ("·", "$text-muted"),
    "waiting": ("⋯", "$text-warning"),
    "connecting": ("⋯", "$text-accent"),
    "ok": ("✓", "$text-success"),
    "failed": ("✗", "$text-error"),
    "rejected": ("✗", "$text-error"),
}


HOST_COLUMNS = (
    ("host", "Host"),
    ("address", "Address"),
    ("status", "Discovery"),
    ("facts", "Facts"),
)


class HostListInput(Input):
    """An Input that takes a pasted multi-line list as one comma-separated line."""

    def _on_paste(self, event: events.Paste) -> None:
        lines = [line.strip() for line in event.text.splitlines() if line.strip()]
        if lines:
            self.insert_text_at_cursor(", ".join(lines))
        event.stop()
        event.prevent_default()  # Input's own handler would insert the first line again


def ssh_summary(ssh: SshOverride) -> str:
    """One host's own SSH settings in a few words: ``SSH admin, port 2222, via bastion``."""
    bits = [
        ssh.user or "",
        f"port {ssh.port}" if ssh.port else "",
        f"key {ssh.identity_file}" if ssh.identity_file else "",
        f"via {ssh.jump_host}" if ssh.jump_host else "",
        "own password" if ssh.password_env else "",
        "own sudo password" if ssh.sudo_password_env else "",
    ]
    return "SSH " + ", ".join(b for b in bits if b) if any(bits) else "SSH as for all hosts"


def status_text(status: HostStatus) -> Content:
    glyph, style = STATUS_STYLE[status.state]
    words = {
        "new": "not discovered",
        "waiting": "waiting for you",
        "connecting": "discovering…",
        "rejected": "host key rejected",
    }.get(status.state, status.message)
    if status.state == "failed" and status.kind:
        words = status.kind
    elif status.state == "ok":
        words = "discovered"
    return cell(f"{glyph} {words}", style)


class HostsScreen(WizardScreen):
    STEP = "hosts"
    HAS_BACK = True

    BINDINGS = [
        Binding("ctrl+d", "discover", "Discover all", priority=True),
        Binding("ctrl+r", "retry", "Retry failed", priority=True),
        Binding("delete", "remove", "Remove"),
        Binding("e", "edit", "Edit"),
        Binding("s", "host_ssh", "SSH for host"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.discovering = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="hosts-main"):
            with Vertical(id="hosts-left"):
                with Horizontal(classes="field"):
                    yield Label("Add ", classes="field-label-short")
                    yield HostListInput(
                        placeholder="10.30.217.20-25, kn0=10.30.217.20, …",
                        id="add-hosts",
                        compact=True,
                    )
                    yield Button("Add", id="add", compact=True)
                yield Note(id="add-errors", classes="errors")
                yield DataTable(id="hosts-table", cursor_type="row", zebra_stripes=False)
                yield Static("", id="host-detail")
                with Horizontal(classes="buttons"):
                    yield Button("Discover", id="discover", variant="primary", compact=True)
                    yield Button("Retry", id="retry", compact=True)
                    yield Button("Remove", id="remove", compact=True)
                    yield Button("SSH…", id="host-ssh", compact=True)
                yield Static("", id="discover-status")
            with Vertical(id="ssh-panel"):
                yield Static(Content.styled("SSH", "bold"), classes="panel-title")
                yield from self._field("User", "ssh-user", "default: ~/.ssh/config or you")
                yield from self._field("Port", "ssh-port", "22")
                yield from self._field("Key file", "ssh-key", "~/.ssh/id_ed25519")
                yield from self._field("Password", "ssh-password", "agent / key", password=True)
                yield from self._field("Jump host", "ssh-jump", "user@host:port")
                yield from self._field("Sudo pass", "sudo-password", "passwordless", password=True)
                yield Checkbox("Trust new host keys", id="ssh-accept-new", compact=True)
                yield Note(id="ssh-errors", classes="errors")
                yield Static(
                    Content.styled(
                        "Passwords stay in memory; answers.yaml names only their env var.",
                        "$text-muted",
                    ),
                    id="ssh-note",
                )

    @staticmethod
    def _field(label: str, id: str, placeholder: str, *, password: bool = False) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label(label, classes="field-label")
            yield Input(placeholder=placeholder, id=id, password=password, compact=True)

    def on_mount(self) -> None:
        self._load_ssh_fields()
        super().on_mount()
        self.query_one("#add-hosts", Input).focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        wizard = self.wizard
        if (wizard.resume_pending or wizard.autodiscover) and not self.discovering:
            wizard.autodiscover = False
            if not self.state.all_discovered():
                self.action_discover()

    # ------------------------------------------------------------------ view

    def refresh_view(self) -> None:
        table = self.query_one("#hosts-table", DataTable)
        row = table.cursor_row
        rows: list[Row] = []
        for host in self.state.answers.hosts:
            facts = self.state.facts.get(host.label)
            rows.append(
                (
                    host.label,
                    [
                        host.name or "—",
                        host.address,
                        status_text(self.state.status(host.label)),
                        facts_line(facts) if facts is not None else "",
                    ],
                )
            )
        # Status and facts change in place during discovery: room for them up front.
        fill_table(table, HOST_COLUMNS, rows, min_widths={"status": 20, "facts": 44})
        if self.state.answers.hosts:
            table.move_cursor(row=min(max(row, 0), len(self.state.answers.hosts) - 1))
        self._show_detail()
        self._show_progress()

    def _selected(self) -> Host | None:
        table = self.query_one("#hosts-table", DataTable)
        hosts = self.state.answers.hosts
        if not hosts or table.cursor_row < 0 or table.cursor_row >= len(hosts):
            return None
        return hosts[table.cursor_row]

    def _show_detail(self) -> None:
        detail = self.query_one("#host-detail", Static)
        host = self._selected()
        if host is None:
            detail.update(
                Content.styled(
                    "No hosts yet. Type addresses above: one by one, a range like "
                    "10.30.217.20-25, or name=address pairs. Pasting a list works too.",
                    "$text-muted",
                )
            )
            return
        status = self.state.status(host.label)
        head = Content.styled(f"{host.label} ({host.address})", "bold")
        if host.ssh is not None:
            head = Content.assemble(
                head, Content.styled(f"  {ssh_summary(host.ssh)}", "$text-accent")
            )
        facts = self.state.facts.get(host.label)
        if status.state == "ok" and facts is not None:
            detail.update(Content.assemble(head, "  ", facts_line(facts)))
        elif status.state in ("failed", "rejected"):
            parts: list[Content | str] = [
                head,
                "  ",
                Content.styled(status.message or "host key rejected", "$text-error"),
            ]
            if status.hint:
                parts += ["\n", Content.styled(f"→ {status.hint}", "$text-warning")]
            parts += ["\n", Content.styled("Fix it, then Retry failed (ctrl+r).", "$text-muted")]
            detail.update(Content.assemble(*parts))
        else:
            detail.update(Content.assemble(head, "  ", status_text(status)))

    def _show_progress(self) -> None:
        hosts = self.state.answers.hosts
        done = sum(
            1 for h in hosts if self.state.status(h.label).state in ("ok", "failed", "rejected")
        )
        ok = sum(1 for h in hosts if self.state.status(h.label).state == "ok")
        failed = done - ok
        text: Content
        if self.discovering:
            text = Content.styled(
                f"⋯ Discovering {len(hosts)} hosts: {done} of {len(hosts)} done", "$text-accent"
            )
        elif failed:
            text = Content.styled(f"{ok} discovered, {failed} failed", "$text-error")
        elif hosts and ok == len(hosts):
            text = Content.styled(f"✓ All {ok} hosts discovered", "$text-success")
        else:
            text = Content("")
        self.query_one("#discover-status", Static).update(text)

    def next_reason(self) -> str | None:
        hosts = self.state.answers.hosts
        if not hosts:
            return "Add at least one host"
        if self.discovering:
            return "Discovery is running…"
        failed = [
            h.label for h in hosts if self.state.status(h.label).state in ("failed", "rejected")
        ]
        if failed:
            names = ", ".join(failed[:3]) + (" …" if len(failed) > 3 else "")
            return f"Not reached: {names}. Retry or remove"
        if not self.state.all_discovered():
            return "Discover the hosts first (ctrl+d)"
        return None

    @on(DataTable.RowHighlighted, "#hosts-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    # ------------------------------------------------------------------ adding / removing

    @on(Button.Pressed, "#add")
    @on(Input.Submitted, "#add-hosts")
    def add_hosts(self) -> None:
        field = self.query_one("#add-hosts", Input)
        hosts, errors = parse_host_spec(field.value)
        merged, skipped = merge_hosts(list(self.state.answers.hosts), hosts)
        added = len(merged) - len(self.state.answers.hosts)
        if added:
            self.state.set_hosts(merged)
        messages = errors + skipped
        self.query_one("#add-errors", Note).show(
            Content.styled("\n".join(messages[:4]), "$text-error") if messages else ""
        )
        if not errors:
            field.value = ""
        self.refresh_view()
        self.refresh_nav()

    def action_remove(self) -> None:
        host = self._selected()
        if host is None or self.discovering:
            return
        self.state.set_hosts([h for h in self.state.answers.hosts if h is not host])
        self.refresh_view()
        self.refresh_nav()

    @on(Button.Pressed, "#remove")
    def _remove_pressed(self) -> None:
        self.action_remove()

    def action_edit(self) -> None:
        host = self._selected()
        if host is None or self.discovering:
            return
        index = self.state.answers.hosts.index(host)
        current = f"{host.name}={host.address}" if host.name else host.address

        def edited(value: str | None) -> None:
            if value is None:
                return
            hosts, errors = parse_host_spec(value)
            if errors or len(hosts) != 1:
                self.notify(
                    errors[0] if errors else "Give one host: name=address or an address",
                    severity="error",
                )
                return
            new = hosts[0]
            others = [h for i, h in enumerate(self.state.answers.hosts) if i != index]
            _, clash = merge_hosts(others, [new])
            if clash:
                self.notify(clash[0], severity="error")
                return
            keep = host.model_copy(update={"address": new.address, "name": new.name})
            self.state.replace_host(index, keep)
            if new.address != host.address:
                self.state.facts.pop(keep.label, None)
                self.state.discovery.pop(keep.label, None)
            self.refresh_view()
            self.refresh_nav()

        self.app.push_screen(
            PromptDialog("Edit host", "name=address, or just the address:", current), edited
        )

    # ------------------------------------------------------------------ one host's SSH

    def action_host_ssh(self) -> None:
        host = self._selected()
        if host is None or self.discovering:
            return
        index = self.state.answers.hosts.index(host)
        own = host.ssh or SshOverride()
        base = self.state.answers.ssh
        pw_var = own.password_env or host_secret_var(SSH_PASSWORD_ENV, host.label)
        sudo_var = own.sudo_password_env or host_secret_var(SUDO_PASSWORD_ENV, host.label)
        same = "as for all hosts"
        fields = [
            FormField("user", "User", own.user or "", base.user or same),
            FormField("port", "Port", str(own.port or ""), str(base.port or 22), "integer"),
            FormField(
                "identity_file", "Key file", own.identity_file or "", base.identity_file or same
            ),
            FormField("jump_host", "Jump host", own.jump_host or "", base.jump_host or "none"),
            FormField(
                "password", "Password", self.state.secret_env.get(pw_var, ""), same, "password"
            ),
            FormField(
                "sudo_password",
                "Sudo password",
                self.state.secret_env.get(sudo_var, ""),
                same,
                "password",
            ),
        ]

        def override(values: Values) -> SshOverride:
            return SshOverride(
                user=values["user"] or None,
                port=int(values["port"]) if values["port"] else None,
                identity_file=values["identity_file"] or None,
                jump_host=values["jump_host"] or None,
                password_env=own.password_env,
                sudo_password_env=own.sudo_password_env,
                known_hosts=own.known_hosts,
                accept_new_host_keys=own.accept_new_host_keys,
            )

        def check(values: Values) -> dict[str, str]:
            try:
                override(values)
            except ValidationError as exc:
                return field_errors(exc)
            except ValueError:
                return {"port": "a number from 1 to 65535"}
            return {}

        def saved(values: Values | None) -> None:
            if values is None:
                return
            new = override(values)
            new.password_env = self.state.set_secret(pw_var, values["password"])
            new.sudo_password_env = self.state.set_secret(sudo_var, values["sudo_password"])
            ssh = new if new.model_dump(exclude_none=True) else None
            if ssh == host.ssh:
                return
            self.state.replace_host(index, host.model_copy(update={"ssh": ssh}))
            self.state.forget_discovery(host.label)
            self.refresh_view()
            self.refresh_nav()
            self.notify(f"{host.label}: SSH settings changed. Retry (ctrl+r) to discover it again.")

        self.app.push_screen(
            FormDialog(
                f"SSH for {host.label}",
                "Only what differs from the settings for all hosts. Passwords stay in memory; "
                "answers.yaml names only their env var.",
                fields,
                check,
                id="host-ssh-dialog",
            ),
            saved,
        )

    @on(Button.Pressed, "#host-ssh")
    def _host_ssh_pressed(self) -> None:
        self.action_host_ssh()

    # ------------------------------------------------------------------ SSH settings

    def _load_ssh_fields(self) -> None:
        ssh = self.state.answers.ssh
        env = self.state.secret_env
        self.query_one("#ssh-user", Input).value = ssh.user or ""
        self.query_one("#ssh-port", Input).value = str(ssh.port) if ssh.port else ""
        self.query_one("#ssh-key", Input).value = ssh.identity_file or ""
        self.query_one("#ssh-jump", Input).value = ssh.jump_host or ""
        self.query_one("#ssh-password", Input).value = env.get(
            ssh.password_env or SSH_PASSWORD_ENV, ""
        )
        self.query_one("#sudo-password", Input).value = env.get(
            ssh.sudo_password_env or SUDO_PASSWORD_ENV, ""
        )
        self.query_one("#ssh-accept-new", Checkbox).value = bool(ssh.accept_new_host_keys)

    @on(Input.Changed, "#ssh-user, #ssh-port, #ssh-key, #ssh-jump")
    def ssh_changed(self, event: Input.Changed) -> None:
        ssh = self.state.answers.ssh
        value = event.value.strip() or None
        key = {
            "ssh-user": "user",
            "ssh-port": "port",
            "ssh-key": "identity_file",
            "ssh-jump": "jump_host",
        }[event.input.id or ""]
        errors = self.query_one("#ssh-errors", Note)
        try:
            setattr(ssh, key, value)
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            errors.show(Content.styled(f"{key.replace('_', ' ')}: {msg}", "$text-error"))
            event.input.add_class("-invalid")
            return
        event.input.remove_class("-invalid")
        errors.show("")

    @on(Input.Changed, "#ssh-password, #sudo-password")
    def password_changed(self, event: Input.Changed) -> None:
        ssh = self.state.answers.ssh
        if event.input.id == "ssh-password":
            var = ssh.password_env or SSH_PASSWORD_ENV
            ssh.password_env = self.state.set_secret(var, event.value)
        else:
            var = ssh.sudo_password_env or SUDO_PASSWORD_ENV
            ssh.sudo_password_env = self.state.set_secret(var, event.value)

    @on(Checkbox.Changed, "#ssh-accept-new")
    def accept_new_changed(self, event: Checkbox.Changed) -> None:
        self.state.answers.ssh.accept_new_host_keys = event.value

    # ------------------------------------------------------------------ discovery

    def action_discover(self) -> None:
        if self.discovering or not self.state.answers.hosts:
            return
        self.run_discovery([h.label for h in self.state.answers.hosts])

    def action_retry(self) -> None:
        if self.discovering:
            return
        failed = [
            h.label
            for h in self.state.answers.hosts
            if self.state.status(h.label).state in ("failed", "rejected", "new")
        ]
        if failed:
            self.run_discovery(failed)

    @on(Button.Pressed, "#discover")
    def _discover_pressed(self) -> None:
        self.action_discover()

    @on(Button.Pressed, "#retry")
    def _retry_pressed(self) -> None:
        self.action_retry()

    def run_discovery(self, labels: list[str]) -> None:
        self.discovering = True
        mark_waiting(self.wizard, labels)
        self.refresh_view()
        self.refresh_nav()
        self._discover(labels)

    @work(exclusive=True, group="discover", exit_on_error=False)
    async def _discover(self, labels: list[str]) -> None:
        def changed(label: str) -> None:
            self.post_message(HostDiscoveryChanged(label))

        ok, failed = await discover_hosts(self.wizard, labels, changed)
        self.post_message(DiscoveryFinished(ok, failed))

    @on(HostDiscoveryChanged)
    def _status_changed(self, message: HostDiscoveryChanged) -> None:
        table = self.query_one("#hosts-table", DataTable)
        facts = self.state.facts.get(message.label)
        try:
            table.update_cell(
                message.label, "status", status_text(self.state.status(message.label))
            )
            table.update_cell(message.label, "facts", facts_line(facts) if facts else "")
        except Exception:  # the row went away (renamed or removed): redraw everything
            self.refresh_view()
        self._show_detail()
        self._show_progress()

    @on(DiscoveryFinished)
    def _finished(self, message: DiscoveryFinished) -> None:
        self.discovering = False
        self._name_hosts_from_facts()
        self.wizard.after_discovery()
        self.refresh_view()
        self.refresh_nav()
        if message.failed:
            self.notify(
                f"{message.failed} host(s) could not be discovered: see the details, fix, then retry.",
                severity="warning",
            )
        elif self.wizard.resume_pending and self.state.all_discovered():
            self.wizard.resume_pending = False
            self.wizard.go("review")

    def _name_hosts_from_facts(self) -> None:
        """Give an address-only host the hostname discovery found, when it is a valid, unused name."""
        taken = {h.name for h in self.state.answers.hosts if h.name}
        for i, host in enumerate(list(self.state.answers.hosts)):
            facts = self.state.facts.get(host.label)
            if host.name or facts is None or not facts.hostname:
                continue
            name = facts.hostname.split(".")[0]
            if DNS_LABEL_RE.match(name) and name not in taken:
                taken.add(name)
                self.state.replace_host(i, host.model_copy(update={"name": name}))
