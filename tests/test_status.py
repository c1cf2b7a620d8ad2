"""fmp-install status: the journal per host and step."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_transport import FakeNetwork, grid_plan

from installer.cli import main
from installer.journal import Journal
from installer.runner import Runner, RunOptions

REPO = Path(__file__).resolve().parent.parent


def _install(state: Path, *, fail: str | None = None) -> None:
    plan = grid_plan(["kn0", "kn1"], ["prep", "join"])
    net = FakeNetwork()
    if fail:
        net.on(f"#task:{fail}", exit=7, stdout="step one\nE: unable to locate package\n")

    async def go() -> None:
        with Journal.open(state) as j:
            await Runner(plan, j, net.connect, options=RunOptions(operator="ops@box")).run()

    asyncio.run(go())


def test_status_text_per_host_and_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _install(tmp_path, fail="kn1:prep")
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Last run" in out and "by ops@box: failed, exit 1" in out
    assert "Tasks: 1 blocked, 2 done, 1 failed" in out
    kn0 = out.split("kn0:")[1].split("kn1:")[0]
    assert "done" in kn0 and "prep" in kn0 and "join" in kn0
    kn1 = out.split("kn1:")[1]
    assert "failed      prep" in kn1 and "exit 7" in kn1
    assert "blocked     join" in kn1
    assert "FAILED: kn1 / prep (exit 7)" in out
    assert "| E: unable to locate package" in out
    assert "echo prep" in out


def test_status_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _install(tmp_path, fail="kn0:join")
    assert main(["status", "--state-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["running"] is None
    assert data["counts"] == {"done": 3, "failed": 1}
    steps = {r["step"]: r for r in data["hosts"]["kn0"]}
    assert (
        steps["prep"]["status"] == "done" and steps["prep"]["started"] and steps["prep"]["finished"]
    )
    assert steps["join"]["exit_code"] == 7
    [f] = data["failures"]
    assert (f["host"], f["step"], f["exit_code"]) == ("kn0", "join", 7)
    assert f["last_lines"][-1] == "E: unable to locate package"
    assert data["runs"][-1]["status"] == "failed"


def test_status_while_an_install_holds_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(tmp_path)
    with Journal.open(tmp_path):
        assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "An install is running now: PID" in out


def test_status_finds_the_state_from_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from installer.answers import load_answers

    answers = REPO / "examples" / "answers.yaml"
    name = load_answers(answers, semantic=False).cluster.name
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = tmp_path / "fmp-install" / name
    _install(state)
    assert main(["status", "--answers", str(answers), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state_dir"] == str(state)
    assert data["counts"] == {"done": 4}


def test_status_without_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--state-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no install journal in" in err


def test_status_needs_a_place(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 2
    assert "--answers FILE or --state-dir DIR" in capsys.readouterr().err
