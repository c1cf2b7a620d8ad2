"""`fmp-install storage estimate` on the command line: JSON shape, text, exit codes, --write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from installer.answers import parse_answers
from installer.cli import main
from installer.factsio import save_facts
from installer.hostfacts import HostFacts, VolumeGroup
from installer.transport import CommandResult, FailureKind, TransportError
from tests.storage_helpers import GiB, blank, dev, host, part

RAW = Path(__file__).parent / "fixtures" / "discovery" / "captured__this-machine-root.txt"

CEPH_ANSWERS = """\
# the FMP layout: three OSD hosts
version: 1
cluster: {name: fmp}
profile: rke-ceph
hosts:
  - {address: 10.0.0.0, name: kn0, roles: [control-plane, lb, ceph-mon]}
  - {address: 10.0.0.1, name: kn1, roles: [control-plane, lb, ceph-mon]}
  - {address: 10.0.0.2, name: kn2, roles: [control-plane, lb, ceph-mon]}
  - {address: 10.0.0.3, name: kn3, roles: [worker, storage], storage_disk: DISK3}
  - {address: 10.0.0.4, name: kn4, roles: [worker, storage], storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4}
  - {address: 10.0.0.5, name: kn5, roles: [worker, storage], storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d5}
network:
  vip: 10.0.0.100   # keepalived holds it
storage:
  features: [fmp]   # the Foresight Mobile Platform
  volumes:
    - {name: fmp-data, size_gb: SIZE}
  wipe: [kn3:DISK3]  # consent for the old disk
"""


def node(i: int, *, vg_free: float = 80) -> HostFacts:
    sda = dev(
        "sda",
        100,
        children=(
            part("sda2", 6, fstype="ext4", mountpoints=("/",)),
            part("sda3", 94, fstype="LVM2_member"),
        ),
    )
    vg = VolumeGroup("ubuntu-vg", 94 * GiB, int(vg_free * GiB), ("/dev/sda3",))
    return host(f"10.0.0.{i}", hostname=f"kn{i}", disks=(sda, blank("sdb", 200, i)), vgs=(vg,))


@pytest.fixture
def files(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(
        size: float = 100, disk3: str = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d3"
    ) -> tuple[Path, Path]:
        answers = tmp_path / "answers.yaml"
        answers.write_text(CEPH_ANSWERS.replace("DISK3", disk3).replace("SIZE", f"{size:g}"))
        facts = tmp_path / "facts.json"
        save_facts(facts, [node(i) for i in range(6)])
        return answers, facts

    return make


def run_json(capsys, *argv: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    code = main(["storage", "estimate", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_json_shape_for_ceph(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files(size=100)
    code, data = run_json(capsys, "--answers", str(answers), "--facts", str(facts))
    assert code == 0
    assert data["backend"] == "ceph" and data["verdict"] == "ok"
    # three 200 GiB OSDs: 600 raw, 600 x 0.85 / 3 = 170 usable, 3 x 100 / 3 -> 128 PGs
    c = data["ceph"]
    assert (c["osds"], c["raw_gib"], c["usable_gib"], c["replicas"], c["pg_num"]) == (
        3,
        600.0,
        170.0,
        3,
        128,
    )
    assert c["min_size"] == 2 and c["pg_autoscale"] is True
    assert data["shared"]["required_gib"] == 100.0
    assert data["shared"]["available_gib"] == 170.0
    # container-runtime 30 GiB on every node (nodes: all), control plane included;
    # ubuntu-vg has 80 free everywhere, so the first is the tightest
    assert data["unshared"]["required_gib_per_node"] == 30.0
    assert data["unshared"]["available_gib_tightest_node"] == 80.0
    assert data["unshared"]["tightest_node"] == "kn0"
    assert [(n["host"], n["workload"], n["required_gib"]) for n in data["unshared"]["nodes"]] == [
        (f"kn{i}", i >= 3, 30.0) for i in range(6)
    ]
    assert isinstance(data["problems"], list)
    assert {p["code"] for p in data["problems"]} == {"host-loss-degraded"}
    assert data["openebs"] is None
    assert [d["path"] for d in c["disks"]] == ["/dev/sdb"] * 3


def test_replicas_flag_and_text_output(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files(size=100)
    code = main(
        ["storage", "estimate", "-a", str(answers), "--facts", str(facts), "--ceph-replicas", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0
    # 600 x 0.85 / 2 = 255
    assert "600.0 GiB raw x 0.85 (nearfull) / 2 replicas = 255.0 GiB usable" in out
    assert "3 x 100 / 2 = 150 -> pg_num 128" in out
    assert "Verdict: ok" in out


def test_insufficient_exits_5(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files(size=171)
    code, data = run_json(capsys, "--answers", str(answers), "--facts", str(facts))
    assert code == 5
    assert data["verdict"] == "insufficient"
    p = next(p for p in data["problems"] if p["code"] == "ceph-capacity")
    assert p["severity"] == "error" and "add 3.5 GiB of OSD disks" in p["fix"]


def test_bad_input_exits_2_with_the_line(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files()
    answers.write_text(answers.read_text().replace("features: [fmp]", "features: [fpm]"))
    assert main(["storage", "estimate", "-a", str(answers), "--facts", str(facts), "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{answers}:15:14: storage.features[0]: unknown feature 'fpm'" in err
    assert "did you mean 'fmp'" in err


def test_bad_facts_and_flags_exit_2(files, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, _ = files()
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "hosts": [{"address": 1}]}')
    assert main(["storage", "estimate", "-a", str(answers), "--facts", str(bad)]) == 2
    assert "not a valid facts file" in capsys.readouterr().err
    assert (
        main(
            ["storage", "estimate", "-a", str(answers), "--facts", str(bad), "--ceph-min-size", "4"]
        )
        == 2
    )
    assert "--ceph-min-size 4" in capsys.readouterr().err
    assert main(["storage", "estimate", "-a", str(tmp_path / "nope.yaml"), "--no-input"]) == 2


def test_sdx_name_warns_and_write_records_the_stable_id(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files(disk3="/dev/sdb")
    code, data = run_json(capsys, "--answers", str(answers), "--facts", str(facts))
    assert code == 0
    warn = next(p for p in data["problems"] if p["code"] == "unstable-disk-name")
    assert warn["host"] == "kn3" and "can change across reboots" in warn["message"]
    before = answers.read_text()
    assert main(["storage", "estimate", "-a", str(answers), "--facts", str(facts), "--write"]) == 0
    after = answers.read_text()
    assert "storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d3}" in after
    # the entry follows the disk, and its comment stays on its line
    assert "wipe: [kn3:/dev/disk/by-id/wwn-0x5000c500a1b2c3d3] # consent for the old disk" in after
    # everything else, comments included, is untouched
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 2
    assert "# the FMP layout: three OSD hosts" in after
    assert "vip: 10.0.0.100   # keepalived holds it" in after
    parse_answers(after, semantic=False)


def test_from_raw_discovery_output(files, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, _ = files()
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(RAW, raw / "10.0.0.3.txt")  # kn3 by address
    shutil.copy(RAW, raw / "kn4.txt")  # kn4 by name
    text = answers.read_text().replace(
        "storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d3", "storage_disk: /dev/vda"
    )
    answers.write_text(
        text.replace("wipe: [kn3:/dev/disk/by-id/wwn-0x5000c500a1b2c3d3]", "wipe: []")
    )
    code, data = run_json(capsys, "--answers", str(answers), "--from-raw", str(raw))
    assert code == 5
    got = {(p["code"], p["host"]) for p in data["problems"]}
    # this machine's vda holds / : never an OSD
    assert ("disk-disallowed", "kn3") in got
    # kn4's raw output has no such WWN; kn5 has no output at all
    assert ("disk-not-found", "kn4") in got
    assert ("disks-unknown", "kn5") in got


def test_from_raw_with_no_files_is_bad_input(files, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, _ = files()
    (tmp_path / "empty").mkdir()
    code = main(["storage", "estimate", "-a", str(answers), "--from-raw", str(tmp_path / "empty")])
    assert code == 2
    assert "no raw discovery output" in capsys.readouterr().err


def with_vgs(i: int, *groups: str) -> HostFacts:
    f = node(i)
    extra = tuple(VolumeGroup(g, 50 * GiB, 40 * GiB, (f"/dev/sd{g[-1]}",)) for g in groups)
    return f.__class__(**{**f.__dict__, "volume_groups": (*(f.volume_groups or ()), *extra)})


def test_vg_on_no_host_is_bad_input(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files()
    argv = ["storage", "estimate", "-a", str(answers), "--facts", str(facts)]
    assert main([*argv, "--json", "--vg", "nosuch"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no half estimate
    assert (
        "no host has a volume group nosuch; found: ubuntu-vg on kn0, kn1, kn2, kn3, kn4, kn5"
        in captured.err
    )
    assert "hint: pass --vg with one of those" in captured.err


def test_vg_on_some_hosts_only_is_one_problem_per_node(files, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, _ = files()
    facts = tmp_path / "some.json"
    # only kn3 and kn4 have vg_c; container-runtime lives on every node
    save_facts(facts, [with_vgs(i, "vg_c") if i in (3, 4) else node(i) for i in range(6)])
    code, data = run_json(capsys, "-a", str(answers), "--facts", str(facts), "--vg", "vg_c")
    assert code == 5
    per_node = [(p["code"], p["host"]) for p in data["problems"] if p["severity"] == "error"]
    assert sorted(per_node) == [("vg-not-found", f"kn{i}") for i in (0, 1, 2, 5)]
    p = next(p for p in data["problems"] if p["host"] == "kn5")
    assert p["message"] == "kn5 has no volume group vg_c (it has: ubuntu-vg)"
    assert p["fix"].startswith("create vg_c on kn5 (vgcreate vg_c <disk>)")


def test_storage_without_subcommand_prints_help(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["storage"]) == 0
    assert "estimate" in capsys.readouterr().out


class FakeTransport:
    """Answers the discovery script with a captured output, like a real host would."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.closed = False

    @property
    def host(self) -> str:
        return self.label

    async def run(self, command: str, **_kw: object) -> CommandResult:
        assert "@@FMP-DONE@@" in command  # it is the discovery script
        return CommandResult(0, RAW.read_text(), "")

    async def close(self) -> None:
        self.closed = True


def test_live_discovery_over_ssh_with_one_host_down(files, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import installer.ssh

    answers, _ = files()
    opened: list[FakeTransport] = []

    async def connect(target, **_kw):  # type: ignore[no-untyped-def]
        if target.address == "10.0.0.5":
            raise TransportError("kn5", FailureKind.UNREACHABLE, "no route to host")
        t = FakeTransport(target.label)
        opened.append(t)
        return t

    monkeypatch.setattr(installer.ssh, "connect", connect)
    code = main(["storage", "estimate", "--answers", str(answers), "--json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 5
    assert "warning: kn5: unreachable: no route to host" in captured.err
    assert len(opened) == 5 and all(t.closed for t in opened)
    got = {(p["code"], p["host"]) for p in data["problems"]}
    # every reachable host is this machine: no WWN disks, no volume groups
    assert ("disk-not-found", "kn3") in got
    assert ("disks-unknown", "kn5") in got and ("vgs-unknown", "kn5") in got
    assert ("no-volume-group", "kn4") in got


def test_json_keys_are_the_documented_contract(files, capsys) -> None:  # type: ignore[no-untyped-def]
    answers, facts = files()
    _, data = run_json(capsys, "--answers", str(answers), "--facts", str(facts))
    assert set(data) == {
        "version",
        "profile",
        "backend",
        "verdict",
        "units",
        "tight_ratio",
        "volumes",
        "shared",
        "unshared",
        "ceph",
        "openebs",
        "problems",
    }
    assert set(data["shared"]) == {
        "required_gib",
        "available_gib",
        "required_raw_gib",
        "available_raw_gib",
        "utilization",
        "verdict",
        "volumes",
    }
    assert {
        "required_gib_per_node",
        "available_gib_tightest_node",
        "tightest_node",
        "nodes",
    } <= set(data["unshared"])
    assert {"osds", "raw_gib", "usable_gib", "replicas", "pg_num", "min_size", "host_loss"} <= set(
        data["ceph"]
    )
    assert set(data["problems"][0]) == {"severity", "code", "host", "message", "fix"}
    assert set(data["volumes"][0]) == {
        "name",
        "title",
        "feature",
        "source",
        "size_gib",
        "shared",
        "replicas",
        "nodes",
    }
