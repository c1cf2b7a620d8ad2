"""Profiles are data: ``profiles/<name>/profile.yaml`` plus Jinja2 templates.

This module loads and validates a profile. Adding a fourth profile means adding
a folder, not editing the engine.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from installer.paths import profiles_dir
from installer.yamlmarks import YamlLoadError, format_path, load_marked

ROLE_NAMES = ("control-plane", "etcd", "worker", "lb", "storage", "ceph-mon")


class ProfileError(Exception):
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


class ProfileMeta(_Strict):
    name: str
    title: str
    description: str
    versions: dict[str, str]
    storage_backend: str  # none | ceph | openebs
    requires_vip: bool = True
    roles: dict[str, RoleRule]
    suggest: dict[str, str] = Field(default_factory=dict)  # role -> selector, for auto roles


def available_profiles() -> list[str]:
    root = profiles_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "profile.yaml").is_file())


def _profile_file(name: str) -> Path:
    return profiles_dir() / name / "profile.yaml"


@cache
def load_profile_meta(name: str) -> ProfileMeta:
    """Load the metadata part of a profile (title, versions, roles, requirements)."""
    path = _profile_file(name)
    if not path.is_file():
        known = ", ".join(available_profiles()) or "none found"
        raise ProfileError(f"unknown profile '{name}' (known: {known})")
    try:
        doc = load_marked(path.read_text(encoding="utf-8"))
    except YamlLoadError as exc:
        line = exc.mark.line if exc.mark else 0
        raise ProfileError(f"{path}:{line}: {exc.message}") from None
    if not isinstance(doc.data, dict):
        raise ProfileError(f"{path}: expected a mapping at the top")
    meta_keys = set(ProfileMeta.model_fields)
    data = {k: v for k, v in doc.data.items() if k in meta_keys}
    try:
        meta = ProfileMeta.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            mark = doc.mark_for(loc)
            where = f"{path}:{mark.line}:{mark.column}" if mark else str(path)
            lines.append(f"{where}: {format_path(loc)}: {err['msg']}")
        raise ProfileError("\n".join(lines)) from None
    for role in meta.roles:
        if role not in ROLE_NAMES:
            mark = doc.mark_for(("roles", role))
            line = mark.line if mark else 0
            raise ProfileError(
                f"{path}:{line}: unknown role '{role}' (roles: {', '.join(ROLE_NAMES)})"
            )
    return meta
