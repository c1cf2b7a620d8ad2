"""The fmp-install wizard: a Textual App that edits one Answers and drives the engine.

The App owns the state (``WizardState``), the engine door (``Engine``) and the
run (``RunController`` + the engine's RunHandle): the runner lives here, not
on a screen, so it survives screen changes. Screens are installed once and
kept, so back and next never lose input.

Launch: ``python -m screens.app [answers.yaml]`` or ``screens.app.main()``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from installer.answers import Answers
from installer.paths import assets_dir
from installer.profile import ProfileError, available_profiles, load_profile_meta
from installer.roles import ProfileFit, best_profile, profile_fit
from screens.engine_adapters import (
    Engine,
    EngineUnavailable,
    PlanPreview,
    RealEngine,
    ResumeInfo,
    RunRequest,
)
from screens.run_controller import RunController
from screens.state import WizardState
from screens.widgets.steps import STEPS

ORDER: tuple[str, ...] = ("welcome", *(name for name, _ in STEPS), "done")


def _screens() -> dict[str, Callable[[], Screen[None]]]:
    from screens.disks import DisksScreen
    from screens.done import DoneScreen
    from screens.hosts import HostsScreen
    from screens.preflight import PreflightScreen
    from screens.profile import ProfileScreen
    from screens.review import ReviewScreen
    from screens.roles import RolesScreen
    from screens.run import RunScreen
    from screens.storage import StorageScreen
    from screens.welcome import WelcomeScreen

    return {
        "welcome": WelcomeScreen,
        "hosts": HostsScreen,
        "preflight": PreflightScreen,
        "profile": ProfileScreen,
        "roles": RolesScreen,
        "disks": DisksScreen,
        "storage": StorageScreen,
        "review": ReviewScreen,
        "run": RunScreen,
        "done": DoneScreen,
    }


class WizardApp(App[int]):
    CSS_PATH = str(assets_dir() / "wizard.tcss")
    TITLE = "fmp-install"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit_safely", "Quit", priority=True),
    ]

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        state: WizardState | None = None,
        start: str = "welcome",
        deterministic: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.engine: Engine = engine or RealEngine()
        self.state = state or WizardState()
        self.start_screen = start
        self.deterministic = deterministic
        # Snapshots must not depend on when the cursor blinked or an animation ran.
        self.cursor_blink = not deterministic
        if deterministic:
            self.animation_level = "none"
        self.clock: Callable[[], float] = clock or time.time
        self.run_controller: RunController | None = None
        self.run_handle: object | None = None
        self.last_preview: PlanPreview | None = None
        self.exit_message: str | None = None
        self.resume_pending = False  # Welcome → Resume: discover, then go on to Review
        self.previous_run: ResumeInfo | None = None  # Welcome → review what failed
        self.autodiscover = False  # discover the hosts as soon as Hosts shows (demo)

    def on_mount(self) -> None:
        for name, factory in _screens().items():
            self.install_screen(factory(), name)
        self.push_screen(self.start_screen)

    # ------------------------------------------------------------------ navigation

    def go(self, name: str) -> None:
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)

    def go_next(self, step: str) -> None:
        i = ORDER.index(step)
        if i + 1 < len(ORDER):
            self.go(ORDER[i + 1])

    def go_back(self, step: str) -> None:
        i = ORDER.index(step)
        if i > 0:
            self.go(ORDER[i - 1])

    # ------------------------------------------------------------------ derived choices

    def disk_hosts(self) -> set[str] | None:
        """Hosts with a disk the storage core allows (None: the core is not available)."""
        out: set[str] = set()
        for host in self.state.answers.hosts:
            facts = self.state.facts.get(host.label)
            if facts is None:
                continue
            try:
                verdicts = self.engine.disk_verdicts(self.state.answers, host, facts)
            except EngineUnavailable:
                return None
            if any(v.status != "disallowed" for v in verdicts):
                out.add(host.label)
        return out

    def profile_fits(self) -> list[ProfileFit]:
        answers = self.state.answers
        disks = self.disk_hosts()
        fits = []
        for name in available_profiles():
            try:
                meta = load_profile_meta(name)
            except ProfileError:
                continue
            fits.append(profile_fit(answers, meta, self.state.facts, disks))
        return fits

    def after_discovery(self) -> None:
        """Preselect the best-fitting profile, unless the operator chose one."""
        if self.state.profile_chosen or not self.state.all_discovered():
            return
        fits = self.profile_fits()
        metas = {f.profile: load_profile_meta(f.profile) for f in fits}
        best = best_profile(fits, metas)
        if best is not None:
            self.state.set_profile(best)

    # ------------------------------------------------------------------ the run

    @property
    def running(self) -> bool:
        return self.run_controller is not None and not self.run_controller.done

    def start_install(self, preview: PlanPreview) -> None:
        """Start (or resume) the install; the journal skips what is already done."""
        answers = self.state.answers
        controller = RunController(
            ((h.label, tuple(h.roles)) for h in answers.hosts),
            clock=self.clock,
        )
        try:
            controller.state_dir = str(self.engine.state_dir(answers))
        except EngineUnavailable:
            controller.state_dir = None
        self.run_controller = controller
        self.last_preview = preview
        self.go("run")
        self._run(controller, preview, answers)

    @work(exclusive=True, group="run", exit_on_error=False)
    async def _run(self, controller: RunController, preview: PlanPreview, answers: Answers) -> None:
        try:
            handle = self.engine.start_run(
                RunRequest(
                    answers=answers,
                    preview=preview,
                    environ=self.state.environ(),
                    emit=controller.handle,
                )
            )
        except Exception as exc:  # shown in words: nothing has run
            controller.error = f"the install could not start: {exc}"
            controller.version += 1
            return
        controller.handle_ref = handle
        self.run_handle = handle
        try:
            summary = await handle.wait()
        except Exception as exc:
            controller.error = f"the install stopped: {type(exc).__name__}: {exc}"
        else:
            if summary is not None and controller.summary is None:
                controller.summary = summary
        controller.version += 1

    def stop_run(self) -> None:
        handle = self.run_handle
        if self.run_controller is not None:
            self.run_controller.stopping = True
        stop = getattr(handle, "stop", None)
        if callable(stop):
            stop()

    def action_quit_safely(self) -> None:
        if not self.running:
            self.exit(0, return_code=0)
            return
        from screens.widgets.dialogs import ConfirmDialog

        state_dir = self.run_controller.state_dir if self.run_controller else None
        where = f" in {state_dir}" if state_dir else ""

        def answer(ok: bool | None) -> None:
            if ok:
                self.stop_run()
                self.exit_message = (
                    f"The install was stopped; its checkpoint is kept{where}. "
                    "Run fmp-install again and choose Resume."
                )
                self._exit_when_stopped()

        self.push_screen(
            ConfirmDialog(
                "Quit the install?",
                "No new step starts; running steps finish first. The checkpoint is "
                f"kept{where}: run fmp-install again to resume where it stopped.",
                "Stop and quit",
                danger=True,
            ),
            answer,
        )

    @work(group="quit")
    async def _exit_when_stopped(self) -> None:
        handle = self.run_handle
        wait = getattr(handle, "wait", None)
        if callable(wait):
            self.notify("Waiting for running steps to finish…", timeout=30)
            await wait()
        self.exit(130, return_code=130)


def main(
    answers_path: str | None = None,
    *,
    answers: Answers | None = None,
    secret_env: Mapping[str, str] | None = None,
    discover: bool = False,
) -> int:
    """Run the wizard and return its exit code; ``fmp-install`` calls this lazily.

    - no arguments: the Welcome screen (resume, new install, load answers);
    - ``answers_path``: load that answers.yaml (ProblemList if invalid) and open Hosts;
    - ``answers`` (``fmp-install demo``: the lab's hosts and key), ``secret_env``
      (passwords by env var name, kept in memory only) and ``discover=True`` to
      start discovering the hosts at once.
    """
    from installer.answers import load_answers

    state = WizardState()
    start = "welcome"
    if answers_path:
        state.answers = load_answers(answers_path, semantic=False)
        state.answers_path = answers_path
        start = "hosts"
    if answers is not None:
        state.answers = answers
        start = "hosts"
    if start == "hosts":
        state.profile_chosen = True
        state.roles_edited = any(h.roles for h in state.answers.hosts)
        state.disks_chosen = {h.label for h in state.answers.hosts if h.storage_disk}
    state.secret_env.update(secret_env or {})
    app = WizardApp(state=state, start=start)
    app.autodiscover = discover and start == "hosts"
    app.run()
    if app.exit_message:
        print(app.exit_message, file=sys.stderr)
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
