"""What every parser shares: lines, ``key: value`` pairs, the JSON in a
command's output, and lenient reading of the values old and new tools print."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

KIB = 1024


def split_lines(text: str) -> list[str]:
    # splitlines() also splits on \x0b, \x1c... which no /proc file uses as a line end.
    return text.replace("\r\n", "\n").split("\n")


def colon_pairs(text: str) -> Iterator[tuple[str, str]]:
    """``key : value`` lines (cpuinfo, meminfo, chronyc), key lower-cased and stripped."""
    for line in split_lines(text):
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip().lower(), value.strip()


def to_int(value: object) -> int | None:
    """An int from JSON (int or the digit strings old tools print); bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    return None


def to_bool(value: object) -> bool | None:
    """JSON bool, or util-linux < 2.33's "0"/"1" strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0 if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes"):
            return True
        if word in ("0", "false", "no"):
            return False
    return None


def to_str(value: object) -> str | None:
    """A non-empty stripped string; lsblk pads MODEL with spaces and prints "" for none."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def first_word(text: str) -> str | None:
    for line in split_lines(text):
        if line.strip():
            return line.split()[0]
    return None


def load_json(text: str) -> Any:
    """The first JSON document in ``text``, or None.

    Discovery merges stderr into stdout, so a warning line may come before the
    JSON (``vgs`` prints "WARNING: ..."): try each line that opens a document.
    """
    decoder = json.JSONDecoder()
    starts: list[int] = []
    offset = 0
    for line in text.split("\n"):
        body = line.lstrip()
        if body[:1] in ("{", "["):  # vgs indents its JSON by two spaces
            starts.append(offset + len(line) - len(body))
        offset += len(line) + 1
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        return value
    return None


def unescape_octal(text: str) -> str:
    r"""/proc/mounts and /proc/swaps write space, tab, newline, \ as \040 \011 \012 \134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
