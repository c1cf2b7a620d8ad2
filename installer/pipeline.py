"""The first half of every run: answers → hosts reached → facts → preflight.

``discover`` stops here; the headless install goes on to plan and run. Both
faces (wizard and headless) call the same functions, so they cannot differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from installer.answer_checks import check_environment
from installer.answers import (
    Answers,
    in_file_order,
    load_answers,
    marked_document,
    read_answers_text,
)
from installer.connections import Connections, Connector, ssh_connector
from installer.gather import FirstReached, Gathered, gather
from installer.hostfacts import HostFacts
from installer.preflight import PreflightReport, run_preflight
from installer.problems import ProblemList
from installer.profile import ProfileMeta, load_profile_meta
from installer.transport import Transport, TransportError

if TYPE_CHECKING:  # only plan_for_run's signature: `discover` never loads them
    from installer.plan_model import Plan
    from installer.redact import Redactor
    from installer.secrets import SecretStore

VIP_PROBE_TIMEOUT = 10.0


def load_for_run(path: str | Path, environ: Mapping[str, str]) -> Answers:
    """Load answers that a run will use: valid, and every named env var set."""
    answers = load_answers(path)
    missing = check_environment(answers, environ)
    if missing:
        doc = marked_document(read_answers_text(path))
        raise ProblemList(in_file_order(p.located(str(path), doc) for p in missing))
    return answers


@dataclass
class Checked:
    answers: Answers
    meta: ProfileMeta
    gathered: Gathered
    report: PreflightReport
    discovered_at: float


async def _ping_vip(answers: Answers, transport: Transport) -> bool | None:
    """Does anything answer the VIP already? Asked from a host, which shares its subnet.

    None when there is no VIP or the host cannot ping.
    """
    vip = answers.network.vip
    if vip is None:
        return None
    try:
        result = await transport.run(
            f"ping -c 1 -W 2 {vip} >/dev/null 2>&1", timeout=VIP_PROBE_TIMEOUT
        )
    except TransportError:
        return None
    # ping: 0 = a reply, 1 = no reply, anything else = could not ping at all.
    return {0: True, 1: False}.get(result.exit_status)


async def _probe_vip_when_reached(answers: Answers, first: FirstReached) -> bool | None:
    """The VIP probe from the first host reached, while discovery runs (a ping
    that gets no reply waits 2 s: that should not add 2 s to every run)."""
    reached = await first
    return None if reached is None else await _ping_vip(answers, reached[1])


async def discover_and_check(
    answers: Answers,
    conns: Connections,
    *,
    save_raw: Path | None = None,
    installed_before: bool = False,
) -> Checked:
    """Reach and discover every host, then run preflight.

    ``installed_before``: an earlier run of this cluster holds the VIP and the
    ports, so those are not held against it.
    """
    meta = load_profile_meta(answers.profile)
    started = time.time()
    if installed_before or answers.network.vip is None:
        gathered, vip = await gather(answers, conns, save_raw=save_raw), None
    else:
        first: FirstReached = asyncio.get_running_loop().create_future()
        probe = asyncio.ensure_future(_probe_vip_when_reached(answers, first))
        try:
            gathered = await gather(answers, conns, save_raw=save_raw, first_reached=first)
        except BaseException:
            probe.cancel()
            raise
        vip = await probe
    unreached = {
        label: (p.message, p.hint or "fix it and run again")
        for label, p in gathered.problems.items()
        if label not in gathered.facts
    }
    report = run_preflight(
        answers,
        meta,
        gathered.facts,
        vip_answers=vip,
        now=started,
        unreached=unreached,
        installed_before=installed_before,
        sudo_checked={
            label: None if p is None else (p.message, p.hint or "fix sudo and run again")
            for label, p in gathered.sudo.items()
        },
    )
    return Checked(answers, meta, gathered, report, started)


def plan_for_run(
    answers: Answers, facts: Mapping[str, HostFacts], state: Path, *, save: bool = True
) -> tuple[Plan, SecretStore, Redactor]:
    """Render the plan with this cluster's secrets, generating (and saving) missing ones.

    Both faces call this: the same secrets and input hashes, so a headless
    re-run resumes a wizard's install and the other way round.
    """
    from installer.plan import make_plan
    from installer.profile import load_profile
    from installer.secrets import cluster_secrets

    profile = load_profile(answers.profile)
    values, store, redactor = cluster_secrets(state, profile.spec.secrets, save=save)
    return make_plan(answers, profile, facts=facts, secrets=values), store, redactor


FACTS_FILE = "facts.json"
ANSWERS_HASH_FILE = "answers.sha256"


def answers_digest(answers_text: str) -> str:
    return hashlib.sha256(answers_text.encode("utf-8")).hexdigest()


def remember_facts(state: Path, answers_text: str, facts: Mapping[str, HostFacts]) -> None:
    """Keep the facts a run planned with, and which answers they were for."""
    from installer.factsio import save_facts

    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_facts(state / FACTS_FILE, list(facts.values()))
    (state / ANSWERS_HASH_FILE).write_text(answers_digest(answers_text) + "\n")


def remembered_facts(
    state: Path, answers: Answers, answers_text: str
) -> dict[str, HostFacts] | None:
    """The facts of the last run, if it was for exactly these answers."""
    from installer.errors import OperatorError
    from installer.factsio import load_facts
    from installer.plan import facts_by_label

    try:
        if (state / ANSWERS_HASH_FILE).read_text().strip() != answers_digest(answers_text):
            return None
        facts = facts_by_label(answers, load_facts(state / FACTS_FILE))
    except (OSError, OperatorError):
        return None
    return facts if len(facts) == len(answers.hosts) else None


def connections_for(
    answers: Answers, environ: Mapping[str, str], connector: Connector | None = None
) -> Connections:
    return Connections(
        [h.label for h in answers.hosts], connector or ssh_connector(answers, environ)
    )
