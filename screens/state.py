"""What the wizard knows so far: one Answers being edited, plus what discovery learnt.

The App owns one ``WizardState``; every screen reads and edits it, so going
back and forth never loses input. Secrets typed in the wizard (an SSH or sudo
password) live only in ``secret_env``, under the env var NAME that answers.yaml
records: the file stays free of secrets and replays headless once the operator
exports that variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from installer.answers import Answers, Cluster, Host, SshSettings
from installer.hostfacts import HostFacts
from installer.profile import ProfileError, ProfileMeta, available_profiles, load_profile_meta

DiscoveryState = Literal["new", "waiting", "connecting", "ok", "failed", "rejected"]

SSH_PASSWORD_ENV = "FMP_SSH_PASSWORD"  # noqa: S105 (a variable name, not a password)
SUDO_PASSWORD_ENV = "FMP_SUDO_PASSWORD"  # noqa: S105


def host_secret_var(base: str, label: str) -> str:
    """The env var holding one host's own password: ``FMP_SSH_PASSWORD_KN3``."""
    return f"{base}_{re.sub(r'[^A-Z0-9]+', '_', label.upper()).strip('_')}"


@dataclass
class HostStatus:
    """Discovery's outcome for one host, in words an operator can act on."""

    state: DiscoveryState = "new"
    message: str = ""
    hint: str | None = None
    kind: str | None = None  # FailureKind value when it failed


def empty_answers(profile: str | None = None) -> Answers:
    """Answers with no hosts yet: only the wizard holds such a draft.

    ``Answers`` needs at least one host when validated; the draft is built
    unvalidated and becomes a full Answers once hosts are added.
    """
    profiles = available_profiles()
    chosen = profile or (profiles[0] if profiles else "kubeadm-etcd")
    return Answers.model_construct(
        cluster=Cluster(name="fmp"),
        profile=chosen,
        ssh=SshSettings(),
        hosts=[],
    )


@dataclass
class WizardState:
    answers: Answers = field(default_factory=empty_answers)
    facts: dict[str, HostFacts] = field(default_factory=dict)
    discovery: dict[str, HostStatus] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)
    answers_path: str | None = None  # where answers were loaded from / saved to
    profile_chosen: bool = False  # the operator picked it (vs. the best-fit default)
    roles_edited: bool = False  # the operator changed the suggested roles
    disks_chosen: set[str] = field(default_factory=set)  # hosts whose disk was picked by hand
    facts_version: int = 0  # bumped after each discovery: derived views recompute

    # ----------------------------------------------------------------- answers edits

    def set_hosts(self, hosts: list[Host]) -> None:
        """Replace the host list (each Host is already validated)."""
        self.answers = self.answers.model_copy(update={"hosts": list(hosts)})
        labels = {h.label for h in hosts}
        self.discovery = {k: v for k, v in self.discovery.items() if k in labels}
        self.facts = {k: v for k, v in self.facts.items() if k in labels}

    def replace_host(self, index: int, host: Host) -> None:
        hosts = list(self.answers.hosts)
        old = hosts[index]
        hosts[index] = host
        self.answers = self.answers.model_copy(update={"hosts": hosts})
        if old.label != host.label:
            if old.label in self.discovery:
                self.discovery[host.label] = self.discovery.pop(old.label)
            if old.label in self.facts:
                self.facts[host.label] = self.facts.pop(old.label)

    def set_profile(self, name: str) -> None:
        if name != self.answers.profile:
            # Versions and roles belong to a profile: drop those of the old one.
            self.answers = self.answers.model_copy(
                update={
                    "profile": name,
                    "versions": {},
                    "hosts": [h.model_copy(update={"roles": []}) for h in self.answers.hosts],
                }
            )
            self.roles_edited = False

    # ----------------------------------------------------------------- lookups

    @property
    def meta(self) -> ProfileMeta | None:
        try:
            return load_profile_meta(self.answers.profile)
        except ProfileError:
            return None

    def status(self, label: str) -> HostStatus:
        return self.discovery.setdefault(label, HostStatus())

    def all_discovered(self) -> bool:
        hosts = self.answers.hosts
        return bool(hosts) and all(h.label in self.facts for h in hosts)

    def set_secret(self, var: str, value: str) -> str | None:
        """Hold a typed password under ``var``; returns the env var answers.yaml names.

        An empty value forgets the typed one; the name stays recorded only when the
        process environment still provides it.
        """
        if value:
            self.secret_env[var] = value
        else:
            self.secret_env.pop(var, None)
        return var if value or var in os.environ else None

    def forget_discovery(self, label: str) -> None:
        """The way to reach a host changed: what discovery learnt must be learnt again."""
        self.facts.pop(label, None)
        self.discovery.pop(label, None)
        self.facts_version += 1

    def environ(self) -> Mapping[str, str]:
        """The environment the engine sees: the process's, plus passwords typed here."""
        return {**os.environ, **self.secret_env}

    def wipes(self) -> list[tuple[str, str]]:
        """(host, disk) for every disk the answers consent to wipe."""
        out = []
        for item in self.answers.storage.wipe:
            host, _, disk = item.partition(":")
            out.append((host, disk))
        return out

    def consent_to_wipe(self, disks: list[tuple[str, str]]) -> None:
        """Record the operator's consent in the answers (so that a saved file replays)."""
        wipe = list(self.answers.storage.wipe)
        for host, disk in disks:
            if f"{host}:{disk}" not in wipe:
                wipe.append(f"{host}:{disk}")
        self.answers.storage.wipe = wipe
