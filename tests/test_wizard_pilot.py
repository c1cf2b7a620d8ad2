"""Pilot tests of the wizard's flows, on fixture facts and the fixture engine.

The pure engine (preflight, disk eligibility, storage estimate) is the real
one; discovery, the plan and the run are scripted (``tests.wizard_fixtures``).
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.widgets import Button, Checkbox, DataTable, Input, Log, Static

from installer.answers import Host, load_answers
from installer.profile import load_profile_meta
from installer.roles import apply_roles, suggest_roles
from screens.app import WizardApp
from screens.engine_adapters import (
    DiscoveryFailed,
    EngineUnavailable,
    PreflightView,
    RealEngine,
)
from screens.hostspec import merge_hosts, parse_host_spec
from screens.run_controller import MAX_LINES
from screens.state import SSH_PASSWORD_ENV, WizardState
from screens.widgets.dialogs import ConfirmDialog, HostKeyDialog, PromptDialog, TypedConfirmDialog
from tests.wizard_fixtures import (
    ADDRESSES,
    FixtureEngine,
    node_facts,
    run_events,
    six_answers,
    six_facts,
)
from tests.wizard_scenarios import (
    NOW,
    VIP,
    disks,
    make_app,
    review,
    roles_invalid,
    run_failed,
    run_progress,
    settle,
    storage_insufficient,
    welcome_resume,
)

SIZE = (100, 32)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def reason(app: WizardApp) -> str:
    return str(app.screen.query_one("#nav-reason", Static).render())


def next_enabled(app: WizardApp) -> bool:
    return not app.screen.query_one("#next", Button).disabled


async def wait_for_screen(pilot: Any, kind: type, tries: int = 60) -> None:
    for _ in range(tries):
        if isinstance(pilot.app.screen, kind):
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{kind.__name__} never showed; on {type(pilot.app.screen).__name__}")


# --------------------------------------------------------------------------- host lists


def test_host_spec_ranges_names_and_errors() -> None:
    hosts, errors = parse_host_spec("10.30.217.17-19, kn0=10.30.217.20\nweb1.our.cluster")
    assert [(h.name, h.address) for h in hosts] == [
        (None, "10.30.217.17"),
        (None, "10.30.217.18"),
        (None, "10.30.217.19"),
        ("kn0", "10.30.217.20"),
        (None, "web1.our.cluster"),
    ]
    assert errors == []
    hosts, errors = parse_host_spec("10.30.217.23-17 10.30.217.300 kn=10.0.0.1-3")
    assert hosts == []
    assert len(errors) == 3
    assert "must go up" in errors[0]
    assert "not an IPv4/IPv6 address or hostname" in errors[1]
    assert "a name goes with one address" in errors[2]
    _, errors = parse_host_spec("10.0.0.0-10.0.9.255")
    assert "at most 256" in errors[0]


def test_merge_skips_duplicates() -> None:
    existing = [Host(address="10.30.217.20", name="kn0")]
    merged, skipped = merge_hosts(existing, parse_host_spec("10.30.217.20 kn0=10.30.217.99")[0])
    assert merged == existing
    assert len(skipped) == 2


async def test_add_hosts_typed_and_pasted() -> None:
    app = make_app(start="hosts")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.screen.query_one("#add-hosts", Input)
        field.value = "10.30.217.20-22, kn9=10.30.217.29"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert [h.label for h in app.state.answers.hosts] == [
            "10.30.217.20",
            "10.30.217.21",
            "10.30.217.22",
            "kn9",
        ]
        assert field.value == ""
        field.post_message(events.Paste("10.30.217.30\n\nkn8=10.30.217.31\n"))
        await settle(pilot)
        assert field.value == "10.30.217.30, kn8=10.30.217.31"
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.state.answers.hosts) == 6
        assert "Discover the hosts first" in reason(app)
        field.value = "10.30.217.300"
        await pilot.press("enter")
        await settle(pilot)
        assert "not an IPv4/IPv6 address" in str(app.screen.query_one("#add-errors").render())
        assert field.value == "10.30.217.300"  # kept so it can be corrected


# --------------------------------------------------------------------------- discovery


async def test_discovery_names_hosts_and_enables_next() -> None:
    facts = {ADDRESSES[i]: node_facts(i) for i in range(6)}
    engine = FixtureEngine(facts)
    state = WizardState()
    state.set_hosts([Host(address=a) for a in ADDRESSES])
    app = make_app(state, "hosts", engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not next_enabled(app)
        await pilot.press("ctrl+d")
        await settle(pilot)
        assert [h.label for h in app.state.answers.hosts] == [f"kn{i}" for i in range(6)]
        assert set(app.state.facts) == {f"kn{i}" for i in range(6)}
        assert next_enabled(app)
        # The best fit for six 8-CPU/32 GiB AVX hosts with data disks is preselected.
        assert app.state.answers.profile == "microk8s-openebs"


async def test_unknown_host_key_accepted_after_the_fingerprint() -> None:
    state = WizardState()
    state.answers = six_answers()
    engine = FixtureEngine(unknown_keys=["kn2"])
    app = make_app(state, "hosts", engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+d")
        await wait_for_screen(pilot, HostKeyDialog)
        dialog = app.screen
        assert "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8" in str(
            dialog.query_one("#fingerprint", Static).render()
        )
        assert dialog.focused is not None and dialog.focused.id == "reject"  # the safe default
        await pilot.click("#accept")
        await settle(pilot)
        assert app.state.status("kn2").state == "ok"
        assert next_enabled(app)


async def test_unknown_host_key_rejected_is_an_error_with_retry() -> None:
    state = WizardState()
    state.answers = six_answers()
    engine = FixtureEngine(unknown_keys=["kn2"])
    app = make_app(state, "hosts", engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+d")
        await wait_for_screen(pilot, HostKeyDialog)
        await pilot.press("enter")  # Reject has the focus
        await settle(pilot)
        status = app.state.status("kn2")
        assert status.state == "rejected"
        assert "Not reached: kn2" in reason(app)
        engine.discovered.clear()
        await pilot.press("ctrl+r")
        await wait_for_screen(pilot, HostKeyDialog)
        await pilot.click("#accept")
        await settle(pilot)
        assert engine.discovered == ["kn2"]  # only the failed host is retried
        assert app.state.all_discovered()


async def test_failures_in_plain_words_then_retry() -> None:
    engine = FixtureEngine(
        failures={"kn3": DiscoveryFailed("auth failed", "permission denied", "add your key")}
    )
    state = WizardState()
    state.answers = six_answers()
    app = make_app(state, "hosts", engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+d")
        await settle(pilot)
        table = app.screen.query_one("#hosts-table", DataTable)
        table.move_cursor(row=3)
        await settle(pilot)
        detail = str(app.screen.query_one("#host-detail", Static).render())
        assert "permission denied" in detail and "add your key" in detail
        assert not next_enabled(app)
        engine.failures.clear()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert next_enabled(app)


async def test_passwords_stay_out_of_answers() -> None:
    state = WizardState()
    state.answers = six_answers()
    app = make_app(state, "hosts")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#ssh-password", Input).value = "s3cret-pw"
        app.screen.query_one("#ssh-user", Input).value = "ops"
        app.screen.query_one("#ssh-accept-new", Checkbox).value = True
        await settle(pilot)
        answers = app.state.answers
        assert answers.ssh.user == "ops"
        assert answers.ssh.password_env == SSH_PASSWORD_ENV
        assert answers.ssh.accept_new_host_keys is True
        assert "s3cret-pw" not in answers.model_dump_json()
        assert app.state.environ()[SSH_PASSWORD_ENV] == "s3cret-pw"
        app.screen.query_one("#ssh-port", Input).value = "99999"
        await settle(pilot)
        assert "port" in str(app.screen.query_one("#ssh-errors").render())
        assert answers.ssh.port is None


# --------------------------------------------------------------------------- checks, profile, roles


async def test_preflight_failure_detail_and_first_failure() -> None:
    facts = six_facts()
    facts["kn3"] = node_facts(3, cpus=2, memory_gib=4)
    state = WizardState()
    state.answers = six_answers("microk8s-openebs", roles=True)
    state.facts = facts
    state.facts_version = 1
    app = make_app(state, "preflight")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        detail = str(app.screen.query_one("#check-detail", Static).render())
        assert "kn3" in detail and "Fix:" in detail
        # Failures do not trap the operator here: the profile is chosen next.
        assert next_enabled(app)
        assert "fail" in reason(app)


async def test_preflight_unavailable_is_said_not_faked() -> None:
    class NoPreflight(FixtureEngine):
        def preflight(self, *args: Any, **kwargs: Any) -> PreflightView:
            raise EngineUnavailable("installer.preflight.run_preflight")

    state = WizardState()
    state.answers = six_answers()
    state.facts = six_facts()
    state.facts_version = 1
    app = make_app(state, "preflight", NoPreflight())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = str(app.screen.query_one("#preflight-status", Static).render())
        assert "installer.preflight.run_preflight is not available" in status
        assert app.screen.query_one("#grid", DataTable).row_count == 0


async def test_roles_next_disabled_with_a_reason() -> None:
    app, setup = roles_invalid()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        assert not next_enabled(app)
        assert "2 problems" in reason(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.STEP == "roles"  # type: ignore[attr-defined]
        # Fix both: drop etcd from kn3, give a free VIP.
        table = app.screen.query_one("#matrix", DataTable)
        table.focus()
        table.cursor_coordinate = table.cursor_coordinate._replace(row=3, column=2)
        await pilot.press("space")
        app.screen.query_one("#vip", Input).value = "10.30.217.100"
        await settle(pilot)
        assert next_enabled(app), reason(app)
        assert app.state.answers.hosts[3].roles == ["worker"]
        assert app.state.roles_edited


async def test_profile_change_resuggests_roles() -> None:
    state = WizardState()
    state.answers = six_answers("kubeadm-etcd", roles=True)
    state.answers.network.vip = VIP
    state.facts = six_facts()
    state.profile_chosen = True
    app = make_app(state, "profile")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        options: Any = app.screen.query_one("#profiles")
        options.focus()
        assert options.highlighted == 0
        options.highlighted = 1  # kubeadm-etcd -> microk8s-openebs
        await settle(pilot)
        assert app.state.answers.profile == "microk8s-openebs"
        assert not any(h.roles for h in app.state.answers.hosts)
        await pilot.press("ctrl+n")
        await settle(pilot)
        roles = {h.label: h.roles for h in app.state.answers.hosts}
        assert roles["kn0"] == ["control-plane", "storage"]
        assert roles["kn5"] == ["worker", "storage"]


async def test_cluster_name_is_validated() -> None:
    state = WizardState()
    state.answers = six_answers()
    state.facts = six_facts()
    app = make_app(state, "profile")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#cluster-name", Input).value = "Bad_Name"
        await settle(pilot)
        assert "Fix the cluster name" in reason(app)
        assert app.state.answers.cluster.name == "fmp"
        app.screen.query_one("#cluster-name", Input).value = "prod-1"
        await settle(pilot)
        assert next_enabled(app)
        assert app.state.answers.cluster.name == "prod-1"


# --------------------------------------------------------------------------- disks, storage


async def test_disk_choice_records_wipe_consent() -> None:
    app, setup = disks()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        kn4 = app.state.answers.host("kn4")
        assert kn4 is not None
        assert kn4.storage_disk == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
        assert app.state.answers.storage.wipe == ["kn4:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"]
        # The first eligible disk was preselected where it needed no wipe.
        kn0 = app.state.answers.host("kn0")
        assert kn0 is not None and kn0.storage_disk == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0"
        # kn5: its 4 GiB sdb is too small; sdc was preselected.
        kn5 = app.state.answers.host("kn5")
        assert kn5 is not None and kn5.storage_disk == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d6"
        assert next_enabled(app)


async def test_ineligible_disk_cannot_be_chosen() -> None:
    app, setup = disks()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        screen: Any = app.screen
        index = next(
            i
            for i, r in enumerate(screen.rows)
            if r.host == "kn0" and r.device is not None and r.device.name == "sda"
        )
        screen.query_one("#disks", DataTable).move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)
        kn0 = app.state.answers.host("kn0")
        assert kn0 is not None and kn0.storage_disk == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0"


async def test_insufficient_storage_blocks_next() -> None:
    app, setup = storage_insufficient()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        assert "Not enough storage" in reason(app)
        table = app.screen.query_one("#volumes", DataTable)
        table.move_cursor(row=1)  # stream-state, 900 GiB
        await settle(pilot)
        app.screen.query_one("#size", Input).value = "10"
        await settle(pilot)
        table.move_cursor(row=0)  # elasticsearch, 80 GiB
        await settle(pilot)
        app.screen.query_one("#size", Input).value = "10"
        await settle(pilot)
        sizes = {v.name: v.size_gb for v in app.state.answers.storage.volumes}
        assert sizes == {"stream-state": 10, "elasticsearch": 10}
        assert next_enabled(app), reason(app)


# --------------------------------------------------------------------------- review, install


async def test_save_answers_has_no_secrets_and_mode_0600(tmp_path: Path) -> None:
    app, setup = review()
    app.state.answers.ssh.password_env = SSH_PASSWORD_ENV
    app.state.secret_env[SSH_PASSWORD_ENV] = "s3cret-pw"
    target = tmp_path / "out" / "answers.yaml"
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.press("ctrl+s")
        await wait_for_screen(pilot, PromptDialog)
        app.screen.query_one("#prompt", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
    text = target.read_text()
    assert "s3cret-pw" not in text
    assert f"password_env: {SSH_PASSWORD_ENV}" in text
    assert f"export {SSH_PASSWORD_ENV}" in text
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    replayed = load_answers(target)
    assert replayed.storage.wipe == ["kn4:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"]
    assert [h.roles for h in replayed.hosts] == [h.roles for h in app.state.answers.hosts]


async def test_install_needs_the_typed_cluster_name_when_wiping() -> None:
    app, setup = review()
    engine: Any = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.press("ctrl+n")
        await wait_for_screen(pilot, TypedConfirmDialog)
        dialog = app.screen
        assert "wwn-0x5000c500a1b2c3d4" in "".join(
            str(s.render()) for s in dialog.query("#wipe-list Static")
        )
        await pilot.press(*"fmx")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TypedConfirmDialog)
        assert dialog.query_one("#yes", Button).disabled
        await pilot.press("backspace", "p")
        await pilot.press("enter")
        await settle(pilot)
        assert engine.requests, "the install did not start"
        assert type(app.screen).__name__ == "RunScreen"
        request = engine.requests[0]
        assert request.answers.storage.wipe == ["kn4:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"]


# --------------------------------------------------------------------------- run


async def test_run_keys_move_focus_and_retry() -> None:
    app, setup = run_failed()
    engine: Any = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        screen: Any = app.screen
        assert screen.node_focus == "kn3"
        pane = screen.query_one("#pane", Log)
        assert "E: Unable to locate package containerd.io" in pane.lines
        await pilot.press("n")
        assert screen.node_focus == "kn4"
        await pilot.press("p", "p")
        assert screen.node_focus == "kn2"
        await pilot.press("R")
        await settle(pilot)
        assert len(engine.requests) == 2  # retried: the journal skips what is done


async def test_run_buffers_are_flushed_in_batches_and_capped() -> None:
    app, setup = run_progress()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        ctl = app.run_controller
        assert ctl is not None
        screen: Any = app.screen
        pane = screen.query_one("#pane", Log)
        writes: list[int] = []
        original = pane.write_lines

        def counting(lines: Any, *args: Any, **kwargs: Any) -> Any:
            lines = list(lines)
            writes.append(len(lines))
            return original(lines, *args, **kwargs)

        pane.write_lines = counting  # type: ignore[method-assign]
        from installer.events import OutputLine

        for n in range(MAX_LINES + 500):
            ctl.handle(OutputLine("kn0", "kn0:containerd", "stdout", f"line {n}", at=NOW))
            ctl.handle(OutputLine("kn1", "kn1:containerd", "stdout", f"other {n}", at=NOW))
        await pilot.pause(0.3)
        assert writes and max(writes) > 1  # batched, not a write per line
        assert pane.line_count <= MAX_LINES
        assert pane.lines[-1] == f"line {MAX_LINES + 499}"
        assert len(ctl.nodes["kn1"].lines) == MAX_LINES
        assert ctl.nodes["kn1"].pending == []  # not focused: nothing piles up
        await pilot.press("n")
        assert screen.query_one("#pane", Log).lines[-1] == f"other {MAX_LINES + 499}"


async def test_quit_mid_run_keeps_the_checkpoint() -> None:
    app, setup = run_progress()
    engine: Any = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.press("ctrl+q")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#yes")
        await pilot.pause(0.3)
    assert engine.handle.stopped
    assert app.return_code == 130
    assert app.exit_message is not None and "Resume" in app.exit_message


async def test_quit_when_idle_exits_at_once() -> None:
    app = make_app(start="hosts")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0


# --------------------------------------------------------------------------- welcome


async def test_welcome_resume_discovers_then_reviews(tmp_path: Path) -> None:
    answers_file = tmp_path / "resume.yaml"
    from screens.save import save_answers

    answers = six_answers(roles=True)
    answers.network.vip = VIP
    save_answers(answers, answers_file)
    app, setup = welcome_resume()
    engine: Any = app.engine
    engine.resume = engine.resume.__class__(
        **{**engine.resume.__dict__, "answers_path": str(answers_file)}
    )
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.click("#resume")
        for _ in range(40):
            await pilot.pause(0.05)
            if type(app.screen).__name__ == "ReviewScreen":
                break
        await settle(pilot)
        assert type(app.screen).__name__ == "ReviewScreen"
        assert sorted(engine.discovered) == [f"kn{i}" for i in range(6)]
        assert next_enabled(app), reason(app)


async def test_welcome_start_over_asks_first() -> None:
    app, setup = welcome_resume()
    engine: Any = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.click("#start-over")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.press("enter")  # Cancel has the focus on a dangerous question
        await settle(pilot)
        assert engine.discarded == []
        await pilot.click("#start-over")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#yes")
        await settle(pilot)
        assert len(engine.discarded) == 1
        assert app.screen.query_one("#resume-box").has_class("-hidden")


async def test_welcome_loads_answers(repo: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.screen.query_one("#answers-path", Input)
        field.value = "missing.yaml"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "file not found" in str(app.screen.query_one("#load-errors").render())
        field.value = str(repo / "examples" / "rke-ceph.yaml")
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "HostsScreen"
        assert app.state.answers.profile == "rke-ceph"
        assert app.state.profile_chosen and app.state.roles_edited
        assert len(app.state.answers.hosts) == 6


# --------------------------------------------------------------------------- the whole flow


async def _walk(pilot: Any, app: WizardApp, profile: str) -> None:
    field = app.screen.query_one("#add-hosts", Input)
    field.value = "10.30.217.20-25"
    field.focus()
    await pilot.press("enter")
    await pilot.press("ctrl+d")
    await settle(pilot)
    assert [h.label for h in app.state.answers.hosts] == [f"kn{i}" for i in range(6)]
    await pilot.press("ctrl+n")  # -> checks
    await settle(pilot)
    assert app.screen.STEP == "preflight"  # type: ignore[attr-defined]
    await pilot.press("ctrl+n")  # -> profile
    await settle(pilot)
    options = app.screen.query_one("#profiles")
    options.focus()
    names = ["kubeadm-etcd", "microk8s-openebs", "rke-ceph"]
    current = names.index(app.state.answers.profile)
    wanted = names.index(profile)
    for _ in range(abs(wanted - current)):
        await pilot.press("down" if wanted > current else "up")
    await settle(pilot)
    assert app.state.answers.profile == profile
    await pilot.press("ctrl+n")  # -> roles
    await settle(pilot)
    app.screen.query_one("#vip", Input).value = "10.30.217.100"
    await settle(pilot)
    assert next_enabled(app), reason(app)
    for step in ("disks", "storage", "review"):
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert step == app.screen.STEP, reason(app)  # type: ignore[attr-defined]
    assert next_enabled(app), reason(app)
    await pilot.press("ctrl+n")
    await settle(pilot)
    if isinstance(app.screen, TypedConfirmDialog):
        await pilot.press(*app.state.answers.cluster.name, "enter")
    else:
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.press("enter")  # Install has the focus
    await settle(pilot)
    assert app.screen.STEP == "run"  # type: ignore[attr-defined]
    await pilot.press("ctrl+n")
    await settle(pilot)
    assert app.screen.STEP == "done"  # type: ignore[attr-defined]


@pytest.mark.parametrize("profile", ["kubeadm-etcd", "microk8s-openebs", "rke-ceph"])
async def test_empty_hosts_to_done(profile: str) -> None:
    facts = {ADDRESSES[i]: node_facts(i) for i in range(6)}
    engine = FixtureEngine(facts, run_events=run_events)
    app = make_app(start="hosts", engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _walk(pilot, app, profile)
        text = str(app.screen.query_one("#done-text", Static).render())
        assert f"Cluster {app.state.answers.cluster.name} is installed" in text
        if profile == "microk8s-openebs":
            assert "openebs-lvm (default): Local PV LVM on ubuntu-vg" in text
        elif profile == "kubeadm-etcd":
            assert "this profile installs no cluster storage" in text
    request = engine.requests[0]
    meta = load_profile_meta(profile)
    assert request.answers.profile == profile
    assert request.answers.network.vip == ipaddress.ip_address("10.30.217.100")
    if any(r.needs_disk for r in meta.roles.values()):
        assert all(h.storage_disk for h in request.answers.hosts if "storage" in h.roles)


async def test_back_and_next_keep_input() -> None:
    facts = {ADDRESSES[i]: node_facts(i) for i in range(6)}
    app = make_app(start="hosts", engine=FixtureEngine(facts))
    async with app.run_test(size=SIZE) as pilot:
        field = app.screen.query_one("#add-hosts", Input)
        field.value = "10.30.217.20-25"
        field.focus()
        await pilot.press("enter")
        app.screen.query_one("#ssh-user", Input).value = "ops"
        await pilot.press("ctrl+d")
        await settle(pilot)
        for _ in range(3):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert app.screen.STEP == "roles"  # type: ignore[attr-defined]
        app.screen.query_one("#vip", Input).value = "10.30.217.100"
        table = app.screen.query_one("#matrix", DataTable)
        table.focus()
        table.cursor_coordinate = table.cursor_coordinate._replace(row=5, column=1)
        await pilot.press("space")  # kn5 becomes a control-plane too
        await settle(pilot)
        edited = [h.roles for h in app.state.answers.hosts]
        for _ in range(3):
            await pilot.press("ctrl+b")
            await settle(pilot)
        assert app.screen.STEP == "hosts"  # type: ignore[attr-defined]
        assert app.screen.query_one("#ssh-user", Input).value == "ops"
        for _ in range(3):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert app.screen.query_one("#vip", Input).value == "10.30.217.100"
        assert [h.roles for h in app.state.answers.hosts] == edited


# --------------------------------------------------------------------------- the real engine


def test_real_engine_pure_parts(tmp_path: Path) -> None:
    engine = RealEngine()
    answers = six_answers("rke-ceph")
    meta = load_profile_meta("rke-ceph")
    facts = six_facts()
    answers = apply_roles(answers, suggest_roles(answers, meta, facts))
    answers.network.vip = VIP
    view = engine.preflight(answers, meta, facts, NOW)
    assert view.count("fail") == 0
    assert "reachable" in view.checks()
    verdicts = engine.disk_verdicts(answers, answers.hosts[0], facts["kn0"])
    assert [(v.path, v.status) for v in verdicts] == [
        ("/dev/sda", "disallowed"),
        ("/dev/sdb", "allowed"),
    ]
    assert verdicts[1].stable_id == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0"
    assert {f.name for f in engine.features()} >= {"insights", "fmp"}
    answers.storage.features = ["fmp"]
    assert {v.name for v in engine.volumes(answers)} == {"fmp-data", "container-runtime"}
    hosts = [
        h.model_copy(update={"storage_disk": f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"})
        if "storage" in h.roles
        else h
        for i, h in enumerate(answers.hosts)
    ]
    answers = answers.model_copy(update={"hosts": hosts})
    est = engine.estimate(answers, meta, facts)
    assert est.backend == "ceph"
    assert est.verdict in ("ok", "tight")
    assert any(line.startswith("Ceph:") for line in est.lines)


def test_real_engine_summary_sets_the_tightest_nodes_need_against_its_space() -> None:
    """container-runtime lives on every node, a custom local volume only on the workers:
    kn0 (a server, 40 GiB free) needs 30 GiB and is tighter than a worker (35 of 60 GiB), so
    the row reads 30 of 40 on kn0, not the workers' 35."""
    import dataclasses

    from installer.answers import Volume

    engine = RealEngine()
    meta = load_profile_meta("rke-ceph")
    facts = six_facts()
    answers = six_answers("rke-ceph")
    answers = apply_roles(answers, suggest_roles(answers, meta, facts))
    answers.network.vip = VIP
    answers.storage.features = ["fmp"]
    answers.storage.volumes = [Volume(name="reports", size_gb=5)]
    hosts = [
        h.model_copy(update={"storage_disk": f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"})
        for i, h in enumerate(answers.hosts)
    ]
    answers = answers.model_copy(update={"hosts": hosts})
    (vg,) = facts["kn0"].volume_groups or ()
    facts["kn0"] = dataclasses.replace(
        facts["kn0"], volume_groups=(dataclasses.replace(vg, free_bytes=40 * 2**30),)
    )
    est = engine.estimate(answers, meta, facts)
    rows = {name: (text, verdict) for name, text, verdict in est.summary}
    assert rows["Each node"] == ("30.0 GiB of 40.0 GiB on kn0 (75%)", "ok")
    assert "Unshared (each node): 30.0 GiB of 40.0 GiB on kn0 = 75% -> ok" in "\n".join(est.lines)
    # The disk list warns about a disk without a stable id, serial included.
    disks = facts["kn0"].disks
    assert disks is not None and disks[1].path == "/dev/sdb"
    bare = dataclasses.replace(disks[1], wwn=None, serial=None, by_id=())
    verdicts = engine.disk_verdicts(
        answers, answers.hosts[0], dataclasses.replace(facts["kn0"], disks=(bare,))
    )
    assert verdicts[0].warning == (
        "no stable id (by-id link, WWN or unique serial): /dev/sdb can change across reboots"
    )


def test_real_engine_plan_kubeadm() -> None:
    engine = RealEngine()
    answers = six_answers("kubeadm-etcd", roles=True)
    answers.network.vip = VIP
    meta = load_profile_meta("kubeadm-etcd")
    try:
        preview = engine.plan(answers, meta, six_facts())
    except EngineUnavailable as exc:  # pragma: no cover - while the planner is being written
        pytest.skip(str(exc))
    assert preview.plan.tasks
    assert {t.host for t in preview.plan.tasks} == {f"kn{i}" for i in range(6)}
    assert all(f.content == "" for f in preview.files if f.secret)


def test_real_engine_finds_and_discards_an_unfinished_run(tmp_path: Path) -> None:
    from installer.events import TaskStatus
    from installer.journal import Journal, default_state_dir
    from screens.save import save_answers
    from tests.wizard_fixtures import fixture_preview

    engine = RealEngine()
    assert engine.unfinished_run() is None
    answers = six_answers()
    state = default_state_dir("fmp")
    plan = fixture_preview(answers).plan
    with Journal.open(state) as journal:
        journal.sync_plan(plan.tasks)
        run = journal.begin_run(cluster="fmp", profile=answers.profile, operator="op", options={})
        for task in plan.tasks[:3]:
            journal.task_started(run, task.id, input_hash="h", command="true")
            journal.task_finished(run, task.id, TaskStatus.DONE, exit_code=0)
        task = plan.tasks[4]
        journal.task_started(run, task.id, input_hash="h", command="false")
        journal.task_finished(run, task.id, TaskStatus.FAILED, exit_code=100)
        journal.end_run(run, status="failed", exit_code=1)
    save_answers(answers, state / "answers.yaml")
    info = engine.unfinished_run()
    assert info is not None
    assert (info.cluster, info.total, info.done) == ("fmp", len(plan.tasks), 3)
    assert info.failed == ("kn1: prepare (exit 100)",)
    assert info.answers_path == str(state / "answers.yaml")
    engine.discard_run(info)
    assert engine.unfinished_run() is None
    assert list(state.glob("journal.sqlite.discarded-*"))


async def test_mouse_toggles_a_role() -> None:
    state = WizardState()
    state.answers = six_answers(roles=True)
    state.answers.network.vip = VIP
    state.facts = six_facts()
    state.roles_edited = True
    app = make_app(state, "roles")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#matrix", DataTable)
        region = table.content_region
        # Row kn4 (5th data row under the header), column "worker" (the 4th).
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:3]) + 1
        await pilot.click(table, offset=(x, 5))
        await settle(pilot)
        assert region.width > 0
        assert app.state.answers.hosts[4].roles == []
        await pilot.click(table, offset=(x, 5))
        await settle(pilot)
        assert app.state.answers.hosts[4].roles == ["worker"]


async def test_full_log_shows_the_node_log() -> None:
    from screens.run import FullLogScreen

    app, setup = run_failed()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.press("l")
        await wait_for_screen(pilot, FullLogScreen)
        await settle(pilot)
        log = app.screen.query_one("#fulllog-log", Log)
        assert "E: Unable to locate package containerd.io" in log.lines
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "RunScreen"


async def test_autodiscover_for_the_demo() -> None:
    state = WizardState()
    state.answers = six_answers()
    engine = FixtureEngine()
    app = make_app(state, "hosts", engine)
    app.autodiscover = True
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await settle(pilot)
        assert sorted(engine.discovered) == [f"kn{i}" for i in range(6)]
        assert app.state.all_discovered()


async def test_welcome_review_what_failed() -> None:
    app, setup = welcome_resume()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        await pilot.click("#review-failed")
        await settle(pilot)
        assert type(app.screen).__name__ == "DoneScreen"
        text = str(app.screen.query_one("#done-text", Static).render())
        assert "kn3: containerd (exit 100)" in text
        assert "29 of 42 steps done" in text
        await pilot.press("ctrl+b")
        await settle(pilot)
        assert type(app.screen).__name__ == "WelcomeScreen"


async def test_real_discovery_over_openssh_asks_about_the_host_key(tmp_path: Path) -> None:
    """The wizard's discovery wired to the real engine, against a real sshd on loopback."""
    import getpass

    from installer.answers import Answers, Cluster, SshSettings
    from tests.conftest import require_tool
    from tests.sshd import Sshd, keygen, make_shared_dir, running

    require_tool("sshd")
    client = keygen(tmp_path / "id_ed25519")
    server = Sshd(
        make_shared_dir("fmp-wizard-"),
        authorized_keys=[client.with_name("id_ed25519.pub").read_text()],
    )
    known_hosts = tmp_path / "known_hosts"
    with running(server.start()):
        state = WizardState()
        state.answers = Answers(
            cluster=Cluster(name="fmp"),
            profile="kubeadm-etcd",
            ssh=SshSettings(
                user=getpass.getuser(),
                port=server.port,
                identity_file=str(client),
                known_hosts=str(known_hosts),
            ),
            hosts=[Host(address="127.0.0.1", name="local")],
        )
        app = WizardApp(engine=RealEngine(), state=state, start="hosts", deterministic=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+d")
            await wait_for_screen(pilot, HostKeyDialog, tries=400)
            shown = str(app.screen.query_one("#fingerprint", Static).render())
            assert shown == server.host_fingerprint()
            await pilot.click("#accept")
            for _ in range(1200):
                await pilot.pause(0.05)
                if app.state.status("local").state not in ("waiting", "connecting"):
                    break
            status = app.state.status("local")
            assert status.state == "ok", f"{status.kind}: {status.message} ({status.hint})"
            facts = app.state.facts["local"]
            assert facts.cpu is not None and facts.cpu.count >= 1
            assert next_enabled(app)
    assert server.host_public_key.split()[1] in known_hosts.read_text()


# --------------------------------------------------------------------------- against a lab


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A lab of six simulated hosts for ``request.param`` (a profile), on its own /24."""
    import yaml

    from installer.lab import control
    from tests.e2e import isolated_spec

    spec = tmp_path / "lab-spec.yaml"
    spec.write_text(yaml.safe_dump(isolated_spec()))
    root = tmp_path / "lab"
    profile = getattr(request, "param", "kubeadm-etcd")
    control.up(root, nodes=None, profile=profile, spec_path=spec, from_raw=None, quiet=True)
    try:
        yield root, load_answers(root / "answers.yaml")
    finally:
        control.down(root)


def review_ready(app: WizardApp) -> bool:
    screen: Any = app.screen
    return (
        getattr(screen, "STEP", "") == "review"
        and screen.preview is not None
        and not screen.building
        and next_enabled(app)
    )


async def _wait(pilot: Any, done: Any, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        if done():
            return
        await pilot.pause(0.1)
    raise AssertionError("timed out")


async def _hosts_from_scratch(pilot: Any, app: WizardApp, lab_dir: Path, lab_answers: Any) -> None:
    """Type the lab's addresses and SSH settings into an empty Hosts screen, discover."""
    screen = app.screen
    field = screen.query_one("#add-hosts", Input)
    field.value = ", ".join(h.address for h in lab_answers.hosts)
    field.focus()
    await pilot.press("enter")
    screen.query_one("#ssh-user", Input).value = "root"
    screen.query_one("#ssh-port", Input).value = str(lab_answers.ssh.port or 2222)
    screen.query_one("#ssh-key", Input).value = str(lab_dir / "id_ed25519")
    screen.query_one("#ssh-accept-new", Checkbox).value = True  # a fresh lab: trust on first use
    await settle(pilot)
    await pilot.press("ctrl+d")
    await _wait(pilot, lambda: not screen.discovering and app.state.all_discovered(), 120)
    assert [h.label for h in app.state.answers.hosts] == [h.label for h in lab_answers.hosts]


@pytest.mark.slow
@pytest.mark.parametrize(
    "lab",
    [
        "kubeadm-etcd",
        "microk8s-openebs",
        "rke-ceph",
    ],
    indirect=True,
)
async def test_lab_install_from_empty_hosts_to_done(lab: Any) -> None:
    lab_dir, lab_answers = lab
    profile = lab_answers.profile
    app = WizardApp(start="hosts", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await _hosts_from_scratch(pilot, app, lab_dir, lab_answers)
        await pilot.press("ctrl+n")  # -> checks
        await settle(pilot)
        await pilot.press("ctrl+n")  # -> profile
        await settle(pilot)
        options: Any = app.screen.query_one("#profiles")
        options.highlighted = ["kubeadm-etcd", "microk8s-openebs", "rke-ceph"].index(profile)
        await settle(pilot)
        await pilot.press("ctrl+n")  # -> roles, suggested from the facts
        await settle(pilot)
        app.screen.query_one("#vip", Input).value = str(lab_answers.network.vip)
        await settle(pilot)
        for step in ("disks", "storage", "review"):
            assert next_enabled(app), reason(app)
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert step == app.screen.STEP  # type: ignore[attr-defined]
        await _wait(pilot, lambda: review_ready(app), 120)
        await pilot.press("ctrl+n")
        await settle(pilot)
        if isinstance(app.screen, TypedConfirmDialog):
            await pilot.press(*app.state.answers.cluster.name, "enter")
        else:
            await pilot.press("enter")
        ctl = app.run_controller
        assert ctl is not None
        await _wait(pilot, lambda: ctl.done, 300)
        assert ctl.error is None
        assert ctl.summary is not None
        failures = [(f.host, f.step, f.message, f.tail) for f in ctl.summary.failures]
        assert ctl.summary.exit_code == 0, failures
        await pilot.press("ctrl+n")
        await settle(pilot)
        text = str(app.screen.query_one("#done-text", Static).render())
        assert "is installed" in text
        assert "kubeconfig" in text.lower()
        # The profile's own result, rendered with the plan: its checks and storage.
        preview = app.last_preview
        assert preview is not None and preview.plan.result.checks
        for check in preview.plan.result.checks:
            assert check in text
        for storage_class in preview.plan.result.storage_classes:
            assert storage_class in text


@pytest.mark.slow
async def test_lab_quit_mid_run_then_resume(lab: Any) -> None:
    lab_dir, lab_answers = lab
    first = WizardApp(start="hosts", deterministic=True)
    async with first.run_test(size=SIZE) as pilot:
        await _hosts_from_scratch(pilot, first, lab_dir, lab_answers)
        first.state.set_profile(lab_answers.profile)
        first.state.profile_chosen = True
        first.state.answers.network.vip = lab_answers.network.vip
        for _ in range(6):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert first.screen.STEP == "review", reason(first)  # type: ignore[attr-defined]
        await _wait(pilot, lambda: review_ready(first), 120)
        await pilot.press("ctrl+n")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.press("enter")  # Install has the focus
        await settle(pilot)
        ctl = first.run_controller
        assert ctl is not None
        await _wait(pilot, lambda: ctl.finished >= 10, 300)
        await pilot.press("ctrl+q")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.click("#yes")
        await _wait(pilot, lambda: not first.is_running, 120)
    assert first.return_code == 130
    done_before = ctl.finished

    second = WizardApp(deterministic=True)
    async with second.run_test(size=SIZE) as pilot:
        await _wait(
            pilot, lambda: not second.screen.query_one("#resume-box").has_class("-hidden"), 30
        )
        await pilot.click("#resume")
        await _wait(pilot, lambda: getattr(second.screen, "STEP", "") == "review", 120)
        await _wait(pilot, lambda: review_ready(second), 120)
        await pilot.press("ctrl+n")
        await wait_for_screen(pilot, ConfirmDialog)
        await pilot.press("enter")
        await settle(pilot)
        ctl2 = second.run_controller
        assert ctl2 is not None
        await _wait(pilot, lambda: ctl2.done, 600)
        assert ctl2.summary is not None and ctl2.summary.exit_code == 0, ctl2.summary
        assert ctl2.summary.skipped >= done_before  # nothing done was done again
