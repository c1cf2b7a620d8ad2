"""Helpers shared by the profile tests (tests/test_<profile>_profile.py).

Synthetic discovery facts for an answers file, a profile's plan for an example
answers file, picking rendered files out of a plan, feeding files to a real
tool, the golden plan.txt comparison, and the obsolete names no plan may hold.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.answers import Answers, parse_answers
from installer.hostfacts import HostFacts, NetAddress, Nic, OsRelease
from installer.plan import make_plan
from installer.plan_model import FileSpec, Plan, Task
from installer.profile import load_profile
from installer.secrets import ensure_secrets


def host_interface() -> str:
    """A real non-loopback interface of this machine (keepalived -t checks the name exists)."""
    names = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    return "eth0" if "eth0" in names else (names[0] if names else "eth0")


def synthetic_facts(
    answers: Answers, nic: str = "ens160", prefixlen: int = 24
) -> dict[str, HostFacts]:
    """Facts as discovery would report them for every host of ``answers``: Ubuntu 24.04,
    amd64, one NIC carrying the host's address."""
    return {
        h.label: HostFacts(
            address=h.address,
            hostname=h.name,
            arch="x86_64",
            os=OsRelease(id="ubuntu", version_id="24.04", version_codename="noble"),
            nics=(Nic(nic, addresses=(NetAddress("inet", h.address, prefixlen),)),),
            default_interface=nic,
        )
        for h in answers.hosts
    }


def files_at(plans: Iterable[Plan], suffix: str) -> list[tuple[Task, FileSpec]]:
    """(task, file) for every rendered file whose path ends with ``suffix``."""
    return [(t, f) for p in plans for t in p.tasks for f in t.files if f.path.endswith(suffix)]


def distinct_files(plans: Iterable[Plan], suffix: str) -> dict[str, FileSpec]:
    """``host:path`` -> file, one entry per distinct content (the same file in two plans once)."""
    out: dict[str, FileSpec] = {}
    seen: set[tuple[str, str, str]] = set()
    for t, f in files_at(plans, suffix):
        key = (t.host, f.path, f.content)
        if key in seen:
            continue
        seen.add(key)
        name = f"{t.host}:{f.path}"
        n = 1
        while name in out:
            n += 1
            name = f"{t.host}:{f.path}#{n}"
        out[name] = f
    return out


def run_tool(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a real tool, capturing its output as text (never raises on a non-zero exit)."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
        timeout=120,
    )


def check_golden(path: Path, text: str) -> None:
    """Compare ``text`` with the golden file; FMP_UPDATE_GOLDEN=1 (or a missing file) rewrites it."""
    update = os.environ.get("FMP_UPDATE_GOLDEN") == "1"
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not update:
            pytest.fail(f"{path} was missing and has been written; check it in")
    assert text == path.read_text(), (
        f"{path.name} changed; if intended, regenerate with FMP_UPDATE_GOLDEN=1 and review the diff"
    )


# --------------------------------------------------------------------------- plans of a profile

# Names of what the 2019 runbooks used and no install may render any more.
OBSOLETE_NAMES = (
    "apt.kubernetes.io",
    "packages.cloud.google.com",
    "kubeadm.k8s.io/v1beta1",
    # Old beta API versions, whatever their group (kubeadm.k8s.io/v1beta2 and v1beta3,
    # flowcontrol.apiserver.k8s.io/v1beta3, ...): only CURRENT_BETA_APIS may name them.
    "v1beta2",
    "v1beta3",
    "kubernetes.io/rbd",
    "ceph-deploy",
    "heartbeat",
    "docker-ce",
    "cstor",  # removed in OpenEBS 4.0
    "openebs.github.io/charts",  # the archived pre-4.0 chart repository
)

# group/version strings that hold "v1beta2" or "v1beta3" and are the current API of their
# group, so a plan may render them. Each needs its reason:
CURRENT_BETA_APIS = (
    # OpenEBS 4.x replicated storage: DiskPool is served as openebs.io/v1beta3, the newest
    # version of its CRD (test_diskpools_match_the_crd reads it from the chart's CRD).
    "openebs.io/v1beta3",
)


def obsolete_names(plans: Iterable[Plan], *, allow: Iterable[str] = ()) -> list[str]:
    """``task: word`` for every obsolete name in a title, command, check, file or path.

    ``allow``: names a caller may render (``docker-ce`` for the RKE1 legacy flavour).
    """
    words = [w for w in OBSOLETE_NAMES if w not in set(allow)]
    found = []
    for plan in plans:
        for t in plan.tasks:
            texts = [t.title, t.run, t.check or "", *(f.content + f.path for f in t.files)]
            lowered = [text.lower() for text in texts]
            for api in CURRENT_BETA_APIS:
                lowered = [text.replace(api, "") for text in lowered]
            for word in words:
                if any(word in text for text in lowered):
                    found.append(f"{t.id} contains '{word}'")
    return found


def minor_of(version: str) -> str:
    """``"1.35.9"`` -> ``"1.35"``: what kubernetes-validate says it validated against."""
    return ".".join(version.removeprefix("v").split(".")[:2])


def read_doc(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def answers_from(doc: Mapping[str, Any]) -> Answers:
    return parse_answers(yaml.safe_dump(dict(doc), sort_keys=False), semantic=False)


def answers_file(path: Path) -> Answers:
    return parse_answers(path.read_text(), semantic=False)


def generated_secrets(profile: str) -> dict[str, str]:
    values, _ = ensure_secrets(load_profile(profile).spec.secrets)
    return values


def profile_plan(
    profile: str,
    answers: Answers,
    secrets: Mapping[str, str],
    *,
    options: Mapping[str, Any] | None = None,
    facts: Mapping[str, HostFacts] | None = None,
    nic: str = "ens160",
) -> Plan:
    """``profile`` rendered for ``answers`` on synthetic facts (unless ``facts`` are given)."""
    return make_plan(
        answers,
        load_profile(profile),
        facts=facts if facts is not None else synthetic_facts(answers, nic),
        secrets=secrets,
        options=options,
    )
