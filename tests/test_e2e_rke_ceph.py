"""End to end: the rke-ceph profile installed headless on a lab (issue 6's acceptance list).

Each scenario starts its own lab (``lab up --profile rke-ceph``: kn0-kn2 RKE2 servers, Ceph
monitors and VIP holders, kn3-kn5 agents; every node's data disk becomes an OSD) and runs
``fmp-install --answers D/answers.yaml --yes`` as a real subprocess:

- a fresh install builds the cluster the profile promises, and leaks no secret;
- running it again executes no step and calls no tool beyond discovery's fact gathering;
- kill -9 at seeded random moments, then resume: the run completes, nothing done is redone,
  the journal stays sound;
- a storage disk that is not on its host stops the install before anything changes.

No timed assertions: timeouts only bound a hung run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e import INSTALL_TIMEOUT, Install, lab_install
from tests.labkit import REPO, cli

pytestmark = pytest.mark.slow

PROFILE = "rke-ceph"
SERVERS = ["kn0", "kn1", "kn2"]
NODES = [f"kn{i}" for i in range(6)]
KUBECTL = "KUBECONFIG=/etc/rancher/rke2/rke2.yaml /var/lib/rancher/rke2/bin/kubectl"


def _lab_args(root: Path, net: int) -> list[str]:
    """``--spec FILE``: the lab on its own 127.67.<net>.0/24 addresses and a port of its own, so
    that it runs beside the other profiles' labs (and another copy of this test)."""
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "spec.yaml"
    port = random.SystemRandom().randrange(20000, 40000)
    spec.write_text(
        yaml.safe_dump(
            {"base_address": f"127.67.{net}.11", "vip": f"127.67.{net}.100", "ssh_port": port}
        )
    )
    return ["--spec", str(spec)]


def _answers(install: Install) -> dict[str, Any]:
    doc = yaml.safe_load(install.answers.read_text())
    assert isinstance(doc, dict)
    return doc


def _storage_disks(install: Install) -> dict[str, str]:
    """host -> the kernel name of its chosen storage_disk (the by-id link, resolved on the node)."""
    disks = {}
    for h in _answers(install)["hosts"]:
        if "storage" in h["roles"]:
            dev = install.lab.ok(h["name"], f"readlink -f {h['storage_disk']}").strip()
            disks[h["name"]] = dev.removeprefix("/dev/")
    return disks


def _json(install: Install, node: str, command: str) -> Any:
    return json.loads(install.lab.ok(node, command))


def _done_rows(install: Install) -> dict[str, tuple[Any, ...]]:
    """Every task recorded done, with what a re-run would change (its run, start, attempts)."""
    return {
        tid: (row["run_id"], row["started_at"], row["attempts"])
        for tid, row in install.tasks().items()
        if row["status"] == "done"
    }


def _new_calls(install: Install, before: dict[str, int]) -> dict[str, Counter[str]]:
    """The shim calls each node logged since ``before`` (tool and argv)."""
    found = {}
    for node, count in before.items():
        calls = install.lab.calls(node)[count:]
        found[node] = Counter(json.dumps([c["tool"], c["argv"]]) for c in calls)
    return found


def _discovery_calls(install: Install) -> dict[str, Counter[str]]:
    """What one discovery of every host (``fmp-install discover``) calls on each node."""
    before = install.shim_calls()
    r = cli("discover", "--answers", str(install.answers), timeout=300)
    assert r.returncode in (0, 3), r.stdout + r.stderr  # 3: preflight findings, still discovered
    return _new_calls(install, before)


# --------------------------------------------------------------------------- fresh install


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Install, Any]]:
    """One lab and one fresh install, shared by the fresh-install, secrets and re-run tests."""
    require_tool("ssh")
    root = tmp_path_factory.mktemp("rke-ceph-fresh")
    with lab_install(root, PROFILE, *_lab_args(root, 1)) as install:
        result = install.run()
        yield install, result


def test_fresh_install_builds_the_promised_cluster(installed: tuple[Install, Any]) -> None:
    install, r = installed
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    lab = install.lab

    # Kubernetes: exactly kn0..kn5 joined; kn0-kn2 are the servers (control plane + etcd).
    nodes = _json(install, "kn0", f"{KUBECTL} get nodes -o json")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == NODES
    for n in nodes:
        labels = n["metadata"]["labels"]
        is_server = n["metadata"]["name"] in SERVERS
        assert ("node-role.kubernetes.io/control-plane" in labels) is is_server, n["metadata"]
        assert ("node-role.kubernetes.io/etcd" in labels) is is_server, n["metadata"]
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        # Servers are kept for the control plane (dedicated_servers), agents run the workloads.
        taints = {t["key"] for t in n["spec"].get("taints") or []}
        assert ("CriticalAddonsOnly" in taints) is is_server
    table = lab.ok("kn0", f"{KUBECTL} get nodes --no-headers")
    roles = {line.split()[0]: line.split()[2] for line in table.splitlines()}
    assert all("control-plane" in roles[s] and "etcd" in roles[s] for s in SERVERS)
    assert all(roles[a] == "<none>" for a in ("kn3", "kn4", "kn5"))

    # Ceph: healthy, 3 monitors in quorum on the ceph-mon hosts, one OSD per storage host on
    # exactly the disk chosen for it.
    status = _json(install, "kn0", "ceph -s --format json")
    assert status["health"]["status"] == "HEALTH_OK", status["health"]
    assert status["monmap"]["num_mons"] == 3
    assert sorted(status["quorum_names"]) == SERVERS
    disks = _storage_disks(install)
    assert status["osdmap"]["num_osds"] == status["osdmap"]["num_up_osds"] == len(disks)
    tree = _json(install, "kn0", "ceph osd tree --format json")["nodes"]
    hosts_in_tree = {n["name"]: n["children"] for n in tree if n["type"] == "host"}
    assert sorted(hosts_in_tree) == sorted(disks)
    assert all(len(children) == 1 for children in hosts_in_tree.values())
    osds = _json(install, "kn0", "ceph osd metadata --format json")
    assert {o["hostname"]: o["devices"] for o in osds} == disks
    fsid = lab.ok("kn0", "ceph fsid").strip()
    for host, dev in disks.items():
        # The disk itself carries the OSD: an LVM PV whose LV has ceph-volume's tags.
        vg = lab.ok(host, f"pvs --noheadings -o vg_name /dev/{dev}").strip()
        tags = lab.ok(host, f"lvs --noheadings -o lv_tags {vg}")
        assert f"ceph.cluster_fsid={fsid}" in tags and "ceph.type=block" in tags

    # The RBD StorageClass, default, pointing at this cluster and its pool.
    sc = _json(install, "kn0", f"{KUBECTL} get storageclass fast-rbd -o json")
    assert sc["provisioner"] == "rbd.csi.ceph.com"
    assert sc["parameters"]["clusterID"] == fsid and sc["parameters"]["pool"] == "kube"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    # The smoke-test claim was provisioned and deleted with its image.
    assert lab.ok("kn0", "rbd ls kube").strip() == ""
    assert "Bound" in r.stdout

    # The operator's kubeconfig: 0600, the API on the VIP.
    kubeconfig = install.state / "kubeconfig"
    assert kubeconfig.exists()
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    vip = _answers(install)["network"]["vip"]
    assert f"server: https://{vip}:8443" in kubeconfig.read_text()


def test_fresh_install_leaks_no_secret(installed: tuple[Install, Any]) -> None:
    install, r = installed
    assert r.returncode == 0
    assert len(install.secret_values()) >= 4  # rke2 token, VRRP password, cephx key, kubeconfig
    assert install.leaked(r.stdout, r.stderr) == []


def test_running_again_changes_nothing(installed: tuple[Install, Any]) -> None:
    install, first = installed
    assert first.returncode == 0
    done = _done_rows(install)
    assert len(done) == len(install.tasks())
    before = install.shim_calls()
    r = install.run()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Nothing to do" in r.stdout
    assert _done_rows(install) == done  # no task ran: same run, start and attempts
    # A finished install re-run with the same answers contacts no host at all.
    assert install.shim_calls() == before
    assert install.leaked(r.stdout, r.stderr) == []
    assert install.integrity() == "ok"


# --------------------------------------------------------------------------- crash and resume


def _run_killed_after_progress(install: Install, tasks: int, extra: float) -> bool:
    """Start an install and SIGKILL its process group once ``tasks`` more tasks are done, plus
    ``extra`` seconds (so the kill lands inside a task as often as between two).

    Returns False when the install finished before the kill.
    """
    start = len(_done_rows(install)) if (install.state / "journal.sqlite").exists() else 0
    proc = subprocess.Popen(
        install.argv(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    deadline = time.monotonic() + INSTALL_TIMEOUT
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the install neither finished nor progressed")
            try:
                progressed = len(_done_rows(install)) - start >= tasks
            except Exception:  # the journal does not exist yet, or is being created
                progressed = False
            if progressed:
                time.sleep(extra)
                if proc.poll() is not None:
                    return False
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.1)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_kill_and_resume(tmp_path: Path) -> None:
    require_tool("ssh")
    seed = int(os.environ.get("FMP_E2E_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
    rnd = random.Random(seed)
    print(f"kill points seed: {seed} (FMP_E2E_SEED={seed} replays them)")
    with lab_install(tmp_path, PROFILE, *_lab_args(tmp_path, 2)) as install:
        snapshots: list[dict[str, tuple[Any, ...]]] = []
        kills = 0
        while kills < 6:
            tasks, extra = rnd.randint(2, 15), round(rnd.uniform(0.0, 1.5), 2)
            print(f"kill {kills + 1}: after {tasks} more task(s) done, then {extra}s")
            if not _run_killed_after_progress(install, tasks, extra):
                break
            kills += 1
            assert install.integrity() == "ok"
            snapshots.append(_done_rows(install))
            cut = sorted(t for t, row in install.tasks().items() if row["status"] == "running")
            print(f"  killed with {len(snapshots[-1])} task(s) done, cut off: {cut or 'none'}")
        assert kills >= 5, f"the install finished after {kills} kills"
        r = install.run(timeout=INSTALL_TIMEOUT)
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
        assert install.integrity() == "ok"
        final = _done_rows(install)
        assert len(final) == len(install.tasks())
        for i, snap in enumerate(snapshots):
            redone = sorted(t for t, row in snap.items() if final.get(t) != row)
            assert not redone, f"done before kill {i + 1}, run again after it: {redone}"
        # The cluster is whole: every node joined, every chosen disk an OSD.
        nodes = install.lab.ok("kn0", f"{KUBECTL} get nodes --no-headers")
        assert sorted(line.split()[0] for line in nodes.splitlines()) == NODES
        status = _json(install, "kn0", "ceph -s --format json")
        assert status["osdmap"]["num_osds"] == len(_storage_disks(install))
        assert status["health"]["status"] == "HEALTH_OK"
        assert install.leaked(r.stdout, r.stderr) == []


# --------------------------------------------------------------------------- a missing OSD disk


def test_missing_storage_disk_stops_before_anything_changes(tmp_path: Path) -> None:
    """kn4's storage_disk names a disk that is not on kn4: preflight fails (exit 3), naming the
    host and the disk, and no step runs anywhere."""
    require_tool("ssh")
    with lab_install(tmp_path, PROFILE, *_lab_args(tmp_path, 3)) as install:
        doc = _answers(install)
        kn4 = next(h for h in doc["hosts"] if h["name"] == "kn4")
        real = kn4["storage_disk"]
        ghost = "/dev/disk/by-id/wwn-0x5000c50000000bad"
        kn4["storage_disk"] = ghost
        doc["storage"]["wipe"] = [w.replace(real, ghost) for w in doc["storage"]["wipe"]]
        install.answers.write_text(yaml.safe_dump(doc, sort_keys=False))
        before = install.shim_calls()
        r = install.run()
        assert r.returncode == 3, r.stdout[-4000:] + r.stderr[-2000:]
        failures = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
        assert failures and all(line.startswith("FAIL kn4:") for line in failures), failures
        assert ghost in r.stdout.replace("\n", "")
        assert not (install.state / "journal.sqlite").exists() or not install.tasks()
        # Only discovery's read-only calls reached the nodes.
        calls = _new_calls(install, before)
        discovery = _discovery_calls(install)
        beyond = {node: dict(c - discovery[node]) for node, c in calls.items()}
        assert all(not extra for extra in beyond.values()), beyond
