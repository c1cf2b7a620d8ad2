"""The engine never imports the UI, and start-up stays light."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import installer

UI_MODULES = ("textual", "screens", "questionary", "prompt_toolkit")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _ui(mods: set[str]) -> set[str]:
    return {m for m in mods if m.split(".")[0] in UI_MODULES}


def test_every_engine_module_imports_without_ui() -> None:
    names = [
        m.name
        for m in pkgutil.walk_packages(installer.__path__, "installer.")
        if not m.name.startswith("installer._data")
    ]
    mods = _loaded_after("\n".join(f"import {n}" for n in names))
    assert _ui(mods) == set()


def test_cli_help_and_validate_do_not_import_textual(repo) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import contextlib, io, installer.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    c.main(['validate', '--answers', r'{repo / 'examples' / 'answers.yaml'}'])\n"
        "    try:\n        c.main(['--help'])\n    except SystemExit:\n        pass\n"
    )
    mods = _loaded_after(code)
    assert "installer.answers" in mods  # the probe really validated
    assert _ui(mods) == set()
