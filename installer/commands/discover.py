"""fmp-install discover --answers F [--json] [--save-raw DIR]"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "discover",
        help="reach every host, gather its facts and run the preflight checks",
        description="Connect to every host of the answers file at once, gather its facts "
        "with one script per host, and check them against the profile. Changes nothing "
        "on the hosts. Exits 3 if a check fails, 2 for invalid answers.",
    )
    p.add_argument("--answers", "-a", required=True, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the stable JSON shape instead")
    p.add_argument(
        "--save-raw",
        metavar="DIR",
        help="save every host's raw discovery output to DIR/<address>.txt (a support "
        "bundle; `lab up --from-raw DIR` replays it)",
    )
    p.add_argument(
        "--save-facts",
        metavar="FILE",
        help="save the reached hosts' facts (JSON, or YAML for .yaml) for `plan --facts` "
        "and `storage estimate --facts`",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import gc

    from installer import cli

    # Start-up (pydantic's models, asyncssh, the profile) makes ~60,000 objects
    # the collector tracks, nearly all of them alive until exit. Collecting while
    # they are made, then walking them again in every full collection and at
    # exit, cost ~0.1 s of CPU in a ~1 s discovery of 20 hosts. So: no collection
    # during start-up, then gc.freeze() parks them where no collection looks again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    finally:
        (gc.enable if enabled else gc.disable)()
        if not cli.EXITS_AFTER_MAIN:  # called in-process: hand them back
            gc.unfreeze()


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import gc
    import json
    import os
    import sys
    from pathlib import Path

    from installer import exitcodes
    from installer.discover_report import discover_json, render_discover
    from installer.pipeline import Checked, connections_for, discover_and_check, load_for_run

    try:
        answers = load_for_run(args.answers, os.environ)
        conns = connections_for(answers, os.environ)  # loads the SSH client
    finally:
        gc.freeze()
        gc.enable()
    save_raw = Path(args.save_raw) if args.save_raw else None

    async def go() -> Checked:
        try:
            return await discover_and_check(answers, conns, save_raw=save_raw)
        finally:
            await conns.close()

    checked = asyncio.run(go())
    if args.save_facts:
        from installer.factsio import save_facts

        save_facts(Path(args.save_facts), list(checked.gathered.facts.values()))
    if args.json:
        print(json.dumps(discover_json(checked), indent=2))
    else:
        from rich.console import Console

        render_discover(checked, Console(file=sys.stdout, width=max(80, Console().width)))
        if save_raw is not None:
            print(f"raw outputs saved in {save_raw}/")
    return exitcodes.PREFLIGHT_FAILED if checked.report.failed else exitcodes.OK
