"""fmp-install demo: a lab of simulated hosts, and an install on it.

The one command a newcomer runs first: on a terminal the wizard opens with the
lab's hosts and key filled in; without one (or with --headless) the install
runs headless. The lab is stopped on exit unless --keep-lab is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="start a lab of six simulated hosts and install a cluster on it",
        description="Start a lab (six simulated hosts on loopback addresses, see `fmp-install "
        "lab`) and install a cluster on it: in the wizard on a terminal, headless otherwise "
        "or with --headless. Nothing leaves this machine.",
    )
    p.add_argument(
        "--profile",
        default="kubeadm-etcd",
        choices=("kubeadm-etcd", "rke-ceph", "microk8s-openebs"),
        help="what to install (default kubeadm-etcd)",
    )
    p.add_argument("--dir", type=Path, default=Path(".fmp-lab"), metavar="D", help="lab folder")
    p.add_argument("--headless", action="store_true", help="no wizard: install with no questions")
    p.add_argument("--keep-lab", action="store_true", help="leave the lab running afterwards")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from installer.commands import install
    from installer.lab import control

    headless = args.headless or not (sys.stdin.isatty() and sys.stdout.isatty())
    control.up(args.dir, nodes=None, profile=args.profile, spec_path=None, from_raw=None)
    try:
        if not headless:
            import os

            from installer.answers import load_answers
            from screens.app import main as wizard

            # This lab's journal, not one left by an earlier lab of the same name.
            os.environ["FMP_STATE_DIR"] = str((args.dir / "install").resolve())

            return wizard(answers=load_answers(args.dir / "answers.yaml"), discover=True)
        parser = argparse.ArgumentParser(add_help=False)
        install.add_arguments(parser)
        answers, state = args.dir / "answers.yaml", args.dir / "install"
        code = install.run(
            parser.parse_args(["--answers", str(answers), "--yes", "--state-dir", str(state)])
        )
        if not args.keep_lab:
            print(
                "\nThe lab is stopped now, and its files (the kubeconfig above included) "
                "go with it; --keep-lab keeps them."
            )
        else:
            print(
                f"\nThe lab keeps running. Look around: fmp-install lab status --dir {args.dir}\n"
                f"Stop it with: fmp-install lab down --dir {args.dir}"
            )
        return code
    finally:
        if not args.keep_lab:
            control.down(args.dir)
