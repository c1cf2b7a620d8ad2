"""The step bar at the top and the back/next bar at the bottom of every wizard screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Static

# (screen name, short title) in wizard order.
STEPS: tuple[tuple[str, str], ...] = (
    ("hosts", "Hosts"),
    ("preflight", "Checks"),
    ("profile", "Profile"),
    ("roles", "Roles"),
    ("disks", "Disks"),
    ("storage", "Storage"),
    ("review", "Review"),
    ("run", "Install"),
)


class StepBar(Widget):
    """The wizard's steps in one line, the current one highlighted."""

    DEFAULT_CSS = """
    StepBar { height: 1; }
    """

    current: reactive[str] = reactive("")

    def __init__(self, current: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current = current

    def render(self) -> Content:
        wide = self.size.width >= 90
        sep = " \u203a " if wide else "\u203a"  # single right-pointing angle quote
        parts: list[Content | str] = [Content.styled(" fmp-install ", "bold $text-primary"), " "]
        names = [name for name, _ in STEPS]
        here = names.index(self.current) if self.current in names else -1
        for i, (_name, title) in enumerate(STEPS):
            if i:
                parts.append(Content.styled(sep, "$text-muted"))
            if i == here:
                parts.append(Content.styled(f" {title} ", "bold reverse $accent"))
            elif i < here:
                parts.append(Content.styled(title, "$text-success"))
            else:
                parts.append(Content.styled(title, "$text-muted"))
        return Content.assemble(*parts)


class NavBar(Horizontal):
    """[◀ Back]  why Next is disabled  [Next ▶]."""

    DEFAULT_CSS = """
    NavBar { height: 1; }
    NavBar #nav-reason { width: 1fr; padding: 0 1; content-align: right middle; }
    """

    def __init__(self, *, back: bool = True, next_label: str = "Next ▶") -> None:
        super().__init__(id="nav")
        self._back = back
        self._next_label = next_label

    def compose(self) -> ComposeResult:
        yield Button("◀ Back", id="back", compact=True, disabled=not self._back)
        yield Static("", id="nav-reason")
        yield Button(self._next_label, id="next", variant="primary", compact=True)

    def set_reason(self, reason: str | None, note: str | None = None) -> None:
        """None: Next is enabled; otherwise Next is disabled and the reason shown.

        ``note`` is a warning shown while Next stays enabled.
        """
        self.query_one("#next", Button).disabled = reason is not None
        if reason is not None:
            text = Content.styled(reason, "$text-warning")
        elif note:
            text = Content.styled(note, "$text-muted")
        else:
            text = Content("")
        self.query_one("#nav-reason", Static).update(text)
