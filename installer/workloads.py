"""The workload catalogue (``assets/workloads.yaml``): features and the volumes they need.

Pure apart from reading the catalogue file. ``resolve_volumes`` turns the
``storage`` section of an answers file (features, overrides, custom volumes)
into the list of volumes the estimate sizes.

Sizes are GiB (2^30 bytes); answers.yaml calls the key ``size_gb`` for
historical reasons (the Kloudspot tool asks "(GB)"), but means GiB.

An unshared volume says where it lives with ``nodes``: ``workers`` (the
default: the workload nodes, where pods run) or ``all`` (every node of the
cluster, e.g. the container runtime's storage). A shared volume lives in the
cluster storage and has no ``nodes``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from installer.answers import Storage
from installer.paths import assets_dir
from installer.problems import Problem
from installer.yamlmarks import YamlLoadError, format_path, load_marked

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_REPLICAS = 3

VolumeSource = Literal["catalogue", "answers", "custom"]
NodePlacement = Literal["all", "workers"]  # where an unshared volume lives
DEFAULT_PLACEMENT: NodePlacement = "workers"


class CatalogueError(Exception):
    """The catalogue file cannot be used; the message names the file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogueVolume(_Strict):
    title: str
    size_gb: Annotated[float, Field(gt=0)]
    shared: bool
    replicas: Annotated[int, Field(ge=1, le=9)] = DEFAULT_REPLICAS
    nodes: NodePlacement | None = None  # unshared only; None: DEFAULT_PLACEMENT
    help: str = ""

    @model_validator(mode="after")
    def _nodes_only_when_unshared(self) -> CatalogueVolume:
        if self.shared and self.nodes is not None:
            raise ValueError(
                "nodes is for unshared volumes only: a shared volume lives in the cluster "
                "storage, not on nodes"
            )
        return self

    @property
    def placement(self) -> NodePlacement:
        return self.nodes or DEFAULT_PLACEMENT


class CatalogueFeature(_Strict):
    title: str
    help: str = ""
    source: str = ""
    volumes: tuple[str, ...] = Field(min_length=1)


class Catalogue(_Strict):
    version: Literal[1] = 1
    volumes: dict[str, CatalogueVolume]
    features: dict[str, CatalogueFeature]

    @field_validator("volumes", "features")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not NAME_RE.match(name):
                raise ValueError(f"'{name}' is not a valid name (lowercase letters, digits, '-')")
        return value

    def feature_of(self, volume: str) -> str | None:
        """The first feature (catalogue order) that uses ``volume``."""
        for fname, feature in self.features.items():
            if volume in feature.volumes:
                return fname
        return None


@dataclass(frozen=True)
class VolumeSpec:
    """One volume to size: a catalogue volume (maybe overridden) or a custom one."""

    name: str
    title: str
    size_gib: float
    shared: bool
    replicas: int  # copies of a shared volume; 1 for unshared (one local copy per node)
    feature: str | None
    source: VolumeSource
    help: str = ""
    nodes: NodePlacement = DEFAULT_PLACEMENT  # unshared: every node, or the workload nodes


def parse_catalogue(
    text: str, filename: str = "workloads.yaml", *, bundled: bool = False
) -> Catalogue:
    """Parse and validate catalogue text. Raises ``CatalogueError`` naming the line.

    ``bundled``: the text is the catalogue fmp-install ships (see ``load_marked``).
    """
    try:
        doc = load_marked(text, bundled=bundled)
    except YamlLoadError as exc:
        line = exc.mark.line if exc.mark else 0
        raise CatalogueError(f"{filename}:{line}: {exc.message}") from None
    if not isinstance(doc.data, dict):
        raise CatalogueError(f"{filename}: expected a mapping with volumes and features")
    try:
        cat = Catalogue.model_validate(doc.data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            mark = doc.mark_for(loc)
            where = f"{filename}:{mark.line}:{mark.column}" if mark else filename
            lines.append(f"{where}: {format_path(loc)}: {err['msg']}")
        raise CatalogueError("\n".join(lines)) from None
    used: set[str] = set()
    for fname, feature in cat.features.items():
        for i, vol in enumerate(feature.volumes):
            if vol not in cat.volumes:
                mark = doc.mark_for(("features", fname, "volumes", i))
                line = mark.line if mark else 0
                raise CatalogueError(
                    f"{filename}:{line}: feature '{fname}' uses volume '{vol}', "
                    "which is not defined under volumes"
                )
            used.add(vol)
    for vol in cat.volumes:
        if vol not in used:
            mark = doc.mark_for(("volumes", vol))
            line = mark.line if mark else 0
            raise CatalogueError(f"{filename}:{line}: volume '{vol}' belongs to no feature")
    return cat


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load ``assets/workloads.yaml`` (or ``path``). Raises ``CatalogueError``."""
    if path is None:
        return _default_catalogue(str(assets_dir() / "workloads.yaml"))
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_catalogue(text, str(p))


@cache
def _default_catalogue(path: str) -> Catalogue:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_catalogue(text, path, bundled=True)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"(known: {', '.join(known)}){hint}"


def resolve_volumes(
    catalogue: Catalogue, storage: Storage
) -> tuple[list[VolumeSpec], list[Problem]]:
    """The volumes of the enabled features, with the answers' overrides and custom volumes.

    Returns the volumes (catalogue order, then custom ones in file order) and
    problems located by answers path (``storage.features[2]``): errors for an
    unknown feature or a duplicate volume, warnings for an override of a
    volume whose feature is not enabled (it is left out).
    """
    problems: list[Problem] = []
    enabled: list[str] = []
    for i, fname in enumerate(storage.features):
        if fname not in catalogue.features:
            problems.append(
                Problem.at(
                    ("storage", "features", i),
                    f"unknown feature '{fname}' {_suggest(fname, list(catalogue.features))}",
                )
            )
        elif fname in enabled:
            problems.append(
                Problem.at(("storage", "features", i), f"feature '{fname}' is listed twice")
            )
        else:
            enabled.append(fname)

    chosen: dict[str, VolumeSpec] = {}
    for fname in catalogue.features:
        if fname not in enabled:
            continue
        for vname in catalogue.features[fname].volumes:
            if vname in chosen:
                continue  # shared by two enabled features: one volume
            cv = catalogue.volumes[vname]
            chosen[vname] = VolumeSpec(
                name=vname,
                title=cv.title,
                size_gib=cv.size_gb,
                shared=cv.shared,
                replicas=cv.replicas if cv.shared else 1,
                feature=fname,
                source="catalogue",
                help=cv.help,
                nodes=cv.placement,
            )

    custom: list[VolumeSpec] = []
    seen: set[str] = set()
    for i, vol in enumerate(storage.volumes):
        loc = ("storage", "volumes", i)
        if vol.name in seen:
            problems.append(Problem.at((*loc, "name"), f"volume '{vol.name}' is listed twice"))
            continue
        seen.add(vol.name)
        if vol.name in catalogue.volumes:
            if vol.name not in chosen:
                feature = catalogue.feature_of(vol.name)
                problems.append(
                    Problem.at(
                        loc,
                        f"volume '{vol.name}' belongs to feature '{feature}', which is not "
                        f"enabled: it is not counted (add '{feature}' to storage.features, "
                        "or remove this entry)",
                        severity="warning",
                    )
                )
                continue
            base = chosen[vol.name]
            shared = base.shared if vol.shared is None else vol.shared
            replicas = vol.replicas if vol.replicas is not None else base.replicas
            if shared and not base.shared and vol.replicas is None:
                replicas = catalogue.volumes[vol.name].replicas
            chosen[vol.name] = VolumeSpec(
                name=vol.name,
                title=base.title,
                size_gib=vol.size_gb,
                shared=shared,
                replicas=replicas if shared else 1,
                feature=base.feature,
                source="answers",
                help=base.help,
                nodes=base.nodes,
            )
            continue
        if not NAME_RE.match(vol.name):
            problems.append(
                Problem.at(
                    (*loc, "name"),
                    f"'{vol.name}' is not a valid volume name (lowercase letters, digits, '-')",
                )
            )
            continue
        shared = bool(vol.shared)
        custom.append(
            VolumeSpec(
                name=vol.name,
                title=vol.name,
                size_gib=vol.size_gb,
                shared=shared,
                replicas=(vol.replicas or DEFAULT_REPLICAS) if shared else 1,
                feature=None,
                source="custom",
            )
        )
    return [*chosen.values(), *custom], problems


__all__ = [
    "DEFAULT_PLACEMENT",
    "DEFAULT_REPLICAS",
    "Catalogue",
    "CatalogueError",
    "CatalogueFeature",
    "CatalogueVolume",
    "NodePlacement",
    "VolumeSpec",
    "load_catalogue",
    "parse_catalogue",
    "resolve_volumes",
]
