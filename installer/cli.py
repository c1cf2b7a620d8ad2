"""The ``fmp-install`` entry point: the wizard with no arguments, else a command.

Only argparse and the command registry are imported at start-up; each
command imports its own work. Every error reaching here is printed as a plain
message with an exit code; a traceback goes to a file, never to the operator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from installer import __version__, exitcodes
from installer.commands import COMMAND_MODULES, install


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmp-install",
        description="Install highly available Kubernetes clusters on bare metal and VMs.",
    )
    parser.add_argument("--version", action="version", version=f"fmp-install {__version__}")
    install.add_arguments(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _wizard(args: argparse.Namespace) -> int:
    """No command and no --answers: the interactive wizard (Textual loads only now)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "fmp-install: the wizard needs a terminal. Without one, install headless with "
            "`fmp-install --answers FILE --yes`; see `fmp-install --help`.",
            file=sys.stderr,
        )
        return exitcodes.INVALID_INPUT
    from screens.app import main as wizard

    return wizard()


def _report_internal_error(exc: BaseException) -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="fmp-install-crash-", suffix=".txt", delete=False
    ) as fh:
        traceback.print_exception(exc, file=fh)
        return fh.name


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None and getattr(args, "answers", None):
        handler = install.run
    if handler is None:
        handler = _wizard
    from installer.errors import OperatorError
    from installer.problems import ProblemList

    try:
        code: int = handler(args)
        return code
    except ProblemList as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        n = len(exc.problems)
        print(f"{n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
        return exitcodes.INVALID_INPUT
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        return exitcodes.OK
    except Exception as exc:
        path = _report_internal_error(exc)
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            f"  This is a bug in fmp-install. Details were written to {path}; please report it.",
            file=sys.stderr,
        )
        return exitcodes.INTERNAL_ERROR


# True in the ``fmp-install`` process: it ends when main() returns, so a command
# may leave objects frozen out of the garbage collector (see commands/discover.py).
EXITS_AFTER_MAIN = False


def entry() -> None:
    global EXITS_AFTER_MAIN
    EXITS_AFTER_MAIN = True
    sys.exit(main())


if __name__ == "__main__":
    entry()
