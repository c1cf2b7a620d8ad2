"""The wizard's edit forms: one host's SSH, versions and networks, custom volumes.

Each form edits the Answers through the answers' own models; a wrong value
keeps the form open with the reason beside the field and changes nothing.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Checkbox, DataTable, Input, Static

from installer.answers import Answers
from screens.app import WizardApp
from screens.state import SSH_PASSWORD_ENV, host_secret_var
from screens.widgets.form import FormDialog
from tests.wizard_scenarios import hosts_discovered, profile, settle, storage_ok

SIZE = (100, 32)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


async def open_form(pilot: Any, key: str) -> FormDialog:
    await pilot.press(key)
    for _ in range(40):
        if isinstance(pilot.app.screen, FormDialog):
            return pilot.app.screen
        await pilot.pause(0.05)
    raise AssertionError(f"{key} opened no form; on {type(pilot.app.screen).__name__}")


def fill(form: FormDialog, **values: str | bool) -> None:
    for key, value in values.items():
        widget = form.query_one(f"#f-{key.replace('__', '-')}")
        if isinstance(widget, Checkbox):
            widget.value = bool(value)
        else:
            assert isinstance(widget, Input)
            widget.value = str(value)


def form_errors(app: WizardApp) -> str:
    return str(app.screen.query_one("#form-errors", Static).render())


async def submit(pilot: Any) -> None:
    pilot.app.screen.query_one("#yes").press()
    await settle(pilot)


# --------------------------------------------------------------------------- one host's SSH


async def test_host_ssh_override_is_saved_and_host_rediscovered() -> None:
    app, setup = hosts_discovered()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        table = app.screen.query_one("#hosts-table", DataTable)
        table.focus()
        table.move_cursor(row=3)  # kn3
        await settle(pilot)
        form = await open_form(pilot, "s")
        fill(form, user="admin", port="2222", jump_host="ops@bastion:22", password="pw-kn3")
        await submit(pilot)
        assert not isinstance(app.screen, FormDialog), form_errors(app)

        kn3 = app.state.answers.host("kn3")
        assert kn3 is not None and kn3.ssh is not None
        assert (kn3.ssh.user, kn3.ssh.port, kn3.ssh.jump_host) == ("admin", 2222, "ops@bastion:22")
        var = host_secret_var(SSH_PASSWORD_ENV, "kn3")
        assert kn3.ssh.password_env == var
        assert app.state.secret_env[var] == "pw-kn3"
        effective = app.state.answers.ssh_for(kn3)
        assert effective.user == "admin" and effective.port == 2222
        # The way to reach kn3 changed: it must be discovered again; the others stay.
        assert app.state.status("kn3").state == "new"
        assert "kn3" not in app.state.facts and "kn2" in app.state.facts
        assert "Discover" in str(app.screen.query_one("#nav-reason", Static).render())
        assert "SSH admin, port 2222" in str(app.screen.query_one("#host-detail", Static).render())
        # The saved file names the variable, never the password.
        saved = Answers.model_validate(app.state.answers.to_yaml_data()).model_dump_json()
        assert "pw-kn3" not in saved and var in saved


async def test_host_ssh_bad_port_keeps_the_form_open() -> None:
    app, setup = hosts_discovered()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        app.screen.query_one("#hosts-table", DataTable).focus()
        form = await open_form(pilot, "s")
        fill(form, port="70000", jump_host="not a jump host!")
        await submit(pilot)
        assert isinstance(app.screen, FormDialog)
        errors = form_errors(app)
        assert "Port:" in errors and "Jump host:" in errors
        assert form.query_one("#f-port").has_class("-invalid")
        await pilot.press("escape")
        await settle(pilot)
        assert all(h.ssh is None for h in app.state.answers.hosts)
        assert app.state.all_discovered()


async def test_host_ssh_emptied_removes_the_override() -> None:
    app, setup = hosts_discovered()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        app.screen.query_one("#hosts-table", DataTable).focus()
        form = await open_form(pilot, "s")
        fill(form, user="admin")
        await submit(pilot)
        form = await open_form(pilot, "s")
        assert form.query_one("#f-user", Input).value == "admin"
        fill(form, user="")
        await submit(pilot)
        assert app.state.answers.hosts[0].ssh is None


# --------------------------------------------------------------------------- versions, networks


async def test_versions_and_subnets_are_edited_and_shown() -> None:
    app, setup = profile()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        form = await open_form(pilot, "ctrl+o")
        assert form.query_one(
            "#f-version-kubernetes", Input
        ).placeholder  # the pinned version, greyed
        fill(
            form,
            version__kubernetes="1.34",
            pod_subnet="10.32.0.0/16",
            host_subnet="10.30.217.0/24",
        )
        await submit(pilot)
        assert not isinstance(app.screen, FormDialog), form_errors(app)
        answers = app.state.answers
        assert answers.versions == {"kubernetes": "1.34"}
        assert answers.network.pod_subnet == ipaddress.ip_network("10.32.0.0/16")
        assert answers.network.host_subnet == ipaddress.ip_network("10.30.217.0/24")
        assert answers.network.service_subnet == ipaddress.ip_network("10.96.0.0/12")
        detail = str(app.screen.query_one("#profile-detail", Static).render())
        assert "kubernetes 1.34 (yours)" in detail and "pods 10.32.0.0/16" in detail


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"version__kubernetes": "3.6; rm -rf /"}, "version-kubernetes", "is not a version"),
        ({"pod_subnet": "10.96.0.0/16"}, "service_subnet", "overlaps pod_subnet"),
        ({"service_subnet": "10.96.0.1/12"}, "service_subnet", "CIDR"),
        ({"pod_subnet": "10.30.0.0/16"}, "", "lies inside pod_subnet"),
    ],
)
async def test_versions_and_subnets_refuse_bad_values(
    values: dict[str, str], field: str, words: str
) -> None:
    app, setup = profile()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        before = app.state.answers.model_dump_json()
        form = await open_form(pilot, "ctrl+o")
        fill(form, **values)
        await submit(pilot)
        assert isinstance(app.screen, FormDialog)
        assert words in form_errors(app)
        if field:
            assert form.query_one(f"#f-{field}").has_class("-invalid")
        await pilot.press("escape")
        await settle(pilot)
        assert app.state.answers.model_dump_json() == before


# --------------------------------------------------------------------------- custom volumes


async def test_custom_volume_added_counted_and_removed() -> None:
    app, setup = storage_ok()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        details_before = str(app.screen.query_one("#estimate", Static).render())
        app.screen.query_one("#volumes", DataTable).focus()
        form = await open_form(pilot, "a")
        fill(form, name="reports-db", size_gb="40", shared=True, replicas="2")
        await submit(pilot)
        assert not isinstance(app.screen, FormDialog), form_errors(app)
        custom = [v for v in app.state.answers.storage.volumes if v.name == "reports-db"]
        assert len(custom) == 1
        assert (custom[0].size_gb, custom[0].shared, custom[0].replicas) == (40, True, 2)
        table = app.screen.query_one("#volumes", DataTable)
        assert "reports-db (yours)" in str(table.get_row("reports-db")[0])
        assert str(app.screen.query_one("#estimate", Static).render()) != details_before

        await pilot.press("delete")
        await settle(pilot)
        assert all(v.name != "reports-db" for v in app.state.answers.storage.volumes)
        assert str(app.screen.query_one("#estimate", Static).render()) == details_before


async def test_catalogue_volume_is_not_removed_and_names_must_be_new() -> None:
    app, setup = storage_ok()
    async with app.run_test(size=SIZE) as pilot:
        await setup(pilot)
        table = app.screen.query_one("#volumes", DataTable)
        table.focus()
        first = str(table.get_row_at(0)[0])
        await pilot.press("delete")
        await settle(pilot)
        assert str(table.get_row_at(0)[0]) == first  # catalogue volumes go with their feature
        form = await open_form(pilot, "a")
        fill(form, name=first, size_gb="0")
        await submit(pilot)
        errors = form_errors(app)
        assert "already a volume" in errors and "Size (GiB):" in errors
        fill(form, name="Bad_Name", size_gb="5")
        await submit(pilot)
        assert "lowercase letters" in form_errors(app)
        assert isinstance(app.screen, FormDialog)
