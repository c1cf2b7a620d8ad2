"""Welcome: resume an unfinished install, or start a new one / load answers.yaml."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Footer, Input, Static

from installer.answers import load_answers
from installer.problems import ProblemList
from screens.base import WizardScreen
from screens.engine_adapters import EngineUnavailable, ResumeInfo
from screens.messages import UnfinishedRunFound
from screens.widgets.dialogs import ConfirmDialog
from screens.widgets.note import Note
from screens.widgets.steps import StepBar

INTRO = (
    "fmp-install sets up a highly available Kubernetes cluster on your hosts. "
    "It reaches them over SSH, checks them, suggests roles and disks, and installs "
    "with a live pane per node. Nothing changes on a host before you confirm the install."
)


class WelcomeScreen(WizardScreen):
    STEP = "welcome"
    HAS_BACK = False

    BINDINGS = [
        Binding("n", "new", "New install"),
        Binding("l", "load", "Load answers"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.resume_info: ResumeInfo | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in ("next", "back")

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP, id="stepbar")
        with VerticalScroll(id="welcome-body"):
            yield Static(Content.styled("Welcome", "bold"), classes="title")
            yield Static(INTRO, id="intro")
            with Vertical(id="resume-box", classes="box -hidden"):
                yield Static("", id="resume-text")
                with Horizontal(classes="buttons"):
                    yield Button("Resume", id="resume", variant="primary", compact=True)
                    yield Button("Review what failed", id="review-failed", compact=True)
                    yield Button("Start over", id="start-over", variant="error", compact=True)
            yield Static("", id="resume-status", classes="muted")
            with Vertical(id="new-box", classes="box"):
                yield Button("Start a new install", id="new", variant="primary", compact=True)
                yield Static("")
                yield Static("Or load an answers file (saved by the wizard or written by hand):")
                with Horizontal(classes="field"):
                    yield Input(
                        self._default_path(),
                        placeholder="path/to/answers.yaml",
                        id="answers-path",
                        compact=True,
                    )
                    yield Button("Load", id="load", compact=True)
                yield Note(id="load-errors", classes="errors")
        yield Footer(show_command_palette=False)

    @staticmethod
    def _default_path() -> str:
        return "answers.yaml" if Path("answers.yaml").is_file() else ""

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#new", Button).focus()
        self.query_one("#resume-status", Static).update("Looking for an unfinished install…")
        self.find_unfinished()

    @work(thread=True, exclusive=True, group="welcome", exit_on_error=False)
    def find_unfinished(self) -> None:
        try:
            info = self.wizard.engine.unfinished_run()
        except EngineUnavailable:
            self.post_message(UnfinishedRunFound(None))
            return
        except Exception as exc:  # a broken journal must not stop a new install
            self.post_message(UnfinishedRunFound(None, f"could not read the last install: {exc}"))
            return
        self.post_message(UnfinishedRunFound(info))

    @on(UnfinishedRunFound)
    def show_unfinished(self, message: UnfinishedRunFound) -> None:
        status = self.query_one("#resume-status", Static)
        status.update(Content.styled(message.error, "$text-warning") if message.error else "")
        self.resume_info = info = message.info
        box = self.query_one("#resume-box")
        box.set_class(info is None, "-hidden")
        if info is None:
            return
        lines = [
            Content.assemble(
                "An install of cluster ",
                Content.styled(info.cluster, "bold"),
                f" stopped before it finished ({info.last_run}).",
            ),
            Content(f"{info.done} of {info.total} steps done; state in {info.state_dir}"),
        ]
        for failed in info.failed[:3]:
            lines.append(Content.styled(f"  ✗ {failed}", "$text-error"))
        if len(info.failed) > 3:
            lines.append(Content(f"  … and {len(info.failed) - 3} more"))
        self.query_one("#resume-text", Static).update(Content("\n").join(lines))
        self.query_one("#resume", Button).focus()  # the most common choice

    # ------------------------------------------------------------------ actions

    def action_new(self) -> None:
        self.wizard.go("hosts")

    def action_load(self) -> None:
        self.query_one("#answers-path", Input).focus()

    @on(Button.Pressed, "#new")
    def new_pressed(self) -> None:
        self.action_new()

    @on(Button.Pressed, "#load")
    @on(Input.Submitted, "#answers-path")
    def load_pressed(self) -> None:
        path = self.query_one("#answers-path", Input).value.strip()
        errors = self.query_one("#load-errors", Note)
        if not path:
            errors.show(Content.styled("Type the path of an answers.yaml first.", "$text-error"))
            return
        if not self.load(path):
            return
        errors.show("")
        self.wizard.go("hosts")

    def load(self, path: str) -> bool:
        errors = self.query_one("#load-errors", Note)
        try:
            answers = load_answers(path, semantic=False)
        except ProblemList as exc:
            shown = [str(p) for p in exc.problems[:6]]
            if len(exc.problems) > 6:
                shown.append(f"… and {len(exc.problems) - 6} more")
            errors.show(Content.styled("\n".join(shown), "$text-error"))
            return False
        state = self.state
        state.answers = answers
        state.answers_path = path
        state.profile_chosen = True
        state.roles_edited = any(h.roles for h in answers.hosts)
        state.disks_chosen = {h.label for h in answers.hosts if h.storage_disk}
        state.facts.clear()
        state.discovery.clear()
        return True

    @on(Button.Pressed, "#resume")
    def resume(self) -> None:
        info = self.resume_info
        if info is None:
            return
        if info.answers_path and not self.load(info.answers_path):
            return
        self.wizard.resume_pending = True
        self.wizard.go("hosts")

    @on(Button.Pressed, "#review-failed")
    def review_failed(self) -> None:
        info = self.resume_info
        if info is None:
            return
        if info.answers_path:
            self.load(info.answers_path)
        self.wizard.previous_run = info
        self.wizard.go("done")

    @on(Button.Pressed, "#start-over")
    def start_over(self) -> None:
        info = self.resume_info
        if info is None:
            return

        def answer(ok: bool | None) -> None:
            if not ok:
                return
            try:
                self.wizard.engine.discard_run(info)
            except Exception as exc:
                self.notify(str(exc), title="Could not discard", severity="error")
                return
            self.resume_info = None
            self.query_one("#resume-box").add_class("-hidden")
            self.query_one("#new", Button).focus()

        self.app.push_screen(
            ConfirmDialog(
                "Start over?",
                f"This deletes the checkpoint of cluster {info.cluster} in {info.state_dir}. "
                "Steps already done on the hosts are not undone; a new install repeats them.",
                "Delete the checkpoint",
                danger=True,
            ),
            answer,
        )
