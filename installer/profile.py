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
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
import jinja2.nodes
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.errors import OperatorError
from installer.paths import profiles_dir
from installer.yamlmarks import Mark, MarkedDocument, YamlLoadError, format_path, load_marked

_ONE = Mark(1, 1)

ROLE_NAMES = ("control-plane", "etcd", "worker", "lb", "storage", "ceph-mon")

STEP_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
CAPTURE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SECRET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Every name a template (or an inline run/check/path/when) may use. See
# docs/PROFILES.md for what each holds; plan.py builds the values.
CONTEXT_NAMES = frozenset(
    {
        "cluster",  # .name, .domain
        "profile",  # .name, .title
        "versions",  # profile defaults overlaid with answers.versions
        "options",  # profile option defaults overlaid with the caller's
        "network",  # .vip, .api_port, .pod_subnet, .service_subnet, .host_subnet (strings)
        "storage",  # .features, .volumes, .wipe
        "ssh",  # .user (the admin login user)
        "hosts",  # every host, in answers order
        "host",  # the host this task runs on
        "roles",  # role -> list of hosts holding it (every role of the profile)
        "secrets",  # generated secrets: secrets.NAME, or secrets.NAME.crt/.key for a CA
        "step",  # .id, .title
        "files_ok",  # (run/check only) shell test: this step's files are on the host as planned
        "capture",  # capture(name) -> placeholder the runner resolves at run time
        "fail",  # fail(message): stop planning with an error naming the template line
    }
)


class ProfileError(OperatorError):
    """A profile that cannot be used; the message names the file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirements(_Strict):
    """What a host holding a role needs; preflight reads these."""

    cpus: int = 1
    memory_mb: int = 512
    ports: tuple[int, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    os: tuple[str, ...] = ()  # os-release ids, e.g. ubuntu, debian; empty = any


class RoleRule(_Strict):
    description: str = ""
    min: int = 0
    max: int | None = None
    recommended: int | None = None
    odd: bool = False  # quorum members: an even count adds no fault tolerance
    needs_disk: bool = False  # each holder must name a storage_disk
    needs_vip: bool = False  # holding this role needs network.vip
    requires: Requirements = Field(default_factory=Requirements)


class OptionSpec(_Strict):
    """A profile option: a choice the profile offers, with a default."""

    description: str = ""
    default: str | int | bool
    choices: tuple[str | int | bool, ...] = ()


class ProfileMeta(_Strict):
    name: str
    title: str
    description: str
    versions: dict[str, str]
    storage_backend: str  # none | ceph | openebs
    requires_vip: bool = True
    roles: dict[str, RoleRule]
    suggest: dict[str, str] = Field(default_factory=dict)  # role -> selector, for auto roles
    options: dict[str, OptionSpec] = Field(default_factory=dict)


# --------------------------------------------------------------------------- the full format

SecretKind = Literal["password", "token", "hex", "bootstrap_token", "ca"]


class SecretSpec(_Strict):
    """A secret generated once per cluster and kept in the 0600 secrets file.

    ``ca`` makes a self-signed CA: templates read ``secrets.NAME.crt`` (public)
    and ``secrets.NAME.key`` (secret). The others are one string: ``secrets.NAME``.
    """

    name: str
    kind: SecretKind
    description: str = ""
    length: int = Field(default=24, ge=8, le=256)  # password: characters
    bytes: int = Field(default=32, ge=8, le=256)  # token / hex: random bytes
    subject: str | None = None  # ca: common name (default: the secret's name)
    validity_days: int = Field(default=3650, ge=1)  # ca

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SECRET_NAME_RE.match(value):
            raise ValueError(f"'{value}' is not a secret name (lowercase letters, digits, '_')")
        return value


class FileEntry(_Strict):
    template: str  # a file under templates/
    path: str  # absolute path on the host; may use template variables
    mode: str | int = "0644"  # octal string ("0600") or an int
    owner: str | None = None  # "user:group"
    secret: bool = False  # holds a secret: written, never shown

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str | int) -> str | int:
        if isinstance(value, str) and not re.fullmatch(r"0?[0-7]{3,4}", value):
            raise ValueError(f"'{value}' is not an octal file mode like \"0644\"")
        return value

    @property
    def mode_int(self) -> int:
        return int(self.mode, 8) if isinstance(self.mode, str) else self.mode


class CaptureEntry(_Strict):
    name: str  # global: later steps read it with capture('name')
    regex: str  # searched in the step's output; group "value" (or group 1) is the value
    secret: bool = False
    stream: Literal["stdout", "stderr"] = "stdout"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CAPTURE_NAME_RE.match(value):
            raise ValueError(f"'{value}' is not a capture name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        if "value" not in compiled.groupindex and compiled.groups < 1:
            raise ValueError("the regex needs a group: (?P<value>...) or (...)")
        return value


class StepSpec(_Strict):
    id: str
    title: str
    on: str  # a host selector: see parse_host_selector
    when: str | None = None  # a Jinja expression per host; false = no task there
    needs: tuple[str, ...] = ()  # "step" (same host) or "step@all" (every host running it)
    files: tuple[FileEntry, ...] = ()
    run: str
    check: str | None = None
    capture: tuple[CaptureEntry, ...] = ()
    retries: int = Field(default=0, ge=0, le=100)
    timeout: int | str = 600  # seconds, or "90s", "10m", "1h"
    serial: bool = False
    destructive: bool = False
    idempotent: bool = True
    sudo: bool = True
    wipes: tuple[str, ...] = ()  # disks it wipes (templates; empty results are dropped)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not STEP_ID_RE.match(value):
            raise ValueError(f"'{value}' is not a step id (lowercase letters, digits and '-')")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: int | str) -> int | str:
        parse_duration(value)
        return value

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class ProfileSpec(ProfileMeta):
    """Everything in profile.yaml."""

    secrets: tuple[SecretSpec, ...] = ()
    steps: tuple[StepSpec, ...] = ()


def parse_duration(value: int | float | str) -> float:
    """``600`` / ``"90s"`` / ``"10m"`` / ``"1h"`` → seconds."""
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("a timeout must be positive")
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", value)
    if not m:
        raise ValueError(f'\'{value}\' is not a duration (e.g. 600, "90s", "10m", "1h")')
    n = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if n <= 0:
        raise ValueError("a timeout must be positive")
    return n


# --------------------------------------------------------------------------- host selectors


@dataclass(frozen=True)
class HostSelector:
    """``all``, ``<role>``, ``first(<role>)``, ``rest(<role>)``, combined with
    ``!`` (not), ``&`` (and, binds tighter) and ``|`` (or), e.g.
    ``worker & !control-plane`` or ``first(control-plane) | etcd``."""

    text: str
    # A union of intersections of (negated?, kind, role) atoms.
    terms: tuple[tuple[tuple[bool, str, str | None], ...], ...]

    @property
    def roles(self) -> set[str]:
        return {role for term in self.terms for _, _, role in term if role is not None}

    def select(self, host_roles: Sequence[Sequence[str]]) -> list[int]:
        """Indexes of the selected hosts, given each host's roles in answers order."""
        chosen = []
        for i in range(len(host_roles)):
            if any(all(self._atom(atom, i, host_roles) for atom in term) for term in self.terms):
                chosen.append(i)
        return chosen

    @staticmethod
    def _atom(
        atom: tuple[bool, str, str | None], i: int, host_roles: Sequence[Sequence[str]]
    ) -> bool:
        negated, kind, role = atom
        if kind == "all":
            hit = True
        else:
            assert role is not None
            holders = [j for j, roles in enumerate(host_roles) if role in roles]
            if kind == "role":
                hit = i in holders
            elif kind == "first":
                hit = bool(holders) and holders[0] == i
            else:  # rest
                hit = i in holders[1:]
        return hit != negated


_ATOM_RE = re.compile(r"^(!?)\s*(?:(first|rest)\s*\(\s*([a-z][a-z-]*)\s*\)|(all)|([a-z][a-z-]*))$")


def parse_host_selector(text: str) -> HostSelector:
    """Parse a step's ``on``. Raises ValueError naming the accepted forms."""
    terms = []
    for alternative in text.split("|"):
        atoms = []
        for raw in alternative.split("&"):
            m = _ATOM_RE.match(raw.strip())
            if not m:
                raise ValueError(
                    f"'{text}' is not a host selector (expected all, <role>, first(<role>), "
                    "rest(<role>), combined with !, & and |)"
                )
            negated = m.group(1) == "!"
            if m.group(2):
                atoms.append((negated, m.group(2), m.group(3)))
            elif m.group(4):
                atoms.append((negated, "all", None))
            else:
                atoms.append((negated, "role", m.group(5)))
        terms.append(tuple(atoms))
    return HostSelector(text, tuple(terms))


def split_need(need: str) -> tuple[str, bool]:
    """``"etcd-start@all"`` → ("etcd-start", True); ``"swap-off"`` → ("swap-off", False)."""
    step, sep, scope = need.partition("@")
    if sep and scope != "all":
        raise ValueError(f"'{need}': the only scope is @all (every host running the step)")
    return step, bool(sep)


# --------------------------------------------------------------------------- templates


class PlanRenderError(Exception):
    """A template failed to render; the message names the template and line."""


def _shquote(value: object) -> str:
    return shlex.quote(str(value))


def _b64encode(value: object) -> str:
    return base64.b64encode(str(value).encode()).decode()


def _minor(version: object) -> str:
    """``"1.35.2"`` / ``"v1.35"`` → ``"1.35"``."""
    parts = str(version).lstrip("v").split(".")
    return ".".join(parts[:2])


def _fail(message: str) -> str:
    raise PlanRenderError(message)


def make_environment(templates_dir: Path | None) -> jinja2.Environment:
    """The Jinja2 environment every profile renders with: StrictUndefined, no autoescape."""
    loader = jinja2.FileSystemLoader(str(templates_dir)) if templates_dir else None
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell scripts and config files, not HTML
    )
    env.filters["shquote"] = _shquote
    env.filters["b64encode"] = _b64encode
    env.filters["minor"] = _minor
    env.globals["fail"] = _fail
    return env


def template_error_line(exc: BaseException, filename: str) -> int | None:
    """The template line a render error happened at, from Jinja's rewritten traceback."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int) and getattr(exc, "filename", filename) in (filename, None):
        return lineno
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


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
        doc = load_marked(path.read_text(encoding="utf-8"))
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
    errors = _check_steps(profile)
    if not errors:
        errors = _check_templates(profile)
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


def _check_steps(profile: Profile) -> list[str]:
    spec = profile.spec
    errors: list[str] = []
    ids: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        where = profile.source("steps", i).at(None)
        if step.id in ids:
            errors.append(f"{where}: step id '{step.id}' is already steps[{ids[step.id]}]")
        ids.setdefault(step.id, i)
    captures: dict[str, str] = {}
    for i, step in enumerate(spec.steps):
        on_where = profile.source("steps", i, "on").at(None)
        try:
            selector = parse_host_selector(step.on)
        except ValueError as exc:
            errors.append(f"{on_where}: steps[{i}].on: {exc}")
        else:
            for role in sorted(selector.roles - set(spec.roles)):
                errors.append(
                    f"{on_where}: steps[{i}].on: unknown role '{role}' "
                    f"(this profile's roles: {', '.join(spec.roles)})"
                )
        for j, need in enumerate(step.needs):
            need_where = profile.source("steps", i, "needs", j).at(None)
            try:
                target, _ = split_need(need)
            except ValueError as exc:
                errors.append(f"{need_where}: steps[{i}].needs[{j}]: {exc}")
                continue
            if target not in ids:
                errors.append(
                    f"{need_where}: steps[{i}].needs[{j}]: unknown step '{target}' "
                    f"(step {step.id} needs it)"
                )
            elif target == step.id:
                errors.append(f"{need_where}: steps[{i}].needs[{j}]: step {step.id} needs itself")
        for c in step.capture:
            if c.name in captures:
                errors.append(
                    f"{profile.source('steps', i).at(None)}: capture '{c.name}' is already "
                    f"captured by step {captures[c.name]}"
                )
            captures.setdefault(c.name, step.id)
    if not errors:
        errors += _check_cycles(profile)
    for name, option in spec.options.items():
        if option.choices and option.default not in option.choices:
            errors.append(
                f"{profile.path}: options.{name}: default {option.default!r} is not one of "
                f"{list(option.choices)}"
            )
    return errors


def _check_cycles(profile: Profile) -> list[str]:
    steps = profile.spec.steps
    graph = {s.id: [split_need(n)[0] for n in s.needs] for s in steps}
    index = {s.id: i for i, s in enumerate(steps)}
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for s in steps:
        if s.id not in state:
            cycle = visit(s.id)
            if cycle:
                first = cycle[0]
                where = profile.source("steps", index[first], "needs").at(None)
                return [f"{where}: steps form a cycle through needs: {' -> '.join(cycle)}"]
    return []


# --------------------------------------------------------------------------- template checks


def _undeclared(
    env: jinja2.Environment, text: str, known: Iterable[str]
) -> tuple[list[tuple[str, int]], jinja2.TemplateSyntaxError | None]:
    """Names a template reads that are neither in the context nor set in the template."""
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [], exc
    undeclared = jinja2.meta.find_undeclared_variables(ast) - set(known) - set(env.globals)
    out = []
    for node in ast.find_all(jinja2.nodes.Name):
        if node.ctx == "load" and node.name in undeclared:
            out.append((node.name, node.lineno))
            undeclared.discard(node.name)
    return out, None


def _check_text(
    env: jinja2.Environment, text: str, source: Source, what: str, known: frozenset[str]
) -> list[str]:
    names, syntax = _undeclared(env, text, known)
    if syntax is not None:
        return [f"{source.at(syntax.lineno)}: {what}: template syntax error: {syntax.message}"]
    return [
        f"{source.at(line)}: {what}: unknown template variable '{name}' "
        f"(known: {', '.join(sorted(known))})"
        for name, line in names
    ]


def _check_templates(profile: Profile) -> list[str]:
    env = profile.environment()
    errors: list[str] = []
    file_known = CONTEXT_NAMES - {"files_ok"}
    checked: set[str] = set()
    for i, step in enumerate(profile.spec.steps):
        errors += _check_text(
            env, step.title, profile.source("steps", i, "title"), f"steps[{i}].title", file_known
        )
        for key in ("run", "check"):
            text = getattr(step, key)
            if text is not None:
                errors += _check_text(
                    env, text, profile.source("steps", i, key), f"steps[{i}].{key}", CONTEXT_NAMES
                )
        if step.when is not None:
            errors += _check_text(
                env,
                "{{ " + step.when + " }}",
                profile.source("steps", i, "when"),
                f"steps[{i}].when",
                file_known,
            )
        for j, w in enumerate(step.wipes):
            errors += _check_text(
                env, w, profile.source("steps", i, "wipes", j), f"steps[{i}].wipes[{j}]", file_known
            )
        for j, f in enumerate(step.files):
            errors += _check_text(
                env,
                f.path,
                profile.source("steps", i, "files", j, "path"),
                f"steps[{i}].files[{j}].path",
                file_known,
            )
            tpath = profile.templates_dir / f.template
            if not tpath.is_file():
                where = profile.source("steps", i, "files", j, "template").at(None)
                errors.append(
                    f"{where}: steps[{i}].files[{j}].template: no template '{f.template}' "
                    f"in {profile.templates_dir}"
                )
                continue
            if f.template in checked:
                continue
            checked.add(f.template)
            errors += _check_template_file(env, profile, f.template, file_known)
    errors += _check_capture_names(profile)
    return errors


def _check_template_file(
    env: jinja2.Environment, profile: Profile, name: str, known: frozenset[str]
) -> list[str]:
    text = (profile.templates_dir / name).read_text(encoding="utf-8")
    errors = _check_text(env, text, profile.template_source(name), name, known)
    # Templates it includes or imports are checked with the same context.
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError:
        return errors
    for ref in jinja2.meta.find_referenced_templates(ast):
        if ref and (profile.templates_dir / ref).is_file():
            errors += _check_template_file(env, profile, ref, known)
    return errors


_CAPTURE_CALL_RE = re.compile(r"""capture\(\s*['"]([^'"]+)['"]\s*\)""")


def _check_capture_names(profile: Profile) -> list[str]:
    """Every capture('name') used in run/check/files names a capture some step makes."""
    known = profile.capture_names()
    errors = []

    def scan(text: str, source: Source) -> None:
        for lineno, line in enumerate(text.splitlines(), start=1):
            for m in _CAPTURE_CALL_RE.finditer(line):
                if m.group(1) not in known:
                    errors.append(
                        f"{source.at(lineno)}: capture '{m.group(1)}' is not captured by any "
                        f"step (captures: {', '.join(sorted(known)) or 'none'})"
                    )

    for i, step in enumerate(profile.spec.steps):
        for key in ("run", "check"):
            text = getattr(step, key)
            if text:
                scan(text, profile.source("steps", i, key))
        for f in step.files:
            tpath = profile.templates_dir / f.template
            if tpath.is_file():
                scan(tpath.read_text(encoding="utf-8"), profile.template_source(f.template))
    return errors
