"""Log load on the Run screen: N nodes each streaming R lines/s for S seconds (issue 8).

The real wizard App shows the Run screen while the real engine runs a plan:
``screens.engine_real.start_run`` (the code the wizard's Install button
calls) with the real Runner, the real Journal in a temporary state directory
(``FMP_STATE_DIR``), the profile's real secrets and redactor, and the real
``Connections``. Only the transport is replaced: ``tests/fake_transport.py``'s
in-memory network, whose task command here streams ``--rate`` lines a second
through the runner's ``on_line`` callback (one line per wake-up, on an
absolute schedule, so a late loop catches up instead of losing rate, by at
most one 32 KiB SSH packet of lines per wake-up), for ``--seconds`` seconds,
on every one of ``--nodes`` hosts at once. Every line
therefore goes transport -> redactor -> journal log file -> EventBus ->
consumer, as it would over SSH.

Each variant runs in its own process (so ``ru_maxrss`` is its own) and
differs only in the consumer of the event stream:

- ``wizard``: the Textual App, Run screen, first node focused;
- ``reporter``: ``installer.report.HeadlessReporter`` as ``fmp-install
  --answers`` uses it: a rich Live table on a terminal, plain lines otherwise;
- ``reporter-plain``: the same reporter forced to plain lines (one printed
  line per output line);
- ``none``: no consumer at all: the runner, the journal and the fake
  transport alone (the floor).

Modes: ``headless`` (no terminal: Textual's headless driver, which composes
every frame but writes nothing; the reporters write to /dev/null) and
``pty`` (a real pseudo-terminal of ``--cols`` x ``--rows``, drained by this
process as a terminal emulator would read it: the App writes every frame).

Measured in the child, over the load window (start of the run to its
summary): event-loop lag (a task sleeping 10 ms, recording the overshoot:
p50/p95/p99/max, the number of probes, and the share of the run spent in
stalls over 50 ms, since a long stall is only one probe), CPU (``getrusage`` user+sys, and as % of one core), RSS
sampled every 0.5 s (and ``ru_maxrss``, the process's peak), and after the run
the log files: every ``logs/<host>.log`` must hold exactly rate x seconds
stream lines, numbered 0..n-1 in order. The wizard also checks that each
node's ring buffer ends with its last line and that the focused pane shows
the tail.

    python bench/log_load.py [--nodes 30] [--rate 100] [--seconds 30]
        [--modes headless,pty] [--variants wizard,reporter,reporter-plain,none]
        [--profile DIR] [--json-out FILE] [--table-from FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

STREAM_STEP = "stream"
PROBE_INTERVAL = 0.010
RSS_INTERVAL = 0.5
LINE_RE = re.compile(r"^\d\d:\d\d:\d\d stream stdout: (\S+) seq=(\d+) ")
VARIANTS = ("wizard", "reporter", "reporter-plain", "none")
SSH_PACKET = 32768


def line_text(host: str, i: int) -> str:
    """One output line, apt-like, about 100 characters."""
    return (
        f"{host} seq={i:06d} Get:{i % 400 + 1} http://archive.ubuntu.com/ubuntu noble-updates/main "
        f"amd64 libpkg{i % 997} amd64 1.{i % 50}-1ubuntu{i % 7} [{i % 900 + 10} kB]"
    )


# --------------------------------------------------------------------------- measurement


@dataclass
class Probe:
    """Event-loop lag: how late a 10 ms sleep wakes up; plus RSS over time."""

    lags: list[float] = field(default_factory=list)  # seconds
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    t0: float = 0.0
    running: bool = False

    async def lag_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.running:
            t = loop.time()
            await asyncio.sleep(PROBE_INTERVAL)
            self.lags.append(loop.time() - t - PROBE_INTERVAL)

    async def rss_loop(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while self.running:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * page
            self.rss.append((time.monotonic() - self.t0, rss))
            await asyncio.sleep(RSS_INTERVAL)

    def start(self) -> list[asyncio.Task[None]]:
        self.running = True
        self.t0 = time.monotonic()
        return [
            asyncio.get_running_loop().create_task(self.lag_loop()),
            asyncio.get_running_loop().create_task(self.rss_loop()),
        ]


async def idle_lag(seconds: float) -> list[float]:
    probe = Probe()
    tasks = probe.start()
    await asyncio.sleep(seconds)
    probe.running = False
    await asyncio.gather(*tasks)
    return probe.lags


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


# --------------------------------------------------------------------------- the load


def build(nodes: int, rate: int, seconds: float) -> tuple[Any, Any, Any]:
    """Answers with ``nodes`` hosts, the one-step plan, and the streaming network."""
    from installer.answers import Answers, Cluster, Host, SshSettings
    from installer.plan_model import Plan, PlanHost, Task
    from installer.transport import CommandResult
    from screens.engine_adapters import PlanPreview
    from tests.fake_transport import FakeNetwork, FakeTransport

    total = int(rate * seconds)

    class StreamingTransport(FakeTransport):
        async def _answer(self, command: str, on_line: Any) -> CommandResult:
            if f":{STREAM_STEP}" not in command or on_line is None:
                return await super()._answer(command, on_line)
            loop = asyncio.get_running_loop()
            start = loop.time()
            i = 0
            # A late wake-up catches up, at most one SSH packet (32 KiB) of lines at a time:
            # the SSH transport also hands over a whole packet's lines in one callback.
            burst = max(1, SSH_PACKET // (len(line_text(self.host, 0)) + 1))
            while i < total:
                due = min(total, int((loop.time() - start) * rate) + 1, i + burst)
                while i < due:
                    on_line("stdout", line_text(self.host, i))
                    i += 1
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            return CommandResult(0, "", "")

    class StreamingNetwork(FakeNetwork):
        async def connect(self, host: str) -> FakeTransport:
            await super().connect(host)
            return StreamingTransport(self, host)

    hosts = [
        Host(address=f"10.40.{i // 200}.{i % 200 + 10}", name=f"node{i + 1:02d}")
        for i in range(nodes)
    ]
    answers = Answers(
        cluster=Cluster(name="loadtest"),
        profile="kubeadm-etcd",
        ssh=SshSettings(user="fmpadmin", identity_file="~/.ssh/id_ed25519"),
        hosts=hosts,
    )
    tasks = tuple(
        Task(
            id=f"{h.label}:{STREAM_STEP}",
            host=h.label,
            step=STREAM_STEP,
            title=f"Stream {total} lines at {rate}/s",
            needs=(),
            run=f"stream-lines {total} #task:{h.label}:{STREAM_STEP}",
            input_hash=f"h-{h.label}",
            timeout=seconds * 2 + 60,  # a long run must not time its own tasks out
        )
        for h in hosts
    )
    plan = Plan(
        "loadtest",
        "kubeadm-etcd",
        tuple(PlanHost(h.label, h.address, ()) for h in hosts),
        tasks,
    )
    return answers, PlanPreview(plan), StreamingNetwork(yields=1)


def patch_connections(net: Any) -> None:
    """The real Connections, handing out the fake network's transports instead of SSH."""
    import installer.pipeline as pipeline

    real = pipeline.connections_for

    def connections_for(answers: Any, environ: Any, connector: Any = None) -> Any:
        return real(answers, environ, connector or net.connect)

    pipeline.connections_for = connections_for


def review_screen_work(state: Path, profile_name: str) -> None:
    """What the Review screen's plan did before Install: load the profile, make the secrets.

    Without it the run would start by generating the cluster's secrets (0.4 s on
    the event loop), which the wizard never does at that point.
    """
    from installer.profile import load_profile
    from installer.secrets import cluster_secrets

    cluster_secrets(state, load_profile(profile_name).spec.secrets)


def check_logs(state_dir: Path, hosts: list[str], total: int) -> dict[str, Any]:
    """Every stream line of every host in its log file, once, in order."""
    bad: list[str] = []
    lines = 0
    for host in hosts:
        path = state_dir / "logs" / f"{host}.log"
        seqs: list[int] = []
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                m = LINE_RE.match(raw)
                if m:
                    if m.group(1) != host:
                        bad.append(f"{host}: a line of {m.group(1)}")
                    seqs.append(int(m.group(2)))
        lines += len(seqs)
        if seqs != list(range(total)):
            bad.append(f"{host}: {len(seqs)} lines, in order: {seqs == sorted(seqs)}")
    return {"log_lines": lines, "log_expected": total * len(hosts), "log_problems": bad[:5]}


@dataclass
class Result:
    variant: str
    mode: str
    nodes: int
    rate: int
    seconds: float
    wall: float = 0.0  # the load window
    cpu: float = 0.0  # user+sys in the load window
    lags_ms: dict[str, float] = field(default_factory=dict)
    idle_lags_ms: dict[str, float] = field(default_factory=dict)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)
    maxrss_mib: float = 0.0
    rss_before_mib: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    error: str = ""
    terminal_bytes: int = 0  # pty mode: what the process wrote to the terminal


def summarize_lags(lags: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in lags]
    return {
        "n": len(ms),
        "stalled_s": sum(x for x in ms if x > 50) / 1000,  # time inside stalls over 50 ms
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms, default=float("nan")),
    }


def rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def run_load(res: Result, start: Callable[[], Any], wait: Callable[[], Any]) -> None:
    """Measure the load window around ``start()`` .. ``await wait()``."""
    res.idle_lags_ms = summarize_lags(await idle_lag(1.0))
    res.rss_before_mib = rss_now() / 2**20
    probe = Probe()
    tasks = probe.start()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    start()
    summary = await wait()
    res.wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    probe.running = False
    await asyncio.gather(*tasks)
    res.cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    res.lags_ms = summarize_lags(probe.lags)
    res.rss_mib = [(round(t, 1), b / 2**20) for t, b in probe.rss]
    res.exit_code = getattr(summary, "exit_code", None)


# --------------------------------------------------------------------------- one variant (child)


def child(args: argparse.Namespace) -> Result:
    res = Result(args.child, args.mode, args.nodes, args.rate, args.seconds)
    state = Path(os.environ["FMP_STATE_DIR"])
    answers, preview, net = build(args.nodes, args.rate, args.seconds)
    patch_connections(net)
    review_screen_work(state, answers.profile)
    hosts = [h.label for h in answers.hosts]
    total = int(args.rate * args.seconds)
    try:
        if args.child == "wizard":
            run_wizard(args, res, answers, preview, total)
        else:
            asyncio.run(run_reporter(args, res, answers, preview))
        if not res.error:
            res.checks.update(check_logs(state, hosts, total))
    except Exception:
        res.error = traceback.format_exc()
    res.maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


async def run_reporter(args: argparse.Namespace, res: Result, answers: Any, preview: Any) -> None:
    from installer.events import Event
    from screens import engine_real
    from screens.engine_adapters import RunRequest

    emit: Callable[[Event], None]
    reporter = None
    if args.child == "none":

        def emit(event: Event) -> None:
            return None

    else:
        from installer.report import HeadlessReporter

        stream = sys.stdout if args.mode == "pty" else open(os.devnull, "w")  # noqa: SIM115
        live = False if args.child == "reporter-plain" else None
        reporter = HeadlessReporter(stream, live=live)
        emit = reporter
    handle: list[Any] = []

    def start() -> None:
        handle.append(
            engine_real.start_run(
                RunRequest(answers=answers, preview=preview, environ=dict(os.environ), emit=emit)
            )
        )

    async def wait() -> Any:
        return await handle[0].wait()

    await run_load(res, start, wait)
    if reporter is not None:
        reporter.close()
        res.checks["reporter_live"] = bool(reporter.live)


def run_wizard(
    args: argparse.Namespace, res: Result, answers: Any, preview: Any, total: int
) -> None:
    from textual.widgets import Log

    from screens.app import WizardApp
    from screens.engine_adapters import RealEngine
    from screens.run_controller import MAX_LINES
    from screens.state import WizardState

    class BenchApp(WizardApp):
        def on_mount(self) -> None:
            # Textual calls WizardApp.on_mount too (handlers run up the MRO).
            self._bench = asyncio.get_running_loop().create_task(self.drive())

        async def drive(self) -> None:
            try:
                await asyncio.sleep(0.5)  # the first screen is up

                def start() -> None:
                    self.start_install(preview)

                async def wait() -> Any:
                    while self.run_controller is None or not self.run_controller.done:
                        await asyncio.sleep(0.05)
                    return self.run_controller.summary

                await run_load(res, start, wait)
                await asyncio.sleep(0.3)  # the last flush
                ctl = self.run_controller
                assert ctl is not None
                screen = self.screen
                pane = screen.query_one("#pane", Log)
                focus = getattr(screen, "node_focus", None)
                tails_ok = all(
                    node.lines and node.lines[-1] == line_text(host, total - 1)
                    for host, node in ctl.nodes.items()
                )
                res.checks.update(
                    {
                        "screen": type(screen).__name__,
                        "focused": focus,
                        "ring_tails_ok": tails_ok,
                        "ring_len": min(len(n.lines) for n in ctl.nodes.values()),
                        "pane_lines": pane.line_count,
                        "pane_last_ok": bool(pane.lines)
                        and pane.lines[-1] == line_text(str(focus), total - 1),
                        "max_lines": MAX_LINES,
                    }
                )
            except Exception:
                res.error = traceback.format_exc()
            finally:
                self.exit(0)

    state = WizardState()
    state.answers = answers
    app = BenchApp(engine=RealEngine(), state=state, start="welcome")
    if args.mode == "headless":
        asyncio.run(app.run_async(headless=True, size=(args.cols, args.rows)))
    else:
        app.run()


# --------------------------------------------------------------------------- the parent


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FMP_STATE_DIR"] = str(tmp / "state")
    env["XDG_STATE_HOME"] = str(tmp / "xdg-state")  # Welcome finds no unfinished run
    env["HOME"] = str(tmp / "home")
    env.setdefault("TERM", "xterm-256color")
    env["COLORTERM"] = "truecolor"
    for d in ("state", "xdg-state", "home"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    return env


def spawn(args: argparse.Namespace, variant: str, mode: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="fmp-logload-") as d:
        tmp = Path(d)
        out = tmp / "result.json"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--mode",
            mode,
            "--result",
            str(out),
            "--nodes",
            str(args.nodes),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
            "--cols",
            str(args.cols),
            "--rows",
            str(args.rows),
        ]
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            cmd += ["--profile", str(Path(args.profile).resolve() / f"{variant}-{mode}.prof")]
        env = child_env(tmp)
        timeout = args.seconds * 4 + 60
        written = 0
        if mode == "headless":
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            written = run_in_pty(cmd, env, args.cols, args.rows, timeout)
        if not out.exists():
            return Result(variant, mode, args.nodes, args.rate, args.seconds, error="no result")
        data = json.loads(out.read_text())
        res = Result(**data)
        res.terminal_bytes = written
        return res


def run_in_pty(cmd: list[str], env: dict[str, str], cols: int, rows: int, timeout: float) -> int:
    """Run ``cmd`` on a new pty of cols x rows, reading everything it writes; bytes read."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        cmd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    total = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                total += len(chunk)
            elif proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        os.close(master)
    return total


def fmt(x: float, digits: int = 1) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def table(results: list[Result]) -> str:
    floor = next((r for r in results if r.variant == "none" and not r.error), None)
    t1 = round(results[0].seconds / 3, 1) if results else 0
    rows = [
        "| variant | mode | p50 lag ms | p95 lag ms | p99 lag ms | max lag ms | probes | in stalls > 50 ms "
        "| idle p95 ms "
        "| CPU s | CPU % of a core | CPU vs floor "
        f"| RSS MiB at {t1:g}, {2 * t1:g}, {3 * t1:g} s | RSS max MiB | ru_maxrss MiB "
        "| log lines | lines/s achieved | to terminal KB/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for r in results:
        if r.error:
            rows.append(f"| {r.variant} | {r.mode} | FAILED: {r.error.strip().splitlines()[-1]} |")
            continue
        lag = r.lags_ms
        rss = [b for _, b in r.rss_mib]
        marks = []
        for k in (1, 2, 3):
            t = r.seconds * k / 3
            at = [b for s, b in r.rss_mib if s <= t + 0.25]
            marks.append(fmt(at[-1], 0) if at else "-")
        c = r.checks
        ok = c.get("log_lines") == c.get("log_expected") and not c.get("log_problems")
        logs = f"{c.get('log_lines')}/{c.get('log_expected')} {'in order' if ok else 'LOST'}"
        ratio = f"{r.cpu / floor.cpu:.2f}x" if floor and floor.cpu else "-"
        rate = c.get("log_lines", 0) / r.wall if r.wall else 0
        stall = lag.get("stalled_s")
        stalled = f"{100 * stall / r.wall:.0f}%" if stall is not None and r.wall else "-"
        rows.append(
            f"| {r.variant} | {r.mode} | {fmt(lag['p50'])} | {fmt(lag['p95'])} | {fmt(lag['p99'])} "
            f"| {fmt(lag['max'])} | {lag['n']:.0f} | {stalled} "
            f"| {fmt(r.idle_lags_ms.get('p95', float('nan')))} "
            f"| {fmt(r.cpu)} | {fmt(100 * r.cpu / r.wall if r.wall else 0, 0)}% "
            f"| {ratio} | {', '.join(marks)} | {fmt(max(rss, default=0), 0)} | {fmt(r.maxrss_mib, 0)} "
            f"| {logs} | {rate:.0f} | {fmt(r.terminal_bytes / 1e3 / r.wall if r.wall else 0, 0)} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--rate", type=int, default=100, help="lines per second per node")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--modes", default="headless,pty")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--json-out", help="keep every result here")
    ap.add_argument("--table-from", metavar="JSON", help="print the table of a --json-out file")
    ap.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile (CPU time) each variant into DIR/<variant>-<mode>.prof; slows it down",
    )
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="headless", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table_from:
        print(table([Result(**r) for r in json.loads(Path(args.table_from).read_text())]))
        return
    if args.child:
        if args.profile:
            import cProfile

            prof = cProfile.Profile(time.process_time)  # CPU time: other load does not count
            res = prof.runcall(child, args)
            prof.dump_stats(args.profile)
        else:
            res = child(args)
        Path(args.result).write_text(json.dumps(asdict(res)))
        return
    variants = [v for v in args.variants.split(",") if v]
    modes = [m for m in args.modes.split(",") if m]
    print(
        f"{args.nodes} nodes x {args.rate} lines/s x {args.seconds:g} s "
        f"= {int(args.nodes * args.rate * args.seconds)} lines; terminal {args.cols}x{args.rows}; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: list[Result] = []
    for mode in modes:
        for variant in variants:
            if variant == "none" and mode != modes[0]:
                continue  # no consumer: nothing differs between modes
            if variant == "reporter" and mode == "headless" and "reporter-plain" in variants:
                continue  # without a terminal the reporter writes plain lines: the same run
            res = spawn(args, variant, mode)
            results.append(res)
            lag = res.lags_ms
            print(
                f"  {variant:15} {mode:8} p95 lag {fmt(lag.get('p95', float('nan')))} ms, "
                f"CPU {fmt(res.cpu)} s, checks {res.checks}"
                + (f"\n{res.error}" if res.error else ""),
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
