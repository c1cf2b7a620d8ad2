"""Start-up: time from process start to the first screen drawn (issue 8).

Each variant is a new process on a new pseudo-terminal (``--cols`` x
``--rows``, ``TERM=xterm-256color``) that this script reads as a terminal
emulator would. The clock starts just before the process is spawned and stops
when the bytes written to the terminal, with escape sequences removed, first
contain the variant's marker text: for the wizard a phrase of the Welcome
screen's introduction, which is only there once Textual has composed and
written the first frame. The process is then asked to quit (ctrl+q, as an
operator would) and, if it has not exited 5 s later, killed by its PID.
``--help`` and ``pass`` are timed to their exit.

Variants, run interleaved (every round runs each once, in a rotating order)
after ``--warmup`` untimed rounds:

- ``fmp-install``: the wizard, exactly as installed (``.venv/bin/fmp-install``
  with no arguments), with an empty state directory (``FMP_STATE_DIR``,
  ``XDG_STATE_HOME``);
- ``fmp-install, project not byte-compiled``: the same with
  ``PYTHONDONTWRITEBYTECODE=1`` and no cache for the project's own modules
  (how a source checkout runs when that variable is set; the venv's packages
  keep their compiled files);
- ``textual hello world``: a minimal Textual App showing one Static: the
  floor for any Textual first screen on this machine;
- ``import textual.app`` and ``import screens.app``: the imports alone,
  timed to a line printed after them (not to exit: interpreter shutdown
  after a large import costs tens of milliseconds that no screen waits for);
- ``fmp-install --help`` and ``python -c pass``: the CLI's own start-up cost,
  and the interpreter's.

Every other variant gets a private ``PYTHONPYCACHEPREFIX`` (filled by the
warm-up), so the project's modules are compiled once, as in an installed
wheel.

    python bench/startup.py [--repeat 10] [--warmup 2] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
WELCOME_MARK = "sets up a highly available"
HELLO_MARK = "hello, startup floor"
IMPORTED = "imported, startup marker"  # printed once the imports are done
ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]"  # two-character escapes
    r"|\x1b[()*+].",  # charset selection
)
HELLO_APP = f"""
from textual.app import App
from textual.widgets import Static

class Hello(App[None]):
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def compose(self):
        yield Static({HELLO_MARK!r})

Hello().run()
"""


@dataclass
class Variant:
    name: str
    argv: list[str]
    mark: str | None  # None: timed to exit
    cold: bool = False  # no byte-code cache for the project
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def variants() -> list[Variant]:
    fmp = str(BIN / "fmp-install")
    return [
        Variant("fmp-install", [fmp], WELCOME_MARK),
        Variant("fmp-install, project not byte-compiled", [fmp], WELCOME_MARK, cold=True),
        Variant("textual hello world", [PY, "-c", HELLO_APP], HELLO_MARK),
        Variant(
            "import textual.app", [PY, "-c", f"import textual.app; print({IMPORTED!r})"], IMPORTED
        ),
        Variant(
            "import screens.app", [PY, "-c", f"import screens.app; print({IMPORTED!r})"], IMPORTED
        ),
        Variant("fmp-install --help", [fmp, "--help"], None),
        Variant("python -c pass", [PY, "-c", "pass"], None),
    ]


def environment(tmp: Path, cache: Path, *, cold: bool) -> dict[str, str]:
    env = dict(os.environ)
    for d in ("state", "xdg-state", "home"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    env["FMP_STATE_DIR"] = str(tmp / "state")
    env["XDG_STATE_HOME"] = str(tmp / "xdg-state")  # Welcome finds no unfinished install
    env["HOME"] = str(tmp / "home")
    env["TERM"] = "xterm-256color"
    env["COLORTERM"] = "truecolor"
    env["PYTHONPATH"] = str(ROOT)
    env.pop("TEXTUAL", None)  # no devtools
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_once(v: Variant, env: dict[str, str], cols: int, rows: int, timeout: float) -> float:
    """Seconds from spawn to the marker on the terminal (or to exit); raises on failure."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        v.argv,
        env=env,
        cwd=env["HOME"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    found: float | None = None
    quit_sent: float | None = None
    try:
        while True:
            now = time.perf_counter()
            if now - t0 > timeout:
                raise TimeoutError(f"no {v.mark!r} after {timeout:.0f}s")
            if quit_sent is not None and now - quit_sent > 5:
                break  # killed below
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if not chunk:
                    break
                if found is None and v.mark is not None:
                    seen += chunk
                    text = ESCAPES.sub("", seen.decode("utf-8", "replace"))
                    if v.mark in text:
                        found = time.perf_counter() - t0
                        os.write(master, b"\x11")  # ctrl+q: the wizard's own Quit
                        quit_sent = time.perf_counter()
            elif proc.poll() is not None:
                break
        if v.mark is None:
            proc.wait(timeout=timeout)
            found = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"exit {proc.returncode}: {seen[-300:]!r}")
    finally:
        stop(proc)
        os.close(master)
    if found is None:
        tail = ESCAPES.sub("", seen.decode("utf-8", "replace"))[-300:]
        raise RuntimeError(f"exited ({proc.returncode}) without {v.mark!r}: {tail!r}")
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--only", help="comma-separated variant names (prefix match)")
    args = ap.parse_args()
    chosen = variants()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        chosen = [v for v in chosen if any(v.name.startswith(w) for w in wanted)]
    print(
        f"terminal {args.cols}x{args.rows}; {args.warmup} warm-up + {args.repeat} timed rounds; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="fmp-startup-") as d:
        tmp = Path(d)
        cache = tmp / "pycache"
        for rnd in range(args.warmup + args.repeat):
            order = chosen[rnd % len(chosen) :] + chosen[: rnd % len(chosen)]
            for v in order:
                with tempfile.TemporaryDirectory(dir=tmp) as run_dir:
                    env = environment(Path(run_dir), cache, cold=v.cold)
                    try:
                        t = run_once(v, env, args.cols, args.rows, args.timeout)
                    except Exception as exc:
                        v.failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                if rnd >= args.warmup:
                    v.times.append(t)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    base = {v.name: statistics.median(v.times) for v in chosen if v.times}
    fmp = base.get("fmp-install")
    print(
        "| variant | until | median ms | min ms | max ms | runs | vs fmp-install |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    for v in chosen:
        until = "exit" if v.mark is None else "imported" if v.mark == IMPORTED else "first screen"
        if not v.times:
            print(f"| {v.name} | {until} | FAILED: {v.failures[:1]} | | | 0 | |")
            continue
        med = base[v.name]
        ratio = f"{med / fmp:.2f}x" if fmp else "-"
        print(
            f"| {v.name} | {until} | {med * 1000:.0f} | {min(v.times) * 1000:.0f} "
            f"| {max(v.times) * 1000:.0f} | {len(v.times)} | {ratio} |"
        )
    for v in chosen:
        if v.failures:
            print(f"\n{v.name}: {len(v.failures)} failed run(s): {v.failures[0]}")


if __name__ == "__main__":
    main()
