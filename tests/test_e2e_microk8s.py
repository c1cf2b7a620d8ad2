"""End-to-end: headless installs of the microk8s-openebs profile against a lab.

Each scenario starts its own lab (on a free SSH port, so that labs of other
profiles can run at the same time) and runs ``fmp-install --answers D/answers.yaml
--yes`` as a real subprocess. The checks read the lab's shared state through
the nodes (``microk8s kubectl``, ``microk8s status``, ``microk8s helm3``), the
shims' call logs and the journal. Nothing here measures time: the crash points
are chosen by install progress (tasks done in the journal) plus a random delay,
from a seed that is printed (``FMP_E2E_SEED`` replays one).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import Install, lab_install
from tests.labkit import REPO, Lab, start_lab, stop_lab

pytestmark = pytest.mark.slow

PROFILE = "microk8s-openebs"
NODES = [f"kn{i}" for i in range(6)]


# ---------------------------------------------------------------- helpers


def _free_port(base: str = "127.0.0.", first: int = 11, count: int = len(NODES)) -> int:
    """An SSH port that no listener holds on any of a lab's loopback addresses."""
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(20000, 40000)
        try:
            for i in range(count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((f"{base}{first + i}", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for the lab")


def _lab(tmp_path: Path) -> Any:
    spec = tmp_path / "lab-spec.yaml"
    spec.write_text(yaml.safe_dump({"ssh_port": _free_port()}))
    return lab_install(tmp_path, PROFILE, "--spec", str(spec))


def _answers(inst: Install) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(inst.answers.read_text())
    return data


def _kubectl_json(inst: Install, args: str) -> Any:
    return json.loads(inst.lab.ok("kn0", f"microk8s kubectl {args} -o json"))


def _summary(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n--- stdout (tail)\n{r.stdout[-6000:]}\n--- stderr (tail)\n{r.stderr[-3000:]}"


def check_cluster(inst: Install) -> None:
    """The cluster the profile promises, as the lab's shared state shows it."""
    answers = _answers(inst)
    hosts = {h["name"]: h for h in answers["hosts"]}
    managers = [n for n, h in hosts.items() if "control-plane" in h["roles"]]
    storage = {n: h["storage_disk"] for n, h in hosts.items() if "storage" in h["roles"]}
    assert managers == ["kn0", "kn1", "kn2"]
    assert sorted(storage) == NODES  # the lab's default answers: every node gives /dev/sdb

    # 3 managers + 3 workers joined: kubectl on kn0 lists exactly kn0..kn5
    names = inst.lab.ok("kn0", "microk8s kubectl get nodes -o name").split()
    assert sorted(names) == [f"node/{n}" for n in NODES]
    nodes = {n["metadata"]["name"]: n for n in _kubectl_json(inst, "get nodes")["items"]}
    for n in NODES:
        is_cp = "node-role.kubernetes.io/control-plane" in nodes[n]["metadata"]["labels"]
        assert is_cp == (n in managers), n
        ready = [c for c in nodes[n]["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", n
    state = json.loads((inst.lab.root / "state" / "microk8s.json").read_text())
    cluster = state["clusters"][state["member_of"]["kn0"]]
    assert {n: v["role"] for n, v in cluster["nodes"].items()} == {
        **dict.fromkeys(managers, "voter"),
        **{n: "worker" for n in NODES if n not in managers},
    }
    assert {state["member_of"][n] for n in NODES} == {state["member_of"]["kn0"]}
    for n in NODES:
        marked = inst.lab.run(n, "test -e /var/snap/microk8s/current/var/lock/clustered.lock")
        assert (marked.returncode == 0) == (n not in managers), n

    # addons dns, ingress, metallb; MetalLB's pool is exactly the VIP /32
    for addon in ("dns", "ingress", "metallb"):
        assert inst.lab.ok("kn0", f"microk8s status --addon {addon}").strip() == "enabled", addon
    pool = _kubectl_json(inst, "-n metallb-system get ipaddresspool default-addresspool")
    assert pool["spec"]["addresses"] == [f"{answers['network']['vip']}/32"]

    # OpenEBS from its chart, a DiskPool on exactly each storage host's chosen disk
    releases = json.loads(inst.lab.ok("kn0", "microk8s helm3 list -n openebs -o json"))
    assert [(r["name"], r["chart"], r["status"]) for r in releases] == [
        ("openebs", "openebs-4.3.3", "deployed")
    ]
    pools = _kubectl_json(inst, "-n openebs get diskpools")["items"]
    assert {p["spec"]["node"]: p["spec"]["disks"] for p in pools} == {
        n: [f"aio://{disk}"] for n, disk in storage.items()
    }
    for p in pools:
        assert (p["status"]["cr_state"], p["status"]["pool_status"]) == ("Created", "Online")
    # ... and only those disks were wiped
    for n in NODES:
        for call in inst.lab.calls(n):
            if call["tool"] in ("wipefs", "sgdisk"):
                devices = [a for a in call["argv"] if a.startswith("/dev/")]
                assert devices == [storage[n]], (n, call["argv"])
        assert inst.lab.ok(n, "cat /var/lib/fmp/wiped/*").split() == [storage[n]]

    # the StorageClasses, openebs-lvm the default
    classes = {c["metadata"]["name"]: c for c in _kubectl_json(inst, "get storageclass")["items"]}
    assert sorted(classes) == ["openebs-lvm", "openebs-replicated"]
    lvm, replicated = classes["openebs-lvm"], classes["openebs-replicated"]
    assert (lvm["provisioner"], lvm["parameters"]["volgroup"]) == (
        "local.csi.openebs.io",
        "ubuntu-vg",
    )
    assert lvm["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (replicated["provisioner"], replicated["parameters"]["repl"]) == (
        "io.openebs.csi-mayastor",
        "3",
    )
    # the smoke test's claim was provisioned, then deleted with its volume
    assert _kubectl_json(inst, "get pvc -A")["items"] == []
    assert _kubectl_json(inst, "get pv")["items"] == []

    # the admin kubeconfig, kept for the operator
    kubeconfig = inst.state / "kubeconfig"
    assert kubeconfig.is_file()
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert "server: https://" in kubeconfig.read_text()


def _done(inst: Install) -> dict[str, tuple[Any, ...]]:
    """Tasks the journal records as done: id -> (run, start, end)."""
    if not (inst.state / "journal.sqlite").exists():
        return {}
    return {
        tid: (row["run_id"], row["started_at"], row["finished_at"])
        for tid, row in inst.tasks().items()
        if row["status"] == "done"
    }


def _done_count(inst: Install) -> int:
    db = inst.state / "journal.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT count(*) FROM tasks WHERE status = 'done'").fetchone()
            return int(row[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def run_killed_at(inst: Install, done: int, delay: float) -> bool:
    """Start an install; SIGKILL its process group ``delay`` s after the journal has ``done``
    tasks done. False when the install ended before that."""
    proc = subprocess.Popen(
        inst.argv(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        while proc.poll() is None and _done_count(inst) < done:
            time.sleep(0.05)
        if proc.poll() is None:
            time.sleep(delay)
        if proc.poll() is not None:
            return False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- one installed lab


@dataclass
class Installed:
    inst: Install
    first: subprocess.CompletedProcess[str]
    tasks_after_first: dict[str, tuple[Any, ...]]
    calls_before_again: dict[str, int] = field(default_factory=dict)
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def again(self) -> subprocess.CompletedProcess[str]:
        """The second run (made once); the shims' call counts just before it are kept."""
        if not self.runs:
            self.calls_before_again = self.inst.shim_calls()
            self.runs.append(self.inst.run())
        return self.runs[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    with _lab(tmp_path_factory.mktemp("mk8s")) as inst:
        first = inst.run()
        tasks = {t: (v["status"], v["run_id"], v["started_at"], v["finished_at"])
                 for t, v in inst.tasks().items()} if (inst.state / "journal.sqlite").exists() else {}  # fmt: skip
        yield Installed(inst, first, tasks)


@pytest.mark.timeout(1200)
def test_fresh_install_forms_the_promised_cluster(installed: Installed) -> None:
    r = installed.first
    assert r.returncode == 0, _summary(r)
    assert "Install complete" in r.stdout
    # What the operator got, from the profile's result: the classes and how to check.
    assert "storage classes: openebs-lvm (default): Local PV LVM on" in r.stdout
    assert "kubectl -n openebs get pods" in r.stdout
    rows = installed.inst.tasks()
    assert rows and all(row["status"] == "done" for row in rows.values())
    assert installed.inst.integrity() == "ok"
    check_cluster(installed.inst)


@pytest.mark.timeout(1200)
def test_second_run_executes_no_step_and_makes_no_shim_call(installed: Installed) -> None:
    assert installed.first.returncode == 0, _summary(installed.first)
    r = installed.again()
    assert r.returncode == 0, _summary(r)
    after = {t: (v["status"], v["run_id"], v["started_at"], v["finished_at"])
             for t, v in installed.inst.tasks().items()}  # fmt: skip
    assert after == installed.tasks_after_first
    assert installed.inst.shim_calls() == installed.calls_before_again
    check_cluster(installed.inst)


@pytest.mark.timeout(1200)
def test_no_secret_leaks_after_a_full_run(installed: Installed) -> None:
    assert installed.first.returncode == 0, _summary(installed.first)
    second = installed.again()
    inst = installed.inst
    secrets = yaml.safe_load((inst.state / "secrets.yaml").read_text())
    join_secret = secrets["generated"]["microk8s_join_secret"]
    assert len(join_secret) == 24 and "kubeconfig" in secrets["captured"]
    # the join tokens, as the nodes used them (microk8s join HOST:25000/TOKEN/CHECK): each
    # starts with the join secret, so finding that finds them
    tokens = [
        c["argv"][1].split("/")[1]
        for n in NODES
        for c in inst.lab.calls(n)
        if c["tool"] == "microk8s" and c["argv"][:1] == ["join"]
    ]
    assert len(tokens) == 5 and all(t.startswith(join_secret) for t in tokens)
    # used, then removed from the nodes
    for n in NODES:
        inst.lab.ok(n, "! ls /etc/fmp/microk8s-join-token*")
    assert (inst.state / "secrets.yaml").stat().st_mode & 0o777 == 0o600
    found = inst.leaked(
        installed.first.stdout, installed.first.stderr, second.stdout, second.stderr
    )
    assert found == []
    for t in tokens:
        for path in inst.state.rglob("*"):
            if path.is_file() and path.name not in ("secrets.yaml", "kubeconfig"):
                assert t not in path.read_bytes().decode("utf-8", "replace"), path


# ---------------------------------------------------------------- another layout, the options


@pytest.mark.timeout(1200)
def test_storage_on_two_workers_with_ingress_on_the_vip(tmp_path: Path) -> None:
    """Storage only on kn3 and kn4 (kn5 a plain worker): two replicas; the replicated class
    is the default; the ingress controller gets the VIP through MetalLB."""
    with _lab(tmp_path) as inst:
        answers = _answers(inst)
        disks = {h["name"]: h["storage_disk"] for h in answers["hosts"]}
        for h in answers["hosts"]:
            if h["name"] in ("kn3", "kn4"):
                h["roles"] = ["worker", "storage"]
            else:
                h["roles"] = ["control-plane"] if h["name"] in ("kn0", "kn1", "kn2") else ["worker"]
                h.pop("storage_disk", None)
        answers["storage"]["wipe"] = [f"kn3:{disks['kn3']}", f"kn4:{disks['kn4']}"]
        answers["options"] = {"ingress_on_vip": True, "default_storage_class": "openebs-replicated"}
        inst.answers.write_text(yaml.safe_dump(answers, sort_keys=False))
        r = inst.run()
        assert r.returncode == 0, _summary(r)
        vip = answers["network"]["vip"]

        names = inst.lab.ok("kn0", "microk8s kubectl get nodes -o name").split()
        assert sorted(names) == [f"node/{n}" for n in NODES]
        pools = _kubectl_json(inst, "-n openebs get diskpools")["items"]
        assert {p["spec"]["node"]: p["spec"]["disks"] for p in pools} == {
            n: [f"aio://{disks[n]}"] for n in ("kn3", "kn4")
        }
        assert all(p["status"]["pool_status"] == "Online" for p in pools)
        labelled = inst.lab.ok(
            "kn0", "microk8s kubectl get nodes -l openebs.io/engine=mayastor -o name"
        )
        assert labelled.split() == ["node/kn3", "node/kn4"]
        classes = {c["metadata"]["name"]: c for c in _kubectl_json(inst, "get sc")["items"]}
        assert classes["openebs-replicated"]["parameters"]["repl"] == "2"
        default = [n for n, c in classes.items()
                   if (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]  # fmt: skip
        assert default == ["openebs-replicated"]
        ip = inst.lab.ok(
            "kn0",
            "microk8s kubectl -n ingress get service ingress -o jsonpath='{.status.loadBalancer.ingress[*].ip}'",
        )
        assert ip == vip
        for n in NODES:
            wiped = [c for c in inst.lab.calls(n) if c["tool"] in ("wipefs", "sgdisk")]
            hugepages = (
                inst.lab.run(n, "test -f /etc/sysctl.d/80-fmp-hugepages.conf").returncode == 0
            )
            assert (bool(wiped), hugepages) == ((n in ("kn3", "kn4"),) * 2), n
        calls = inst.shim_calls()
        again = inst.run()
        assert again.returncode == 0, _summary(again)
        assert inst.shim_calls() == calls


# ---------------------------------------------------------------- expired join tokens

JOIN_AND_AFTER = {
    "microk8s-add-node", "microk8s-join-manager", "microk8s-join-worker", "cluster-ready",
    "kubeconfig", "addon-dns", "addon-ingress", "addon-metallb", "ingress-on-vip",
    "storage-node-labels", "calico-checksum-offload", "openebs", "diskpools", "storageclasses",
    "storage-smoke-test",
}  # fmt: skip


@pytest.mark.timeout(1200)
def test_expired_join_tokens_fail_the_joins_and_a_new_ttl_completes(tmp_path: Path) -> None:
    """Tokens registered with --token-ttl 0 have expired when a node uses them: the joins fail
    and the summary says where and why; changing join_token_ttl (the README's way out after a
    resume past the TTL) registers them again and finishes without redoing the node setup."""
    with _lab(tmp_path) as inst:
        answers = _answers(inst)
        answers["options"] = {"join_token_ttl": 0}
        inst.answers.write_text(yaml.safe_dump(answers, sort_keys=False))
        r = inst.run()
        assert r.returncode == 1, _summary(r)
        summary = r.stdout[r.stdout.rindex("Install ") :]
        assert "kn1" in summary and "microk8s-join-manager" in summary, summary
        assert "Invalid token (500)" in summary, summary
        rows = inst.tasks()
        assert {v["status"] for t, v in rows.items() if v["step"] not in JOIN_AND_AFTER} == {"done"}
        before = _done(inst)

        answers["options"] = {"join_token_ttl": 1800}
        inst.answers.write_text(yaml.safe_dump(answers, sort_keys=False))
        r = inst.run()
        assert r.returncode == 0, _summary(r)
        after = _done(inst)
        kept = {t: v for t, v in before.items() if rows[t]["step"] not in JOIN_AND_AFTER}
        assert kept and {t: after[t] for t in kept} == kept
        check_cluster(inst)


# ---------------------------------------------------------------- crash and resume


@pytest.mark.timeout(2400)
def test_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    seed = int(os.environ.get("FMP_E2E_SEED") or random.SystemRandom().randrange(2**31))
    print(f"crash/resume seed: {seed} (replay with FMP_E2E_SEED={seed})")
    rng = random.Random(seed)
    with _lab(tmp_path) as inst:
        # one kill early (discovery, connecting, the first tasks), then at rising progress
        points = [(0, rng.uniform(0.2, 6.0))]
        points += [(n, rng.uniform(0.0, 1.5)) for n in sorted(rng.sample(range(1, 63), 7))]
        print(f"kill points (tasks done, extra delay s): {points}")
        killed = 0
        done_before: dict[str, tuple[Any, ...]] = {}
        for done, delay in points:
            if run_killed_at(inst, done, delay):
                killed += 1
            # (a kill during discovery comes before the journal exists)
            if (inst.state / "journal.sqlite").exists():
                assert inst.integrity() == "ok"
            now = _done(inst)
            # a task that was done before this run was not run again by it
            assert {t: now.get(t) for t in done_before} == done_before
            done_before = now
        print(f"killed {killed} times; {len(done_before)} tasks done before the last run")
        assert killed >= 5
        r = inst.run()
        assert r.returncode == 0, _summary(r)
        assert inst.integrity() == "ok"
        final = _done(inst)
        assert set(final) == set(inst.tasks())
        assert {t: final[t] for t in done_before} == done_before
        check_cluster(inst)
        assert inst.leaked(r.stdout, r.stderr) == []


# ---------------------------------------------------------------- the shims this profile relies on


def test_microk8s_snap_and_disk_shims_answer_like_upstream(tmp_path: Path) -> None:
    """The upstream behaviours the profile depends on (sources in the comments)."""
    spec = {"base_address": "127.79.35.11", "ssh_port": _free_port("127.79.35.", 11, 4),
            "nodes": [{"name": f"kn{i}"} for i in range(4)]}  # fmt: skip
    lab: Lab = start_lab(tmp_path / "D", spec)
    try:
        # snapd cmd_list.go: ErrNoMatchingSnaps
        r = lab.run("kn0", "snap list microk8s")
        assert (r.returncode, r.stderr.strip()) == (1, "error: no matching snaps installed")
        for n in ("kn0", "kn1", "kn2", "kn3"):
            lab.ok(n, "snap install microk8s --classic --channel=1.35/stable")
        listed = lab.ok("kn0", "snap list microk8s").splitlines()
        assert [line.split()[0] for line in listed] == ["Name", "microk8s"]
        assert listed[1].split()[3] == "1.35/stable"
        # status.py: --addon prints enabled / disabled
        assert lab.ok("kn0", "microk8s status --addon dns").strip() == "enabled"
        assert lab.ok("kn0", "microk8s status --addon metallb").strip() == "disabled"
        # add_token.py: 32 characters at least; --format token-check prints <token>/<check>
        r = lab.run("kn0", "microk8s add-node --token short")
        assert r.returncode == 1 and "Invalid token size" in r.stdout
        ttl_token = "a" * 24 + "00000001"
        out = lab.ok(
            "kn0", f"microk8s add-node --token {ttl_token} --token-ttl 600 --format token-check"
        )
        assert re.fullmatch(rf"{ttl_token}/[0-9a-f]{{12}}", out.strip())
        url = f"{lab.node('kn0')['address']}:25000/{out.strip()}"
        assert "Successfully joined" in lab.ok("kn1", f"microk8s join {url}")
        # microk8s-cluster-agent: a token with a TTL may be reused until it expires ...
        lab.ok("kn2", f"microk8s join {url} --worker")
        # ... one without a TTL only once
        once = lab.ok("kn0", "microk8s add-node --format token").strip()
        check = out.strip().split("/")[1]
        lab.ok("kn3", f"microk8s join {lab.node('kn0')['address']}:25000/{once}/{check} --worker")
        assert lab.run("kn3", "microk8s leave").returncode == 0
        r = lab.run(
            "kn3", f"microk8s join {lab.node('kn0')['address']}:25000/{once}/{check} --worker"
        )
        assert r.returncode == 1 and "Invalid token" in r.stdout + r.stderr
        # join.py mark_worker_node: clustered.lock; then status/add-node refuse (exit 1)
        lab.ok("kn2", "test -e /var/snap/microk8s/current/var/lock/clustered.lock")
        for cmd in ("microk8s status", "microk8s add-node"):
            r = lab.run("kn2", cmd)
            assert r.returncode == 1 and "acting as a node in a cluster" in r.stdout + r.stderr
        # kubectl: several names, TYPE/NAME waits, label selectors
        assert lab.ok("kn0", "microk8s kubectl get node kn0 kn2 -o name").split() == [
            "node/kn0",
            "node/kn2",
        ]
        lab.ok("kn0", "microk8s kubectl wait --for=condition=Ready node/kn0 node/kn1 --timeout=5s")
        lab.ok("kn0", "microk8s kubectl label node kn2 openebs.io/engine=mayastor")
        got = lab.ok("kn0", "microk8s kubectl get nodes -l openebs.io/engine=mayastor -o name")
        assert got.split() == ["node/kn2"]
        # addons/metallb/enable: the default-addresspool holds the range; patch changes it
        r = lab.run("kn0", "microk8s enable metallb:not-a-range")
        assert r.returncode == 1 and "is not a valid IP Range" in r.stdout + r.stderr
        lab.ok("kn0", "microk8s enable metallb:127.79.35.100/32")
        get = "microk8s kubectl -n metallb-system get ipaddresspool default-addresspool -o jsonpath='{.spec.addresses[*]}'"
        assert lab.ok("kn0", get) == "127.79.35.100/32"
        patch = 'microk8s kubectl -n metallb-system patch ipaddresspool default-addresspool --type merge -p \'{"spec": {"addresses": ["127.79.35.101/32"]}}\''
        assert (
            lab.ok("kn0", patch).strip() == "ipaddresspool.metallb.io/default-addresspool patched"
        )
        assert lab.ok("kn0", get) == "127.79.35.101/32"
        r = lab.run(
            "kn0",
            "microk8s kubectl -n metallb-system patch ipaddresspool nope --type merge -p '{}'",
        )
        assert r.returncode == 1 and "NotFound" in r.stderr
        # Calico's default FelixConfiguration exists (calico-node creates it)
        assert lab.run("kn0", "microk8s kubectl get felixconfigurations default").returncode == 0
        # helm list -o json: compact, --filter is a regular expression
        lab.ok("kn0", "microk8s helm3 repo add openebs https://openebs.github.io/openebs")
        lab.ok(
            "kn0",
            "microk8s helm3 install openebs openebs/openebs -n openebs --create-namespace --version 4.3.3",
        )
        releases = lab.ok(
            "kn0", "microk8s helm3 list -n openebs --filter '^open' --deployed -o json"
        )
        assert '"chart":"openebs-4.3.3"' in releases
        assert (
            json.loads(lab.ok("kn0", "microk8s helm3 list -n openebs --filter '^x' -o json")) == []
        )
        # lsblk follows /dev/disk/by-id links; its text columns are 0/1
        wwn = next(d["wwn"] for d in lab.node("kn0")["facts"]["disks"] if d["name"] == "sdb")
        assert lab.ok("kn0", f"lsblk -dn -o NAME,TYPE,RM /dev/disk/by-id/wwn-{wwn}").split() == [
            "sdb",
            "disk",
            "0",
        ]
    finally:
        stop_lab(lab)
