"""The frame every wizard step shares: step bar, body, back/next bar, footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Button, Footer, Input

from screens.widgets.steps import NavBar, StepBar

if TYPE_CHECKING:
    from screens.app import WizardApp
    from screens.state import WizardState


class WizardScreen(Screen[None]):
    """Subclasses set STEP and implement ``compose_body``, ``next_reason`` and ``refresh_view``."""

    STEP = ""
    HAS_BACK = True
    NEXT_LABEL = "Next ▶"

    BINDINGS = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("ctrl+b", "back", "Back", priority=True),
    ]

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)

    @property
    def state(self) -> WizardState:
        return self.wizard.state

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP, id="stepbar")
        yield from self.compose_body()
        yield NavBar(back=self.HAS_BACK, next_label=self.NEXT_LABEL)
        yield Footer(show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.apply_cursor_blink()

    def apply_cursor_blink(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.wizard.cursor_blink

    def on_screen_resume(self) -> None:
        self.refresh_view()
        self.refresh_nav()

    # ------------------------------------------------------------------ to override

    def refresh_view(self) -> None:
        """Redraw from the wizard state (called whenever the screen comes back)."""

    def next_reason(self) -> str | None:
        """Why Next is disabled, in words; None when it is enabled."""
        return None

    def next_note(self) -> str | None:
        """A warning shown beside an enabled Next."""
        return None

    def leave(self) -> bool:
        """Save edits into the state before moving on; False stays here."""
        return True

    # ------------------------------------------------------------------ navigation

    def refresh_nav(self) -> None:
        if not self.is_mounted:
            return
        for nav in self.query(NavBar):
            nav.set_reason(self.next_reason(), self.next_note())
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return None if self.next_reason() is not None else True
        if action == "back":
            return self.HAS_BACK
        return True

    def action_next(self) -> None:
        if self.next_reason() is None and self.leave():
            self.wizard.go_next(self.STEP)

    def action_back(self) -> None:
        if self.HAS_BACK:
            self.leave()
            self.wizard.go_back(self.STEP)

    @on(Button.Pressed, "#next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()
