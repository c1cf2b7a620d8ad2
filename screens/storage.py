"""Storage: features and volume sizes, available versus required, and the verdict.

The arithmetic is the storage core's (``Engine.estimate``), the same one that
``fmp-install storage estimate`` prints; this screen edits the inputs and shows
the figures.
"""

from __future__ import annotations

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, DataTable, Input, Label, SelectionList, Static

from installer.answers import Volume
from installer.workloads import DEFAULT_REPLICAS, NAME_RE
from screens.base import WizardScreen
from screens.engine_adapters import EngineUnavailable, Feature, StorageEstimateView, VolumeSpec
from screens.widgets.cells import Row, fill_table
from screens.widgets.form import FormDialog, FormField, Values, field_errors

VERDICT = {
    "ok": ("✓ OK: it fits", "bold $text-success"),
    "tight": ("! TIGHT: over 85% of what is available", "bold $text-warning"),
    "insufficient": ("✗ INSUFFICIENT: it does not fit", "bold $text-error"),
    "none": ("no cluster storage in this profile", "$text-muted"),
}


def custom_volume(values: Values) -> Volume:
    """The form's custom volume; raises ValidationError (or ValueError for a bad number)."""
    shared = bool(values["shared"])
    return Volume(
        name=values["name"],
        size_gb=float(values["size_gb"]),
        shared=shared,
        replicas=int(values["replicas"]) if shared and values["replicas"] else None,
    )


def custom_volume_errors(values: Values, taken: set[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    name = values["name"]
    if not NAME_RE.match(name):
        errors["name"] = "lowercase letters, digits and '-', like 'reports-db'"
    elif name in taken:
        errors["name"] = f"'{name}' is already a volume of the catalogue or of yours"
    if not values["size_gb"]:
        errors["size_gb"] = "how many GiB it needs"
        return errors
    try:
        custom_volume(values)
    except ValidationError as exc:
        for key, msg in field_errors(exc).items():
            errors.setdefault(key, msg)
    except ValueError:
        errors.setdefault("size_gb", "a number of GiB above 0")
    return errors


class StorageScreen(WizardScreen):
    STEP = "storage"

    BINDINGS = [
        Binding("a", "add_volume", "Add volume"),
        Binding("delete", "remove_volume", "Remove volume"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.catalogue: list[Feature] = []
        self.estimate: StorageEstimateView | None = None
        self.error: str | None = None
        self._volumes: list[VolumeSpec] = []
        self._filling = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="storage-main"):
            with Vertical(id="storage-left"):
                yield Label(Content.styled("Features", "bold"))
                yield SelectionList[str](id="features", compact=True)
                yield Label(Content.styled("Volumes (GiB)", "bold"))
                yield DataTable(id="volumes", cursor_type="row")
                with Horizontal(classes="field"):
                    yield Label("Size", classes="field-label-short", id="size-label")
                    yield Input(id="size", type="number", compact=True)
                with Horizontal(classes="buttons"):
                    yield Button("Add volume…", id="add-volume", compact=True)
                    yield Button("Remove", id="remove-volume", compact=True)
            yield VerticalScroll(Static("", id="estimate"), id="storage-right")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#features", SelectionList).focus()

    def refresh_view(self) -> None:
        try:
            self.catalogue = self.wizard.engine.features()
            self.error = None
        except EngineUnavailable as exc:
            self.catalogue = []
            self.error = str(exc)
        features = self.query_one("#features", SelectionList)
        self._filling = True
        features.clear_options()
        enabled = set(self.state.answers.storage.features)
        for f in self.catalogue:
            features.add_option((f.title or f.name, f.name, f.name in enabled))
        if self.error and not self.catalogue:
            self.query_one("#estimate", Static).update(Content.styled(self.error, "$text-error"))
        self._filling = False
        self._fill_volumes()
        self._estimate()

    def _fill_volumes(self) -> None:
        table = self.query_one("#volumes", DataTable)
        row = table.cursor_row
        try:
            self._volumes = self.wizard.engine.volumes(self.state.answers)
        except EngineUnavailable as exc:
            self._volumes = []
            self.error = str(exc)
        rows: list[Row] = []
        for v in self._volumes:
            kind = (
                f"shared x{v.replicas}"
                if v.shared and v.replicas
                else "shared"
                if v.shared
                else "per node"
            )
            name = v.name if v.feature is not None else f"{v.name} (yours)"
            rows.append((v.name, [name, f"{v.size_gb:g}", kind]))
        columns = (("name", "Volume"), ("size", "GiB"), ("kind", "Kind"))
        fill_table(table, columns, rows, min_widths={"size": 6})
        if self._volumes:
            table.move_cursor(row=min(max(row, 0), len(self._volumes) - 1))
        self._load_size()

    def _load_size(self) -> None:
        table = self.query_one("#volumes", DataTable)
        size = self.query_one("#size", Input)
        if not self._volumes or not (0 <= table.cursor_row < len(self._volumes)):
            size.disabled = True
            size.value = ""
            return
        v = self._volumes[table.cursor_row]
        size.disabled = False
        self._filling = True
        size.value = f"{v.size_gb:g}"
        self._filling = False
        self.query_one("#size-label", Label).update(Content.styled("Size", "bold"))

    def _estimate(self) -> None:
        meta = self.state.meta
        view = self.query_one("#estimate", Static)
        if meta is None:
            return
        try:
            self.estimate = self.wizard.engine.estimate(self.state.answers, meta, self.state.facts)
        except EngineUnavailable as exc:
            self.estimate = None
            self.error = str(exc)
        except Exception as exc:
            self.estimate = None
            self.error = f"the estimate failed: {type(exc).__name__}: {exc}"
        if self.estimate is None:
            view.update(Content.styled(self.error or "", "$text-error"))
            self.refresh_nav()
            return
        est = self.estimate
        text, style = VERDICT[est.verdict]
        parts: list[Content | str] = [
            Content.styled(f"Backend: {est.backend}", "bold"),
            "\n",
            Content.styled(text, style),
            "\n",
        ]
        for what, figures, verdict in est.summary:
            _, vstyle = VERDICT[verdict]
            parts += [
                "\n",
                Content.styled(f"{what:<10}", "bold"),
                figures,
                "  ",
                Content.styled(verdict, vstyle),
            ]
        for problem in est.problems:
            parts += ["\n", Content.styled(f"✗ {problem}", "$text-error")]
        for fix in est.fixes:
            parts += ["\n", Content.styled(f"→ {fix}", "$text-warning")]
        parts += ["\n\n", Content.styled("Details", "bold")]
        for line in est.lines:
            parts += ["\n", Content.styled(line, "$text-muted")]
        view.update(Content.assemble(*parts))
        self.refresh_nav()

    # ------------------------------------------------------------------ editing

    @on(SelectionList.SelectedChanged, "#features")
    def _features_changed(self) -> None:
        if self._filling:
            return
        chosen = self.query_one("#features", SelectionList).selected
        self.state.answers.storage.features = [f.name for f in self.catalogue if f.name in chosen]
        self._fill_volumes()
        self._estimate()

    @on(DataTable.RowHighlighted, "#volumes")
    def _volume_highlighted(self) -> None:
        self._load_size()

    @on(Input.Changed, "#size")
    def _size_changed(self, event: Input.Changed) -> None:
        if self._filling:
            return
        table = self.query_one("#volumes", DataTable)
        if not (0 <= table.cursor_row < len(self._volumes)):
            return
        try:
            size = float(event.value)
        except ValueError:
            event.input.add_class("-invalid")
            return
        if size <= 0:
            event.input.add_class("-invalid")
            return
        event.input.remove_class("-invalid")
        spec = self._volumes[table.cursor_row]
        storage = self.state.answers.storage
        others = [v for v in storage.volumes if v.name != spec.name]
        old = next((v for v in storage.volumes if v.name == spec.name), None)
        new = Volume(
            name=spec.name,
            size_gb=size,
            shared=old.shared if old else None,
            replicas=old.replicas if old else None,
        )
        storage.volumes = [*others, new]
        self._volumes[table.cursor_row] = VolumeSpec(spec.name, size, spec.shared, spec.replicas)
        table.update_cell(spec.name, "size", f"{size:g}")
        self._estimate()

    # ------------------------------------------------------------------ custom volumes

    def action_add_volume(self) -> None:
        taken = {v.name for v in self._volumes}
        taken |= {name for f in self.catalogue for name in f.volumes}
        taken |= {v.name for v in self.state.answers.storage.volumes}
        fields = [
            FormField("name", "Name", placeholder="e.g. reports-db"),
            FormField("size_gb", "Size (GiB)", placeholder="e.g. 50", kind="number"),
            FormField(
                "shared", "Shared: one replicated volume (else one on every node)", kind="flag"
            ),
            FormField(
                "replicas",
                "Replicas",
                placeholder=f"{DEFAULT_REPLICAS} (shared volumes only)",
                kind="integer",
            ),
        ]

        def added(values: Values | None) -> None:
            if values is None:
                return
            storage = self.state.answers.storage
            storage.volumes = [*storage.volumes, custom_volume(values)]
            self._fill_volumes()
            table = self.query_one("#volumes", DataTable)
            table.move_cursor(row=len(self._volumes) - 1)
            self._estimate()

        self.app.push_screen(
            FormDialog(
                "Add a volume",
                "A volume your own workloads need, counted in the estimate like the catalogue's.",
                fields,
                lambda values: custom_volume_errors(values, taken),
                ok="Add",
                id="volume-dialog",
            ),
            added,
        )

    def action_remove_volume(self) -> None:
        table = self.query_one("#volumes", DataTable)
        if not (0 <= table.cursor_row < len(self._volumes)):
            return
        spec = self._volumes[table.cursor_row]
        if spec.feature is not None:
            self.notify(
                f"{spec.name} belongs to the feature '{spec.feature}': untick the feature instead",
                severity="warning",
            )
            return
        storage = self.state.answers.storage
        storage.volumes = [v for v in storage.volumes if v.name != spec.name]
        self._fill_volumes()
        self._estimate()

    @on(Button.Pressed, "#add-volume")
    def _add_pressed(self) -> None:
        self.action_add_volume()

    @on(Button.Pressed, "#remove-volume")
    def _remove_pressed(self) -> None:
        self.action_remove_volume()

    def next_reason(self) -> str | None:
        if any(i.has_class("-invalid") for i in self.query(Input)):
            return "A size must be a number above 0"
        if self.estimate is not None and self.estimate.verdict == "insufficient":
            return "Not enough storage: bigger disks or smaller volumes"
        return None

    def next_note(self) -> str | None:
        if self.estimate is None and self.error:
            return "No estimate: the install will not check capacity"
        return None
