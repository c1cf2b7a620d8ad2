"""The interactive ``fmp-install storage estimate``: questions on a terminal.

Modelled on ``kloudspot storage estimate`` (Kloudspot runbook): show each
host's volume groups and disk tree, ask which features to enable and how much
storage each volume gets (defaults from the catalogue; ``?`` shows help),
print available versus required and the verdict, then offer to write the
choices back into the answers file, keeping its comments.

All arithmetic is the engine's (``installer.storage``); this module only asks
and prints. Questions go through an ``Asker``, so tests can drive the real
questionary prompts with prompt_toolkit pipe input (``QuestionaryAsker(input=,
output=)``) or replace them outright.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from installer.answers import Answers, Storage
from installer.hostfacts import HostFacts
from installer.storage import (
    check_vg,
    estimate_for_answers,
    format_estimate,
    format_host_storage,
    resolve_storage_disks,
    stable_disk_ids,
)
from installer.storage_answers import update_answers_text
from installer.storage_disks import disk_candidates
from installer.storage_model import Backend, StorageEstimate, fmt
from installer.workloads import Catalogue, VolumeSpec, resolve_volumes

HELP_KEY = "?"


class Asker(Protocol):
    def confirm(self, message: str, default: bool, help_text: str = "") -> bool: ...

    def number(self, message: str, default: float, help_text: str = "") -> float: ...


def parse_yes_no(text: str, default: bool) -> bool | None:
    """'y'/'yes'/'n'/'no' (any case); '' is the default; anything else is None."""
    t = text.strip().lower()
    if not t:
        return default
    if t in ("y", "yes"):
        return True
    if t in ("n", "no"):
        return False
    return None


def parse_size(text: str) -> float | None:
    """A positive size in GiB ('10', '2.5', '10G', '10GiB'); None when not one."""
    t = text.strip().lower().removesuffix("gib").removesuffix("gb").removesuffix("g").strip()
    try:
        value = float(t)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value


def _wants_help(text: str) -> bool:
    # The size prompt starts filled with its default: "10?" asks for help too.
    return text.strip().endswith(HELP_KEY)


def _size_text(x: float) -> str:
    return f"{x:g}"


class QuestionaryAsker:
    """Asks with questionary. ``input``/``output`` go to prompt_toolkit (tests pass a pipe)."""

    def __init__(
        self,
        *,
        input: Any = None,  # prompt_toolkit's own keyword
        output: Any = None,
        write: Callable[[str], None] = print,
    ) -> None:
        self._kwargs: dict[str, Any] = {}
        if input is not None:
            self._kwargs["input"] = input
        if output is not None:
            self._kwargs["output"] = output
        self._write = write

    def _ask(
        self, message: str, default: str, instruction: str, check: Callable[[str], bool]
    ) -> str:
        import questionary

        def validate(text: str) -> bool | str:
            if _wants_help(text) or check(text):
                return True
            return f"not understood: {text!r} ({instruction})"

        question = questionary.text(
            message,
            default=default,
            instruction=instruction,
            validate=validate,
            **self._kwargs,
        )
        answer: str = question.unsafe_ask()
        return answer

    def confirm(self, message: str, default: bool, help_text: str = "") -> bool:
        hint = f"[{HELP_KEY} for help] ({'Y/n' if default else 'y/N'})"
        while True:
            text = self._ask(message, "", hint, lambda t: parse_yes_no(t, default) is not None)
            if _wants_help(text):
                self._write(help_text or "No help for this question.")
                continue
            value = parse_yes_no(text, default)
            assert value is not None  # the validator let only these through
            return value

    def number(self, message: str, default: float, help_text: str = "") -> float:
        hint = f"[{HELP_KEY} for help]"
        while True:
            text = self._ask(
                message, _size_text(default), hint, lambda t: parse_size(t) is not None
            )
            if _wants_help(text):
                self._write(help_text or "No help for this question.")
                continue
            value = parse_size(text)
            assert value is not None
            return value


@dataclass(frozen=True)
class PromptResult:
    features: list[str]
    sizes: dict[str, float]
    estimate: StorageEstimate
    written: bool


def _feature_help(catalogue: Catalogue, name: str) -> str:
    f = catalogue.features[name]
    lines = [f"{f.title}: {f.help}".rstrip()]
    for v in f.volumes:
        cv = catalogue.volumes[v]
        kind = f"shared, {cv.replicas} replicas" if cv.shared else "local on every node"
        lines.append(f"  - {cv.title}: {_size_text(cv.size_gb)} GiB by default ({kind})")
    if f.source:
        lines.append(f"  (from the {f.source})")
    return "\n".join(lines)


def _volume_help(v: VolumeSpec) -> str:
    kind = (
        f"Shared: one volume replicated {v.replicas} times in the cluster storage."
        if v.shared
        else "Unshared: a local volume on EVERY node, in its volume group."
    )
    return f"{v.title} ({v.name}). {kind} {v.help}".strip()


def run_storage_prompt(
    answers: Answers,
    facts: Mapping[str, HostFacts],
    catalogue: Catalogue,
    *,
    asker: Asker,
    backend: Backend,
    write: Callable[[str], None] = print,
    answers_text: str | None = None,
    answers_path: str = "answers.yaml",
    save: Callable[[str], None] | None = None,
    auto_write: bool = False,
    replicas: int = 3,
    min_size: int = 2,
    vg: str | None = None,
) -> PromptResult:
    """Ask, estimate, print, and offer to save. Returns what was chosen and the estimate.

    Raises ``UnknownVolumeGroup`` before asking anything when ``vg`` is on no host.
    """
    check_vg(answers, facts, vg)
    n = len(answers.hosts)
    write(
        f"Assuming a {n} node cluster installation (profile {answers.profile}, storage: {backend})"
    )
    write("")
    for host in answers.hosts:
        f = facts.get(host.label)
        cands = disk_candidates(f, host.label) if f is not None else ()
        for line in format_host_storage(host.label, f, cands):
            write(line)
        write("")

    if backend != "none":
        host_disks, _, _ = resolve_storage_disks(answers, facts)
        for hd in host_disks:
            cand = hd.match.candidate if hd.match else None
            if cand is not None:
                write(f"{hd.host}: storage disk {hd.value} -> {cand.path} ({cand.explain()})")
            elif hd.problem is not None:
                write(hd.problem.message)  # it names the host and the disk
                if hd.problem.fix:
                    write(f"    fix: {hd.problem.fix}")
        write("")

    write("What features do you want to use")
    features: list[str] = []
    for name, feature in catalogue.features.items():
        on = asker.confirm(
            f"Enable {feature.title}",
            default=name in answers.storage.features,
            help_text=_feature_help(catalogue, name),
        )
        if on:
            features.append(name)

    base = estimate_for_answers(
        answers, facts, [], backend=backend, replicas=replicas, min_size=min_size, vg=vg
    )
    vgs = sorted({node.vg for node in base.unshared.nodes if node.vg})
    if vgs:
        write(f"Using {', '.join(vgs)} for unshared volumes")
    tight = base.unshared.tightest_node
    write(
        f"Available: Shared {fmt(base.shared.available_gib)}, "
        f"Unshared {fmt(base.unshared.available_gib_tightest_node)}"
        + (f" (tightest node {tight})" if tight else "")
    )
    write("")

    # Keep the file's overrides and custom volumes; drop overrides of features now off
    # (here and, on write-back, in the file: else the next run warns about them).
    enabled_volumes = {v for f in features for v in catalogue.features[f].volumes}
    kept = [
        v
        for v in answers.storage.volumes
        if v.name in enabled_volumes or v.name not in catalogue.volumes
    ]
    stale = [
        v.name
        for v in answers.storage.volumes
        if v.name in catalogue.volumes and v.name not in enabled_volumes
    ]
    storage = Storage(features=features, volumes=kept, wipe=answers.storage.wipe)
    volumes, problems = resolve_volumes(catalogue, storage)
    for p in problems:
        write(str(p))

    sizes: dict[str, float] = {}
    if volumes:
        write("How much storage do you want to assign to each volume")
    chosen: list[VolumeSpec] = []
    for v in volumes:
        size = asker.number(f"{v.title} (GiB)", v.size_gib, _volume_help(v))
        sizes[v.name] = size
        chosen.append(replace(v, size_gib=size))

    est = estimate_for_answers(
        answers, facts, chosen, backend=backend, replicas=replicas, min_size=min_size, vg=vg
    )
    for line in format_estimate(est):
        write(line)

    written = False
    if save is not None and answers_text is not None:
        ids = stable_disk_ids(answers, facts)
        if auto_write or asker.confirm(
            f"Write these choices to {answers_path}?",
            default=True,
            help_text="Updates storage.features and the sizes in storage.volumes"
            + (", removes the sizes of " + ", ".join(stale) + " (feature off)" if stale else "")
            + (", and records stable disk ids for " + ", ".join(ids) if ids else "")
            + ". Comments and everything else in the file stay as they are.",
        ):
            defaults = {name: cv.size_gb for name, cv in catalogue.volumes.items()}
            new_text = update_answers_text(
                answers_text,
                features=features,
                sizes=sizes,
                defaults=defaults,
                disk_ids=ids,
                drop=stale,
            )
            save(new_text)
            written = True
            write(f"Wrote {answers_path}")
    return PromptResult(features, sizes, est, written)


__all__ = [
    "Asker",
    "PromptResult",
    "QuestionaryAsker",
    "parse_size",
    "parse_yes_no",
    "run_storage_prompt",
]
