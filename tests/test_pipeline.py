"""The first half of a run: reach, discover, check sudo, preflight."""

from __future__ import annotations

import asyncio
from pathlib import Path

from installer.answers import parse_answers
from installer.connections import Connections
from installer.pipeline import discover_and_check
from installer.transport import CommandResult, FailureKind, LineCallback, TransportError

RAW = (
    Path(__file__).parent / "fixtures" / "discovery" / "captured__this-machine-nobody-dash.txt"
).read_text()

ANSWERS = """\
version: 1
cluster: {name: t}
profile: kubeadm-etcd
ssh: {user: fmpadmin, sudo_password_env: FMP_T_SUDO}
hosts:
  - {address: 127.0.0.1, name: here, roles: [control-plane, etcd]}
"""


class _PreflightHost:
    """A scripted host for discovery and preflight: nothing may be uploaded yet."""

    async def upload(self, data: bytes, path: str, **kw: object) -> None:
        raise AssertionError("nothing may be uploaded before preflight passes")

    async def close(self) -> None:
        pass


class SudoRefused(_PreflightHost):
    """A host whose discovery works (real captured output) and whose sudo refuses the password."""

    host = "here"

    def __init__(self) -> None:
        self.sudo_calls = 0

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        if sudo:
            self.sudo_calls += 1
            raise TransportError(
                "here",
                FailureKind.SUDO_PASSWORD_WRONG,
                "sudo refused the password",
                hint="check FMP_T_SUDO",
            )
        if "ping" in command:
            return CommandResult(2, "", "")
        return CommandResult(0, RAW, "")


def test_wrong_sudo_password_fails_preflight() -> None:
    answers = parse_answers(ANSWERS)
    host = SudoRefused()

    async def connect(label: str) -> SudoRefused:
        return host

    checked = asyncio.run(discover_and_check(answers, Connections(["here"], connect)))  # type: ignore[arg-type]
    assert host.sudo_calls == 1
    sudo = checked.report.cell("here", "sudo")
    assert sudo is not None and sudo.status == "fail"
    assert "sudo password wrong" in sudo.message
    assert sudo.fix == "check FMP_T_SUDO"
    assert checked.report.failed


class VipAnswersDuringDiscovery(_PreflightHost):
    """Discovery only finishes once the VIP ping has been asked: the probe runs alongside it."""

    host = "here"

    def __init__(self) -> None:
        self.pinged = asyncio.Event()
        self.commands: list[str] = []

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo: bool = False,
        input: str | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        self.commands.append(command)
        if "ping" in command:
            self.pinged.set()
            return CommandResult(0, "", "")  # something answers the VIP
        await asyncio.wait_for(self.pinged.wait(), 30)  # a guard against a hang, not a timing
        return CommandResult(0, RAW, "")


def test_the_vip_is_probed_while_discovery_runs() -> None:
    answers = parse_answers(
        ANSWERS.replace("hosts:", "network: {vip: 127.0.0.254}\nhosts:").replace(
            "sudo_password_env: FMP_T_SUDO", "password_env: FMP_T_SUDO"
        )
    )
    host = VipAnswersDuringDiscovery()

    async def connect(label: str) -> VipAnswersDuringDiscovery:
        return host

    checked = asyncio.run(discover_and_check(answers, Connections(["here"], connect)))
    assert sum("ping" in c for c in host.commands) == 1
    (vip,) = [f for f in checked.report.findings if f.check == "vip-free"]
    assert vip.status == "fail" and "already answers" in vip.message


def test_no_vip_probe_for_an_earlier_install_of_this_cluster() -> None:
    answers = parse_answers(ANSWERS.replace("hosts:", "network: {vip: 127.0.0.254}\nhosts:"))
    host = SudoRefused()

    async def connect(label: str) -> SudoRefused:
        return host

    checked = asyncio.run(
        discover_and_check(answers, Connections(["here"], connect), installed_before=True)
    )
    assert [f for f in checked.report.findings if f.check == "vip-free"] == []
