"""The fmp-install command line: exit codes and output of the foundation commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installer import __version__
from installer.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--answers", str(EXAMPLES / "rke-ceph.yaml")]) == 0
    assert "valid (rke-ceph, 6 hosts)" in capsys.readouterr().out


def test_validate_broken_copy_exits_2_with_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "answers.yaml"
    text = (EXAMPLES / "answers.yaml").read_text().replace("10.30.217.22,", "10.30.217.300,")
    broken.write_text(text.replace("name: fmp", "name: Fmp"))
    assert main(["validate", "--answers", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:7:9: cluster.name:" in err
    assert (
        f"{broken}:22:15: hosts[2].address: '10.30.217.300' is not an IPv4/IPv6 address or hostname"
        in err
    )
    assert "2 problems found" in err


def test_validate_warns_about_unset_env_but_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FMP_SUDO_PASSWORD", raising=False)
    assert main(["validate", "--answers", str(EXAMPLES / "answers.yaml")]) == 0
    assert (
        "warning: environment variable FMP_SUDO_PASSWORD (sudo password) is not set"
        in capsys.readouterr().err
    )


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) >= {"cluster", "profile", "hosts"}
    assert schema["properties"]["profile"]["enum"] == [
        "kubeadm-etcd",
        "microk8s-openebs",
        "rke-ceph",
    ]
    assert "etcd" in schema["$defs"]["Host"]["properties"]["roles"]["items"]["enum"]


def test_schema_validates_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    main(["schema"])
    schema = json.loads(capsys.readouterr().out)
    for path in EXAMPLES.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cluster": {"name": "x"}, "profile": "nope", "hosts": []}, schema)


def test_version_and_help_via_console_script() -> None:
    exe = shutil.which("fmp-install")
    cmd = [exe] if exe else [sys.executable, "-m", "installer.cli"]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fmp-install {__version__}"
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, check=True)
    assert "validate" in out.stdout and "schema" in out.stdout


def test_internal_error_is_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import installer.commands.schema as schema_cmd

    def boom(args: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(schema_cmd, "run", boom)
    assert main(["schema"]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err
    assert "Traceback" not in err
    crash = Path(err.split("Details were written to ")[1].split(";")[0])
    assert "Traceback" in crash.read_text()
    crash.unlink()


def test_validate_deeply_nested_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 1000 + "]" * 1000 + "\n")
    assert main(["validate", "--answers", str(deep)]) == 2
    err = capsys.readouterr().err
    assert f"{deep}:1:" in err and "the document is nested too deeply" in err
    assert "internal error" not in err


def test_validate_warnings_come_in_line_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The top-level ssh section after the hosts: its warning is found first.
    text = (EXAMPLES / "answers.yaml").read_text()
    start = text.index("\nssh:")
    end = text.index("\nhosts:")
    path = tmp_path / "answers.yaml"
    host = "name: kn3, roles: [worker]}"
    path.write_text(
        text[:start]
        + text[end:].replace(host, host[:-1] + ", ssh: {password_env: FMP_T_HOST}}")
        + text[start:end]
        + "\n"
    )
    for var in ("FMP_T_HOST", "FMP_SSH_PASSWORD", "FMP_SUDO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert main(["validate", "--answers", str(path)]) == 0
    lines = [int(w.split(":")[1]) for w in capsys.readouterr().err.splitlines()]
    assert len(lines) >= 2 and lines == sorted(lines)


def test_committed_schema_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    # The examples' first line points editors at it; it must say what `schema` says.
    committed = EXAMPLES.parent / "answers.schema.json"
    assert main(["schema"]) == 0
    assert committed.read_text() == capsys.readouterr().out, (
        "answers.schema.json is out of date: run `fmp-install schema > answers.schema.json`"
    )
    for path in EXAMPLES.glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../answers.schema.json", path
        assert (path.parent / first.split("=", 1)[1]).resolve() == committed.resolve()


def test_validate_refuses_a_version_the_profile_cannot_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bare minor other than the pinned release's, where kubeadm-etcd pins a patch
    release, is caught by validate, not only when the plan is made, at its line."""
    bad = tmp_path / "answers.yaml"
    text = (EXAMPLES / "answers.yaml").read_text()
    bad.write_text(text.replace('kubernetes: "1.35.9"', 'kubernetes: "1.34"'))
    line = bad.read_text().splitlines().index('  kubernetes: "1.34"') + 1
    assert main(["validate", "--answers", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line}:15: versions.kubernetes: '1.34' does not fit: it must be" in err
