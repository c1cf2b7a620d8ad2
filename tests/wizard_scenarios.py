"""Wizard scenarios: an app in a given state plus the async setup that reaches a screen.

Shared by the snapshot tests and the pilot tests. Deterministic: fixture facts,
the fixture engine, a fixed clock, no cursor blink, no animation.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import replace

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, TabbedContent
from textual.worker import WorkerCancelled, WorkerFailed

from installer.answers import Answers, Volume
from installer.events import Event
from installer.hostfacts import HostFacts, SwapArea
from installer.profile import load_profile_meta
from installer.roles import apply_roles, suggest_roles
from screens.app import WizardApp
from screens.engine_adapters import DiscoveryFailed, ResumeInfo, RunRequest
from screens.format import facts_line
from screens.state import HostStatus, WizardState
from tests.wizard_fixtures import (
    STATE_DIR,
    T0,
    FixtureEngine,
    GiB,
    data_disk,
    fixture_preview,
    node_facts,
    run_events,
    six_answers,
    six_facts,
    system_disk,
)

NOW = T0 + 754.0
VIP = ipaddress.ip_address("10.30.217.100")

Setup = Callable[[Pilot[int]], Awaitable[None]]


async def settle(pilot: Pilot[int]) -> None:
    """Let workers finish (not the install itself) and the screen repaint."""
    # Workers start from messages (a screen resuming): look again until none
    # is left, then let their result messages land.
    for _ in range(5):
        await pilot.pause()
        pending = [w for w in pilot.app.workers if w.group != "run" and not w.is_finished]
        if not pending:
            break
        for worker in pending:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
    await pilot.pause()
    # A DataTable sizes its columns when its message queue runs dry; under load
    # that can come after the screenshot. Wait for it (private flags: test only).
    for _ in range(100):
        busy = [
            t
            for t in pilot.app.screen.query(DataTable)
            if t._updated_cells or t._require_update_dimensions
        ]
        if not busy:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.2)  # the Run screen flushes its panes every 0.1 s


def discovered(
    profile: str = "kubeadm-etcd",
    facts: dict[str, HostFacts] | None = None,
    *,
    roles: bool = True,
    vip: bool = True,
) -> WizardState:
    """Six hosts, all discovered, profile chosen; roles suggested unless ``roles`` is False."""
    facts = facts if facts is not None else six_facts()
    state = WizardState()
    answers = six_answers(profile)
    if roles:
        meta = load_profile_meta(profile)
        answers = apply_roles(answers, suggest_roles(answers, meta, facts))
    if vip:
        answers.network.vip = VIP
    state.answers = answers
    state.facts = dict(facts)
    for label, f in facts.items():
        state.discovery[label] = HostStatus("ok", facts_line(f))
    state.profile_chosen = True
    state.roles_edited = roles
    state.facts_version = 1
    return state


def make_app(
    state: WizardState | None = None,
    start: str = "welcome",
    engine: FixtureEngine | None = None,
) -> WizardApp:
    return WizardApp(
        engine=engine or FixtureEngine(state.facts if state and state.facts else None),
        state=state or WizardState(),
        start=start,
        deterministic=True,
        clock=lambda: NOW,
    )


def with_disks(answers: Answers, wipe: dict[str, str] | None = None) -> Answers:
    """Give every storage host its sdb by id (and consent to wipe those in ``wipe``)."""
    hosts = []
    for i, h in enumerate(answers.hosts):
        if "storage" in h.roles:
            h = h.model_copy(update={"storage_disk": f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"})
        hosts.append(h)
    answers = answers.model_copy(update={"hosts": hosts})
    if wipe:
        answers.storage.wipe = [f"{host}:{disk}" for host, disk in wipe.items()]
    return answers


# --------------------------------------------------------------------------- scenarios


def welcome() -> tuple[WizardApp, Setup]:
    return make_app(), settle


def welcome_resume() -> tuple[WizardApp, Setup]:
    info = ResumeInfo(
        cluster="fmp",
        state_dir=STATE_DIR,
        total=42,
        done=29,
        failed=("kn3: containerd (exit 100)",),
        last_run="last run 2025-10-09 10:13, failed",
        answers_path=None,
    )
    return make_app(engine=FixtureEngine(resume=info)), settle


def hosts_empty() -> tuple[WizardApp, Setup]:
    return make_app(start="hosts"), settle


def hosts_discovered() -> tuple[WizardApp, Setup]:
    return make_app(discovered(roles=False), "hosts"), settle


def _failing_engine() -> FixtureEngine:
    return FixtureEngine(
        failures={
            "kn3": DiscoveryFailed(
                "auth failed",
                "fmpadmin@10.30.217.23: permission denied (tried: agent (0 keys), "
                "~/.ssh/id_ed25519, password: none given)",
                "add your key to ~/.ssh/authorized_keys of fmpadmin on kn3, or type the SSH password",
            ),
            "kn5": DiscoveryFailed(
                "unreachable",
                "10.30.217.25:22: no route to host",
                "check the address and that the host is up",
            ),
        }
    )


def hosts_failures() -> tuple[WizardApp, Setup]:
    state = WizardState()
    state.answers = six_answers()
    app = make_app(state, "hosts", _failing_engine())

    async def setup(pilot: Pilot[int]) -> None:
        await pilot.press("ctrl+d")
        await settle(pilot)
        app.screen.query_one("#hosts-table", DataTable).move_cursor(row=3)
        await settle(pilot)

    return app, setup


def hostkey_dialog() -> tuple[WizardApp, Setup]:
    state = WizardState()
    state.answers = six_answers()
    app = make_app(state, "hosts", FixtureEngine(unknown_keys=["kn2"]))

    async def setup(pilot: Pilot[int]) -> None:
        await pilot.press("ctrl+d")
        for _ in range(20):
            await pilot.pause(0.05)
            if app.screen.id == "hostkey" or type(app.screen).__name__ == "HostKeyDialog":
                break
        await pilot.pause(0.2)

    return app, setup


def _weak_facts() -> dict[str, HostFacts]:
    facts = six_facts()
    facts["kn1"] = node_facts(1, flags=frozenset({"sse4_2"}))
    facts["kn3"] = node_facts(3, cpus=2, memory_gib=4)
    swap = (SwapArea("/swap.img", "file", 2 * GiB, 0),)
    facts["kn4"] = replace(node_facts(4), swaps=swap)
    return facts


def preflight_ok() -> tuple[WizardApp, Setup]:
    return make_app(discovered(roles=False), "preflight"), settle


def preflight_failures() -> tuple[WizardApp, Setup]:
    # Back on Checks after the roles: each host is measured against its roles.
    app = make_app(discovered("microk8s-openebs", _weak_facts()), "preflight")

    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)

    return app, setup


def preflight_facts() -> tuple[WizardApp, Setup]:
    app = make_app(discovered("microk8s-openebs", _weak_facts(), roles=False), "preflight")

    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        app.screen.query_one("#preflight-tabs", TabbedContent).active = "tab-facts"
        await settle(pilot)

    return app, setup


def profile() -> tuple[WizardApp, Setup]:
    state = discovered(roles=False)
    state.profile_chosen = False
    return make_app(state, "profile"), settle


def profile_weak_hosts() -> tuple[WizardApp, Setup]:
    state = discovered("microk8s-openebs", _weak_facts(), roles=False)
    state.profile_chosen = True
    return make_app(state, "profile"), settle


def roles_valid() -> tuple[WizardApp, Setup]:
    return make_app(discovered(roles=False), "roles"), settle


def roles_invalid() -> tuple[WizardApp, Setup]:
    state = discovered()
    state.answers = apply_roles(state.answers, {"kn3": ["etcd", "worker"]})
    state.answers.network.vip = ipaddress.ip_address("10.30.217.21")
    app = make_app(state, "roles")
    return app, settle


def _disk_facts() -> dict[str, HostFacts]:
    facts = six_facts()
    facts["kn1"] = node_facts(1, disks=(system_disk(),))  # no data disk at all
    facts["kn4"] = node_facts(4, disks=(system_disk(), data_disk(4, fstype="ext4")))
    facts["kn5"] = node_facts(
        5, disks=(system_disk(), data_disk(5, size_gib=4, name="sdb"), data_disk(6, name="sdc"))
    )
    return facts


def disks() -> tuple[WizardApp, Setup]:
    state = discovered("microk8s-openebs", _disk_facts())
    state.answers = apply_roles(state.answers, {"kn4": ["worker", "storage"]})
    app = make_app(state, "disks")

    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        screen = app.screen
        rows = screen.rows  # type: ignore[attr-defined]
        index = next(
            i
            for i, r in enumerate(rows)
            if r.host == "kn4" and r.device is not None and r.device.name == "sdb"
        )
        screen.query_one("#disks", DataTable).move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)

    return app, setup


def disks_none_eligible() -> tuple[WizardApp, Setup]:
    state = discovered("microk8s-openebs", _disk_facts())
    state.answers = apply_roles(state.answers, {"kn1": ["control-plane", "storage"]})
    return make_app(state, "disks"), settle


def _storage_state(features: list[str], volumes: list[Volume] | None = None) -> WizardState:
    state = discovered("microk8s-openebs")
    state.answers = with_disks(state.answers)
    state.answers.storage.features = features
    state.answers.storage.volumes = volumes or []
    return state


def storage_ok() -> tuple[WizardApp, Setup]:
    return make_app(_storage_state(["insights"]), "storage"), settle


def storage_insufficient() -> tuple[WizardApp, Setup]:
    big = [Volume(name="stream-state", size_gb=900), Volume(name="elasticsearch", size_gb=80)]
    return make_app(_storage_state(["insights", "hybrid"], big), "storage"), settle


def _review_state() -> WizardState:
    state = discovered("microk8s-openebs", _disk_facts())
    state.answers = apply_roles(state.answers, {"kn4": ["worker", "storage"]})
    wipe = {"kn4": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"}
    hosts = []
    for i, h in enumerate(state.answers.hosts):
        if "storage" in h.roles:
            h = h.model_copy(update={"storage_disk": f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"})
        hosts.append(h)
    state.answers = state.answers.model_copy(update={"hosts": hosts})
    kn5 = state.answers.hosts[5]
    if kn5.storage_disk:
        state.replace_host(
            5, kn5.model_copy(update={"storage_disk": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d6"})
        )
    state.answers.storage.wipe = [f"{h}:{d}" for h, d in wipe.items()]
    state.answers.storage.features = ["insights"]
    return state


def review() -> tuple[WizardApp, Setup]:
    return make_app(_review_state(), "review"), settle


def review_files() -> tuple[WizardApp, Setup]:
    app = make_app(_review_state(), "review")

    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        app.screen.query_one("#review-tabs", TabbedContent).active = "tab-files"
        await settle(pilot)

    return app, setup


def wipe_dialog() -> tuple[WizardApp, Setup]:
    app = make_app(_review_state(), "review")

    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press(*"fm")
        await settle(pilot)

    return app, setup


def _run_app(events: Callable[[RunRequest], list[Event]], *, finish: bool = True) -> WizardApp:
    state = discovered()
    engine = FixtureEngine(state.facts, run_events=events, finish=finish)
    return make_app(state, "review", engine)


def _start_run(app: WizardApp) -> Setup:
    async def setup(pilot: Pilot[int]) -> None:
        await settle(pilot)
        app.start_install(fixture_preview(app.state.answers))
        await settle(pilot)

    return setup


def run_progress() -> tuple[WizardApp, Setup]:
    app = _run_app(lambda r: run_events(r, finished=False, progress=2), finish=False)
    return app, _start_run(app)


def run_failed() -> tuple[WizardApp, Setup]:
    app = _run_app(lambda r: run_events(r, fail="kn3"))
    start = _start_run(app)

    async def setup(pilot: Pilot[int]) -> None:
        await start(pilot)
        await pilot.press("f")
        await settle(pilot)

    return app, setup


def done_success() -> tuple[WizardApp, Setup]:
    app = _run_app(lambda r: run_events(r))
    start = _start_run(app)

    async def setup(pilot: Pilot[int]) -> None:
        await start(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)

    return app, setup


def done_failed() -> tuple[WizardApp, Setup]:
    app = _run_app(lambda r: run_events(r, fail="kn3"))
    start = _start_run(app)

    async def setup(pilot: Pilot[int]) -> None:
        await start(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)

    return app, setup


def _with_form(
    make: Callable[[], tuple[WizardApp, Setup]], key: str, focus: str | None = None
) -> Callable[[], tuple[WizardApp, Setup]]:
    """A scenario's screen with one of its forms opened by ``key``."""

    def scenario() -> tuple[WizardApp, Setup]:
        app, base = make()

        async def setup(pilot: Pilot[int]) -> None:
            await base(pilot)
            if focus is not None:
                app.screen.query_one(focus).focus()
            await pilot.press(key)
            await settle(pilot)

        return app, setup

    return scenario


def _settings_errors() -> tuple[WizardApp, Setup]:
    app, base = _with_form(profile, "ctrl+o")()

    async def setup(pilot: Pilot[int]) -> None:
        await base(pilot)
        app.screen.query_one("#f-pod_subnet", Input).value = "10.96.0.0/16"
        app.screen.query_one("#f-version-kubernetes", Input).value = "1.35; curl x|sh"
        app.screen.query_one("#yes", Button).press()
        await settle(pilot)

    return app, setup


SCENARIOS: dict[str, Callable[[], tuple[WizardApp, Setup]]] = {
    "welcome": welcome,
    "welcome_resume": welcome_resume,
    "hosts_empty": hosts_empty,
    "hosts_discovered": hosts_discovered,
    "hosts_failures": hosts_failures,
    "hostkey_dialog": hostkey_dialog,
    "host_ssh_dialog": _with_form(hosts_discovered, "s", "#hosts-table"),
    "preflight_ok": preflight_ok,
    "preflight_failures": preflight_failures,
    "preflight_facts": preflight_facts,
    "profile": profile,
    "profile_weak_hosts": profile_weak_hosts,
    "settings_dialog_errors": _settings_errors,
    "roles_valid": roles_valid,
    "roles_invalid": roles_invalid,
    "disks": disks,
    "disks_none_eligible": disks_none_eligible,
    "storage_ok": storage_ok,
    "storage_insufficient": storage_insufficient,
    "volume_dialog": _with_form(storage_ok, "a", "#volumes"),
    "review": review,
    "review_files": review_files,
    "wipe_dialog": wipe_dialog,
    "run_progress": run_progress,
    "run_failed": run_failed,
    "done_success": done_success,
    "done_failed": done_failed,
}
