"""Planning: answers + facts + profile + secrets → a Plan (pure, deterministic).

``make_plan`` renders every step of the profile for every host its ``on``
selector picks, links tasks by ``needs``, orders them topologically (profile
order, then answers order, among the ready ones) and gives each task an input
hash over everything rendered into it plus the hashes of the tasks it needs,
so that a change anywhere re-runs the task and everything after it.

Values only known at run time (a join token) are ``capture('name')``
placeholders; a task may only use a capture made by a task it (transitively)
needs, which the planner checks.

``plan_text`` and ``plan_json`` format a plan for people and for tools, with
every secret masked.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import jinja2

from installer.answers import Answers
from installer.errors import OperatorError
from installer.hostfacts import HostFacts
from installer.plan_model import (
    CaptureSpec,
    FileSpec,
    Plan,
    PlanHost,
    PlanResult,
    Task,
    capture_placeholder,
)
from installer.profile import (
    Profile,
    Source,
    StepSpec,
    option_errors,
    parse_duration,
    parse_host_selector,
    resolve_options,
    split_need,
)
from installer.redact import Redactor
from installer.secrets import missing_secrets, template_secrets
from installer.storage_disks import SERIAL_PREFIX, device_path, disk_candidates, resolve_disk
from installer.templating import PlanRenderError, template_error_line

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class PlanError(OperatorError):
    """The plan cannot be made; the message says where (host, step, template line) and why."""


@dataclass(frozen=True)
class HostView:
    """A host as templates see it (``host``, ``hosts[i]``, ``roles['etcd'][0]``)."""

    label: str  # name, or address when unnamed: task ids and output folders use it
    name: str  # the node name (answers name, else the discovered hostname, else the label)
    address: str
    fqdn: str | None  # name.domain when cluster.domain is set
    roles: tuple[str, ...]
    index: int  # position in answers.hosts
    storage_disk: str | None = None  # as the answers name it: a /dev path or serial:<SERIAL>
    interface: str | None = None  # the NIC carrying ``address`` (from facts)
    prefixlen: int | None = None  # of ``address`` on that NIC (from facts)
    arch: str | None = None  # amd64 / arm64 (from facts)
    os_id: str | None = None
    os_codename: str | None = None
    facts: HostFacts | None = field(default=None, compare=False, repr=False)

    def has(self, role: str) -> bool:
        return role in self.roles

    @cached_property
    def storage_device(self) -> str | None:
        """The /dev path for commands on ``storage_disk``: a ``serial:`` resolved from the
        facts, the by-id link when they know one (the module's ``storage_device``)."""
        return storage_device(self.label, self.storage_disk, self.facts)


def facts_by_label(answers: Answers, facts: Sequence[HostFacts]) -> dict[str, HostFacts]:
    """Match discovered facts to the answers' hosts by address, then by hostname."""
    out: dict[str, HostFacts] = {}
    for host in answers.hosts:
        for f in facts:
            if f.address == host.address or (host.name and f.hostname == host.name):
                out[host.label] = f
                break
    return out


def _nic_for(address: str, facts: HostFacts) -> tuple[str | None, int | None]:
    for nic in facts.nics or ():
        for a in nic.addresses:
            if a.address == address:
                return nic.name, a.prefixlen
    return facts.default_interface, None


def storage_device(label: str, value: str | None, facts: HostFacts | None) -> str | None:
    """The /dev path to run commands on for the disk an answers ``storage_disk`` names.

    ``value`` itself when it is a /dev/disk/by-id/ link; else, when the facts know the
    disk, its by-id link (the one udev makes for its WWN, else its best) or, with none,
    its kernel path (``installer.storage_disks.device_path``); else ``value``, a /dev path
    the facts do not know (preflight reports a missing disk). A ``serial:<SERIAL>`` is no
    path: without facts that find its disk, a PlanError says so.
    """
    if value is None or value.startswith("/dev/disk/by-id/"):
        return value
    if facts is None:
        why = "there are no discovery facts for this host"
    elif facts.disks is None:
        why = "the discovery facts do not list this host's disks"
    else:
        match = resolve_disk(disk_candidates(facts, label), value)
        if match.candidate is not None:
            return device_path(match.candidate)
        why = match.error or f"the discovery facts know no disk {value}"
    if not value.startswith(SERIAL_PREFIX):
        return value
    raise PlanError(
        f"{label}: storage_disk {value} names a disk by its serial, which only discovery "
        f"facts turn into a device path, but {why}; plan with facts from a fresh discovery "
        "(fmp-install plan discovers the hosts, or --facts FILE from "
        "`fmp-install discover --save-facts FILE`), or set storage_disk to the disk's "
        "/dev/disk/by-id/ path"
    )


def _disk_names(host: HostView, disk: str) -> tuple[str, ...]:
    """Every name the facts know for the disk ``disk`` (a wiped disk, as a step names it)
    of ``host``: its /dev paths and serial:<SERIAL> (``DiskCandidate.aliases``)."""
    if host.facts is None or host.facts.disks is None:
        return (disk,)
    cand = resolve_disk(disk_candidates(host.facts, host.label), disk).candidate
    return tuple(sorted({disk, *cand.aliases()})) if cand is not None else (disk,)


def host_views(answers: Answers, facts: Mapping[str, HostFacts] | None = None) -> list[HostView]:
    views = []
    domain = answers.cluster.domain
    for i, h in enumerate(answers.hosts):
        f = (facts or {}).get(h.label)
        name = h.name or (f.hostname if f and f.hostname else h.label)
        iface, prefix = _nic_for(h.address, f) if f else (None, None)
        views.append(
            HostView(
                label=h.label,
                name=name,
                address=h.address,
                fqdn=f"{name}.{domain}" if domain else None,
                roles=tuple(h.roles),
                index=i,
                storage_disk=h.storage_disk,
                interface=iface,
                prefixlen=prefix,
                arch=_ARCH.get(f.arch or "") if f else None,
                os_id=f.os.id if f and f.os else None,
                os_codename=f.os.version_codename if f and f.os else None,
                facts=f,
            )
        )
    return views


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _options(profile: Profile, given: Mapping[str, Any] | None) -> dict[str, Any]:
    errors = option_errors(profile.spec, given or {})
    if errors:
        raise PlanError(next(iter(errors.values())))
    return resolve_options(profile.spec, given or {})


def base_context(
    answers: Answers,
    profile: Profile,
    hosts: Sequence[HostView],
    secrets: Mapping[str, str],
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    net = answers.network
    return {
        "cluster": {"name": answers.cluster.name, "domain": answers.cluster.domain},
        "profile": {"name": profile.spec.name, "title": profile.spec.title},
        "versions": profile.spec.effective_versions(answers.versions),
        "options": _options(profile, options),
        "network": {
            "vip": _str(net.vip),
            "api_port": net.api_port,
            "pod_subnet": str(net.pod_subnet),
            "service_subnet": str(net.service_subnet),
            "host_subnet": _str(net.host_subnet),
            "service_dns_ip": str(ipaddress.ip_network(str(net.service_subnet))[10]),
        },
        "storage": answers.storage.model_dump(mode="json"),
        "ssh": {"user": answers.ssh.user or "root"},
        "hosts": list(hosts),
        "roles": {role: [h for h in hosts if role in h.roles] for role in profile.spec.roles},
        "secrets": template_secrets(profile.spec.secrets, secrets),
        "capture": capture_placeholder,
    }


# --------------------------------------------------------------------------- rendering


class _Renderer:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.env = profile.environment()
        self._inline: dict[str, jinja2.Template] = {}

    def _fail(
        self, exc: Exception, source: Source, what: str, task: str, filename: str
    ) -> PlanError:
        line = template_error_line(exc, filename)
        msg = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        return PlanError(f"{source.at(line)}: {what} (task {task}): {msg}")

    def text(self, text: str, ctx: Mapping[str, Any], source: Source, what: str, task: str) -> str:
        try:
            tmpl = self._inline.get(text)
            if tmpl is None:
                tmpl = self._inline[text] = self.env.from_string(text)
            return tmpl.render(ctx)
        except (jinja2.TemplateError, PlanRenderError, PlanError) as exc:
            raise self._fail(exc, source, what, task, "<template>") from None

    def file(self, name: str, ctx: Mapping[str, Any], task: str) -> str:
        source = self.profile.template_source(name)
        try:
            return self.env.get_template(name).render(ctx)
        except (jinja2.TemplateError, PlanRenderError, PlanError) as exc:
            raise self._fail(exc, source, name, task, source.file) from None

    def when(self, expr: str, ctx: Mapping[str, Any], source: Source, task: str) -> bool:
        try:
            return bool(self.env.compile_expression(expr, undefined_to_none=False)(ctx))
        except (jinja2.TemplateError, PlanRenderError, PlanError) as exc:
            raise self._fail(exc, source, "when", task, "<template>") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def files_ok_command(files: Sequence[FileSpec]) -> str:
    """A shell test that succeeds when every file is on the host with the planned content."""
    if not files:
        return "true"
    lines = "".join(f"{_sha256(f.content)}  {f.path}\\n" for f in files)
    return f"printf '{lines}' | sha256sum --check --status 2>/dev/null"


@dataclass
class _Draft:
    task: Task
    step_index: int
    host_index: int
    need_specs: tuple[str, ...]


def make_plan(
    answers: Answers,
    profile: Profile,
    *,
    facts: Mapping[str, HostFacts] | None = None,
    secrets: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Plan:
    """Render ``profile`` for ``answers``. Pure. Raises PlanError naming host, step and line."""
    values = dict(secrets or {})
    missing = missing_secrets(profile.spec.secrets, values)
    if missing:
        raise PlanError(
            f"secrets not generated yet: {', '.join(missing)} "
            "(installer.secrets.ensure_secrets makes them)"
        )
    bad_versions = profile.spec.version_errors(answers.versions)
    if bad_versions:
        raise PlanError("; ".join(f"versions.{k}: {m}" for k, m in bad_versions.items()))
    hosts = host_views(answers, facts)
    ctx0 = base_context(answers, profile, hosts, values, {**answers.options, **(options or {})})
    renderer = _Renderer(profile)
    host_roles = [h.roles for h in hosts]

    drafts: list[_Draft] = []
    for si, step in enumerate(profile.spec.steps):
        selector = parse_host_selector(step.on)
        for hi in selector.select(host_roles):
            host = hosts[hi]
            task_id = f"{host.label}:{step.id}"
            ctx = {**ctx0, "host": host, "step": {"id": step.id, "title": step.title}}
            if step.when is not None and not renderer.when(
                step.when, ctx, profile.source("steps", si, "when"), task_id
            ):
                continue
            drafts.append(_render_task(renderer, profile, si, step, host, ctx, task_id))
    tasks = _link(drafts, profile)
    _check_captures(tasks, profile)
    return Plan(
        cluster=answers.cluster.name,
        profile=profile.name,
        hosts=tuple(PlanHost(h.label, h.address, h.roles) for h in hosts),
        tasks=tasks,
        result=_render_result(renderer, profile, ctx0),
    )


def _render_result(renderer: _Renderer, profile: Profile, ctx: dict[str, Any]) -> PlanResult:
    spec = profile.spec.result

    def each(key: str, items: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for i, item in enumerate(items):
            text = renderer.text(item, ctx, profile.source("result", key, i), key, "result")
            if text.strip():
                out.append(" ".join(text.split()))
        return tuple(out)

    return PlanResult(each("storage_classes", spec.storage_classes), each("checks", spec.checks))


def _render_task(
    renderer: _Renderer,
    profile: Profile,
    si: int,
    step: StepSpec,
    host: HostView,
    ctx: dict[str, Any],
    task_id: str,
) -> _Draft:
    files = []
    for j, f in enumerate(step.files):
        path = renderer.text(
            f.path, ctx, profile.source("steps", si, "files", j, "path"), "file path", task_id
        ).strip()
        if not path.startswith("/") or "/../" in path + "/" or "\n" in path:
            raise PlanError(
                f"{profile.source('steps', si, 'files', j, 'path').at(None)}: '{path}' is not an "
                f"absolute path on the host (task {task_id})"
            )
        content = renderer.file(f.template, ctx, task_id)
        files.append(FileSpec(path, content, f.mode_int, f.owner, f.secret))
    run_ctx = {**ctx, "files_ok": files_ok_command(files)}
    run = renderer.text(step.run, run_ctx, profile.source("steps", si, "run"), "run", task_id)
    check = None
    if step.check is not None:
        check = renderer.text(
            step.check, run_ctx, profile.source("steps", si, "check"), "check", task_id
        ).strip()
    title = renderer.text(step.title, ctx, profile.source("steps", si, "title"), "title", task_id)
    wipes = []
    for j, w in enumerate(step.wipes):
        disk = renderer.text(w, ctx, profile.source("steps", si, "wipes", j), "wipes", task_id)
        if disk.strip():
            wipes.append(disk.strip())
    fresh_for = None
    if step.fresh_for is not None:
        text = renderer.text(
            str(step.fresh_for), ctx, profile.source("steps", si, "fresh_for"), "fresh_for", task_id
        )
        try:
            fresh_for = parse_duration(text.strip(), what="fresh_for", zero=True)
        except ValueError as exc:
            raise PlanError(
                f"{profile.source('steps', si, 'fresh_for').at(None)}: {exc} (task {task_id})"
            ) from None
    task = Task(
        id=task_id,
        host=host.label,
        step=step.id,
        title=" ".join(title.split()),
        needs=(),
        run=run,
        check=check or None,
        files=tuple(files),
        captures=tuple(CaptureSpec(c.name, c.regex, c.secret, c.stream) for c in step.capture),
        retries=step.retries,
        timeout=step.timeout_seconds,
        serial=step.serial,
        destructive=step.destructive,
        idempotent=step.idempotent,
        sudo=step.sudo,
        wipes=tuple(wipes),
        wipe_names=tuple(_disk_names(host, d) for d in wipes),
        fresh_for=fresh_for,
    )
    return _Draft(task, si, host.index, step.needs)


def _link(drafts: list[_Draft], profile: Profile) -> tuple[Task, ...]:
    by_step: dict[str, list[_Draft]] = {}
    by_id: dict[str, _Draft] = {}
    for d in drafts:
        by_step.setdefault(d.task.step, []).append(d)
        by_id[d.task.id] = d
    needs: dict[str, list[str]] = {}
    for d in drafts:
        deps: list[str] = []
        for need in d.need_specs:
            step_id, every = split_need(need)
            if every:
                deps += [o.task.id for o in by_step.get(step_id, []) if o.task.id != d.task.id]
            else:
                same = f"{d.task.host}:{step_id}"
                if same in by_id:
                    deps.append(same)
        needs[d.task.id] = sorted(
            set(deps), key=lambda t: (by_id[t].step_index, by_id[t].host_index)
        )
    # Kahn's algorithm; among ready tasks, profile order then answers order.
    indegree = {t: len(n) for t, n in needs.items()}
    users: dict[str, list[str]] = {t: [] for t in needs}
    for t, deps in needs.items():
        for dep in deps:
            users[dep].append(t)
    ready = [(by_id[t].step_index, by_id[t].host_index, t) for t, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, t = heapq.heappop(ready)
        order.append(t)
        for u in users[t]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(ready, (by_id[u].step_index, by_id[u].host_index, u))
    if len(order) != len(drafts):  # the loader rejects step cycles; this is a safety net
        stuck = sorted(set(needs) - set(order))
        raise PlanError(f"tasks form a cycle: {', '.join(stuck)} ({profile.path})")
    hashes: dict[str, str] = {}
    out = []
    for t in order:
        task = by_id[t].task
        linked = replace(task, needs=tuple(needs[t]))
        digest = input_hash(linked, [hashes[d] for d in needs[t]])
        hashes[t] = digest
        out.append(replace(linked, input_hash=digest))
    return tuple(out)


def input_hash(task: Task, need_hashes: Sequence[str] = ()) -> str:
    """SHA-256 over everything rendered into the task and the hashes of what it needs."""
    doc = {
        "host": task.host,
        "step": task.step,
        "run": task.run,
        "check": task.check,
        "files": [[f.path, f.mode, f.owner, f.secret, _sha256(f.content)] for f in task.files],
        "captures": [[c.name, c.pattern, c.secret, c.stream] for c in task.captures],
        "retries": task.retries,
        "timeout": task.timeout,
        "serial": task.serial,
        "destructive": task.destructive,
        "idempotent": task.idempotent,
        "sudo": task.sudo,
        "wipes": list(task.wipes),
        "needs": list(need_hashes),
    }
    return _sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")))


def _check_captures(tasks: Sequence[Task], profile: Profile) -> None:
    by_id = {t.id: t for t in tasks}
    made_by = {c.name: s.id for s in profile.spec.steps for c in s.capture}
    ancestors: dict[str, set[str]] = {}
    for t in tasks:  # topological order: a task's needs are already done
        acc: set[str] = set()
        for d in t.needs:
            acc |= ancestors[d] | {d}
        ancestors[t.id] = acc
    for t in tasks:
        available = {c.name for a in ancestors[t.id] for c in by_id[a].captures}
        for name in sorted(t.uses - available):
            step = made_by.get(name, "?")
            raise PlanError(
                f"task {t.id} uses capture '{name}' but does not need step {step}, which "
                f"captures it: add '{step}@all' to needs of step {t.step} ({profile.path})"
            )


# --------------------------------------------------------------------------- output


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line + "\n" for line in text.rstrip("\n").splitlines())


def plan_text(plan: Plan, redactor: Redactor | None = None, answers: Answers | None = None) -> str:
    """The readable plan: per host its steps in order with commands, then what gets wiped."""
    r = redactor or Redactor()
    consent = list(answers.storage.wipe) if answers else []
    out = [
        f"# fmp-install plan: cluster {plan.cluster}, profile {plan.profile}",
        f"# {len(plan.tasks)} tasks on {len(plan.hosts)} hosts. Secrets are shown as ****.",
        "",
    ]
    order = {t.id: i + 1 for i, t in enumerate(plan.tasks)}
    for host in plan.hosts:
        tasks = [t for t in plan.tasks if t.host == host.label]
        out.append(f"## {host.label} ({host.address}) roles: {', '.join(host.roles) or '-'}")
        out.append("")
        for t in tasks:
            flags = [
                f
                for f, on in (
                    ("serial", t.serial),
                    ("DESTRUCTIVE", t.destructive),
                    ("not idempotent", not t.idempotent),
                )
                if on
            ]
            extra = f" [{', '.join(flags)}]" if flags else ""
            out.append(f"### {order[t.id]}. {t.step}: {t.title}{extra}")
            out.append(f"timeout {t.timeout:g}s, retries {t.retries}, input {t.input_hash[:12]}")
            if t.needs:
                out.append("needs: " + ", ".join(t.needs))
            for f in t.files:
                owner = f" {f.owner}" if f.owner else ""
                kind = " (secret)" if f.secret else ""
                out.append(f"file {f.path} {f.mode:04o}{owner}{kind}")
            for c in t.captures:
                out.append(f"captures {c.name}{' (secret)' if c.secret else ''}")
            for disk in t.wipes:
                out.append(f"WIPES {disk}")
            if t.check:
                out.append("check:")
                out.append(_indent(r.redact(t.check), "    ").rstrip("\n"))
            out.append("run:")
            out.append(_indent(r.redact(t.run), "    ").rstrip("\n"))
            out.append("")
    out.append("## Disks wiped")
    out.append("")
    wiped = [(t, d) for t in plan.tasks for d in t.wipes]
    if not wiped:
        out.append("none: no step of this plan wipes a disk")
    for t, disk in wiped:
        item = f"{t.host}:{disk}"
        entry = plan.wipe_consent(t, disk, consent)
        if entry is None:
            note = "NOT in storage.wipe"
        else:  # consent may name the disk by another of its names (/dev/sdb, serial:...)
            note = "consent in storage.wipe" + ("" if entry == item else f" as {entry}")
        out.append(f"- {item} by step {t.step} ({note})")
    out.append("")
    out.append("## When it is done")
    out.append("")
    classes = ", ".join(plan.result.storage_classes) or "none"
    out.append(f"storage classes: {classes}")
    for check in plan.result.checks:
        out.append(f"check: {check}")
    out.append("")
    return r.redact("\n".join(out))


def plan_json(plan: Plan, redactor: Redactor | None = None) -> dict[str, Any]:
    """The DAG for tools: hosts, and tasks in order with their needs (secrets masked)."""
    r = redactor or Redactor()

    def file_doc(f: FileSpec) -> dict[str, Any]:
        return {
            "path": f.path,
            "mode": f"{f.mode:04o}",
            "owner": f.owner,
            "secret": f.secret,
            "sha256": _sha256(f.content),
            "content": "****" if f.secret else r.redact(f.content),
        }

    return {
        "cluster": plan.cluster,
        "profile": plan.profile,
        "result": {
            "storage_classes": list(plan.result.storage_classes),
            "checks": [r.redact(c) for c in plan.result.checks],
        },
        "hosts": [
            {"label": h.label, "address": h.address, "roles": list(h.roles)} for h in plan.hosts
        ],
        "tasks": [
            {
                "id": t.id,
                "host": t.host,
                "step": t.step,
                "title": t.title,
                "needs": list(t.needs),
                "run": r.redact(t.run),
                "check": r.redact(t.check) if t.check else None,
                "files": [file_doc(f) for f in t.files],
                "captures": [
                    {"name": c.name, "pattern": c.pattern, "secret": c.secret, "stream": c.stream}
                    for c in t.captures
                ],
                "uses": sorted(t.uses),
                "retries": t.retries,
                "timeout": t.timeout,
                "fresh_for": t.fresh_for,
                "serial": t.serial,
                "destructive": t.destructive,
                "idempotent": t.idempotent,
                "sudo": t.sudo,
                "wipes": list(t.wipes),
                "input_hash": t.input_hash,
            }
            for t in plan.tasks
        ],
    }
