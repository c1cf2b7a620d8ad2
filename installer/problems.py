"""A problem an operator can act on: where it is and what is expected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from installer.yamlmarks import MarkedDocument, format_path

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    file: str | None
    line: int | None
    column: int | None
    path: str
    message: str
    severity: Severity = "error"
    loc: tuple[str | int, ...] = ()

    @classmethod
    def at(cls, loc: Sequence[str | int], message: str, severity: Severity = "error") -> Problem:
        """A problem found in a parsed model, located later against its file."""
        return cls(None, None, None, format_path(loc), message, severity, tuple(loc))

    def located(self, filename: str, doc: MarkedDocument | None) -> Problem:
        mark = doc.mark_for(self.loc) if doc is not None else None
        return replace(
            self,
            file=filename,
            line=mark.line if mark else self.line,
            column=mark.column if mark else self.column,
        )

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [p for p in (where, self.path) if p]
        prefix = ": ".join(parts)
        tag = "warning: " if self.severity == "warning" else ""
        return f"{prefix}: {tag}{self.message}" if prefix else f"{tag}{self.message}"


class ProblemList(Exception):
    """One or more problems, all reported at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)
