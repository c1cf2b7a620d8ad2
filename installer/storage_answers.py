"""Write storage choices back into answers.yaml text, keeping its comments and layout.

Pure text in, text out (ruamel.yaml round-trip): the caller validates the
result and writes the file. Only ``storage.features``, ``storage.volumes``
sizes (and entries that override a volume of a feature turned off),
``hosts[].storage_disk`` and the matching ``storage.wipe`` entries change;
everything else, comments included, stays as it was.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq


class AnswersEditError(Exception):
    """The answers text cannot be edited (not a mapping, ...)."""


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(float(x), 3)


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file uses them.

    ruamel re-indents everything to one setting on dump; guessing them from
    the file keeps an edit from re-indenting lines it did not touch.
    """
    mapping: int | None = None
    seq: tuple[int, int] | None = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for prev, line in itertools.pairwise(lines):
        head = prev.split(" #", 1)[0].rstrip()
        if not head.endswith(":") or head.lstrip().startswith("- "):
            continue
        i = len(prev) - len(prev.lstrip())
        j = len(line) - len(line.lstrip())
        body = line.lstrip()
        if body.startswith("- ") and seq is None and j >= i:
            after = body[1:]
            gap = len(after) - len(after.lstrip())
            seq = (j - i + 1 + gap, j - i)
        elif not body.startswith("-") and mapping is None and j > i:
            mapping = j - i
        if mapping is not None and seq is not None:
            break
    sequence, offset = seq if seq is not None else (4, 2)
    return mapping or 2, sequence, offset


def _yaml(text: str) -> tuple[YAML, Any]:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the operator's long flow mappings
    mapping, sequence, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    data = yaml.load(text)
    if not isinstance(data, CommentedMap):
        raise AnswersEditError("the answers file is not a mapping")
    return yaml, data


def _replace_seq(parent: CommentedMap, key: str, items: Sequence[Any], flow: bool) -> None:
    seq = parent.get(key)
    if isinstance(seq, CommentedSeq):
        if not seq:
            # ruamel forgets that an empty list was written "[]"; keep it inline.
            seq.fa.set_flow_style()
        del seq[:]
        seq.extend(items)
        return
    new = CommentedSeq(items)
    if flow:
        new.fa.set_flow_style()
    parent[key] = new


def update_answers_text(
    text: str,
    *,
    features: Sequence[str] | None = None,
    sizes: Mapping[str, float] | None = None,
    defaults: Mapping[str, float] | None = None,
    disk_ids: Mapping[str, str] | None = None,
    drop: Collection[str] = (),
) -> str:
    """The answers text with new storage choices.

    - ``features``: the new ``storage.features`` list;
    - ``sizes``: volume name -> GiB. A volume already listed in
      ``storage.volumes`` gets the new size; one not listed is added only when
      its size differs from ``defaults`` (the catalogue's);
    - ``disk_ids``: host label (name or address) -> new ``storage_disk``
      (a stable by-id path); ``storage.wipe`` entries naming the old value
      follow it;
    - ``drop``: volume names whose ``storage.volumes`` entries go (the
      overrides of a feature turned off; the caller keeps custom volumes out).
    """
    yaml, data = _yaml(text)
    storage = data.get("storage")
    if (features is not None or sizes) and not isinstance(storage, CommentedMap):
        storage = CommentedMap()
        keys = list(data.keys())
        # answers.yaml's documented order: storage comes after network.
        pos = keys.index("network") + 1 if "network" in keys else len(keys)
        data.insert(pos, "storage", storage)
    if features is not None and isinstance(storage, CommentedMap):
        _replace_seq(storage, "features", list(features), flow=True)
    if sizes and isinstance(storage, CommentedMap):
        vols = storage.get("volumes")
        created = not isinstance(vols, CommentedSeq)
        if not isinstance(vols, CommentedSeq):
            vols = CommentedSeq()
            storage["volumes"] = vols
        elif not vols:
            vols.fa.set_flow_style()  # it was written "[]"
        flow = any(isinstance(v, CommentedMap) and v.fa.flow_style() for v in vols) or not vols
        listed = {v.get("name"): v for v in vols if isinstance(v, CommentedMap) and "name" in v}
        for name, size in sizes.items():
            entry = listed.get(name)
            if entry is not None:
                entry["size_gb"] = _number(size)
                continue
            default = (defaults or {}).get(name)
            if default is not None and abs(default - size) < 1e-9:
                continue
            new = CommentedMap([("name", name), ("size_gb", _number(size))])
            if flow:
                new.fa.set_flow_style()
            vols.append(new)
        if created and not vols:
            del storage["volumes"]
    if drop and isinstance(storage, CommentedMap):
        _drop_volumes(storage, set(drop))
    if disk_ids:
        _update_disks(data, disk_ids)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _drop_volumes(storage: CommentedMap, drop: set[str]) -> None:
    vols = storage.get("volumes")
    if not isinstance(vols, CommentedSeq):
        return
    flow = vols.fa.flow_style()
    for i in reversed(range(len(vols))):  # ruamel moves each later entry's comment up
        entry = vols[i]
        if isinstance(entry, CommentedMap) and entry.get("name") in drop:
            del vols[i]
    if not vols and not flow:
        vols.fa.set_flow_style()  # "volumes: []", not an empty block


def _update_disks(data: CommentedMap, disk_ids: Mapping[str, str]) -> None:
    hosts = data.get("hosts")
    renamed: dict[tuple[str, str], str] = {}
    for host in hosts if isinstance(hosts, CommentedSeq) else ():
        if not isinstance(host, CommentedMap):
            continue
        labels = [str(host[k]) for k in ("name", "address") if k in host]
        new = next((disk_ids[lb] for lb in labels if lb in disk_ids), None)
        old = host.get("storage_disk")
        if new is None or old is None or old == new:
            continue
        host["storage_disk"] = new
        for lb in labels:
            renamed[(lb, str(old))] = new
    storage = data.get("storage")
    wipe = storage.get("wipe") if isinstance(storage, CommentedMap) else None
    if isinstance(wipe, CommentedSeq):
        for i, entry in enumerate(wipe):
            host, sep, path = str(entry).partition(":")
            if sep and (host, path) in renamed:
                wipe[i] = f"{host}:{renamed[(host, path)]}"
