"""`fmp-install discover` end to end against a real OpenSSH sshd on loopback."""

from __future__ import annotations

import gc
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.cli import main
from tests.conftest import require_tool
from tests.sshd import Sshd, keygen


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Path]]:
    require_tool("sshd")
    work = tmp_path_factory.mktemp("discover-sshd")
    key = keygen(work / "id_ed25519")
    server = Sshd(work / "server", [(work / "id_ed25519.pub").read_text()]).start()
    try:
        yield server, key
    finally:
        server.stop()


def write_answers(tmp: Path, server: Sshd, key: Path, *, known: bool, extra: str = "") -> Path:
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(server.known_hosts_line() if known else "")
    answers = tmp / "answers.yaml"
    answers.write_text(
        f"""\
version: 1
cluster: {{name: disco}}
profile: kubeadm-etcd
ssh:
  user: root
  port: {server.port}
  identity_file: {key}
  known_hosts: {known_hosts}
{extra}hosts:
  - {{address: 127.0.0.1, name: here, roles: [control-plane, etcd]}}
"""
    )
    return answers


def test_discover_json_reports_this_host(
    sshd: tuple[Sshd, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, key = sshd
    answers = write_answers(tmp_path, server, key, known=True)
    raw = tmp_path / "raw"
    code = main(["discover", "--answers", str(answers), "--json", "--save-raw", str(raw)])
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    (host,) = data["hosts"]
    assert host["reached"] is True
    assert host["problem"] is None
    assert host["facts"]["hostname"] == socket.gethostname()
    assert host["facts"]["cpu"]["count"] >= 1
    pre = data["preflight"]
    assert pre["grid"]["here"]["reachable"] == "pass"
    assert pre["grid"]["here"]["sudo"] == "pass"  # root needs no sudo
    assert code == (3 if pre["failed"] else 0)
    assert (raw / "127.0.0.1.txt").read_text().count("@@FMP-BEGIN") > 10
    # Run in-process, discover hands the collector back as it found it.
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_discover_table_output(
    sshd: tuple[Sshd, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, key = sshd
    answers = write_answers(tmp_path, server, key, known=True)
    code = main(["discover", "--answers", str(answers)])
    out = capsys.readouterr().out
    assert "Hosts" in out and "Preflight" in out
    assert "here" in out and "127.0.0.1" in out
    assert ("preflight failed" in out) == (code == 3)


def test_unknown_host_key_is_refused_with_fingerprint(
    sshd: tuple[Sshd, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, key = sshd
    answers = write_answers(tmp_path, server, key, known=False)
    assert main(["discover", "--answers", str(answers), "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    (host,) = data["hosts"]
    assert host["reached"] is False
    assert "host key unknown" in host["problem"]["message"]
    assert server.host_fingerprint() in host["problem"]["message"] + (host["problem"]["hint"] or "")
    assert data["preflight"]["grid"]["here"] == {"reachable": "fail"}
    # Nothing was written to known_hosts without consent.
    assert (tmp_path / "known_hosts").read_text() == ""


def test_accept_new_host_keys_pins_the_key(
    sshd: tuple[Sshd, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, key = sshd
    answers = write_answers(tmp_path, server, key, known=False)
    answers.write_text(
        answers.read_text().replace(
            "  user: root\n", "  user: root\n  accept_new_host_keys: true\n"
        )
    )
    main(["discover", "--answers", str(answers), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["hosts"][0]["reached"] is True
    assert server.host_public_key in (tmp_path / "known_hosts").read_text()


def test_unset_password_env_is_an_error_before_connecting(
    sshd: tuple[Sshd, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, key = sshd
    monkeypatch.delenv("FMP_TEST_UNSET_PW", raising=False)
    answers = write_answers(
        tmp_path, server, key, known=True, extra="  password_env: FMP_TEST_UNSET_PW\n"
    )
    assert main(["discover", "--answers", str(answers)]) == 2
    err = capsys.readouterr().err
    assert "FMP_TEST_UNSET_PW (SSH password) is not set" in err
    assert ":9:17: ssh.password_env" in err


def test_saved_facts_feed_plan_and_plan_discovers_itself(
    sshd: tuple[Sshd, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, key = sshd
    answers = write_answers(tmp_path, server, key, known=True)
    facts = tmp_path / "facts.json"
    main(["discover", "--answers", str(answers), "--save-facts", str(facts)])
    state = tmp_path / "state"
    assert (
        main(
            [
                "plan",
                "--answers",
                str(answers),
                "--facts",
                str(facts),
                "--out",
                str(tmp_path / "a"),
                "--state-dir",
                str(state),
            ]
        )
        == 0
    )
    # Without --facts, plan discovers the host itself and renders the same plan.
    assert (
        main(
            [
                "plan",
                "--answers",
                str(answers),
                "--out",
                str(tmp_path / "b"),
                "--state-dir",
                str(state),
            ]
        )
        == 0
    )
    capsys.readouterr()
    a = (tmp_path / "a" / "plan.txt").read_text()
    b = (tmp_path / "b" / "plan.txt").read_text()
    assert "## here (127.0.0.1)" in a
    assert a == b
