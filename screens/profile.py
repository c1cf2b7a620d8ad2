"""Profile: the three installs, what each brings and needs, and which hosts meet it."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from installer.answer_checks import check_network
from installer.answers import Answers, Network, Version
from installer.profile import ProfileError, ProfileMeta, available_profiles, load_profile_meta
from installer.roles import ProfileFit, best_profile
from screens.base import WizardScreen
from screens.widgets.form import FormDialog, FormField, Values, field_errors
from screens.widgets.note import Note

SUBNETS = ("pod_subnet", "service_subnet", "host_subnet")


def settings_fields(answers: Answers, meta: ProfileMeta) -> list[FormField]:
    """The profile's pinned versions (empty: the pin) and the cluster's subnets."""
    net = answers.network
    fields = [
        FormField(f"version-{key}", key, answers.versions.get(key, ""), pinned)
        for key, pinned in meta.versions.items()
    ]
    fields += [
        FormField("pod_subnet", "Pod subnet", str(net.pod_subnet)),
        FormField("service_subnet", "Service subnet", str(net.service_subnet)),
        FormField(
            "host_subnet",
            "Host subnet",
            str(net.host_subnet or ""),
            "optional: checks the VIP before discovery",
        ),
    ]
    return fields


VERSIONS: TypeAdapter[dict[str, str]] = TypeAdapter(dict[str, Version])


def _versions(meta: ProfileMeta, values: Values) -> dict[str, str]:
    return {k: values[f"version-{k}"] for k in meta.versions if values.get(f"version-{k}")}


def _network(answers: Answers, values: Values) -> Network:
    data: dict[str, Any] = answers.network.model_dump()
    for key in SUBNETS:
        if values.get(key):
            data[key] = values[key]
        else:  # empty: the default (none for the host subnet)
            data.pop(key)
    return Network.model_validate(data)


def settings_errors(answers: Answers, meta: ProfileMeta, values: Values) -> dict[str, str]:
    """What is wrong with the form's versions and subnets, by field (empty: nothing)."""
    errors: dict[str, str] = {}
    try:
        VERSIONS.validate_python(_versions(meta, values))
    except ValidationError as exc:
        errors.update({f"version-{key}": msg for key, msg in field_errors(exc).items()})
    try:
        network = _network(answers, values)
    except ValidationError as exc:
        errors.update(field_errors(exc))
        return errors
    for problem in check_network(answers.model_copy(update={"network": network})):
        if problem.severity == "error" and problem.loc[:1] == ("network",):
            key = str(problem.loc[1])
            if key in SUBNETS:
                errors.setdefault(key, problem.message)
        elif problem.severity == "error" and "subnet" in problem.message:
            errors.setdefault("", problem.message)  # a host inside the pod or service range
    return errors


def apply_settings(answers: Answers, meta: ProfileMeta, values: Values) -> Answers:
    """The answers with the form's versions and subnets (checked by ``settings_errors``)."""
    return answers.model_copy(
        update={"versions": _versions(meta, values), "network": _network(answers, values)}
    )


def _needs_line(role: str, meta: ProfileMeta) -> Content:
    rule = meta.roles[role]
    req = rule.requires
    bits = [f"{req.cpus} CPUs", f"{req.memory_mb / 1024:g} GiB"]
    if req.cpu_flags:
        bits.append("CPU " + "/".join(req.cpu_flags))
    if rule.needs_disk:
        bits.append("a data disk")
    count = []
    if rule.min:
        count.append(f"{rule.min}+")
    if rule.recommended:
        count.append(f"{rule.recommended} recommended")
    if rule.odd:
        count.append("odd")
    tail = f"  ({', '.join(count)})" if count else ""
    return Content.assemble(
        Content.styled(f"  {role:<14}", "bold"),
        ", ".join(bits),
        Content.styled(tail, "$text-muted"),
    )


class ProfileScreen(WizardScreen):
    STEP = "profile"

    BINDINGS = [Binding("ctrl+o", "settings", "Versions & networks", priority=True)]

    def __init__(self) -> None:
        super().__init__()
        self.fits: dict[str, ProfileFit] = {}
        self.best: str | None = None
        self._filling = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="cluster-fields", classes="field"):
            yield Label("Cluster name", classes="field-label-wide")
            yield Input(id="cluster-name", placeholder="fmp", compact=True)
            yield Label(" Domain", classes="field-label-short")
            yield Input(id="cluster-domain", placeholder="optional, e.g. our.cluster", compact=True)
        yield Note(id="cluster-errors", classes="errors")
        with Horizontal(id="profile-main"):
            with Vertical(id="profile-left"):
                yield OptionList(id="profiles")
                yield Button("Versions & networks…", id="settings", compact=True)
            yield VerticalScroll(Static("", id="profile-detail"), id="profile-right")

    def on_mount(self) -> None:
        cluster = self.state.answers.cluster
        self.query_one("#cluster-name", Input).value = cluster.name
        self.query_one("#cluster-domain", Input).value = cluster.domain or ""
        super().on_mount()
        self.query_one("#profiles", OptionList).focus()

    def refresh_view(self) -> None:
        self.fits = {f.profile: f for f in self.wizard.profile_fits()}
        metas = {name: load_profile_meta(name) for name in self.fits}
        self.best = best_profile(list(self.fits.values()), metas) if self.state.facts else None
        if self.best is not None and not self.state.profile_chosen:
            self.state.set_profile(self.best)  # the best fit is preselected
        options = self.query_one("#profiles", OptionList)
        self._filling = True
        options.clear_options()
        names = list(self.fits) or available_profiles()
        for name in names:
            try:
                meta = load_profile_meta(name)
            except ProfileError as exc:
                options.add_option(
                    Option(Content.styled(f"{name}: {exc}", "$text-error"), id=name, disabled=True)
                )
                continue
            fit = self.fits.get(name)
            mark, style = "  ", ""
            if name == self.best:
                mark, style = "★ ", "$text-success"
            elif fit is not None and not fit.usable:
                mark, style = "✗ ", "$text-error"
            note = "best fit for your hosts" if name == self.best else name
            options.add_option(
                Option(
                    Content.assemble(
                        Content.styled(mark, style),
                        Content.styled(meta.title, "bold"),
                        "\n  ",
                        Content.styled(note, "$text-muted"),
                    ),
                    id=name,
                )
            )
        if self.state.answers.profile in names:
            options.highlighted = names.index(self.state.answers.profile)
        self._filling = False
        self._show(self.state.answers.profile)

    @on(OptionList.OptionHighlighted, "#profiles")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self._filling or event.option.id is None:
            return
        if event.option.id != self.state.answers.profile:
            self.state.set_profile(event.option.id)
            self.state.profile_chosen = True
        self._show(event.option.id)
        self.refresh_nav()

    def _show(self, name: str) -> None:
        detail = self.query_one("#profile-detail", Static)
        try:
            meta = load_profile_meta(name)
        except ProfileError as exc:
            detail.update(Content.styled(str(exc), "$text-error"))
            return
        own = self.state.answers.versions if name == self.state.answers.profile else {}
        versions = Content(" · ").join(
            Content.styled(f"{k} {own[k]} (yours)", "$text-accent")
            if k in own
            else Content(f"{k} {v}")
            for k, v in meta.versions.items()
        )
        net = self.state.answers.network
        networks = f"pods {net.pod_subnet}, services {net.service_subnet}" + (
            f", hosts {net.host_subnet}" if net.host_subnet else ""
        )
        parts: list[Content | str] = [
            Content.styled(meta.title, "bold"),
            "\n",
            meta.description,
            "\n\n",
            Content.styled("Installs  ", "bold"),
            versions,
            "\n",
            Content.styled("Networks  ", "bold"),
            networks,
            Content.styled("  (ctrl+o to change)", "$text-muted"),
            "\n",
            Content.styled("Storage   ", "bold"),
            {
                "none": "no cluster storage (local volumes only)",
                "ceph": "Ceph (cephadm, ceph-csi RBD)",
                "openebs": "OpenEBS 4 (LVM local PV + replicated)",
            }.get(meta.storage_backend, meta.storage_backend),
            "\n\n",
            Content.styled("Needs per role", "bold"),
        ]
        for role in meta.roles:
            parts += ["\n", _needs_line(role, meta)]
        fit = self.fits.get(name)
        if fit is not None and self.state.facts:
            n = len(self.state.answers.hosts)
            parts += ["\n\n", Content.styled("Your hosts  ", "bold")]
            if fit.usable:
                parts.append(Content.styled(f"✓ all {n} meet it", "$text-success"))
            else:
                parts.append(Content.styled(f"{len(fit.fitting)} of {n} meet it", "$text-warning"))
            for host, why in fit.short.items():
                parts += ["\n", Content.styled(f"  ✗ {host}: {why}", "$text-error")]
            for problem in fit.problems:
                parts += ["\n", Content.styled(f"  ✗ {problem}", "$text-error")]
        detail.update(Content.assemble(*parts))

    @on(Input.Changed, "#cluster-name, #cluster-domain")
    def _cluster_changed(self, event: Input.Changed) -> None:
        cluster = self.state.answers.cluster
        key = "name" if event.input.id == "cluster-name" else "domain"
        value: str | None = event.value.strip()
        if key == "domain" and not value:
            value = None
        errors = self.query_one("#cluster-errors", Note)
        try:
            setattr(cluster, key, value)
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            errors.show(Content.styled(msg, "$text-error"))
            event.input.add_class("-invalid")
        else:
            errors.show("")
            event.input.remove_class("-invalid")
        self.refresh_nav()

    def action_settings(self) -> None:
        meta = self.state.meta
        if meta is None:
            return

        def saved(values: Values | None) -> None:
            if values is None:
                return
            self.state.answers = apply_settings(self.state.answers, meta, values)
            self._show(self.state.answers.profile)
            self.refresh_nav()

        self.app.push_screen(
            FormDialog(
                f"Versions and networks: {meta.title}",
                "Leave a version empty to install the one the profile pins (shown grey).",
                settings_fields(self.state.answers, meta),
                lambda values: settings_errors(self.state.answers, meta, values),
                id="settings-dialog",
            ),
            saved,
        )

    @on(Button.Pressed, "#settings")
    def _settings_pressed(self) -> None:
        self.action_settings()

    def next_reason(self) -> str | None:
        if any(i.has_class("-invalid") for i in self.query(Input)):
            return "Fix the cluster name or domain"
        if self.state.meta is None:
            return "Pick a profile"
        return None

    def next_note(self) -> str | None:
        fit = self.fits.get(self.state.answers.profile)
        if fit is not None and self.state.facts and not fit.usable:
            return "Not every host meets this profile"
        return None
