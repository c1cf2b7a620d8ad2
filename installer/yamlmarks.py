"""Load YAML while remembering where every value came from.

``load_marked`` returns plain Python data plus a map from a value's path
(``("hosts", 2, "address")``) to its 1-based line and column, so that errors
found later, by pydantic or by the semantic checks, can point at the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

# Aliases let a tiny document expand to a huge one ("billion laughs"); an
# answers file has a few hundred values at most.
MAX_NODES = 100_000


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


class YamlLoadError(Exception):
    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.marks: dict[Path_, Mark] = {}
        self.key_marks: dict[Path_, Mark] = {}
        self.count = 0

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlLoadError(
                f"the document has more than {MAX_NODES} values (alias expansion?)", _mark(node)
            )
        self.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise YamlLoadError(f"cannot read this value: {exc}", _mark(node)) from None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # Merge keys ("<<: *base") are flattened by the loader before we see them.
        self.loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlLoadError("a key must be a plain string", _mark(key_node))
            try:
                key = self.loader.construct_object(key_node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
                raise YamlLoadError(f"cannot read this key: {exc}", _mark(key_node)) from None
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            if key in out:
                first = self.key_marks.get((*path, key))
                where = f" (first at line {first.line})" if first else ""
                raise YamlLoadError(f"duplicate key '{key}'{where}", _mark(key_node))
            self.key_marks[(*path, key)] = _mark(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out


@dataclass
class MarkedDocument:
    data: Any
    marks: dict[Path_, Mark]
    key_marks: dict[Path_, Mark]

    def mark_for(self, path: Sequence[str | int]) -> Mark | None:
        """The mark of the value at ``path``, or of its nearest ancestor."""
        p = tuple(path)
        while True:
            if p in self.marks:
                return self.marks[p]
            if p in self.key_marks:
                return self.key_marks[p]
            if not p:
                return None
            p = p[:-1]


# libyaml's parser is ~10x faster than PyYAML's (a profile is ~1,300 nodes: 50 ms of
# pure-Python scanning at every start). It is used only for the files we ship,
# where a test proves it gives the same data and marks: on hand-written input it
# accepts a few things PyYAML refuses (a tab inside a flow mapping) and counts
# columns differently around a stray BOM. Errors are always reported by the
# pure-Python loader, so their wording never depends on libyaml.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def load_marked(text: str, *, bundled: bool = False) -> MarkedDocument:
    """Parse one YAML document. Raises ``YamlLoadError`` with a mark on any problem.

    ``bundled``: the text is one of fmp-install's own files (a profile, the
    workload catalogue), so libyaml may parse it when it is installed.
    """
    if bundled and _FAST_LOADER is not None:
        try:
            return _load_marked(text, _FAST_LOADER)
        except (YamlLoadError, yaml.YAMLError, ValueError, TypeError, RecursionError):
            pass  # say it the way the pure-Python loader says it
    return _load_marked(text, yaml.SafeLoader)


_TOO_DEEP = "the document is nested too deeply"


def _deepest_open_mark(loader: yaml.SafeLoader) -> Mark | None:
    """Where the innermost collection still open when composing gave up starts."""
    # The pure-Python parser keeps a stack of the start marks of open collections;
    # libyaml's loader has none to ask.
    marks = getattr(loader, "marks", None)
    if not marks:
        return None
    return Mark(marks[-1].line + 1, marks[-1].column + 1)


def _load_marked(text: str, loader_class: type[yaml.SafeLoader]) -> MarkedDocument:
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control byte, say): say where it is.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlLoadError(
            f"not valid YAML: character {exc.character!r} is not allowed", Mark(line, column)
        ) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = Mark(mark.line + 1, mark.column + 1) if mark else None
            raise YamlLoadError(f"not valid YAML: {exc.problem or exc.context}", where) from None
        except yaml.YAMLError as exc:
            raise YamlLoadError(f"not valid YAML: {exc}", None) from None
        except RecursionError:
            # PyYAML composes nested collections recursively: '[' * 1000 gets here.
            raise YamlLoadError(_TOO_DEEP, _deepest_open_mark(loader)) from None
        if node is None:
            return MarkedDocument(None, {}, {})
        builder = _Builder(loader)
        try:
            data = builder.build(node, ())
        except RecursionError:
            raise YamlLoadError(_TOO_DEEP, _mark(node)) from None
        return MarkedDocument(data, builder.marks, builder.key_marks)
    finally:
        loader.dispose()
