"""fmp-install schema"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of answers.yaml (for editors)",
        description="Print the JSON Schema of answers.yaml. Point yaml-language-server at it "
        "with a '# yaml-language-server: $schema=<file>' first line.",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from installer.schema import answers_json_schema

    print(json.dumps(answers_json_schema(), indent=2, sort_keys=False))
    return 0
