"""Done: where the kubeconfig is, the API endpoint, how to check; or what failed and how to resume."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from installer.events import RunSummary
from screens.base import WizardScreen
from screens.engine_adapters import DoneInfo, EngineUnavailable, ResumeInfo


class DoneScreen(WizardScreen):
    STEP = "done"
    NEXT_LABEL = "Quit"

    def compose_body(self) -> ComposeResult:
        yield VerticalScroll(Static("", id="done-text"), id="done-box")

    def refresh_view(self) -> None:
        ctl = self.wizard.run_controller
        summary = ctl.summary if ctl is not None else None
        previous = self.wizard.previous_run if summary is None else None
        text = self.query_one("#done-text", Static)
        if previous is not None:
            text.update(self._previous(previous))
            return
        try:
            preview = self.wizard.last_preview
            plan = preview.plan if preview is not None else None
            info = self.wizard.engine.done_info(self.state.answers, summary, plan)
        except EngineUnavailable:
            info = DoneInfo(None, None)
        if summary is not None and (summary.exit_code != 0 or summary.failures):
            text.update(self._failed(summary, info))
        else:
            text.update(self._success(info))

    def _endpoint(self, info: DoneInfo) -> str:
        if info.api_endpoint:
            return info.api_endpoint
        net = self.state.answers.network
        return f"https://{net.vip}:{net.api_port}" if net.vip else "(no VIP set)"

    def _success(self, info: DoneInfo) -> Content:
        a = self.state.answers
        lb = [h.label for h in a.hosts if "lb" in h.roles]
        vip = (
            f"  VIP {a.network.vip}" + (f" held by {', '.join(lb)}" if lb else "")
            if a.network.vip
            else ""
        )
        cps = [h.label for h in a.hosts if "control-plane" in h.roles]
        if info.kubeconfig:
            kubeconfig: Content | str = info.kubeconfig
            checks = info.check_commands or (
                f"export KUBECONFIG={info.kubeconfig}",
                "kubectl get nodes -o wide",
                "kubectl get pods -A",
            )
        else:
            where = ", ".join(cps) or "the control-plane hosts"
            kubeconfig = Content.styled(
                f"the run captured none: it stays on {where}", "$text-warning"
            )
            checks = info.check_commands
        parts: list[Content | str] = [
            Content.styled(f"✓ Cluster {a.cluster.name} is installed", "bold $text-success"),
            "\n\n",
            Content.styled("Kubeconfig  ", "bold"),
            kubeconfig,
            "\n",
            Content.styled("API         ", "bold"),
            self._endpoint(info),
            Content.styled(vip, "$text-muted"),
            "\n",
        ]
        for i, cmd in enumerate(checks):
            head = Content.styled("Check it    ", "bold") if i == 0 else "            "
            parts += [head, Content.styled(cmd, "$text-accent"), "\n"]
        parts += [
            Content.styled("Storage     ", "bold"),
            self._storage_text(info),
            "\n",
        ]
        if info.state_dir:
            parts += [
                Content.styled("State       ", "bold"),
                info.state_dir,
                Content.styled("  (journal and logs)", "$text-muted"),
                "\n",
            ]
        return Content.assemble(*parts)

    def _storage_text(self, info: DoneInfo) -> Content | str:
        if info.storage_classes:
            return ", ".join(info.storage_classes)
        meta = self.state.meta
        if meta is not None and meta.storage_backend == "none":
            return Content.styled("none: this profile installs no cluster storage", "$text-muted")
        return Content.styled("kubectl get storageclass lists the classes created", "$text-muted")

    def _failed(self, summary: RunSummary, info: DoneInfo) -> Content:
        a = self.state.answers
        parts: list[Content | str] = [
            Content.styled(f"✗ The install of {a.cluster.name} did not finish", "bold $text-error"),
            "\n",
        ]
        if summary.message:
            parts += [summary.message, "\n"]
        parts.append("\n")
        for f in summary.failures:
            code = "no exit code" if f.exit_code is None else f"exit {f.exit_code}"
            parts += [
                Content.styled(f"{f.host}  {f.step}  ", "bold"),
                Content.styled(f"{f.status.value} ({code})", "$text-error"),
                "\n",
            ]
            if f.message:
                parts += ["  ", f.message, "\n"]
            if f.command:
                parts += [
                    Content.styled(f"  $ {f.command.splitlines()[0][:200]}", "$text-muted"),
                    "\n",
                ]
            for line in f.tail[-5:]:
                parts += [Content.styled(f"  │ {line}", "$text-muted"), "\n"]
        if summary.blocked:
            parts += [
                Content.styled(
                    f"{len(summary.blocked)} step(s) waited on these and did not run.",
                    "$text-warning",
                ),
                "\n",
            ]
        parts += ["\n", self._resume_help(info.state_dir)]
        return Content.assemble(*parts)

    def _previous(self, info: ResumeInfo) -> Content:
        parts: list[Content | str] = [
            Content.styled(
                f"The last install of {info.cluster} stopped ({info.last_run})",
                "bold $text-warning",
            ),
            "\n",
            f"{info.done} of {info.total} steps done.",
            "\n\n",
        ]
        for failed in info.failed:
            parts += [Content.styled(f"✗ {failed}", "$text-error"), "\n"]
        parts += ["\n", self._resume_help(info.state_dir)]
        return Content.assemble(*parts)

    def _resume_help(self, state_dir: str | None) -> Content:
        path = self.state.answers_path or "answers.yaml"
        parts: list[Content | str] = [
            Content.styled("To resume  ", "bold"),
            "fix the cause, then run fmp-install again and choose Resume;\n",
            "           or headless: ",
            Content.styled(f"fmp-install --answers {path} --yes", "$text-accent"),
            "\n           Steps already done are skipped.",
        ]
        if state_dir:
            parts += ["\n", Content.styled("State      ", "bold"), state_dir]
        return Content.assemble(*parts)

    def action_next(self) -> None:
        ctl = self.wizard.run_controller
        failed = ctl is not None and (
            ctl.error is not None or (ctl.summary is not None and ctl.summary.exit_code != 0)
        )
        code = 1 if failed else 0
        self.app.exit(code, return_code=code)

    def action_back(self) -> None:
        if self.wizard.run_controller is not None:
            self.wizard.go("run")
        else:
            self.wizard.previous_run = None
            self.wizard.go("welcome")
