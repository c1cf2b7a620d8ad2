"""An in-memory Transport for runner tests: scripted results, injected failures.

``FakeNetwork`` plays every host. ``network.connect`` is the runner's connect
factory. Commands are answered by rules (``network.on(...)``), first match
wins; unmatched commands succeed silently. The network records every call and
the start/end order of commands, and the highest concurrency per host, per
step and overall, so tests assert scheduling from what happened, not from the
clock.

Host-lock scripts (they start with ``hostlock.LOCK_MARKER``) run in a real bash,
with the lock path moved to ``lock_dir/<host>/``: the noclobber locking is the
real thing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from installer.hostlock import HOST_LOCK_PATH, LOCK_MARKER
from installer.plan_model import Plan, PlanHost, Task
from installer.transport import CommandResult, FailureKind, LineCallback, TransportError

TASK_RE = re.compile(r"#task:(\S+)")

Action = Callable[["FakeNetwork", str, str], Awaitable[CommandResult | None] | CommandResult | None]


@dataclass
class Call:
    host: str
    kind: str  # run | upload | connect | close | lock
    command: str = ""
    path: str = ""
    data: bytes = b""
    mode: int = 0
    sudo: bool = False


@dataclass
class Rule:
    match: str
    host: str | None = None
    exit: int = 0
    stdout: str = ""
    stderr: str = ""
    times: int | None = None  # None = always
    drop: bool = False  # the connection drops while it runs
    drop_after_lines: bool = False  # print the output, then drop
    gate: asyncio.Event | None = None  # wait for it before answering
    delay: float = 0.0  # simulated duration (benchmarks)
    hang: bool = False  # never answers (the transport's timeout applies)
    action: Action | None = None
    used: int = 0

    def applies(self, host: str, command: str) -> bool:
        if self.host is not None and self.host != host:
            return False
        if self.times is not None and self.used >= self.times:
            return False
        return self.match in command


@dataclass
class FakeNetwork:
    lock_dir: Path | None = None
    yields: int = 3  # event-loop turns a command takes, so that concurrency shows
    calls: list[Call] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    order: list[tuple[str, str, str]] = field(default_factory=list)  # (start|end, host, task)
    connect_failures: dict[str, int] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    active_steps: dict[str, int] = field(default_factory=dict)
    max_per_host: dict[str, int] = field(default_factory=dict)
    max_per_step: dict[str, int] = field(default_factory=dict)
    active_total: int = 0
    max_total: int = 0
    connects: int = 0

    def on(self, match: str, **kw: object) -> Rule:
        rule = Rule(match, **kw)  # type: ignore[arg-type]
        self.rules.append(rule)
        return rule

    async def connect(self, host: str) -> FakeTransport:
        self.calls.append(Call(host, "connect"))
        left = self.connect_failures.get(host, 0)
        if left:
            self.connect_failures[host] = left - 1
            raise TransportError(host, FailureKind.UNREACHABLE, "no route to host (fake)")
        self.connects += 1
        return FakeTransport(self, host)

    def runs(self, host: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.kind == "run" and (host is None or c.host == host)]

    def task_runs(self, task_id: str) -> int:
        """How many times the run command of ``task_id`` (tagged ``#task:<id>``) ran."""
        return sum(1 for c in self.runs() if f"#task:{task_id}\n" in c.command + "\n")

    def lock_file(self, host: str) -> Path:
        assert self.lock_dir is not None
        return self.lock_dir / host / "fmp-install.lock"


class FakeTransport:
    def __init__(self, net: FakeNetwork, host: str) -> None:
        self.net = net
        self._host = host
        self.closed = False

    @property
    def host(self) -> str:
        return self._host

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        if self.closed:
            raise TransportError(self._host, FailureKind.CONNECTION_LOST, "closed")
        if command.startswith(LOCK_MARKER):
            return await self._lock(command)
        net = self.net
        net.calls.append(Call(self._host, "run", command, sudo=sudo))
        m = TASK_RE.search(command)
        task = m.group(1) if m else ""
        step = task.split(":", 1)[1] if ":" in task else ""
        self._enter(task, step)
        try:
            return await asyncio.wait_for(self._answer(command, on_line), timeout)
        except TimeoutError:
            raise TransportError(
                self._host, FailureKind.COMMAND_TIMEOUT, f"no answer in {timeout}s"
            ) from None
        finally:
            self._leave(task, step)

    def _enter(self, task: str, step: str) -> None:
        net, h = self.net, self._host
        net.order.append(("start", h, task))
        net.active[h] = net.active.get(h, 0) + 1
        net.max_per_host[h] = max(net.max_per_host.get(h, 0), net.active[h])
        if step:
            net.active_steps[step] = net.active_steps.get(step, 0) + 1
            net.max_per_step[step] = max(net.max_per_step.get(step, 0), net.active_steps[step])
        net.active_total += 1
        net.max_total = max(net.max_total, net.active_total)

    def _leave(self, task: str, step: str) -> None:
        net, h = self.net, self._host
        net.order.append(("end", h, task))
        net.active[h] -= 1
        if step:
            net.active_steps[step] -= 1
        net.active_total -= 1

    async def _answer(self, command: str, on_line: LineCallback | None) -> CommandResult:
        net = self.net
        for _ in range(net.yields):
            await asyncio.sleep(0)
        rule = next((r for r in net.rules if r.applies(self._host, command)), None)
        if rule is None:
            return CommandResult(0, "", "")
        rule.used += 1
        if rule.gate is not None:
            await rule.gate.wait()
        if rule.hang:
            await asyncio.Event().wait()
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            self.closed = True
            raise TransportError(self._host, FailureKind.CONNECTION_LOST, "connection reset")
        result: CommandResult | None = None
        if rule.action is not None:
            got = rule.action(net, self._host, command)
            result = await got if asyncio.iscoroutine(got) else got  # type: ignore[assignment]
        if result is None:
            result = CommandResult(rule.exit, rule.stdout, rule.stderr)
        if on_line is not None:
            for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                for line in text.splitlines():
                    on_line(stream, line)
        if rule.drop_after_lines:
            self.closed = True
            raise TransportError(self._host, FailureKind.CONNECTION_LOST, "connection reset")
        return result

    async def _lock(self, command: str) -> CommandResult:
        net = self.net
        net.calls.append(Call(self._host, "lock", command))
        if net.lock_dir is None:
            return CommandResult(0, "FMP_LOCK=acquired\n", "")
        d = net.lock_dir / self._host
        d.mkdir(parents=True, exist_ok=True)
        script = command.replace(HOST_LOCK_PATH, str(d / "fmp-install.lock"))
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return CommandResult(proc.returncode or 0, out.decode(), err.decode())

    async def upload(
        self,
        data: bytes,
        path: str,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        sudo: bool = False,
    ) -> None:
        if self.closed:
            raise TransportError(self._host, FailureKind.CONNECTION_LOST, "closed")
        self.net.calls.append(
            Call(self._host, "upload", path=path, data=data, mode=mode, sudo=sudo)
        )
        await asyncio.sleep(0)

    async def close(self) -> None:
        self.closed = True
        self.net.calls.append(Call(self._host, "close"))


# -- plans for tests ------------------------------------------------------------------


def make_task(
    host: str, step: str, *, needs: tuple[str, ...] = (), run: str | None = None, **kw: object
) -> Task:
    """A task whose run command carries ``#task:<id>`` so the fake network knows it."""
    tid = f"{host}:{step}"
    body = run if run is not None else f"echo {step}"
    kw.setdefault("input_hash", f"h-{tid}")
    return Task(  # type: ignore[arg-type]
        id=tid,
        host=host,
        step=step,
        title=f"{step} title",
        needs=tuple(needs),
        run=f"{body} #task:{tid}",
        **kw,
    )


def make_plan(tasks: list[Task], cluster: str = "test") -> Plan:
    hosts = tuple(dict.fromkeys(t.host for t in tasks))
    return Plan(
        cluster=cluster,
        profile="fake",
        hosts=tuple(PlanHost(h, f"127.0.0.{i + 1}", ()) for i, h in enumerate(hosts)),
        tasks=tuple(tasks),
    )


def grid_plan(
    hosts: list[str],
    steps: list[str],
    *,
    barrier: tuple[str, ...] = (),
    serial: tuple[str, ...] = (),
    **kw: object,
) -> Plan:
    """Each step needs the previous one on the same host; a ``barrier`` step needs the
    previous step on every host (``step@all``)."""
    tasks: list[Task] = []
    for i, step in enumerate(steps):
        for h in hosts:
            needs: tuple[str, ...] = ()
            if i:
                prev = steps[i - 1]
                needs = tuple(f"{x}:{prev}" for x in hosts) if step in barrier else (f"{h}:{prev}",)
            tasks.append(make_task(h, step, needs=needs, serial=step in serial, **kw))
    return make_plan(tasks)


# -- the kill -9 child ----------------------------------------------------------------


CRASH_TOKEN = "abcdef.0123456789abcdef"


def crash_plan() -> Plan:
    """4 hosts x 6 steps: a barrier, a serial step, captures (one secret), a non-idempotent step."""
    from installer.plan_model import CaptureSpec, capture_placeholder

    hosts = [f"h{i}" for i in range(4)]
    steps = ["prep", "pkgs", "init", "sync", "join", "final"]
    tasks: list[Task] = []
    for i, step in enumerate(steps):
        for h in hosts:
            needs: tuple[str, ...] = (f"{h}:{steps[i - 1]}",) if i else ()
            kw: dict[str, object] = {}
            run = f"do {step}"
            if step == "init":
                if h != "h0":
                    continue
                kw["captures"] = (
                    CaptureSpec("addr", r"ADDR=(\S+)"),
                    CaptureSpec("token", r"TOKEN=(\S+)", secret=True),
                )
                kw["idempotent"] = False
            if step == "sync":
                needs = (f"{h}:pkgs", "h0:init")
            if step == "join":
                run = f"join {capture_placeholder('addr')} {capture_placeholder('token')}"
                kw["serial"] = True
            tasks.append(make_task(h, step, needs=needs, run=run, **kw))
    return make_plan(tasks, cluster="crash")


async def _child(state: str, lock_dir: str, exec_log: str, seed: int) -> int:
    import os
    import random

    from installer.events import EventBus
    from installer.headless import SecretsFileVault
    from installer.journal import Journal
    from installer.redact import Redactor
    from installer.runner import Runner, RunOptions
    from installer.secrets import load_secrets, secrets_path

    rnd = random.Random(seed)
    net = FakeNetwork(lock_dir=Path(lock_dir))

    async def record(net: FakeNetwork, host: str, command: str) -> CommandResult:
        m = TASK_RE.search(command)
        with open(exec_log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {m.group(1) if m else '?'}\n")
            fh.flush()
            os.fsync(fh.fileno())
        await asyncio.sleep(rnd.uniform(0.002, 0.02))
        out = "ok\n"
        if "h0:init" in command:
            out = f"ADDR=10.1.2.3:6443\nTOKEN={CRASH_TOKEN}\n"
        return CommandResult(0, out, "")

    net.on("#task:", action=record)
    store = load_secrets(secrets_path(state))
    red = Redactor(store.values())
    with Journal.open(state, redactor=red) as journal:
        runner = Runner(
            crash_plan(),
            journal,
            net.connect,
            redactor=red,
            secrets=SecretsFileVault(secrets_path(state), store),
            bus=EventBus(),
            options=RunOptions(retry_interrupted=True, operator="crash@test"),
        )
        summary = await runner.run()
    return summary.exit_code


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "child":
        sys.exit(asyncio.run(_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
