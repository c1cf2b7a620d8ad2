"""Profiles are data: ``profiles/<name>/profile.yaml`` plus Jinja2 templates.

This module loads and validates a profile. Adding a fourth profile means adding
a folder, not editing the engine. The format is documented in docs/PROFILES.md.

Two entry points:

- ``load_profile_meta(name)``: metadata, versions and roles only (what answers
  validation, preflight and role suggestion need); it ignores the steps.
- ``load_profile(name)``: the whole profile, steps included, validated: unknown
  keys, unknown roles in ``on``, unknown steps in ``needs``, cycles, unknown
  capture names and template variables that do not exist are reported with the
  file and line.

The parts live beside it: ``installer.profile_model`` (the format's models,
re-exported here), ``installer.host_selectors`` (``on`` and ``needs``),
``installer.templating`` (the Jinja2 environment) and
``installer.profile_checks`` (the whole-profile checks). Loading the metadata
does not import Jinja2: ``fmp-install validate`` starts without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from installer.errors import OperatorError
from installer.host_selectors import HostSelector, parse_host_selector, split_need
from installer.paths import profiles_dir
from installer.profile_model import (
    ROLE_NAMES,
    CaptureEntry,
    FileEntry,
    OptionSpec,
    ProfileMeta,
    ProfileSpec,
    Requirements,
    RoleRule,
    SecretKind,
    SecretSpec,
    StepSpec,
    parse_duration,
)
from installer.yamlmarks import Mark, MarkedDocument, YamlLoadError, format_path, load_marked

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "ROLE_NAMES",
    "CaptureEntry",
    "FileEntry",
    "HostSelector",
    "OptionSpec",
    "Profile",
    "ProfileError",
    "ProfileMeta",
    "ProfileSpec",
    "Requirements",
    "RoleRule",
    "SecretKind",
    "SecretSpec",
    "Source",
    "StepSpec",
    "available_profiles",
    "load_profile",
    "load_profile_from",
    "load_profile_meta",
    "option_errors",
    "parse_duration",
    "parse_host_selector",
    "resolve_options",
    "split_need",
]

_ONE = Mark(1, 1)


class ProfileError(OperatorError):
    """A profile that cannot be used; the message names the file and line."""


# --------------------------------------------------------------------------- the loaded profile


@dataclass(frozen=True)
class Source:
    """Where a piece of template text lives, to point errors at it."""

    file: str
    line: int  # the line the text starts on (1-based)

    def at(self, template_line: int | None) -> str:
        if template_line is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line + template_line - 1}"


@dataclass(frozen=True)
class Profile:
    spec: ProfileSpec
    directory: Path
    path: Path  # profile.yaml
    sources: Mapping[tuple[str | int, ...], Source]  # ("steps", 3, "run") -> where it starts

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def meta(self) -> ProfileMeta:
        return ProfileMeta.model_validate(
            {k: getattr(self.spec, k) for k in ProfileMeta.model_fields}
        )

    @property
    def templates_dir(self) -> Path:
        return self.directory / "templates"

    def step(self, step_id: str) -> StepSpec:
        for s in self.spec.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def source(self, *loc: str | int) -> Source:
        return self.sources.get(loc) or Source(str(self.path), 1)

    def environment(self) -> jinja2.Environment:
        from installer.templating import make_environment  # Jinja2 only when rendering

        return make_environment(self.templates_dir)

    def capture_names(self) -> dict[str, CaptureEntry]:
        return {c.name: c for s in self.spec.steps for c in s.capture}

    def template_source(self, name: str) -> Source:
        return Source(str(self.templates_dir / name), 1)


def option_errors(meta: ProfileMeta, given: Mapping[str, Any]) -> dict[str, str]:
    """Option name -> what is wrong with it, for options the profile lacks or values it refuses."""
    errors: dict[str, str] = {}
    for key, value in given.items():
        spec = meta.options.get(key)
        if spec is None:
            known = ", ".join(meta.options) or "none"
            errors[key] = f"profile {meta.name} has no option '{key}' (options: {known})"
        elif spec.choices and value not in spec.choices:
            errors[key] = (
                f"option {key}={value!r} is not one of {', '.join(map(str, spec.choices))}"
            )
    return errors


def resolve_options(meta: ProfileMeta, given: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's option defaults overlaid with ``given`` (checked with option_errors)."""
    return {k: o.default for k, o in meta.options.items()} | dict(given)


def available_profiles() -> list[str]:
    root = profiles_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "profile.yaml").is_file())


def _profile_file(name: str) -> Path:
    return profiles_dir() / name / "profile.yaml"


def _read(path: Path) -> MarkedDocument:
    try:
        doc = load_marked(path.read_text(encoding="utf-8"), bundled=True)
    except YamlLoadError as exc:
        line = exc.mark.line if exc.mark else 0
        raise ProfileError(f"{path}:{line}: {exc.message}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(doc.data, dict):
        raise ProfileError(f"{path}: expected a mapping at the top")
    return doc


def _validation_error(path: Path, doc: MarkedDocument, exc: ValidationError) -> ProfileError:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        if err["type"] == "extra_forbidden":
            mark = doc.key_marks.get(loc) or doc.mark_for(loc)
            msg = f"unknown key '{loc[-1]}'"
        else:
            mark = doc.mark_for(loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required"
        where = f"{path}:{mark.line}:{mark.column}" if mark else str(path)
        lines.append(f"{where}: {format_path(loc)}: {msg}")
    return ProfileError("\n".join(lines))


@cache
def load_profile_meta(name: str) -> ProfileMeta:
    """Load the metadata part of a profile (title, versions, roles, requirements)."""
    path = _profile_file(name)
    if not path.is_file():
        known = ", ".join(available_profiles()) or "none found"
        raise ProfileError(f"unknown profile '{name}' (known: {known})")
    doc = _read(path)
    meta_keys = set(ProfileMeta.model_fields)
    data = {k: v for k, v in doc.data.items() if k in meta_keys}
    try:
        meta = ProfileMeta.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, doc, exc) from None
    _check_role_names(path, doc, meta)
    return meta


def _check_role_names(path: Path, doc: MarkedDocument, meta: ProfileMeta) -> None:
    for role in meta.roles:
        if role not in ROLE_NAMES:
            mark = doc.key_marks.get(("roles", role)) or doc.mark_for(("roles", role))
            line = mark.line if mark else 0
            raise ProfileError(
                f"{path}:{line}: unknown role '{role}' (roles: {', '.join(ROLE_NAMES)})"
            )


@cache
def load_profile(name: str) -> Profile:
    """Load and validate a whole profile by name (``profiles/<name>/``)."""
    path = _profile_file(name)
    if not path.is_file():
        known = ", ".join(available_profiles()) or "none found"
        raise ProfileError(f"unknown profile '{name}' (known: {known})")
    return load_profile_from(path.parent)


def load_profile_from(directory: Path | str) -> Profile:
    """Load and validate the profile in ``directory`` (profile.yaml + templates/)."""
    # Imported here: the checks need Jinja2, which loading the metadata does not.
    from installer.profile_checks import check_profile

    directory = Path(directory)
    path = directory / "profile.yaml"
    doc = _read(path)
    _restore_on_keys(doc)
    try:
        spec = ProfileSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise _validation_error(path, doc, exc) from None
    _check_role_names(path, doc, spec)
    sources = _sources(path, doc, spec)
    profile = Profile(spec, directory, path, sources)
    errors = check_profile(profile)
    if errors:
        raise ProfileError("\n".join(errors))
    return profile


def _restore_on_keys(doc: MarkedDocument) -> None:
    """YAML 1.1 reads an unquoted ``on:`` key as the boolean true; a step means ``on``."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if isinstance(step, dict) and "True" in step and "on" not in step:
            step["on"] = step.pop("True")
            for table in (doc.marks, doc.key_marks):
                old = ("steps", i, "True")
                if old in table:
                    table[("steps", i, "on")] = table.pop(old)


def _text_start(doc: MarkedDocument, loc: tuple[str | int, ...], text: str) -> int:
    mark = doc.marks.get(loc)
    if mark is None:
        return 1
    # A block scalar ("run: |") starts on the line after its indicator.
    return mark.line + 1 if "\n" in text.rstrip("\n") or text.endswith("\n") else mark.line


def _sources(
    path: Path, doc: MarkedDocument, spec: ProfileSpec
) -> dict[tuple[str | int, ...], Source]:
    out: dict[tuple[str | int, ...], Source] = {}
    for i, step in enumerate(spec.steps):
        base: tuple[str | int, ...] = ("steps", i)
        out[base] = Source(str(path), (doc.mark_for(base) or _ONE).line)
        for key in ("run", "check", "when", "on", "needs", "title"):
            loc = (*base, key)
            value = getattr(step, key)
            if isinstance(value, str):
                out[loc] = Source(str(path), _text_start(doc, loc, value))
            elif loc in doc.marks:
                out[loc] = Source(str(path), doc.marks[loc].line)
        for j in range(len(step.needs)):
            loc = (*base, "needs", j)
            out[loc] = Source(str(path), (doc.mark_for(loc) or _ONE).line)
        for j in range(len(step.files)):
            for key in ("path", "template"):
                loc = (*base, "files", j, key)
                out[loc] = Source(str(path), (doc.mark_for(loc) or _ONE).line)
        for j in range(len(step.wipes)):
            loc = (*base, "wipes", j)
            out[loc] = Source(str(path), (doc.mark_for(loc) or _ONE).line)
    return out
