"""Errors an operator can act on: what failed, where, and what to do next."""

from __future__ import annotations

from installer import exitcodes


class OperatorError(Exception):
    """A failure with a plain-words message and the exit code it maps to."""

    exit_code = exitcodes.INVALID_INPUT

    def __init__(
        self, message: str, *, hint: str | None = None, exit_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
