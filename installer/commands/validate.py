"""fmp-install validate --answers F"""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check an answers file and report every problem with its line",
        description="Check an answers file: its shape, and what it means for the chosen profile. "
        "Exits 0 when valid, 2 with every problem listed otherwise.",
    )
    p.add_argument(
        "--answers", "-a", required=True, metavar="FILE", help="the answers.yaml to check"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from installer import exitcodes
    from installer.answer_checks import check_answers, check_environment
    from installer.answers import in_file_order, marked_document, parse_answers, read_answers_text

    text = read_answers_text(args.answers)
    answers = parse_answers(text, args.answers)  # raises ProblemList: printed by cli.main
    doc = marked_document(text)
    warnings = [p for p in check_answers(answers) if p.severity == "warning"]
    # validate may run where the secrets are not exported (CI, a laptop): a
    # missing variable is a warning here, an error when a run needs it.
    warnings += check_environment(answers, os.environ, severity="warning")
    for w in in_file_order(w.located(args.answers, doc) for w in warnings):
        print(w, file=sys.stderr)
    n = len(answers.hosts)
    print(f"{args.answers}: valid ({answers.profile}, {n} host{'s' if n != 1 else ''})")
    return exitcodes.OK
