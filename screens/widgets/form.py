"""A small modal form: labelled fields, checked as a whole before it closes.

The screen that opens it passes a ``check`` that turns the values into the
answers' own models (so the rules are pydantic's and the engine's, never the
form's) and returns the errors per field. The form stays open, with the
errors beside the fields, until the values are valid or the operator cancels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from screens.widgets.note import Note

FieldKind = Literal["text", "integer", "number", "flag", "password"]
Values = dict[str, str]  # field key -> text; a flag is "1" or ""
INPUT_TYPE: dict[FieldKind, Literal["integer", "number", "text"]] = {
    "text": "text",
    "integer": "integer",
    "number": "number",
    "flag": "text",
    "password": "text",
}
Check = Callable[[Values], Mapping[str, str]]  # field key (or "") -> error


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    value: str = ""
    placeholder: str = ""
    kind: FieldKind = "text"


def field_errors(exc: ValidationError, names: Mapping[str, str] | None = None) -> dict[str, str]:
    """pydantic's errors by form field: an error's first location is the model field,
    mapped to the form's key through ``names`` where they differ."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else ""
        key = (names or {}).get(loc, loc)
        errors.setdefault(key, str(err["msg"]).removeprefix("Value error, "))
    return errors


class FormDialog(ModalScreen[Values | None]):
    """Edit a few values; dismissed with them when ``check`` finds nothing wrong."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        intro: str,
        fields: Sequence[FormField],
        check: Check | None = None,
        *,
        ok: str = "Save",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.title_text = title
        self.intro = intro
        self.fields = list(fields)
        self.check = check
        self.ok_label = ok

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form-dialog"):
            yield Label(Content.styled(self.title_text, "bold"), classes="dialog-title")
            if self.intro:
                yield Static(Content.styled(self.intro, "$text-muted"), classes="form-intro")
            with VerticalScroll(classes="form-fields"):
                for f in self.fields:
                    with Horizontal(classes="form-row"):
                        if f.kind == "flag":
                            yield Checkbox(f.label, bool(f.value), id=f"f-{f.key}", compact=True)
                        else:
                            yield Label(f.label, classes="form-label")
                            yield Input(
                                f.value,
                                placeholder=f.placeholder,
                                password=f.kind == "password",
                                type=INPUT_TYPE[f.kind],
                                id=f"f-{f.key}",
                                compact=True,
                            )
            yield Note(id="form-errors", classes="errors")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="no", compact=True)
                yield Button(self.ok_label, id="yes", variant="primary", compact=True)

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for widget in self.query(Input):
            widget.cursor_blink = blink
        if self.fields:
            self.query_one(f"#f-{self.fields[0].key}").focus()

    def values(self) -> Values:
        out: Values = {}
        for f in self.fields:
            widget = self.query_one(f"#f-{f.key}")
            if isinstance(widget, Checkbox):
                out[f.key] = "1" if widget.value else ""
            elif isinstance(widget, Input):
                out[f.key] = widget.value.strip()
        return out

    def show_errors(self, errors: Mapping[str, str]) -> None:
        labels = {f.key: f.label for f in self.fields}
        for f in self.fields:
            self.query_one(f"#f-{f.key}").set_class(f.key in errors, "-invalid")
        lines = [f"{labels[k]}: {msg}" if k in labels else msg for k, msg in errors.items()]
        self.query_one("#form-errors", Note).show(
            Content.styled("\n".join(lines), "$text-error") if lines else ""
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#yes")
    def save(self) -> None:
        values = self.values()
        errors = dict(self.check(values)) if self.check is not None else {}
        self.show_errors(errors)
        if not errors:
            self.dismiss(values)

    @on(Button.Pressed, "#no")
    def action_cancel(self) -> None:
        self.dismiss(None)
