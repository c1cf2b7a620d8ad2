"""A line of feedback that takes no room while it has nothing to say."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class Note(Static):
    DEFAULT_CSS = """
    Note { height: auto; }
    Note.-empty { display: none; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.add_class("-empty")

    def show(self, content: Content | str | None) -> None:
        empty = not content
        self.set_class(empty, "-empty")
        self.update(content or "")
