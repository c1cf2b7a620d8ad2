"""The checks a whole profile must pass, beyond the shape of profile.yaml.

Step ids are unique, ``on`` selectors parse and name the profile's roles,
``needs`` name existing steps and form no cycle, option defaults are among
their choices, templates exist and use only known variables, and every
``capture('name')`` names a capture some step makes. Each error names the
file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import jinja2
import jinja2.meta
import jinja2.nodes

from installer.host_selectors import parse_host_selector, split_need
from installer.templating import CONTEXT_NAMES

if TYPE_CHECKING:
    from installer.profile import Profile, Source


def check_profile(profile: Profile) -> list[str]:
    """Every problem with a loaded profile's steps, then (if none) with its templates."""
    errors = _check_steps(profile)
    if not errors:
        errors = _check_templates(profile)
    return errors


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
