"""DataTable cells styled with the theme's variables that still size their column.

A Textual ``Content`` renders in a DataTable with the theme's colours, but the
table measures cells through Rich, which cannot measure a Content: every such
column would shrink to its header. ``Cell`` reports its width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from textual.content import Content
from textual.widgets import DataTable


class _Measured:
    def __init__(self, inner: object, width: int) -> None:
        self.inner = inner
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.inner  # type: ignore[misc]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


class Cell(Content):
    def __rich__(self) -> _Measured:
        return _Measured(super().__rich__(), self.cell_length)  # type: ignore[no-untyped-call]


def cell(text: str | Content, style: str = "") -> Cell:
    """A table cell: plain text with a style, or an assembled Content."""
    if isinstance(text, Content):
        return Cell(text.plain, list(text.spans))
    return Cell(text, []) if not style or not text else Cell.styled(text, style)  # type: ignore[return-value]


def cell_width(value: object) -> int:
    if isinstance(value, Content):
        return value.cell_length
    from rich.text import Text

    return Text.from_markup(str(value)).cell_len


Row = tuple[str | None, Sequence[object]]


def fill_table(
    table: DataTable[Any],
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Row],
    *,
    min_widths: Mapping[str, int] | None = None,
    max_widths: Mapping[str, int] | None = None,
) -> None:
    """Replace a table's columns and rows, with widths measured here.

    DataTable measures auto-width columns later, when its queue runs dry; fixed
    widths computed from the content make every repaint (and snapshot) the same.
    """
    cursor = table.cursor_coordinate
    table.clear(columns=True)
    for i, (key, label) in enumerate(columns):
        width = max([cell_width(label), *(cell_width(cells[i]) for _, cells in rows)])
        if min_widths and key in min_widths:
            width = max(width, min_widths[key])
        if max_widths and key in max_widths:
            width = min(width, max_widths[key])
        table.add_column(label, key=key, width=width)
    for row_key, cells in rows:
        table.add_row(*cells, key=row_key)
    if rows and table.is_valid_coordinate(cursor):
        table.cursor_coordinate = cursor
