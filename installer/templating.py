"""The Jinja2 environment profiles render with, and the names a template may use.

Templates render with StrictUndefined and no autoescape (they are shell
scripts and config files), plus the filters ``shquote``, ``b64encode`` and
``minor`` and the global ``fail(message)``. ``installer.plan`` renders; the
whole-profile checks (``installer.profile_checks``) parse.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import jinja2

# Every name a template (or an inline run/check/path/when) may use. See
# docs/PROFILES.md for what each holds; plan.py builds the values.
CONTEXT_NAMES = frozenset(
    {
        "cluster",  # .name, .domain
        "profile",  # .name, .title
        "versions",  # profile defaults overlaid with answers.versions
        "options",  # profile option defaults overlaid with the caller's
        "network",  # .vip, .api_port, .pod_subnet, .service_subnet, .host_subnet (strings)
        "storage",  # .features, .volumes, .wipe
        "ssh",  # .user (the admin login user)
        "hosts",  # every host, in answers order
        "host",  # the host this task runs on
        "roles",  # role -> list of hosts holding it (every role of the profile)
        "secrets",  # generated secrets: secrets.NAME, or secrets.NAME.crt/.key for a CA
        "step",  # .id, .title
        "files_ok",  # (run/check only) shell test: this step's files are on the host as planned
        "capture",  # capture(name) -> placeholder the runner resolves at run time
        "fail",  # fail(message): stop planning with an error naming the template line
    }
)


class PlanRenderError(Exception):
    """A template failed to render; the message names the template and line."""


def _shquote(value: object) -> str:
    return shlex.quote(str(value))


def _b64encode(value: object) -> str:
    return base64.b64encode(str(value).encode()).decode()


def _minor(version: object) -> str:
    """``"1.35.2"`` / ``"v1.35"`` → ``"1.35"``."""
    parts = str(version).lstrip("v").split(".")
    return ".".join(parts[:2])


def _fail(message: str) -> str:
    raise PlanRenderError(message)


def make_environment(templates_dir: Path | None) -> jinja2.Environment:
    """The Jinja2 environment every profile renders with: StrictUndefined, no autoescape."""
    loader = jinja2.FileSystemLoader(str(templates_dir)) if templates_dir else None
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell scripts and config files, not HTML
    )
    env.filters["shquote"] = _shquote
    env.filters["b64encode"] = _b64encode
    env.filters["minor"] = _minor
    env.globals["fail"] = _fail
    return env


def template_error_line(exc: BaseException, filename: str) -> int | None:
    """The template line a render error happened at, from Jinja's rewritten traceback."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int) and getattr(exc, "filename", filename) in (filename, None):
        return lineno
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found
