"""Discovery of N hosts: fmp-install vs ansible ``setup`` vs pyinfra facts vs a bare asyncssh floor.

Starts N real OpenSSH servers on loopback (``bench/sshd_farm.py``: 127.0.0.2,
127.0.0.3, ..., each with its own host key; known_hosts pins every key for
every client, no trust-on-first-use), then, in one run, discovers all of them
with each variant ``--repeat`` times, interleaved (the order rotates every
round), after ``--warmup`` untimed rounds. Prints a markdown table.

Variants (each run is a fresh process, so every wall time includes that
tool's interpreter start-up and imports, and every run opens new connections):

- ``fmp-install discover``: the real CLI with a generated answers.yaml and
  ``--json`` (only if this fmp-install has the ``discover`` command);
- ``fmp-install engine``: the same code path in a small driver process:
  ``ssh_target.target_for`` + ``ssh.connect`` + ``discovery.discover_all``,
  started as the CLI starts (no garbage collection until the answers are
  loaded, then ``gc.freeze()``);
- ``ansible all -m setup`` with ``forks = N`` (default fact gathering,
  default ControlPersist, a per-run control-path directory closed afterwards);
- ``pyinfra INVENTORY fact`` with 8 facts (hostname, os-release, kernel,
  arch, CPUs, memory, block devices, network devices), ``--parallel N``;
- floor: a bare asyncssh client, per host ``asyncssh.connect`` + one ``run``
  of a trivial script + close, all hosts at once;
- floor + script: the same bare client running fmp-install's real discovery
  script (no wrapper, no parsing): what the engine costs above the script.

Columns: median wall seconds (the process, start to exit), the median time
inside the driver (first connect to last close; engine and floors only), the
client's CPU seconds (the tool process and its children) and the host side's
CPU seconds (all sshd processes and what ran under them, from
/proc/PID/stat), SSH logins and sessions per host (from the sshd logs), then
ratios against fmp-install.

    python bench/discovery.py [--hosts 20] [--repeat 3] [--warmup 1]
        [--ansible PATH] [--pyinfra PATH] [--fmp-install PATH] [--only a,b]
        [--keep-bashrc] [--ansible-python PATH] [--profile FILE] [--json-out FILE]

``--keep-bashrc``: let root's ~/.bashrc run in every SSH session (by default
the farm makes bash skip it; see ``sshd_farm.py`` and ``bench/README.md``).

Tool paths: the flag, else $FMP_BENCH_ANSIBLE / $FMP_BENCH_PYINFRA /
$FMP_BENCH_FMP_INSTALL, else ``fmp-install`` next to this Python, else PATH.
A tool that cannot be found is skipped (and said so), never faked. Must run as
root (the farm logs in as root with a generated key). Not a test: nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The 8 pyinfra facts closest to what fmp-install gathers (it gathers ~30 sections).
PYINFRA_FACTS = (
    "server.Hostname",
    "server.OsRelease",
    "server.Kernel",
    "server.Arch",
    "hardware.Cpus",
    "hardware.Memory",
    "hardware.BlockDevices",
    "hardware.NetworkDevices",
)
TRIVIAL_SCRIPT = "hostname; uname -srm"
RUN_TIMEOUT = 600.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

ENGINE = "fmp-install engine"
CLI = "fmp-install discover"
ANSIBLE = "ansible setup"
PYINFRA = "pyinfra facts (8)"
FLOOR = "floor: asyncssh, trivial script"
FLOOR_SCRIPT = "floor: asyncssh, discovery script"
ALL_VARIANTS = (CLI, ENGINE, ANSIBLE, PYINFRA, FLOOR, FLOOR_SCRIPT)
SHORT_NAMES = {
    "cli": CLI,
    "engine": ENGINE,
    "ansible": ANSIBLE,
    "pyinfra": PYINFRA,
    "floor": FLOOR,
    "floor-script": FLOOR_SCRIPT,
}


# ====================================================================== child side
# ``--child KIND --spec FILE`` runs one variant in this process and prints one JSON line.


def _spec_hosts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    hosts: list[dict[str, Any]] = spec["hosts"]
    return hosts


def _engine_targets(spec: dict[str, Any]) -> list[Any]:
    """Start-up as ``fmp-install discover`` does it: no collection until the answers
    are loaded and the SSH client imported, then gc.freeze() (commands/discover.py)."""
    import gc

    gc.disable()
    try:
        from installer.answers import load_answers
        from installer.discovery import discover_all  # noqa: F401 - imported before the freeze
        from installer.ssh import connect  # noqa: F401
        from installer.ssh_target import target_for

        answers = load_answers(spec["answers"])
        environ = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        return [target_for(answers, h, environ) for h in answers.hosts]
    finally:
        gc.freeze()
        gc.enable()


async def _child_engine(spec: dict[str, Any], targets: list[Any]) -> dict[str, Any]:
    from installer.discovery import discover_all
    from installer.ssh import connect

    t0 = time.perf_counter()
    conns = await asyncio.gather(*(connect(t) for t in targets))
    t1 = time.perf_counter()
    try:
        results = await discover_all({c.target.label: c for c in conns})
    finally:
        t2 = time.perf_counter()
        await asyncio.gather(*(c.close() for c in conns))
    t3 = time.perf_counter()
    ok = sum(
        1
        for r in results
        if r.error is None and r.facts.hostname and not r.facts.unknown.get("discovery")
    )
    unknown = sorted({k for r in results for k in r.facts.unknown})
    return {
        "inner_s": t3 - t0,
        "ok": ok,
        "phases": {"connect": t1 - t0, "discover": t2 - t1, "close": t3 - t2},
        "host_max_s": max(r.elapsed_s for r in results),
        "unknown_facts": unknown,
        "errors": [r.error for r in results if r.error][:3],
    }


async def _child_floor(spec: dict[str, Any], script: str) -> dict[str, Any]:
    import asyncssh

    async def one(h: dict[str, Any]) -> tuple[bool, float, float]:
        start = time.perf_counter()
        async with asyncssh.connect(
            h["address"],
            h["port"],
            username="root",
            client_keys=[spec["client_key"]],
            known_hosts=spec["known_hosts"],
            agent_path=None,
            config=None,
        ) as conn:
            connected = time.perf_counter()
            result = await conn.run(script, check=False)
        out = result.stdout if isinstance(result.stdout, str) else ""
        return (
            result.exit_status == 0 and bool(out.strip()),
            connected - start,
            time.perf_counter() - start,
        )

    t0 = time.perf_counter()
    runs = await asyncio.gather(*(one(h) for h in _spec_hosts(spec)))
    t1 = time.perf_counter()
    return {
        "inner_s": t1 - t0,
        "ok": sum(1 for ok, _, _ in runs if ok),
        "phases": {"connect_max": max(c for _, c, _ in runs)},
        "host_max_s": max(t for _, _, t in runs),
    }


def child_main(kind: str, spec_path: Path, profile: Path | None) -> None:
    spec = json.loads(spec_path.read_text())
    if kind == "engine":
        targets = _engine_targets(spec)
        coro_factory: Callable[[], Any] = lambda: _child_engine(spec, targets)  # noqa: E731
    elif kind == "floor":
        coro_factory = lambda: _child_floor(spec, TRIVIAL_SCRIPT)  # noqa: E731
    elif kind == "floor-script":
        # The script text comes in the spec: the floor imports nothing of fmp-install.
        coro_factory = lambda: _child_floor(spec, spec["discovery_script"])  # noqa: E731
    else:
        raise SystemExit(f"unknown child kind {kind}")
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        out = profiler.runcall(asyncio.run, coro_factory())
        profiler.dump_stats(str(profile))
    else:
        out = asyncio.run(coro_factory())
    print(json.dumps(out))


# ====================================================================== parent side


@dataclass
class Run:
    wall_s: float
    ok: bool
    hosts_ok: int
    client_cpu_s: float
    host_cpu_s: float
    inner_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    logins: int = 0  # SSH connections authenticated, all hosts
    sessions: int = 0  # SSH session channels (one per remote command), all hosts


@dataclass
class Variant:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    check: Callable[[subprocess.CompletedProcess[str], int], tuple[int, dict[str, Any]]]
    after: Callable[[], None] = lambda: None
    before: Callable[[], None] = lambda: None
    runs: list[Run] = field(default_factory=list)


class HostSide:
    """What the N sshd did: CPU (with every reaped session below them), logins, sessions."""

    def __init__(self, farm: Any) -> None:
        self.farm = farm
        self._offsets = [0] * len(farm.servers)

    def cpu_s(self) -> float:
        """utime+stime+cutime+cstime of the sshd listeners (/proc/PID/stat fields 14-17)."""
        total = 0
        for server in self.farm.servers:
            try:
                stat = Path(f"/proc/{server.pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
            total += sum(int(x) for x in fields[11:15])
        return total / CLK_TCK

    def counts(self) -> tuple[int, int]:
        """(logins, sessions) logged (LogLevel VERBOSE) since the last call."""
        logins = sessions = 0
        for i, server in enumerate(self.farm.servers):
            with server.log_path.open("rb") as f:
                f.seek(self._offsets[i])
                fresh = f.read()
                self._offsets[i] += len(fresh)
            logins += fresh.count(b"Accepted publickey for ")
            sessions += fresh.count(b"Starting session: ")
        return logins, sessions

    def idle(self, timeout: float = 10.0) -> None:
        """Wait until sshd has reaped every session (a straggler is killed, not counted later)."""
        deadline = time.monotonic() + timeout
        while any(s.connection_pids() for s in self.farm.servers):
            if time.monotonic() > deadline:
                self.farm.kill_connections()
                return
            time.sleep(0.05)


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(variant: Variant, n: int, host: HostSide) -> Run:
    variant.before()
    host.idle()
    host.counts()
    cpu0, host0 = _children_cpu_s(), host.cpu_s()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            variant.argv,
            cwd=variant.cwd,
            env=variant.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        variant.after()
        return Run(RUN_TIMEOUT, False, 0, 0.0, 0.0, error=f"timed out after {RUN_TIMEOUT:g}s")
    wall = time.perf_counter() - t0
    variant.after()
    # The host side's CPU counts once sshd has reaped every session of this run.
    host.idle()
    cpu1, host1 = _children_cpu_s(), host.cpu_s()
    logins, sessions = host.counts()
    try:
        hosts_ok, extra = variant.check(proc, n)
    except Exception as exc:
        hosts_ok, extra = 0, {"check_error": repr(exc)}
    ok = hosts_ok == n
    error = ""
    if not ok:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-8:]
        error = f"rc={proc.returncode}, {hosts_ok}/{n} hosts ok: " + " | ".join(tail)
    inner = extra.pop("inner_s", None)
    return Run(
        wall, ok, hosts_ok, cpu1 - cpu0, host1 - host0, inner, extra, error, logins, sessions
    )


# ---------------------------------------------------------------- checks


def _check_child(proc: subprocess.CompletedProcess[str], n: int) -> tuple[int, dict[str, Any]]:
    if proc.returncode != 0:
        return 0, {}
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(data.pop("ok")), data


_ANSIBLE_OK_RE = re.compile(r"^\S+ \| SUCCESS => ", re.MULTILINE)


def _check_ansible(proc: subprocess.CompletedProcess[str], n: int) -> tuple[int, dict[str, Any]]:
    return len(_ANSIBLE_OK_RE.findall(proc.stdout)), {}


_PYINFRA_FACT_RE = re.compile(r"^--> Fact data for: (\S+)\n", re.MULTILINE)


def _check_pyinfra(proc: subprocess.CompletedProcess[str], n: int) -> tuple[int, dict[str, Any]]:
    """Hosts with a value for every fact. pyinfra 3 prints, on stderr, one
    ``--> Fact data for: NAME`` header per fact followed by ``{host: value}`` JSON."""
    if proc.returncode != 0:
        return 0, {}
    text = proc.stderr + proc.stdout
    decoder = json.JSONDecoder()
    per_fact: dict[str, dict[str, Any]] = {}
    for m in _PYINFRA_FACT_RE.finditer(text):
        value, _ = decoder.raw_decode(text, m.end())
        per_fact[m.group(1)] = value
    if set(per_fact) != set(PYINFRA_FACTS):
        return 0, {"facts_seen": sorted(per_fact)}
    hosts = set.intersection(
        *(set(h for h, v in d.items() if v is not None) for d in per_fact.values())
    )
    return len(hosts), {}


def _cli_hosts(data: Any) -> int:
    """Hosts reached, discovered and without a problem in ``fmp-install discover --json``."""
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, list):
        return 0
    return sum(
        1
        for h in hosts
        if isinstance(h, dict)
        and h.get("reached")
        and h.get("problem") is None
        and isinstance(h.get("facts"), dict)
        and h["facts"].get("hostname")
    )


def _check_cli(proc: subprocess.CompletedProcess[str], n: int) -> tuple[int, dict[str, Any]]:
    # Exit 3 = a preflight check failed: expected here (20 hosts that are one machine
    # share a machine-id, a hostname, ...). Discovery itself succeeded.
    if proc.returncode not in (0, 3):
        return 0, {}
    return _cli_hosts(json.loads(proc.stdout)), {"rc": proc.returncode}


# ---------------------------------------------------------------- setup


def _tool(flag: str | None, env: str, name: str, *, beside_python: bool = False) -> str | None:
    if flag:
        return flag
    if os.environ.get(env):
        return os.environ[env]
    if beside_python:
        # Skip the pyenv/asdf shim (a shell script that costs ~0.1 s per call).
        local = Path(sys.executable).parent / name
        if local.exists():
            return str(local)
    return shutil.which(name)


def _has_discover(fmp_install: str) -> bool:
    try:
        proc = subprocess.run(
            [fmp_install, "discover", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "--answers" in proc.stdout


def write_answers(path: Path, hosts: Sequence[Any], client_key: Path, known_hosts: Path) -> None:
    lines = [
        "# Generated by bench/discovery.py: N loopback sshd, one machine.",
        "version: 1",
        "cluster: {name: bench}",
        "profile: kubeadm-etcd",
        "ssh:",
        "  user: root",
        f"  identity_file: {client_key}",
        f"  known_hosts: {known_hosts}",
        "  accept_new_host_keys: false",
        "hosts:",
    ]
    for i, h in enumerate(hosts):
        roles = "[control-plane, etcd, lb]" if i < 3 else "[worker]"
        lines.append(
            f"  - {{address: {h.address}, name: {h.name}, roles: {roles}, ssh: {{port: {h.port}}}}}"
        )
    lines += ["network:", "  vip: 127.0.0.254"]
    path.write_text("\n".join(lines) + "\n")


def write_ansible(
    d: Path, hosts: Sequence[Any], client_key: Path, known_hosts: Path, python: str
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    inventory = d / "inventory.ini"
    common = (
        f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    )
    inventory.write_text(
        "[bench]\n"
        + "".join(f"{h.name} ansible_host={h.address} ansible_port={h.port}\n" for h in hosts)
        + "\n[bench:vars]\nansible_user=root\n"
        + f"ansible_python_interpreter={python}\n"
        + f"ansible_ssh_private_key_file={client_key}\n"
        + f"ansible_ssh_common_args='{common}'\n"
    )
    cfg = d / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"inventory = {inventory}\n"
        f"forks = {len(hosts)}\n"
        "host_key_checking = True\n"
        "interpreter_python = auto_silent\n"
        f"local_tmp = {d / 'local-tmp'}\n"
        f"remote_tmp = {d / 'remote-tmp'}\n"
        "retry_files_enabled = False\n"
        "nocolor = True\n"
    )
    return cfg


def write_pyinfra(d: Path, hosts: Sequence[Any], client_key: Path, known_hosts: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    data = {
        "ssh_user": "root",
        "ssh_key": str(client_key),
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    entries = [(h.name, {**data, "ssh_hostname": h.address, "ssh_port": h.port}) for h in hosts]
    inventory = d / "inventory.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    return inventory


def close_control_masters(ssh: str, control_dir: Path) -> None:
    """``ssh -O exit`` every ControlPersist master ansible left in ``control_dir``."""
    if not control_dir.exists():
        return
    for sock in control_dir.iterdir():
        subprocess.run(
            [ssh, "-o", f"ControlPath={sock}", "-O", "exit", "bench"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    shutil.rmtree(control_dir, ignore_errors=True)


def child_env(work: Path) -> dict[str, str]:
    """The environment of every run.

    No agent: every client uses the farm's key file. Byte code is cached (in a
    private tree, not in the checkout) as an installed package would have it:
    with PYTHONDONTWRITEBYTECODE and no __pycache__, fmp-install would compile
    every module on every start while the tools' venvs hold compiled files.
    """
    drop = {"SSH_AUTH_SOCK", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def build_variants(
    args: argparse.Namespace, farm: Any, work: Path
) -> tuple[list[Variant], list[str]]:
    from installer.discovery import DISCOVERY_SCRIPT

    notes: list[str] = []
    variants: list[Variant] = []
    wanted = set(args.only) if args.only else set(ALL_VARIANTS)
    base_env = child_env(work)
    answers = work / "answers.yaml"
    write_answers(answers, farm.hosts, farm.client_key, farm.known_hosts)
    spec = work / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "answers": str(answers),
                "client_key": str(farm.client_key),
                "known_hosts": str(farm.known_hosts),
                "hosts": [asdict(h) for h in farm.hosts],
                "discovery_script": DISCOVERY_SCRIPT,
            }
        )
    )
    me = str(Path(__file__).resolve())

    def child(kind: str) -> list[str]:
        return [sys.executable, me, "--child", kind, "--spec", str(spec)]

    fmp = _tool(args.fmp_install, "FMP_BENCH_FMP_INSTALL", "fmp-install", beside_python=True)
    if CLI in wanted:
        if fmp and _has_discover(fmp):
            variants.append(
                Variant(
                    CLI,
                    [fmp, "discover", "--answers", str(answers), "--json"],
                    work,
                    base_env,
                    _check_cli,
                )
            )
        else:
            notes.append(
                f"{CLI}: skipped ({'no fmp-install found' if not fmp else fmp + ' has no discover command yet'})"
            )
    if ENGINE in wanted:
        variants.append(Variant(ENGINE, child("engine"), ROOT, base_env, _check_child))

    ansible = _tool(args.ansible, "FMP_BENCH_ANSIBLE", "ansible")
    if ANSIBLE in wanted:
        if ansible:
            adir = work / "ansible"
            cfg = write_ansible(
                adir, farm.hosts, farm.client_key, farm.known_hosts, args.ansible_python
            )
            control = adir / "cp"
            env = base_env | {
                "ANSIBLE_CONFIG": str(cfg),
                "ANSIBLE_HOME": str(adir / "home"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            }
            ssh = shutil.which("ssh") or "ssh"
            variants.append(
                Variant(
                    ANSIBLE,
                    [ansible, "all", "-m", "setup", "--forks", str(len(farm.hosts))],
                    adir,
                    env,
                    _check_ansible,
                    after=lambda: close_control_masters(ssh, control),
                    before=lambda: close_control_masters(ssh, control),
                )
            )
        else:
            notes.append(f"{ANSIBLE}: skipped (no ansible: --ansible PATH or FMP_BENCH_ANSIBLE)")

    pyinfra = _tool(args.pyinfra, "FMP_BENCH_PYINFRA", "pyinfra")
    if PYINFRA in wanted:
        if pyinfra:
            pdir = work / "pyinfra"
            inventory = write_pyinfra(pdir, farm.hosts, farm.client_key, farm.known_hosts)
            variants.append(
                Variant(
                    PYINFRA,
                    [
                        pyinfra,
                        "-y",
                        "--parallel",
                        str(len(farm.hosts)),
                        str(inventory),
                        "fact",
                        *PYINFRA_FACTS,
                    ],
                    pdir,
                    base_env,
                    _check_pyinfra,
                )
            )
        else:
            notes.append(f"{PYINFRA}: skipped (no pyinfra: --pyinfra PATH or FMP_BENCH_PYINFRA)")

    if FLOOR in wanted:
        variants.append(Variant(FLOOR, child("floor"), ROOT, base_env, _check_child))
    if FLOOR_SCRIPT in wanted:
        variants.append(Variant(FLOOR_SCRIPT, child("floor-script"), ROOT, base_env, _check_child))
    return variants, notes


# ---------------------------------------------------------------- report


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _per_host(counts: Sequence[int], n: int) -> str:
    m = _median([float(c) for c in counts])
    return "-" if m is None else f"{m / n:.3g}"


def report(variants: Sequence[Variant], n: int, notes: Sequence[str]) -> str:
    med: dict[str, float] = {}
    for v in variants:
        m = _median([r.wall_s for r in v.runs if r.ok])
        if m is not None:
            med[v.name] = m
    refs = [name for name in (CLI, ENGINE) if name in med]
    ref = refs[0] if refs else None
    lines = [
        f"N = {n} hosts; median of {max(len(v.runs) for v in variants)} interleaved runs "
        "(wall: process start to exit, so interpreter start-up and imports count).",
        "",
        "| variant | median wall s | runs, wall s | in-driver s | client CPU s | host CPU s "
        f"| SSH logins / sessions per host | vs {ref or 'fmp-install'} |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for v in variants:
        ok_runs = [r for r in v.runs if r.ok]
        shown = ", ".join(f"{r.wall_s:.2f}" if r.ok else "FAIL" for r in v.runs)
        vs = "-"
        if ref is not None and v.name in med:
            if v.name in (FLOOR, FLOOR_SCRIPT):
                vs = f"fmp-install takes {med[ref] / med[v.name]:.2f}x this"
            elif v.name in (ANSIBLE, PYINFRA):
                vs = f"{med[v.name] / med[ref]:.2f}x fmp-install's time"
            else:
                vs = f"{med[v.name] / med[ref]:.2f}x"
        lines.append(
            f"| {v.name} | {_fmt(med.get(v.name))} | {shown} "
            f"| {_fmt(_median([r.inner_s for r in ok_runs]))} "
            f"| {_fmt(_median([r.client_cpu_s for r in ok_runs]))} "
            f"| {_fmt(_median([r.host_cpu_s for r in ok_runs]))} "
            f"| {_per_host([r.logins for r in ok_runs], n)} / {_per_host([r.sessions for r in ok_runs], n)} "
            f"| {vs} |"
        )
    lines += [
        "",
        "Targets (issue 3): tools >= 8x fmp-install's time; fmp-install <= 1.25x the floor.",
    ]
    for name in refs:
        for tool in (ANSIBLE, PYINFRA):
            if tool in med:
                speed = med[tool] / med[name]
                verdict = "met" if speed >= 8 else "MISSED"
                lines.append(f"- {tool} / {name}: {speed:.2f}x ({verdict})")
        for floor in (FLOOR, FLOOR_SCRIPT):
            if floor in med:
                over = med[name] / med[floor]
                verdict = "met" if over <= 1.25 else "MISSED"
                lines.append(f"- {name} / {floor}: {over:.2f}x ({verdict})")
    lines += ["", "Details:"]
    for v in variants:
        phases = [r.extra["phases"] for r in v.runs if r.ok and r.extra.get("phases")]
        if phases:
            parts = ", ".join(
                f"{k} {statistics.median(p[k] for p in phases):.2f}s" for k in phases[0]
            )
            lines.append(f"- {v.name}, inside the driver (median): {parts}")
        unknown = sorted({u for r in v.runs for u in r.extra.get("unknown_facts", [])})
        if unknown:
            lines.append(f"- {v.name}: facts unknown (on this machine): {', '.join(unknown)}")
    for v in variants:
        for r in v.runs:
            if not r.ok:
                lines.append(f"- FAILED run of {v.name}: {r.error}")
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({model}){mem}, Linux {platform.release()}, Python {platform.python_version()}"


def versions(variants: Sequence[Variant]) -> list[str]:
    out = []
    for exe, flag in (("ssh", "-V"), ("sshd", "-V")):
        path = shutil.which(exe) or f"/usr/sbin/{exe}"
        with_v = subprocess.run([path, flag], capture_output=True, text=True, check=False)
        out.append(
            f"{exe}: {(with_v.stderr or with_v.stdout).strip().splitlines()[0] if (with_v.stderr or with_v.stdout).strip() else '?'}"
        )
    for v in variants:
        if v.name == ANSIBLE:
            p = subprocess.run(
                [v.argv[0], "--version"], capture_output=True, text=True, check=False, env=v.env
            )
            out.append(p.stdout.splitlines()[0] if p.stdout else "ansible: ?")
        if v.name == PYINFRA:
            p = subprocess.run(
                [v.argv[0], "--version"], capture_output=True, text=True, check=False
            )
            out.append(p.stdout.strip() or "pyinfra: ?")
    import asyncssh

    out.append(f"asyncssh {asyncssh.__version__}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--ansible", help="ansible executable (default: $FMP_BENCH_ANSIBLE, PATH)")
    parser.add_argument("--pyinfra", help="pyinfra executable (default: $FMP_BENCH_PYINFRA, PATH)")
    parser.add_argument(
        "--fmp-install", help="fmp-install executable (default: beside python, PATH)"
    )
    parser.add_argument(
        "--ansible-python",
        default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else "auto_silent",
        help="ansible_python_interpreter for the hosts (default: /usr/bin/python3, which also "
        "spares ansible its interpreter discovery; 'auto_silent' to have it discover)",
    )
    parser.add_argument(
        "--only",
        type=lambda s: [SHORT_NAMES[x.strip()] for x in s.split(",")],
        help=f"comma list of {', '.join(SHORT_NAMES)}",
    )
    parser.add_argument(
        "--keep-bashrc",
        action="store_true",
        help="let root's ~/.bashrc run in every SSH session (default: skipped, see sshd_farm.py)",
    )
    parser.add_argument("--profile", type=Path, help="cProfile one extra engine run into this file")
    parser.add_argument("--json-out", type=Path, help="also write every run as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.spec, args.profile_out)
        return 0

    from sshd_farm import sshd_farm  # bench/ is on sys.path as this script's directory

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="fmp-bench-disc-") as tmp:
        work = Path(tmp)
        load_before = os.getloadavg()
        with sshd_farm(args.hosts, work / "farm", skip_bashrc=not args.keep_bashrc) as farm:
            host_side = HostSide(farm)
            variants, notes = build_variants(args, farm, work)
            print(
                f"# {len(farm.hosts)} sshd up; variants: {', '.join(v.name for v in variants)}",
                file=sys.stderr,
            )
            for rnd in range(args.warmup + args.repeat):
                timed = rnd >= args.warmup
                k = rnd % len(variants)
                for v in variants[k:] + variants[:k]:
                    run = run_once(v, args.hosts, host_side)
                    if timed:
                        v.runs.append(run)
                    label = "run" if timed else "warm-up"
                    status = "ok" if run.ok else f"FAILED: {run.error}"
                    print(
                        f"# {label} {rnd + 1}: {v.name}: {run.wall_s:.2f}s {status}",
                        file=sys.stderr,
                    )
            if args.profile:
                spec = work / "spec.json"
                prof = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--child",
                        "engine",
                        "--spec",
                        str(spec),
                        "--profile-out",
                        str(args.profile),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    env=child_env(work),
                )
                notes.append(f"cProfile of one engine run: {args.profile} (rc {prof.returncode})")
            vers = versions(variants)
            load_after = os.getloadavg()
        table = report(variants, args.hosts, notes)
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC  ")
    print(f"Machine: {machine()}  ")
    print(f"Tools: {'; '.join(vers)}  ")
    print(
        "Load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}  ".format(
            *load_before, *load_after
        )
    )
    print(
        "Host shell: "
        + (
            "root's ~/.bashrc runs in every session"
            if args.keep_bashrc
            else "~/.bashrc skipped (SHLVL=1)"
        )
        + "  "
    )
    print(
        f"Command: {shlex.join([sys.executable, 'bench/discovery.py', *(argv if argv is not None else sys.argv[1:])])}"
    )
    print()
    print(table)
    if args.json_out:
        args.json_out.write_text(
            json.dumps({v.name: [asdict(r) for r in v.runs] for v in variants}, indent=2)
        )
    return 0 if all(r.ok for v in variants for r in v.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
