"""The profile format: ``profile.yaml`` as pydantic models.

``ProfileMeta`` is the metadata part (title, versions, roles and what each
role needs, options); ``ProfileSpec`` adds the secrets and the steps. Loading
and the checks that span several fields are ``installer.profile``'s; the
format is documented in docs/PROFILES.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from installer.facts.system import KERNEL_MODULE_PROBES

ROLE_NAMES = ("control-plane", "etcd", "worker", "lb", "storage", "ceph-mon")

STEP_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
CAPTURE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SECRET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirements(_Strict):
    """What a host holding a role needs; preflight reads these."""

    cpus: int = 1
    memory_mb: int = 512
    ports: tuple[int, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    os: tuple[str, ...] = ()  # os-release ids, e.g. ubuntu, debian; empty = any
    # MiB of 2 MiB huge pages the role reserves on top of memory_mb: MemTotal must hold
    # both, unless the host already has that many reserved.
    hugepages_mib: int = Field(default=0, ge=0)
    # Kernel modules that must be loaded, built in or loadable (discovery probes only
    # KERNEL_MODULE_PROBES, so a requirement must be one of them).
    kernel_modules: tuple[str, ...] = ()

    @field_validator("hugepages_mib")
    @classmethod
    def _hugepages(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"{value} is not a whole number of 2 MiB huge pages")
        return value

    @field_validator("kernel_modules")
    @classmethod
    def _modules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.replace("-", "_") for name in value)
        unknown = [name for name in names if name not in KERNEL_MODULE_PROBES]
        if unknown:
            raise ValueError(
                f"discovery does not probe kernel module {', '.join(unknown)} "
                f"(it probes: {', '.join(KERNEL_MODULE_PROBES)}; add it to "
                "installer.facts.system.KERNEL_MODULE_PROBES)"
            )
        return names


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


class VersionFormat(_Strict):
    """The form one pinned version must have, the profile's default and any override."""

    pattern: str  # a regular expression the whole value must match
    example: str  # a value that matches, shown in the error
    means: str = ""  # what the value must be, shown in the error: "it must be <means>"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'{value}' is not a valid regular expression: {exc}") from None
        return value

    def problem(self, value: str) -> str | None:
        """Why ``value`` does not fit, or None when it does."""
        if re.fullmatch(self.pattern, value):
            return None
        must = self.means or f"of the form {self.pattern}"
        return f"'{value}' does not fit: it must be {must}, e.g. {self.example}"


class ProfileMeta(_Strict):
    name: str
    title: str
    description: str
    versions: dict[str, str]
    # key -> the form its value must have (checked on the default and on answers' overrides)
    version_formats: dict[str, VersionFormat] = Field(default_factory=dict)
    storage_backend: str  # none | ceph | openebs
    requires_vip: bool = True
    roles: dict[str, RoleRule]
    suggest: dict[str, str] = Field(default_factory=dict)  # role -> selector, for auto roles
    options: dict[str, OptionSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _version_formats(self) -> ProfileMeta:
        for key, fmt in self.version_formats.items():
            if key not in self.versions:
                raise ValueError(f"version_formats.{key}: the profile pins no version '{key}'")
            if (problem := fmt.problem(self.versions[key])) is not None:
                raise ValueError(f"the profile's own default versions.{key}: {problem}")
        return self

    def version(self, key: str, override: str | None = None) -> str | None:
        """The version pinned for ``key``: the profile's default, or the answers' override.

        An override of the wrong form that is the prefix of the default (``1.35`` where
        the profile pins ``1.35.9``) names the default: it is the pinned release.
        """
        default = self.versions.get(key)
        if override is None:
            return default
        fmt = self.version_formats.get(key)
        if (
            fmt is not None
            and default is not None
            and default.startswith(override + ".")
            and fmt.problem(override) is not None
        ):
            return default
        return override

    def effective_versions(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """Every pinned version, the answers' overrides applied (see ``version``)."""
        return {**self.versions, **{k: self.version(k, v) or v for k, v in overrides.items()}}

    def version_errors(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """key -> why an answers ``versions`` override does not have the form it needs."""
        out: dict[str, str] = {}
        for key, value in overrides.items():
            fmt = self.version_formats.get(key)
            pinned = self.version(key, value) or value
            if fmt is not None and (problem := fmt.problem(pinned)) is not None:
                out[key] = problem
        return out


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
    # What it produces expires (a join token, an uploaded key): once done longer ago than
    # this, it runs again before any task that reads its captures has to run. A template
    # is allowed ("{{ options.join_token_ttl }}s").
    fresh_for: int | str | None = None

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

    @field_validator("fresh_for")
    @classmethod
    def _fresh_for(cls, value: int | str | None) -> int | str | None:
        if value is not None and not (isinstance(value, str) and "{{" in value):
            parse_duration(value, what="fresh_for", zero=True)
        return value

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class ResultSpec(_Strict):
    """What the operator gets, told at the end of an install (templates, rendered per plan).

    ``storage_classes``: the StorageClasses the profile creates (an empty rendering is
    dropped); ``checks``: commands that show the cluster works, run where the kubeconfig is.
    """

    storage_classes: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


class ProfileSpec(ProfileMeta):
    """Everything in profile.yaml."""

    secrets: tuple[SecretSpec, ...] = ()
    steps: tuple[StepSpec, ...] = ()
    result: ResultSpec = ResultSpec()


def parse_duration(
    value: int | float | str, *, what: str = "a timeout", zero: bool = False
) -> float:
    """``600`` / ``"90s"`` / ``"10m"`` / ``"1h"`` → seconds; above 0 unless ``zero``."""
    if isinstance(value, int | float):
        n = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", value)
        if not m:
            raise ValueError(f'\'{value}\' is not a duration (e.g. 600, "90s", "10m", "1h")')
        n = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if n < 0 or (n == 0 and not zero):
        raise ValueError(f"{what} must be {'0 or more' if zero else 'positive'}")
    return n
