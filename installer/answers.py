"""answers.yaml: the user-facing contract, as a pydantic model.

Everything the wizard asks ends up in an ``Answers``; headless mode loads one
from a file. Loading reports every problem at once, each with file, line,
column and key (``answers.yaml:14:7: hosts[2].address: ...``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.problems import Problem, ProblemList
from installer.yamlmarks import MarkedDocument, YamlLoadError, format_path, load_marked

CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# A version goes into package names, URLs and commands: no room for shell syntax.
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_/~-]{0,63}$")
JUMP_RE = re.compile(
    r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@\s:]+)(?::(?P<port>\d{1,5}))?$"
)

# Keys that would put a secret in the file. Refused with an explanation.
SECRET_KEYS = {"password", "sudo_password", "passphrase", "token", "secret", "key_passphrase"}


def is_hostname(value: str) -> bool:
    if len(value) > 253:
        return False
    labels = value.rstrip(".").split(".")
    if not all(DNS_LABEL_RE.match(label) for label in labels):
        return False
    # "10.30.217.300" is a mistyped address, not a hostname: RFC 1123 says a
    # name whose last label is all digits is not a host name.
    return not labels[-1].isdigit()


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value.strip("[]")
    except ValueError:
        pass
    if is_hostname(value):
        return value
    raise ValueError(f"'{value}' is not an IPv4/IPv6 address or hostname")


def _check_env_name(value: str | None) -> str | None:
    if value is None:
        return None
    if not ENV_NAME_RE.match(value):
        raise ValueError(
            "must be the NAME of an environment variable that holds the password "
            "(upper-case letters, digits and '_', e.g. FMP_SSH_PASSWORD), not the password itself: "
            "answers.yaml is meant to be saved and shared, so a password in it would leak"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SshOverride(_Model):
    """Per-host SSH settings; any key left out falls back to the top-level ``ssh``."""

    user: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    identity_file: str | None = None
    password_env: str | None = Field(
        default=None, description="NAME of an env var holding the SSH password; never a password"
    )
    sudo_password_env: str | None = Field(
        default=None, description="NAME of an env var holding the sudo password"
    )
    jump_host: str | None = Field(default=None, description="user@host:port")
    known_hosts: str | None = None
    accept_new_host_keys: bool | None = None

    @field_validator("password_env", "sudo_password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _check_env_name(value)

    @field_validator("jump_host")
    @classmethod
    def _jump(cls, value: str | None) -> str | None:
        if value is None:
            return None
        m = JUMP_RE.match(value)
        if not m:
            raise ValueError(f"'{value}' is not of the form user@host:port")
        port = m.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is out of range 1-65535")
        _check_address(m.group("host").strip("[]"))
        return value


class SshSettings(SshOverride):
    """SSH defaults for every host."""

    user: str | None = Field(
        default=None, description="login user; default: ~/.ssh/config, then the local user"
    )
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="default: ~/.ssh/config, then 22"
    )
    known_hosts: str | None = "~/.ssh/known_hosts"
    accept_new_host_keys: bool | None = Field(
        default=False, description="trust an unknown host key on first use, like accept-new"
    )
    connect_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0


class Host(_Model):
    address: str
    name: str | None = None
    roles: list[str] = Field(default_factory=list)
    ssh: SshOverride | None = None
    storage_disk: str | None = Field(
        default=None, description="/dev/disk/by-id/... (stable) or /dev/sdX"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL_RE.match(value):
            raise ValueError(
                f"'{value}' is not a valid host name (RFC 1123: letters, digits and '-', "
                "at most 63 characters, not starting or ending with '-')"
            )
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        seen = set()
        for role in value:
            if role in seen:
                raise ValueError(f"role '{role}' is listed twice")
            seen.add(role)
        return value

    @field_validator("storage_disk")
    @classmethod
    def _disk(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/dev/"):
            raise ValueError(
                f"'{value}' is not a device path (expected /dev/disk/by-id/... or /dev/sdX)"
            )
        return value

    @property
    def label(self) -> str:
        return self.name or self.address


class Cluster(_Model):
    name: str
    domain: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CLUSTER_NAME_RE.match(value):
            raise ValueError(
                f"'{value}' is not a valid cluster name: use lowercase letters, digits and '-', "
                "at most 63 characters, starting and ending with a letter or digit"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not is_hostname(value):
            raise ValueError(f"'{value}' is not a valid DNS domain")
        return value


class Network(_Model):
    vip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = Field(
        default=None, description="the shared virtual IP (keepalived / MetalLB)"
    )
    api_port: Annotated[int, Field(ge=1, le=65535)] = 8443
    pod_subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
        "10.244.0.0/16"
    )
    service_subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
        "10.96.0.0/12"
    )
    host_subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = Field(
        default=None,
        description="the hosts' subnet, if known: lets validation check the VIP without discovery",
    )

    @field_validator("pod_subnet", "service_subnet", "host_subnet", mode="before")
    @classmethod
    def _strict_net(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"'{value}' is not a network in CIDR form: {exc}") from None
        return value


class Volume(_Model):
    name: str
    size_gb: Annotated[float, Field(gt=0, description="GiB (2^30 bytes)")]
    shared: bool | None = None
    replicas: Annotated[int, Field(ge=1, le=9)] | None = None


class Storage(_Model):
    features: list[str] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    wipe: list[str] = Field(
        default_factory=list,
        description="host:/dev/path for every disk the install may wipe (headless consent)",
    )

    @field_validator("wipe")
    @classmethod
    def _wipe(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, path = item.partition(":")
            if not sep or not host or not path.startswith("/dev/"):
                raise ValueError(f"'{item}' is not of the form host:/dev/path (e.g. kn3:/dev/sdb)")
        return value


def _version(value: str) -> str:
    if not VERSION_RE.match(value):
        raise ValueError(
            f"{value!r} is not a version: use letters, digits and . + _ / ~ - "
            "(e.g. 1.35, v1.35.7+rke2r1, 1.35/stable)"
        )
    return value


Version = Annotated[str, AfterValidator(_version)]


class Answers(_Model):
    """The whole install, as answered in the wizard or written in answers.yaml."""

    version: Literal[1] = 1
    cluster: Cluster
    profile: str
    ssh: SshSettings = Field(default_factory=SshSettings)
    hosts: list[Host] = Field(min_length=1)
    network: Network = Field(default_factory=Network)
    storage: Storage = Field(default_factory=Storage)
    versions: dict[str, Version] = Field(
        default_factory=dict, description="overrides of the profile's pinned versions"
    )
    options: dict[str, str | int | bool] = Field(
        default_factory=dict, description="profile options, e.g. {cni: flannel}; see the profile"
    )

    def host(self, label: str) -> Host | None:
        for h in self.hosts:
            if label in (h.name, h.address):
                return h
        return None

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def ssh_for(self, host: Host) -> SshSettings:
        """The effective SSH settings of one host: its overrides over the defaults."""
        if host.ssh is None:
            return self.ssh
        merged = self.ssh.model_dump()
        merged.update(host.ssh.model_dump(exclude_none=True))
        return SshSettings.model_validate(merged)

    def to_yaml_data(self) -> dict[str, Any]:
        """A plain mapping to save as answers.yaml: no defaults echoed, no secrets (there are none)."""
        return self.model_dump(mode="json", exclude_defaults=True, exclude_none=True) | {
            "version": 1
        }


# --------------------------------------------------------------------------- loading


def _pydantic_message(err: Any) -> str:
    msg: str = err["msg"]
    kind = err["type"]
    if kind == "extra_forbidden":
        key = err["loc"][-1] if err["loc"] else "?"
        if str(key) in SECRET_KEYS:
            return (
                f"'{key}' would put a secret in answers.yaml; put it in an environment variable "
                f"and give the variable's NAME instead (e.g. password_env: FMP_SSH_PASSWORD)"
            )
        return f"unknown key '{key}'"
    if kind == "missing":
        return "is required"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "literal_error" and err["loc"] == ("version",):
        return f"unsupported version {err['input']!r}: this fmp-install reads version 1"
    return msg


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # Pydantic inserts the union member's name ("IPv4Address") into locations.
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


def parse_answers(text: str, filename: str = "answers.yaml", *, semantic: bool = True) -> Answers:
    """Parse and validate answers text. Raises ``ProblemList`` with every error found."""
    try:
        doc = load_marked(text)
    except YamlLoadError as exc:
        line, col = (exc.mark.line, exc.mark.column) if exc.mark else (None, None)
        raise ProblemList([Problem(filename, line, col, "", exc.message)]) from None
    if not isinstance(doc.data, dict):
        raise ProblemList(
            [Problem(filename, 1, 1, "", "expected a mapping with cluster, profile, hosts, ...")]
        )
    try:
        answers = Answers.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            mark = doc.mark_for(loc)
            if err["type"] == "extra_forbidden":
                mark = doc.key_marks.get(loc, mark)
            problems.append(
                Problem(
                    filename,
                    mark.line if mark else None,
                    mark.column if mark else None,
                    format_path(loc),
                    _pydantic_message(err),
                )
            )
        raise ProblemList(
            sorted(_dedupe(problems), key=lambda p: (p.line or 0, p.column or 0))
        ) from None
    if semantic:
        from installer.answer_checks import check_answers

        problems = [
            p.located(filename, doc) for p in check_answers(answers) if p.severity == "error"
        ]
        if problems:
            raise ProblemList(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return answers


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for p in problems:
        key = (p.line, p.column, p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def read_answers_text(path: str | Path) -> str:
    """The text of an answers file, or a ``ProblemList`` saying why it cannot be read."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ProblemList([Problem(str(p), None, None, "", "file not found")]) from None
    except IsADirectoryError:
        raise ProblemList([Problem(str(p), None, None, "", "is a directory, not a file")]) from None
    except OSError as exc:
        raise ProblemList(
            [Problem(str(p), None, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemList(
            [Problem(str(p), None, None, "", f"not UTF-8 text (byte {exc.start})")]
        ) from None


def load_answers(path: str | Path, *, semantic: bool = True) -> Answers:
    """Read and validate an answers file. Raises ``ProblemList`` (never a traceback)."""
    return parse_answers(read_answers_text(path), str(path), semantic=semantic)


def marked_document(text: str) -> MarkedDocument | None:
    try:
        return load_marked(text)
    except YamlLoadError:
        return None
