"""`fmp-install discover` against the lab: each node answers with its own facts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e import isolated_spec
from tests.labkit import Lab, cli

GIB = 1024**3


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("labdisco")
    spec = base / "spec.yaml"
    spec.write_text(yaml.safe_dump(isolated_spec()))
    root = base / "lab"
    r = cli("lab", "up", "--dir", str(root), "--spec", str(spec), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        yield Lab(root)
    finally:
        cli("lab", "down", "--dir", str(root), timeout=120)


@pytest.mark.slow
def test_discovery_sees_each_nodes_own_facts(lab: Lab, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    r = cli(
        "discover", "--answers", str(lab.root / "answers.yaml"), "--json", "--save-raw", str(raw),
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr  # the default lab passes preflight
    data = json.loads(r.stdout)
    hosts = {h["label"]: h for h in data["hosts"]}
    assert sorted(hosts) == [f"kn{i}" for i in range(6)]
    machine_ids = set()
    for name, host in hosts.items():
        facts = host["facts"]
        assert host["reached"], host["problem"]
        assert facts["hostname"] == name  # its own UTS namespace
        assert facts["address"] == lab.node(name)["address"]
        assert facts["os"]["id"] == "ubuntu" and facts["os"]["version_id"] == "22.04"
        assert facts["cpu"]["count"] == 8 and "avx" in facts["cpu"]["flags"]
        assert 31 * GIB < facts["memory"]["total_bytes"] <= 32 * GIB
        disks = {d["name"]: d for d in facts["disks"] if d["type"] == "disk"}
        assert disks["sda"]["size_bytes"] == 50 * 10**9 or disks["sda"]["size_bytes"] == 50 * GIB
        assert disks["sdb"]["wwn"] and disks["sdb"]["serial"]
        assert any(link.startswith("/dev/disk/by-id/wwn-") for link in disks["sdb"]["by_id"])
        assert len([n for n in facts["nics"] if not n["loopback"]]) == 2
        assert facts["swaps"], "swap is on in the default spec"
        # the lab's modinfo finds it; the node's small /sys has no /sys/module
        assert facts["kernel_modules"] == {"nvme_tcp": "available"}
        machine_ids.add(facts["machine_id"])
    assert len(machine_ids) == 6
    grid = data["preflight"]["grid"]
    assert all(row["swap"] == "warn" for row in grid.values())  # the install turns it off
    # --save-raw wrote one replayable file per node.
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        f"{lab.node(f'kn{i}')['address']}.txt" for i in range(6)
    )
