"""Masking secrets as ``****`` in everything the installer shows or stores.

``Redactor`` knows the secrets (generated ones, and values captured at run
time); ``redact(text)`` masks them in a whole text. Streamed output arrives line
by line, and a secret can be cut by a line break (a wrapped token, a key printed
in two parts): ``StreamRedactor`` masks those too, holding back a line only
while its end could be the start of a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MASK = "****"
# Shorter values would mask ordinary words everywhere; no generated secret or
# captured token is that short.
MIN_SECRET_LEN = 4
# A line is held back when it ends with at least this much of a secret's start;
# with less, it goes out at once and only the rest of the secret, on the next
# line, is masked (so at most MIN_HOLD - 1 characters of a secret can show).
MIN_HOLD = 4


class Redactor:
    def __init__(self, secrets: tuple[str, ...] | list[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._max_len = 0
        # For pending_prefix, which runs on every streamed line: the secrets by their
        # first MIN_SECRET_LEN characters, and their 1..MIN_SECRET_LEN-1 character starts.
        self._by_head: dict[str, list[str]] = {}
        self._short_heads: list[set[str]] = [set() for _ in range(MIN_SECRET_LEN)]
        for s in secrets:
            self.add(s)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (and each line of a multi-line secret)."""
        parts = {secret.strip()}
        if "\n" in secret:
            parts |= {line.strip() for line in secret.splitlines()}
        new = {p for p in parts if len(p) >= MIN_SECRET_LEN} - self._secrets
        if new:
            self._secrets |= new
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            self._max_len = len(ordered[0])
            for s in new:
                self._by_head.setdefault(s[:MIN_SECRET_LEN], []).append(s)
                for k in range(1, MIN_SECRET_LEN):
                    self._short_heads[k].add(s[:k])

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    @property
    def max_len(self) -> int:
        return self._max_len

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._pattern is None:
            return []
        return [m.span() for m in self._pattern.finditer(text)]

    def pending_prefix(self, text: str) -> int:
        """Length of the longest end of ``text`` that starts some secret (but is not all of it).

        It runs on every streamed line, so it does not try every prefix of every secret
        (a PEM key has over a thousand): an end of MIN_SECRET_LEN characters or more
        must begin with some secret's first MIN_SECRET_LEN characters, looked up by
        position from the longest possible end; shorter ends are looked up in a set.
        """
        n = len(text)
        if not n or not self._secrets:
            return 0
        head = MIN_SECRET_LEN
        for i in range(max(0, n - (self._max_len - 1)), n - head + 1):
            candidates = self._by_head.get(text[i : i + head])
            if candidates:
                k = n - i
                tail = text[i:]
                for s in candidates:
                    if len(s) > k and s.startswith(tail):
                        return k
        for k in range(min(head - 1, n), 0, -1):
            if text[n - k :] in self._short_heads[k]:
                return k
        return 0

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


@dataclass
class StreamRedactor:
    """Redacts one stream (one host's stdout, say) fed line by line.

    ``feed(line)`` returns the lines that are safe to show now, masked;
    ``flush()`` returns the rest at the end of the stream.
    """

    redactor: Redactor
    _pending: list[tuple[str, list[bool]]] = field(default_factory=list)
    _context: str = ""  # the end of what was already emitted: a secret may start there

    def feed(self, line: str) -> list[str]:
        self._pending.append((line, [False] * len(line)))
        return self._emit(final=False)

    def flush(self) -> list[str]:
        out = self._emit(final=True)
        self._context = ""
        return out

    def _emit(self, *, final: bool) -> list[str]:
        if not self._pending:
            return []
        r = self.redactor
        ctx = self._context
        joined = ctx + "".join(line for line, _ in self._pending)
        # Where each pending line starts in ``joined``.
        starts: list[int] = []
        pos = len(ctx)
        for line, _ in self._pending:
            starts.append(pos)
            pos += len(line)
        for start, end in r.spans(joined):
            for (line, mask), s0 in zip(self._pending, starts, strict=True):
                lo, hi = max(start, s0), min(end, s0 + len(line))
                for i in range(lo, hi):
                    mask[i - s0] = True
        hold_from = len(joined)
        if not final:
            k = r.pending_prefix(joined)
            if k >= MIN_HOLD:
                hold_from = len(joined) - k
        out: list[str] = []
        for (line, mask), s0 in zip(self._pending, starts, strict=True):
            if s0 + len(line) > hold_from:
                break
            out.append(_apply(line, mask))
        if out:
            emitted = "".join(line for line, _ in self._pending[: len(out)])
            self._context = (ctx + emitted)[-(MIN_HOLD - 1) :]
            self._pending = self._pending[len(out) :]
        return out


def _apply(line: str, masked: list[bool]) -> str:
    if not any(masked):
        return line
    parts: list[str] = []
    i = 0
    while i < len(line):
        if masked[i]:
            while i < len(line) and masked[i]:
                i += 1
            parts.append(MASK)
        else:
            j = i
            while j < len(line) and not masked[j]:
                j += 1
            parts.append(line[i:j])
            i = j
    return "".join(parts)
