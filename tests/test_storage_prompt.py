"""The interactive storage estimate: real questionary prompts driven by piped keystrokes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.plain_text import PlainTextOutput

import installer.commands.storage as storage_cmd
import screens.storage_prompt as sp
from installer.answers import parse_answers
from installer.cli import main
from installer.factsio import save_facts
from installer.hostfacts import HostFacts, VolumeGroup
from installer.storage import UnknownVolumeGroup
from installer.workloads import load_catalogue, resolve_volumes
from screens.storage_prompt import QuestionaryAsker, parse_size, parse_yes_no, run_storage_prompt
from tests.storage_helpers import GiB, blank, dev, host, part

CLEAR = "\x15"  # Ctrl-U: the size prompt starts filled with its default

ANSWERS = """\
# Kloudspot on three MicroK8s nodes
version: 1
cluster:
  name: kloudspot
profile: microk8s-openebs
hosts:
  # every node gives its data disk to the replicated pool
  - {address: 10.0.0.0, name: kn0, roles: [control-plane, storage], storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d0}
  - {address: 10.0.0.1, name: kn1, roles: [control-plane, storage], storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d1}
  - {address: 10.0.0.2, name: kn2, roles: [control-plane, storage], storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d2}
network:
  vip: 10.0.0.100   # MetalLB
storage:
  features: []      # chosen by `fmp-install storage estimate`
"""


def kloudspot_node(i: int, vg_free: float = 87.1) -> HostFacts:
    sda = dev(
        "sda",
        50,
        children=(
            part("sda1", 0.001),
            part("sda2", 50, fstype="ext4", mountpoints=("/",)),
        ),
    )
    sdb = blank("sdb", 200, i)
    vg = VolumeGroup("vg_data", int(93.1 * GiB), int(vg_free * GiB), ("/dev/sdc1",))
    sdc = dev("sdc", 100, children=(part("sdc1", 93.1, fstype="LVM2_member"),))
    return host(f"10.0.0.{i}", hostname=f"kn{i}", disks=(sda, sdb, sdc), vgs=(vg,))


@pytest.fixture
def pipe() -> Iterator[object]:
    with create_pipe_input() as inp:
        yield inp


def test_parse_helpers() -> None:
    assert parse_yes_no("", True) is True and parse_yes_no("NO", True) is False
    assert parse_yes_no("maybe", False) is None
    assert parse_size("10") == 10 and parse_size("2.5GiB") == 2.5 and parse_size("7G") == 7
    assert parse_size("0") is None and parse_size("-1") is None and parse_size("ten") is None
    assert parse_size("nan") is None and parse_size("inf") is None


def test_questionary_flow_end_to_end(pipe) -> None:  # type: ignore[no-untyped-def]
    answers = parse_answers(ANSWERS)
    facts = {f"kn{i}": kloudspot_node(i) for i in range(3)}
    printed: list[str] = []
    screen = io.StringIO()
    saved: list[str] = []
    keys = [
        "?\r",  # KloudInsights: help first
        "y\r",  # ... then yes
        "\r",  # KloudManage: default No
        "n\r",  # Kloudhybrid
        "n\r",  # Foresight Mobile Platform
        CLEAR + "12\r",  # Stream processing elasticsearch: 12 instead of 10
        "\r",  # state storage: 10
        "\r",  # insights database: 10
        "?\r",  # Kafka: "2?" shows help
        "\r",  # ... then keep 2
        "\r",  # Zookeeper: 2
        "y\r",  # write the answers file
    ]
    pipe.send_text("".join(keys))
    asker = QuestionaryAsker(input=pipe, output=PlainTextOutput(screen), write=printed.append)
    result = run_storage_prompt(
        answers,
        facts,
        load_catalogue(),
        asker=asker,
        backend="openebs",
        write=printed.append,
        answers_text=ANSWERS,
        answers_path="answers.yaml",
        save=saved.append,
    )
    out = "\n".join(printed)
    asked = screen.getvalue()

    assert result.features == ["insights"]
    assert result.sizes == {
        "elasticsearch": 12,
        "stream-state": 10,
        "insights-db": 10,
        "kafka": 2,
        "zookeeper": 2,
    }
    # The questions were really shown by questionary.
    for q in (
        "Enable KloudInsights",
        "Enable Kloudhybrid",
        "Stream processing elasticsearch (GiB)",
    ):
        assert q in asked
    # Each host: volume groups with free space, and the disk tree.
    assert "Assuming a 3 node cluster installation" in out
    assert out.count("-  vg_data (93.1 GiB - 87.1 GiB free)") == 3
    assert "/dev/sda (50G)  [disallowed: system disk (holds /)]" in out
    assert "  /dev/sda2 (50G) mounted as /" in out
    assert "  /dev/sdc1 (93.1G) in Volume Group vg_data" in out
    assert "kn0: storage disk /dev/disk/by-id/wwn-0x5000c500a1b2c3d0 -> /dev/sdb (allowed)" in out
    # '?' printed the help (feature, then volume) and asked again.
    assert "KloudInsights: Location analytics." in out
    assert "Kafka distributed messaging (kafka). Shared: one volume replicated 3 times" in out
    # Available before sizing: three 200 GiB pools hold 200 GiB at 3 replicas; 87.1 per node.
    assert "Using vg_data for unshared volumes" in out
    assert "Available: Shared 200.0 GiB, Unshared 87.1 GiB (tightest node kn0)" in out
    # Required: shared 10 + 2 + 2 = 14; unshared 12 + 10 = 22 on each node.
    assert "Required: Shared 14.0 GiB, Unshared 22.0 GiB" in out
    assert "OpenEBS: 3 replicated pool(s)" in out
    assert "shared needs 42.0 GiB with replicas = 14.0 GiB per pool" in out
    assert "Verdict: ok - The configuration looks OK" in out
    assert "Remember each node needs this amount of storage" in out
    assert result.estimate.verdict == "ok"
    # Written back, comments kept, only the changed size recorded.
    assert result.written and len(saved) == 1
    text = saved[0]
    assert "# Kloudspot on three MicroK8s nodes" in text
    assert "  # every node gives its data disk to the replicated pool" in text
    assert "vip: 10.0.0.100   # MetalLB" in text
    assert "features: [insights] # chosen by `fmp-install storage estimate`" in text
    assert "- {name: elasticsearch, size_gb: 12}" in text
    assert "kafka" not in text  # 2 is the catalogue default
    reread = parse_answers(text)
    assert reread.storage.features == ["insights"]
    assert [(v.name, v.size_gb) for v in reread.storage.volumes] == [("elasticsearch", 12)]


class Scripted:
    """An Asker that answers from a dict, for flows where keystrokes add nothing."""

    def __init__(self, features: set[str], sizes: dict[str, float], write: bool) -> None:
        self.features, self.sizes, self.write = features, sizes, write
        self.asked: list[str] = []

    def confirm(self, message: str, default: bool, help_text: str = "") -> bool:
        self.asked.append(message)
        if message.startswith("Write"):
            return self.write
        return any(message == f"Enable {t}" for t in self.features)

    def number(self, message: str, default: float, help_text: str = "") -> float:
        self.asked.append(message)
        return self.sizes.get(message, default)


def test_insufficient_flow_prints_the_fix_and_declines_to_write() -> None:
    answers = parse_answers(ANSWERS)
    facts = {"kn0": kloudspot_node(0), "kn1": kloudspot_node(1), "kn2": kloudspot_node(2, 12)}
    printed: list[str] = []
    saved: list[str] = []
    asker = Scripted({"Kloudhybrid"}, {}, write=False)
    result = run_storage_prompt(
        answers,
        facts,
        load_catalogue(),
        asker=asker,
        backend="openebs",
        write=printed.append,
        answers_text=ANSWERS,
        save=saved.append,
    )
    out = "\n".join(printed)
    # Kloudhybrid: elasticsearch 10 + insights database 10 = 20 per node; kn2 has 12 free
    assert "Required: Shared 0.0 GiB, Unshared 20.0 GiB" in out
    assert "Verdict: insufficient" in out
    assert "kn2: volume group vg_data has 12.0 GiB free; each node needs 20.0 GiB" in out
    assert "fix: grow vg_data on kn2 by 8.0 GiB" in out
    assert result.estimate.verdict == "insufficient"
    assert not result.written and saved == []
    assert asker.asked[-1].startswith("Write these choices")


def test_host_without_facts_is_explained_not_called_diskless() -> None:
    # --from-raw with no file for kn2: it has a storage_disk, but no facts at all
    answers = parse_answers(ANSWERS)
    facts = {"kn0": kloudspot_node(0), "kn1": kloudspot_node(1)}
    printed: list[str] = []
    run_storage_prompt(
        answers,
        facts,
        load_catalogue(),
        asker=Scripted(set(), {}, write=False),
        backend="openebs",
        write=printed.append,
    )
    out = "\n".join(printed)
    assert "no storage_disk" not in out
    assert (
        "kn2: cannot check /dev/disk/by-id/wwn-0x5000c500a1b2c3d2: its disks are unknown "
        "(no facts were found for kn2)" in out
    )
    assert (
        "    fix: check that discovery reaches kn2 and run it again; with --from-raw DIR, "
        "DIR needs 10.0.0.2.txt or kn2.txt; with --facts FILE, FILE needs kn2's facts" in out
    )
    # a host that really has no storage_disk still says so
    no_disk = ANSWERS.replace(", storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d2", "")
    printed.clear()
    run_storage_prompt(
        parse_answers(no_disk, semantic=False),
        {f"kn{i}": kloudspot_node(i) for i in range(3)},
        load_catalogue(),
        asker=Scripted(set(), {}, write=False),
        backend="openebs",
        write=printed.append,
    )
    assert "kn2 has role storage but no storage_disk" in printed


def test_turning_a_feature_off_drops_its_overrides_on_write_back() -> None:
    text = ANSWERS.replace(
        "  features: []      # chosen by `fmp-install storage estimate`\n",
        "  features: [hybrid, manage]\n"
        "  volumes:\n"
        "    - {name: mongodb, size_gb: 15}     # KloudManage's database\n"
        "    - {name: reports, size_gb: 5}      # our own volume\n",
    )
    answers = parse_answers(text)
    saved: list[str] = []
    # KloudManage off, Kloudhybrid kept; every size its default
    asker = Scripted({"Kloudhybrid"}, {}, write=True)
    result = run_storage_prompt(
        answers,
        {f"kn{i}": kloudspot_node(i) for i in range(3)},
        load_catalogue(),
        asker=asker,
        backend="openebs",
        write=lambda _line: None,
        answers_text=text,
        save=saved.append,
    )
    assert result.features == ["hybrid"] and result.written
    assert "reports (GiB)" in asker.asked  # the custom volume is still sized
    (new,) = saved
    assert "mongodb" not in new
    assert "    - {name: reports, size_gb: 5}      # our own volume" in new
    reread = parse_answers(new)
    assert [v.name for v in reread.storage.volumes] == ["reports"]
    # the next run has nothing to warn about
    _, problems = resolve_volumes(load_catalogue(), reread.storage)
    assert problems == []


def test_a_vg_on_no_host_stops_before_any_question() -> None:
    asker = Scripted({"KloudInsights"}, {}, write=False)
    with pytest.raises(UnknownVolumeGroup, match="found: vg_data on kn0, kn1, kn2"):
        run_storage_prompt(
            parse_answers(ANSWERS),
            {f"kn{i}": kloudspot_node(i) for i in range(3)},
            load_catalogue(),
            asker=asker,
            backend="openebs",
            write=lambda _line: None,
            vg="nosuch",
        )
    assert asker.asked == []


def test_cli_interactive_path_exit_code_and_auto_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pipe
) -> None:  # type: ignore[no-untyped-def]
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(ANSWERS)
    facts_file = tmp_path / "facts.json"
    save_facts(facts_file, [kloudspot_node(0), kloudspot_node(1), kloudspot_node(2, 12)])
    monkeypatch.setattr(storage_cmd, "_is_terminal", lambda: True)
    monkeypatch.setattr(
        sp, "QuestionaryAsker", lambda: QuestionaryAsker(input=pipe, output=DummyOutput())
    )
    # insights yes, the rest no; all sizes default. --write: no final question.
    pipe.send_text("y\r\r\r\r" + "\r" * 5)
    code = main(
        ["storage", "estimate", "-a", str(answers_file), "--facts", str(facts_file), "--write"]
    )
    out = capsys.readouterr().out
    assert code == 5  # kn2 has 12 GiB free for 20 GiB of local volumes
    assert "Verdict: insufficient" in out
    assert f"Wrote {answers_file}" in out
    assert "features: [insights]" in answers_file.read_text()
    assert "# Kloudspot on three MicroK8s nodes" in answers_file.read_text()


def test_no_input_skips_the_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(ANSWERS.replace("features: []", "features: [hybrid]"))
    facts_file = tmp_path / "facts.json"
    save_facts(facts_file, [kloudspot_node(i) for i in range(3)])
    monkeypatch.setattr(storage_cmd, "_is_terminal", lambda: True)

    def boom() -> None:
        raise AssertionError("asked a question under --no-input")

    monkeypatch.setattr(sp, "QuestionaryAsker", boom)
    code = main(
        ["storage", "estimate", "-a", str(answers_file), "--facts", str(facts_file), "--no-input"]
    )
    assert code == 0
    assert "Required: Shared 0.0 GiB, Unshared 20.0 GiB per node" in capsys.readouterr().out
