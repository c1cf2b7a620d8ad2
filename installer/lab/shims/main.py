"""The one entry point of every shim: dispatch on the name it was called by."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time

from installer.lab.shims import base
from installer.lab.shims.registry import TOOLS


def run(tool: str, args: list[str]) -> int:
    module = TOOLS.get(tool)
    if module is None:
        base.err(f"{tool}: command not found")
        return 127
    name = tool.replace("-", "_").replace(".", "_")
    handler = getattr(importlib.import_module(f"installer.lab.shims.{module}"), name)
    try:
        rc: int = handler(args)
    except base.ShimExit as exc:
        rc = exc.code
    except BrokenPipeError:
        rc = 141
    except KeyboardInterrupt:
        rc = 130
    return rc


def main() -> None:
    argv = sys.argv[1:]
    tool = os.environ.pop("FMP_SHIM_TOOL", "") or (
        os.path.basename(argv[0]) if argv else "fmp-shim"
    )
    for suffix in ("_linux-amd64", "-linux-amd64", "_linux_amd64"):
        tool = tool.removesuffix(suffix)
    args = argv[1:]
    started = time.time()
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    rc = run(tool, args)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    base.log_call(tool, args, rc, started)
    os._exit(rc & 0xFF)
