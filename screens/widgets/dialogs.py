"""Modal dialogs: host key confirmation, yes/no, typed confirmation, a text prompt."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from screens.engine_adapters import HostKeyQuestion


class _Dialog(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for widget in self.query(Input):
            widget.cursor_blink = blink

    def action_cancel(self) -> None:
        self.dismiss(False)


class HostKeyDialog(_Dialog):
    """An unknown host key: show its fingerprint, accept only on a clear yes."""

    def __init__(self, question: HostKeyQuestion) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(classes="dialog", id="hostkey-dialog"):
            yield Label(Content.styled("Unknown host key", "bold"), classes="dialog-title")
            yield Static(
                Content.assemble(
                    "The host ",
                    Content.styled(f"{q.host} ({q.address})", "bold"),
                    " presented a key that is not in your known_hosts file.\n\n",
                    f"{q.key_type} key fingerprint:\n",
                )
            )
            yield Static(Content.styled(q.fingerprint, "bold $text-warning"), id="fingerprint")
            yield Static(
                Content.styled(
                    "Compare it on the host's console: ssh-keygen -lf "
                    "/etc/ssh/ssh_host_ed25519_key.pub. Accept only if it matches."
                    + (f" Accepted keys are added to {q.known_hosts}." if q.known_hosts else ""),
                    "$text-muted",
                )
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Reject", id="reject", variant="error", compact=True)
                yield Button("Accept and remember", id="accept", variant="primary", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#reject", Button).focus()  # the safe choice has the focus

    @on(Button.Pressed, "#accept")
    def accept(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#reject")
    def reject(self) -> None:
        self.dismiss(False)


class ConfirmDialog(_Dialog):
    """A yes/no question; ``danger`` colours the yes button red."""

    def __init__(self, title: str, body: str, yes: str = "Yes", *, danger: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(self.body)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="no", compact=True)
                yield Button(
                    self.yes, id="yes", variant="error" if self.danger else "primary", compact=True
                )

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    @on(Button.Pressed, "#yes")
    def yes_pressed(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def no_pressed(self) -> None:
        self.dismiss(False)


class TypedConfirmDialog(_Dialog):
    """Destructive: the operator types the cluster name; the wiped disks are listed."""

    def __init__(self, cluster: str, wipes: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.cluster = cluster
        self.wipes = list(wipes)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="wipe-dialog"):
            yield Label(
                Content.styled("Install and wipe disks", "bold $text-error"),
                classes="dialog-title",
            )
            yield Static(
                f"Installing erases everything on these {len(self.wipes)} disk(s):",
            )
            with VerticalScroll(id="wipe-list"):
                for host, disk in self.wipes:
                    yield Static(
                        Content.assemble(
                            Content.styled(f"  {host:<8}", "bold"),
                            Content.styled(disk, "$text-error"),
                        )
                    )
            yield Static(
                Content.assemble(
                    "Type the cluster name ", Content.styled(self.cluster, "bold"), " to confirm:"
                )
            )
            yield Input(placeholder=self.cluster, id="typed", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="no", compact=True)
                yield Button(
                    "Wipe and install", id="yes", variant="error", compact=True, disabled=True
                )

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#typed", Input).focus()

    @on(Input.Changed, "#typed")
    def typed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value.strip() != self.cluster

    @on(Input.Submitted, "#typed")
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.cluster:
            self.dismiss(True)

    @on(Button.Pressed, "#yes")
    def yes_pressed(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def no_pressed(self) -> None:
        self.dismiss(False)


class PromptDialog(ModalScreen[str | None]):
    """Ask for one line of text (a path, a password)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, value: str = "", *, password: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.value = value
        self.password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(self.body)
            yield Input(self.value, password=self.password, id="prompt", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="no", compact=True)
                yield Button("OK", id="yes", variant="primary", compact=True)

    def on_mount(self) -> None:
        field = self.query_one("#prompt", Input)
        field.cursor_blink = getattr(self.app, "cursor_blink", True)
        field.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#prompt")
    @on(Button.Pressed, "#yes")
    def ok(self) -> None:
        self.dismiss(self.query_one("#prompt", Input).value)

    @on(Button.Pressed, "#no")
    def no(self) -> None:
        self.dismiss(None)
