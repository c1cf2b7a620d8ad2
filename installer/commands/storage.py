"""fmp-install storage estimate --answers F [--facts FILE | --from-raw DIR] [--json] [--no-input] [--write]"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from installer.answers import Answers
    from installer.hostfacts import HostFacts


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "storage",
        help="disk candidates and the storage capacity estimate",
        description="Storage: which disks may be used, and whether the volumes fit.",
    )
    storage_sub = p.add_subparsers(title="storage commands", metavar="COMMAND")
    p.set_defaults(handler=lambda _args: _help(p))

    e = storage_sub.add_parser(
        "estimate",
        help="estimate shared and per-node storage against the hosts' disks",
        description="Show each host's volume groups and disks, size the volumes of the "
        "enabled features, and compare them with what the storage backend provides. "
        "Asks questions on a terminal (like `kloudspot storage estimate`); with --no-input, "
        "--json or no TTY it takes everything from the answers file. "
        "Exits 0 when the storage fits (ok or tight), 5 when it is insufficient, "
        "2 on bad input.",
    )
    e.add_argument("--answers", "-a", required=True, metavar="FILE", help="the answers.yaml")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--facts", metavar="FILE", help="use saved discovery facts (JSON/YAML)")
    src.add_argument(
        "--from-raw",
        metavar="DIR",
        help="parse saved raw discovery output, DIR/<address>.txt or DIR/<name>.txt",
    )
    e.add_argument("--json", action="store_true", help="print the estimate as JSON (no questions)")
    e.add_argument("--no-input", action="store_true", help="never ask; take the answers file")
    e.add_argument(
        "--write",
        action="store_true",
        help="write the choices back into the answers file, keeping its comments "
        "(without asking); also records stable by-id paths for /dev/sdX disks",
    )
    e.add_argument(
        "--ceph-replicas", type=int, default=3, metavar="N", help="Ceph pool size (default 3)"
    )
    e.add_argument(
        "--ceph-min-size", type=int, default=2, metavar="N", help="Ceph pool min_size (default 2)"
    )
    e.add_argument(
        "--vg",
        metavar="NAME",
        help="volume group for local volumes on every node (default: most free space)",
    )
    e.add_argument("--catalogue", metavar="FILE", help=argparse.SUPPRESS)
    e.set_defaults(handler=run)


def _is_terminal() -> bool:
    """Questions need a terminal on both ends (prompt_toolkit draws on stdout)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 0


def load_facts_for(answers: Answers, args: argparse.Namespace) -> dict[str, HostFacts]:
    """Facts keyed by host label: from --facts, --from-raw or live discovery."""
    from pathlib import Path

    from installer.errors import OperatorError
    from installer.storage import facts_by_label

    if args.facts:
        from installer.factsio import load_facts

        return facts_by_label(answers, load_facts(args.facts))
    if args.from_raw:
        from installer.discovery import parse_discovery, raw_path

        root = Path(args.from_raw)
        if not root.is_dir():
            raise OperatorError(f"{root}: not a directory", hint="--from-raw takes a directory")
        out: dict[str, HostFacts] = {}
        for host in answers.hosts:
            names = [raw_path(root, host.address)]
            if host.name:
                names.append(root / f"{host.name}.txt")
            found = next((n for n in names if n.is_file()), None)
            if found is None:
                continue  # reported as "no facts" by the estimate
            try:
                text = found.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise OperatorError(f"{found}: cannot read: {exc}") from exc
            out[host.label] = parse_discovery(host.address, text)
        if not out:
            raise OperatorError(
                f"{root}: no raw discovery output for any host",
                hint="expected files named <address>.txt or <name>.txt",
            )
        return out
    return _discover_live(answers)


def _discover_live(answers: Answers) -> dict[str, HostFacts]:
    """Discover every host over SSH; an unreachable host is reported and left without facts."""
    import asyncio
    import os

    from installer.discovery import discover_all
    from installer.ssh import connect
    from installer.ssh_target import target_for
    from installer.transport import Transport, TransportError

    targets = {h.address: target_for(answers, h, os.environ) for h in answers.hosts}

    async def go() -> dict[str, HostFacts]:
        async def open_one(address: str) -> Transport | None:
            try:
                return await connect(targets[address])
            except TransportError as exc:
                print(f"warning: {exc}", file=sys.stderr)
                return None

        opened = await asyncio.gather(*(open_one(a) for a in targets))
        transports = {a: t for a, t in zip(targets, opened, strict=True) if t is not None}
        try:
            results = await discover_all(transports)
        finally:
            for t in transports.values():
                await t.close()
        by_address = {r.address: r for r in results}
        for r in results:
            if r.error:
                print(f"warning: {r.address}: discovery stopped: {r.error}", file=sys.stderr)
        return {
            h.label: by_address[h.address].facts for h in answers.hosts if h.address in by_address
        }

    return asyncio.run(go())


def _write_text(path: str, text: str) -> None:
    """Replace the file atomically, keeping its mode."""
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".answers-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def checked_writer(path: str) -> Callable[[str], None]:
    """A save function that refuses to write text that no longer validates."""
    from installer.answers import parse_answers

    def save(text: str) -> None:
        parse_answers(text, path, semantic=False)  # raises ProblemList: nothing written
        _write_text(path, text)

    return save


def run(args: argparse.Namespace) -> int:
    import json

    from installer import exitcodes
    from installer.answers import load_answers, marked_document
    from installer.errors import OperatorError
    from installer.problems import ProblemList
    from installer.profile import ProfileError
    from installer.storage import backend_of, estimate_for_answers, format_estimate
    from installer.workloads import CatalogueError, load_catalogue, resolve_volumes

    if args.ceph_replicas < 1 or not 1 <= args.ceph_min_size <= args.ceph_replicas:
        raise OperatorError(
            f"--ceph-min-size {args.ceph_min_size} must be between 1 and --ceph-replicas "
            f"{args.ceph_replicas}"
        )
    answers = load_answers(args.answers)  # ProblemList: printed by cli.main
    with open(args.answers, encoding="utf-8") as fh:
        text = fh.read()
    doc = marked_document(text)
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        raise OperatorError(f"workload catalogue: {exc}") from None
    try:
        backend = backend_of(answers.profile)
    except (ProfileError, ValueError) as exc:
        raise OperatorError(str(exc)) from None

    interactive = not (args.json or args.no_input) and _is_terminal()
    if interactive and not (args.facts or args.from_raw):
        n = len(answers.hosts)
        print(f"Discovering {n} host{'s' if n != 1 else ''} over SSH...")
    facts = load_facts_for(answers, args)
    save = checked_writer(args.answers)
    if interactive:
        from screens.storage_prompt import QuestionaryAsker, run_storage_prompt

        result = run_storage_prompt(
            answers,
            facts,
            catalogue,
            asker=QuestionaryAsker(),
            backend=backend,
            answers_text=text,
            answers_path=args.answers,
            save=save,
            auto_write=args.write,
            replicas=args.ceph_replicas,
            min_size=args.ceph_min_size,
            vg=args.vg,
        )
        verdict = result.estimate.verdict
        return exitcodes.STORAGE_INSUFFICIENT if verdict == "insufficient" else exitcodes.OK

    volumes, problems = resolve_volumes(catalogue, answers.storage)
    errors = [p.located(args.answers, doc) for p in problems if p.severity == "error"]
    if errors:
        raise ProblemList(errors)
    for p in problems:
        print(p.located(args.answers, doc), file=sys.stderr)
    est = estimate_for_answers(
        answers,
        facts,
        volumes,
        backend=backend,
        replicas=args.ceph_replicas,
        min_size=args.ceph_min_size,
        vg=args.vg,
    )
    if args.json:
        print(json.dumps(est.to_dict(), indent=2))
    else:
        for line in format_estimate(est):
            print(line)
    if args.write:
        from installer.storage import stable_disk_ids
        from installer.storage_answers import update_answers_text

        ids = stable_disk_ids(answers, facts)
        new_text = update_answers_text(text, disk_ids=ids)
        if new_text != text:
            save(new_text)
            print(f"{args.answers}: recorded stable disk ids for {', '.join(ids)}", file=sys.stderr)
        else:
            print(f"{args.answers}: nothing to change", file=sys.stderr)
    return exitcodes.STORAGE_INSUFFICIENT if est.verdict == "insufficient" else exitcodes.OK
