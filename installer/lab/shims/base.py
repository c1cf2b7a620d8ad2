"""What every shim shares: where things are, the call log, locked state, exits."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

LAB = Path(os.environ.get("FMP_LAB_ROOT", "/run/fmp-lab"))
NODE_DIR = LAB / "node"
STATE_DIR = LAB / "state"
BIN_DIR = LAB / "bin"
PKGBIN_DIR = LAB / "pkgbin"
REAL_DIR = LAB / "real"
SHIM = BIN_DIR / "fmp-shim"


class ShimExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)


def err(text: str, end: str = "\n") -> None:
    sys.stderr.write(text + end)


def die(message: str, code: int = 1) -> NoReturn:
    if message:
        err(message)
    raise ShimExit(code)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path, default: Any) -> Iterator[Any]:
    """Read-modify-write a JSON file under an exclusive flock shared by every node."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_json(path, None)
        if data is None:
            data = default
        yield data
        write_json(path, data)


def cluster_state(name: str, default: Any = None) -> contextlib.AbstractContextManager[Any]:
    """Shared state of one subsystem (kubernetes, ceph, ...) in D/state/<name>.json."""
    return locked(STATE_DIR / f"{name}.json", {} if default is None else default)


def peek_cluster(name: str) -> Any:
    return read_json(STATE_DIR / f"{name}.json", {}) or {}


def node_state(name: str, default: Any = None) -> contextlib.AbstractContextManager[Any]:
    """This node's own state (units, packages, disks...) in D/nodes/<n>/lab/<name>.json."""
    return locked(NODE_DIR / "lab" / f"{name}.json", {} if default is None else default)


def peek_node(name: str) -> Any:
    return read_json(NODE_DIR / "lab" / f"{name}.json", {}) or {}


_NODE: dict[str, Any] | None = None
_LAB: dict[str, Any] | None = None


def node() -> dict[str, Any]:
    global _NODE
    if _NODE is None:
        _NODE = read_json(NODE_DIR / "node.json", {}) or {}
    return _NODE


def lab() -> dict[str, Any]:
    global _LAB
    if _LAB is None:
        _LAB = read_json(STATE_DIR / "lab.json", {}) or {}
    return _LAB


def node_name() -> str:
    return str(node().get("name", "node"))


def facts() -> dict[str, Any]:
    f: dict[str, Any] = node().get("facts", {})
    return f


def raw_section(name: str) -> tuple[str, int] | None:
    """A replayed discovery output (``lab up --from-raw``) for this node, if any."""
    raw = node().get("raw") or {}
    if name in raw:
        return str(raw[name]), int((node().get("raw_rc") or {}).get(name, 0))
    return None


def replay(name: str) -> None:
    """Print a replayed section and exit with its code, when there is one."""
    found = raw_section(name)
    if found is not None:
        text, rc = found
        if text:
            out(text.rstrip("\n"))
        raise ShimExit(rc)


def log_call(tool: str, argv: list[str], rc: int, started: float) -> None:
    line = json.dumps(
        {
            "ts": round(started, 3),
            "node": node_name(),
            "tool": tool,
            "argv": argv,
            "cwd": os.getcwd() if os.path.isdir(".") else None,
            "rc": rc,
            "ms": round((time.time() - started) * 1000),
        }
    )
    try:
        fd = os.open(NODE_DIR / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def opt(args: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` (``-n x`` or ``--name=x``) in ``args``."""
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def opts(args: list[str], name: str) -> list[str]:
    """Every value of a repeatable option (``--set a --set b``)."""
    found = []
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            found.append(args[i + 1])
        elif a.startswith(name + "="):
            found.append(a.split("=", 1)[1])
    return found


def clean_env() -> dict[str, str]:
    """The caller's environment without what the shim launcher added."""
    env = dict(os.environ)
    ldp = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and not p.startswith(str(LAB))]
    if ldp:
        env["LD_LIBRARY_PATH"] = ":".join(ldp)
    else:
        env.pop("LD_LIBRARY_PATH", None)
    return env


def link_tool(name: str, target: Path | None = None, where: Path = PKGBIN_DIR) -> None:
    """Make ``name`` a command of this node (a package or installer put it there)."""
    where.mkdir(parents=True, exist_ok=True)
    link = where / name
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(target or SHIM)


def unlink_tool(name: str, where: Path = PKGBIN_DIR) -> None:
    with contextlib.suppress(FileNotFoundError):
        (where / name).unlink()


def now_text() -> str:
    return time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime())


def rand_hex(n: int) -> str:
    return os.urandom((n + 1) // 2).hex()[:n]


def rand_alnum(n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(n))


def node_by_address(address: str) -> dict[str, Any] | None:
    for n in lab().get("nodes", []):
        if address in (n["address"], n["name"]) or address.split(".")[0] == n["name"]:
            return dict(n)
    return None


def read_node_file(path: str) -> str | None:
    """A file of this node (the shim already runs inside its mount namespace)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def load_yaml_docs(text: str) -> list[Any]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]
