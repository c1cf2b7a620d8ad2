"""HostFacts to and from plain JSON data, and the ``--facts FILE`` format.

A facts file lets discovery run once and preflight, roles, storage and the plan
run again and again without touching the hosts (and lets tests and the lab
describe hosts as data). The shape is a stable contract:

.. code-block:: json

    {
      "version": 1,
      "hosts": [
        {
          "address": "10.30.217.20",
          "hostname": "kn0",
          "cpu": {"count": 8, "model": "AMD EPYC", "flags": ["avx", "avx2"]},
          "disks": [{"name": "sdb", "path": "/dev/sdb", "type": "disk",
                     "size_bytes": 536870912000, "children": [], "...": "..."}],
          "kernel_modules": {"nvme_tcp": "available"},
          "unknown": {"product_uuid": "cat: ...: Permission denied"}
        }
      ]
    }

Key names are exactly the field names of the dataclasses in
``installer.hostfacts`` (``HostFacts``, ``OsRelease``, ``Cpu``, ``Memory``,
``SwapArea``, ``BlockDevice``, ``VolumeGroup``, ``Mount``, ``Nic``,
``NetAddress``, ``TimeSync``, ``Firewall``); sizes are bytes. ``None`` is
``null``, tuples are lists, frozensets are sorted lists, and a value from a fixed
set of words (a ``kernel_modules`` state: ``loaded``, ``available``, ``missing``)
must be one of them. A missing key takes the field's default (``null`` for an
optional fact), so a file saved before a fact existed still reads; an unknown key
is an error, so a typo in a hand-written file does not pass silently.
``facts_from_dict(facts_to_dict(f)) == f`` for every HostFacts.

A file whose name ends in ``.yaml`` or ``.yml`` is read and written as YAML
with the same shape; anything else is JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from installer.errors import OperatorError
from installer.hostfacts import HostFacts

FACTS_FILE_VERSION = 1


class FactsFormatError(ValueError):
    """Data that is not a valid HostFacts: ``where`` is the key path (``cpu.count``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem

    def inside(self, prefix: str) -> FactsFormatError:
        """The same error, seen from the enclosing document (``hosts[2]``)."""
        return FactsFormatError(f"{prefix}.{self.where}" if self.where else prefix, self.problem)


# ---------------------------------------------------------------- to data


def _to_data(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, frozenset):
        return sorted(_to_data(v) for v in value)  # sorted: the same facts give the same file
    if isinstance(value, tuple | list):
        return [_to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_data(v) for k, v in value.items()}
    return value


def facts_to_dict(facts: HostFacts) -> dict[str, Any]:
    """JSON-able data with the documented key names."""
    data: dict[str, Any] = _to_data(facts)
    return data


# ---------------------------------------------------------------- from data


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _describe(data: object) -> str:
    shown = repr(data)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _scalar(tp: type, data: object, where: str) -> Any:
    if tp is bool and isinstance(data, bool):
        return data
    # bool is an int subclass in Python; true is never a CPU count.
    if tp is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if tp is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if tp is str and isinstance(data, str):
        return data
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise FactsFormatError(where, f"expected {names.get(tp, tp.__name__)}, got {_describe(data)}")


def _dataclass(cls: type, data: object, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise FactsFormatError(where, f"expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = sorted(str(k) for k in data if k not in fields)
    if extra:
        raise FactsFormatError(where, f"unknown key {extra[0]!r} (known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(_hints(cls)[name], data[name], path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise FactsFormatError(path, "missing")
    return cls(**kwargs)


def _convert(tp: Any, data: object, where: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _convert(inner, data, where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, data, where)
    if origin is Literal:
        # type() too: 1 == True, and a word is never a number.
        if any(type(data) is type(a) and data == a for a in args):
            return data
        words = ", ".join(repr(a) for a in args)
        raise FactsFormatError(where, f"expected one of {words}, got {_describe(data)}")
    if origin in (tuple, frozenset):
        if not isinstance(data, list):
            raise FactsFormatError(where, f"expected a list, got {_describe(data)}")
        items = [_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(data)]
        return tuple(items) if origin is tuple else frozenset(items)
    if origin is dict:
        if not isinstance(data, Mapping):
            raise FactsFormatError(where, f"expected a mapping, got {_describe(data)}")
        return {
            _convert(args[0], k, f"{where} key"): _convert(args[1], v, f"{where}.{k}")
            for k, v in data.items()
        }
    return _scalar(tp, data, where)


def facts_from_dict(data: Mapping[str, Any]) -> HostFacts:
    """The HostFacts that ``facts_to_dict`` gave. Raises FactsFormatError naming the key."""
    facts: HostFacts = _dataclass(HostFacts, data, "")
    return facts


# ---------------------------------------------------------------- files


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def dump_facts(facts: Iterable[HostFacts], *, yaml_format: bool = False) -> str:
    """The text of a facts file."""
    document = {"version": FACTS_FILE_VERSION, "hosts": [facts_to_dict(f) for f in facts]}
    if yaml_format:
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def save_facts(path: Path | str, facts: Iterable[HostFacts]) -> None:
    """Write a facts file atomically (a reader never sees half of one)."""
    target = Path(path)
    text = dump_facts(facts, yaml_format=_is_yaml(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_document(path: Path, text: str) -> object:
    if _is_yaml(path):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise OperatorError(f"{path}: {where}not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OperatorError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from exc


def facts_from_document(document: object) -> list[HostFacts]:
    """The hosts of a parsed facts file. Raises FactsFormatError."""
    if not isinstance(document, Mapping):
        raise FactsFormatError("", 'expected a mapping with "version" and "hosts"')
    version = document.get("version")
    if version != FACTS_FILE_VERSION:
        raise FactsFormatError(
            "version", f"expected {FACTS_FILE_VERSION}, got {_describe(version)}"
        )
    extra = sorted(str(k) for k in document if k not in ("version", "hosts"))
    if extra:
        raise FactsFormatError("", f"unknown key {extra[0]!r} (known: version, hosts)")
    hosts = document.get("hosts")
    if not isinstance(hosts, list):
        raise FactsFormatError("hosts", f"expected a list, got {_describe(hosts)}")
    out: list[HostFacts] = []
    seen: set[str] = set()
    for i, item in enumerate(hosts):
        if not isinstance(item, Mapping):
            raise FactsFormatError(f"hosts[{i}]", f"expected a mapping, got {_describe(item)}")
        try:
            facts = facts_from_dict(item)
        except FactsFormatError as exc:
            raise exc.inside(f"hosts[{i}]") from exc
        if facts.address in seen:
            raise FactsFormatError(f"hosts[{i}].address", f"{facts.address!r} appears twice")
        seen.add(facts.address)
        out.append(facts)
    return out


def load_facts(path: Path | str) -> list[HostFacts]:
    """Read a facts file. Raises OperatorError naming the file and what is wrong."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OperatorError(
            f"{source}: cannot read the facts file: {reason}",
            hint="check the path; a facts file is written by installer.factsio.save_facts",
        ) from exc
    try:
        return facts_from_document(_parse_document(source, text))
    except FactsFormatError as exc:
        raise OperatorError(
            f"{source}: not a valid facts file: {exc}",
            hint="the shape is documented in installer/factsio.py",
        ) from exc
