"""fmp-install lab up|status|down: simulated hosts on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lab",
        help="start, inspect or stop simulated hosts on this machine",
        description="The lab: simulated hosts (SSH servers on loopback addresses, each in its own "
        "Linux namespaces) for trying, testing and benchmarking an install without real servers.",
    )
    lab_sub = p.add_subparsers(title="lab commands", metavar="ACTION", dest="lab_action")
    up = lab_sub.add_parser(
        "up", help="start the lab in the background; returns when every node answers SSH"
    )
    up.add_argument(
        "--nodes",
        type=int,
        default=None,
        metavar="N",
        help="number of nodes (default: 6, or the spec's)",
    )
    up.add_argument(
        "--profile",
        default=None,
        metavar="P",
        help="profile for D/answers.yaml (default: kubeadm-etcd)",
    )
    up.add_argument(
        "--spec",
        type=Path,
        default=None,
        metavar="FILE",
        help="lab spec: node facts, faults, durations",
    )
    up.add_argument(
        "--from-raw",
        type=Path,
        default=None,
        metavar="DIR",
        help="replay hosts saved by `discover --save-raw DIR`",
    )
    up.add_argument(
        "--dir",
        type=Path,
        default=Path(".fmp-lab"),
        metavar="D",
        help="the lab's directory (default: ./.fmp-lab)",
    )
    up.set_defaults(handler=run_up)
    st = lab_sub.add_parser("status", help="list the lab's nodes and their state")
    st.add_argument("--dir", type=Path, default=Path(".fmp-lab"), metavar="D")
    st.set_defaults(handler=run_status)
    down = lab_sub.add_parser("down", help="stop the lab and remove what it started")
    down.add_argument("--dir", type=Path, default=Path(".fmp-lab"), metavar="D")
    down.add_argument(
        "--keep", action="store_true", help="keep D's files (node filesystems, call logs)"
    )
    down.set_defaults(handler=run_down)
    p.set_defaults(handler=lambda args: _help(p))


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def run_up(args: argparse.Namespace) -> int:
    from installer.lab import control

    return control.up(
        args.dir,
        nodes=args.nodes,
        profile=args.profile,
        spec_path=args.spec,
        from_raw=args.from_raw,
    )


def run_status(args: argparse.Namespace) -> int:
    from installer.lab import control

    return control.status(args.dir)


def run_down(args: argparse.Namespace) -> int:
    from installer.lab import control

    return control.down(args.dir, keep=args.keep)
