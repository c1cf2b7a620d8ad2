"""answers.yaml: the user-facing contract, as a pydantic model.

Everything the wizard asks ends up in an ``Answers``; headless mode loads one
from a file. Loading reports every problem at once, each with file, line,
column and key (``answers.yaml:14:7: hosts[2].address: ...``).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

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


def _kind(value: Any) -> str:
    """What a YAML value is, for a message: 'a list', 'a mapping', 'null'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip_address(value: Any) -> Any:
    # One message for a bad address, not one per member of IPv4Address | IPv6Address.
    if value is None or isinstance(value, IPAddress):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv4 or IPv6 address, got {_kind(value)}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 or IPv6 address") from None


def _ip_network(value: Any) -> Any:
    if isinstance(value, IPNetwork):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"expected a network in CIDR form (e.g. 10.244.0.0/16), got {_kind(value)}"
        )
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a network in CIDR form: {exc}") from None


def _option_value(value: Any) -> Any:
    # One message for a bad option, not one per member of str | int | bool.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str | int):  # bool is an int
        raise ValueError(f"expected a string, whole number or boolean, got {_kind(value)}")
    return value


OptionValue = Annotated[str | int | bool, BeforeValidator(_option_value)]


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
        # serial:<SERIAL> names a disk by lsblk's SERIAL (installer/storage_disks.py).
        serial = value is not None and value.startswith("serial:") and value[7:].strip()
        if value is not None and not value.startswith("/dev/") and not serial:
            raise ValueError(
                f"'{value}' is not a device path (expected /dev/disk/by-id/..., /dev/sdX "
                "or serial:<SERIAL>)"
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
    vip: IPAddress | None = Field(
        default=None, description="the shared virtual IP (keepalived / MetalLB)"
    )
    api_port: Annotated[int, Field(ge=1, le=65535)] = 8443
    pod_subnet: IPNetwork = ipaddress.IPv4Network("10.244.0.0/16")
    service_subnet: IPNetwork = ipaddress.IPv4Network("10.96.0.0/12")
    host_subnet: IPNetwork | None = Field(
        default=None,
        description="the hosts' subnet, if known: lets validation check the VIP without discovery",
    )

    @field_validator("vip", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        return _ip_address(value)

    @field_validator("pod_subnet", "service_subnet", "host_subnet", mode="before")
    @classmethod
    def _strict_net(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name == "host_subnet":
            return None
        return _ip_network(value)


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
        description="host:/dev/path (or host:serial:SERIAL) for every disk the install may "
        "wipe (headless consent)",
    )

    @field_validator("wipe")
    @classmethod
    def _wipe(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, disk = item.partition(":")
            # serial:<SERIAL> as in Host.storage_disk (installer/storage_disks.py)
            serial = disk.startswith("serial:") and disk[7:].strip()
            if not sep or not host or not (disk.startswith("/dev/") or serial):
                raise ValueError(
                    f"'{item}' is not of the form host:/dev/path or host:serial:SERIAL "
                    "(e.g. kn3:/dev/sdb, kn3:serial:S3Z8NB0K123456A)"
                )
        return value


def _version(value: str) -> str:
    if not VERSION_RE.match(value):
        raise ValueError(
            f"{value!r} is not a version: use letters, digits and . + _ / ~ - "
            "(e.g. 1.35, v1.35.7+rke2r1, 1.35/stable)"
        )
    return value


Version = Annotated[str, AfterValidator(_version)]


def find_host(hosts: Iterable[Host], label: str) -> Host | None:
    """The host named or addressed ``label``."""
    for h in hosts:
        if label in (h.name, h.address):
            return h
    return None


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
    options: dict[str, OptionValue] = Field(
        default_factory=dict, description="profile options, e.g. {cni: flannel}; see the profile"
    )

    def host(self, label: str) -> Host | None:
        return find_host(self.hosts, label)

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


def _has_step(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _clean_loc(loc: Sequence[Any], data: Any, *, missing: bool) -> tuple[str | int, ...]:
    """The path in the file of a pydantic error location.

    Pydantic puts the name of a union's member in locations ("IPv4Address",
    "str"): a step that is not a key or index of the data there is such a name,
    except the last step of a 'missing' error, the key that is not there.
    """
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if _has_step(node, part):
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            continue
        out.append(part)
    return tuple(out)


@dataclass(frozen=True)
class Sections:
    """The parts of an answers file whose shape is valid: what the meaning checks read.

    From an ``Answers`` every part is there. From a file with shape errors, a
    part with an error is None and ``hosts`` holds only the hosts without one,
    by their index in the file; a check that needs a missing part is skipped,
    so that the meaning checks never restate a shape error in other words.
    """

    profile: str | None
    hosts: dict[int, Host]
    all_hosts: bool  # ``hosts`` holds every host of the file
    network: Network | None
    storage: Storage | None
    versions: dict[str, str] | None
    options: dict[str, str | int | bool] | None

    @classmethod
    def of(cls, answers: Answers) -> Sections:
        return cls(
            answers.profile,
            dict(enumerate(answers.hosts)),
            True,
            answers.network,
            answers.storage,
            answers.versions,
            answers.options,
        )

    @classmethod
    def salvage(cls, data: dict[str, Any], error_locs: Sequence[tuple[str | int, ...]]) -> Sections:
        """The valid parts of ``data``, which failed validation at ``error_locs``."""
        bad = {loc[0] for loc in error_locs if loc}
        # The defaults, then each part validated alone (validate_assignment).
        unchecked: dict[str, Any] = {}
        partial = Answers.model_construct(**unchecked)
        for name in Answers.model_fields:
            if name in data and name not in bad:
                try:
                    setattr(partial, name, data[name])
                except ValidationError:
                    bad.add(name)
        valid = {n: v for n, v in vars(partial).items() if n not in bad}
        hosts: dict[int, Host] = dict(enumerate(valid.get("hosts", [])))
        raw_hosts = data.get("hosts")
        if "hosts" in bad and isinstance(raw_hosts, list) and ("hosts",) not in error_locs:
            bad_hosts = {loc[1] for loc in error_locs if len(loc) > 1 and loc[0] == "hosts"}
            for i, raw in enumerate(raw_hosts):
                if i not in bad_hosts:
                    try:
                        hosts[i] = Host.model_validate(raw)
                    except ValidationError:
                        continue
        return cls(
            valid.get("profile"),
            hosts,
            "hosts" in valid,
            valid.get("network"),
            valid.get("storage"),
            valid.get("versions"),
            valid.get("options"),
        )


def in_file_order(problems: Iterable[Problem]) -> list[Problem]:
    """Problems by line and column; those without a place (the file itself) first."""
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def parse_answers(text: str, filename: str = "answers.yaml", *, semantic: bool = True) -> Answers:
    """Parse and validate answers text. Raises ``ProblemList`` with every error found.

    The meaning checks run on every part whose shape is valid, so that a wrong
    port does not hide a duplicate address.
    """
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
        locs = []
        for err in exc.errors():
            loc = _clean_loc(err["loc"], doc.data, missing=err["type"] == "missing")
            locs.append(loc)
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
        if semantic:
            problems += _meaning_errors(Sections.salvage(doc.data, locs), filename, doc)
        raise ProblemList(in_file_order(_dedupe(problems))) from None
    if semantic:
        problems = _meaning_errors(Sections.of(answers), filename, doc)
        if problems:
            raise ProblemList(in_file_order(problems))
    return answers


def _meaning_errors(sections: Sections, filename: str, doc: MarkedDocument) -> list[Problem]:
    from installer.answer_checks import check_sections

    return [p.located(filename, doc) for p in check_sections(sections) if p.severity == "error"]


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
