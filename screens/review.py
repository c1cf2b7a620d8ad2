"""Review: summary, the plan per host, every rendered file; save answers.yaml; install."""

from __future__ import annotations

from pathlib import PurePosixPath

from rich.syntax import Syntax
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, OptionList, Static, TabbedContent, TabPane, Tree
from textual.widgets.option_list import Option

from installer.answer_checks import check_answers
from installer.answers import Answers
from installer.problems import Problem
from screens.base import WizardScreen
from screens.engine_adapters import EngineUnavailable, PlanPreview
from screens.save import save_answers
from screens.widgets.dialogs import ConfirmDialog, PromptDialog, TypedConfirmDialog

LEXERS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".toml": "toml",
    ".sh": "bash",
    ".conf": "ini",
    ".cfg": "ini",
    ".service": "ini",
    ".ini": "ini",
}


def lexer_for(path: str) -> str:
    return LEXERS.get(PurePosixPath(path).suffix, "text")


class ReviewScreen(WizardScreen):
    STEP = "review"
    NEXT_LABEL = "Install ▶"

    BINDINGS = [Binding("ctrl+s", "save", "Save answers.yaml", priority=True)]

    def __init__(self) -> None:
        super().__init__()
        self.preview: PlanPreview | None = None
        self.plan_error: str | None = None
        self.problems: list[Problem] = []
        self.building = False
        self._built_for = ""

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="review-tabs"):
            with TabPane("Summary", id="tab-summary"):
                yield VerticalScroll(Static("", id="summary"))
            with TabPane("Plan", id="tab-plan"):
                yield Tree("Plan", id="plan-tree")
            with TabPane("Files", id="tab-files"), Horizontal():
                yield OptionList(id="files")
                yield VerticalScroll(Static("", id="file-view"), id="file-box")
        with Horizontal(classes="buttons"):
            yield Button("Save answers.yaml", id="save", compact=True)
            yield Static("", id="review-status")

    def refresh_view(self) -> None:
        answers = self.state.answers
        self.problems = self._check(answers)
        key = answers.model_dump_json() + f"|{self.state.facts_version}"
        if key != self._built_for and not self.problems:
            self._built_for = key
            self.build_plan()
        self._fill_summary()

    def _check(self, answers: Answers) -> list[Problem]:
        try:
            full = Answers.model_validate(answers.to_yaml_data())
        except Exception as exc:
            return [Problem.at((), f"the answers are incomplete: {exc}")]
        return [p for p in check_answers(full) if p.severity == "error"]

    # ------------------------------------------------------------------ plan

    def build_plan(self) -> None:
        self.building = True
        self.preview = None
        self.plan_error = None
        self.query_one("#review-status", Static).update(
            Content.styled("⋯ Building the plan and checking the hosts…", "$text-accent")
        )
        self.refresh_nav()
        self._build(self.state.answers.model_copy(deep=True))

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def _build(self, answers: Answers) -> None:
        meta = self.state.meta
        preview: PlanPreview | None = None
        error: str | None = None
        if meta is None:
            error = f"profile {answers.profile} cannot be loaded"
        else:
            try:
                preview = self.wizard.engine.plan(answers, meta, dict(self.state.facts))
            except EngineUnavailable as exc:
                error = str(exc)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._built, preview, error)

    def _built(self, preview: PlanPreview | None, error: str | None) -> None:
        self.building = False
        self.preview, self.plan_error = preview, error
        self._fill_summary()
        self._fill_plan()
        self._fill_files()
        status = self.query_one("#review-status", Static)
        if error:
            status.update(Content.styled(f"✗ No plan: {error}", "$text-error"))
        elif preview is not None:
            hosts = len(preview.plan.hosts)
            status.update(
                Content.styled(
                    f"✓ {len(preview.plan.tasks)} steps on {hosts} hosts", "$text-success"
                )
            )
        self.refresh_nav()

    # ------------------------------------------------------------------ views

    def _fill_summary(self) -> None:
        a = self.state.answers
        meta = self.state.meta
        lines: list[Content | str] = []

        def row(key: str, value: Content | str) -> None:
            lines.extend([Content.styled(f"{key:<10}", "bold"), value, "\n"])

        row("Cluster", a.cluster.name + (f" ({a.cluster.domain})" if a.cluster.domain else ""))
        if meta is not None:
            versions = ", ".join(f"{k} {v}" for k, v in {**meta.versions, **a.versions}.items())
            row("Profile", f"{meta.title}: {versions}")
        vip = str(a.network.vip) if a.network.vip else "not set"
        row("API", f"https://{vip}:{a.network.api_port}")
        row("Networks", f"pods {a.network.pod_subnet}, services {a.network.service_subnet}")
        if a.storage.features:
            row("Storage", ", ".join(a.storage.features))
        lines.append("\n")
        width = max((len(h.label) for h in a.hosts), default=4)
        for h in a.hosts:
            disk = f"  disk {PurePosixPath(h.storage_disk).name}" if h.storage_disk else ""
            lines += [
                Content.styled(f"{h.label:<{width}}  ", "bold"),
                f"{h.address:<15} {', '.join(h.roles) or '(no role)'}",
                Content.styled(disk, "$text-muted"),
                "\n",
            ]
        wipes = self.wipes()
        if wipes:
            lines += ["\n", Content.styled("Disks that will be wiped:", "bold $text-error"), "\n"]
            for host, disk in wipes:
                lines += [Content.styled(f"  {host}: {disk}", "$text-error"), "\n"]
        for p in self.problems:
            lines += [Content.styled(f"✗ {p.path}: {p.message}", "$text-error"), "\n"]
        if self.preview is not None:
            fails = [f for f in self.preview.findings if f.status == "fail"]
            for f in fails:
                lines += [Content.styled(f"✗ {f.message}", "$text-error"), "\n"]
                if f.fix:
                    lines += [Content.styled(f"  → {f.fix}", "$text-warning"), "\n"]
        self.query_one("#summary", Static).update(Content.assemble(*lines))

    def _fill_plan(self) -> None:
        tree: Tree[str] = self.query_one("#plan-tree", Tree)
        tree.clear()
        if self.preview is None:
            return
        plan = self.preview.plan
        tree.root.set_label(f"{plan.cluster} · {plan.profile} · {len(plan.tasks)} steps")
        tree.root.expand()
        for host in plan.hosts:
            tasks = [t for t in plan.tasks if t.host == host.label]
            node = tree.root.add(
                f"{host.label}  {', '.join(host.roles)}  ({len(tasks)} steps)",
                expand=len(plan.hosts) <= 3,
            )
            for n, t in enumerate(tasks, start=1):
                flags = (" [serial]" if t.serial else "") + (
                    " [WIPES DISK]" if t.destructive else ""
                )
                node.add_leaf(f"{n:>2}. {t.title}{flags}", data=t.id)

    def _fill_files(self) -> None:
        files = self.query_one("#files", OptionList)
        files.clear_options()
        if self.preview is None:
            return
        by_host: dict[str, list[int]] = {h.label: [] for h in self.preview.plan.hosts}
        for i, f in enumerate(self.preview.files):
            by_host.setdefault(f.host, []).append(i)
        first = None
        for host, indexes in by_host.items():
            if not indexes:
                continue
            files.add_option(Option(Content.styled(host, "bold"), disabled=True))
            for i in indexes:
                f = self.preview.files[i]
                label = f"  {f.path}" + ("  (secret)" if f.secret else "")
                files.add_option(Option(label, id=str(i)))
                if first is None:
                    first = files.option_count - 1
        if first is not None:
            files.highlighted = first

    @on(OptionList.OptionHighlighted, "#files")
    def _file_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self.preview is None or event.option.id is None:
            return
        f = self.preview.files[int(event.option.id)]
        view = self.query_one("#file-view", Static)
        if f.secret:
            view.update(
                Content.styled("Holds secrets: written to the host, never shown.", "$text-warning")
            )
            return
        view.update(
            Syntax(
                f.content, lexer_for(f.path), line_numbers=True, theme="ansi_dark", word_wrap=False
            )
        )

    # ------------------------------------------------------------------ actions

    def action_save(self) -> None:
        default = self.state.answers_path or "answers.yaml"

        def chosen(path: str | None) -> None:
            if not path:
                return
            problems = self._check(self.state.answers)
            if problems:
                self.notify(
                    f"Not saved: {problems[0].message}",
                    title="Fix the answers first",
                    severity="error",
                )
                return
            try:
                written = save_answers(self.state.answers, path)
            except OSError as exc:
                self.notify(f"{path}: {exc.strerror}", title="Could not save", severity="error")
                return
            self.state.answers_path = path
            self.notify(f"Saved {written} (mode 0600, no secrets)", title="Answers saved")

        self.app.push_screen(
            PromptDialog(
                "Save answers.yaml", "Where to write the answers (no secrets, mode 0600):", default
            ),
            chosen,
        )

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    def wipes(self) -> list[tuple[str, str]]:
        """What the install wipes: the plan's destructive steps, else the answers' consent."""
        if self.preview is not None:
            return list(dict.fromkeys([*self.preview.wipes, *self.state.wipes()]))
        return self.state.wipes()

    def next_reason(self) -> str | None:
        if self.problems:
            return f"{len(self.problems)} problem(s) in the answers: see Summary"
        if self.building:
            return "Building the plan…"
        if self.plan_error:
            return "No plan: see the status below"
        if self.preview is None:
            return "No plan yet"
        fails = sum(1 for f in self.preview.findings if f.status == "fail")
        if fails:
            return f"{fails} check(s) fail on the hosts: see Summary"
        if self.wizard.running:
            return "An install is already running"
        return None

    def action_next(self) -> None:
        if self.next_reason() is not None or self.preview is None:
            return
        preview = self.preview
        wipes = self.wipes()

        def confirmed(ok: bool | None) -> None:
            if ok:
                # The typed confirmation is the consent headless reads from storage.wipe.
                self.state.consent_to_wipe(list(preview.wipes))
                self.wizard.start_install(preview)

        if wipes:
            self.app.push_screen(
                TypedConfirmDialog(self.state.answers.cluster.name, wipes), confirmed
            )
        else:
            hosts = len(self.state.answers.hosts)
            self.app.push_screen(
                ConfirmDialog(
                    "Install now?",
                    f"fmp-install will now change {hosts} hosts: {len(preview.plan.tasks)} steps. "
                    "You can quit safely at any time; the install resumes where it stopped.",
                    "Install",
                ),
                confirmed,
            )
