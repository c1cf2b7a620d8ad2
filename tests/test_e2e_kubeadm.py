"""End to end: the kubeadm-etcd profile installed headless on the lab (issue 6's acceptance list).

Every scenario starts its own lab (``tests.e2e.lab_install``) on its own loopback
network, runs ``fmp-install --answers D/answers.yaml --yes`` as a real subprocess and
reads what it left: the journal, the shims' call logs, the lab's shared cluster state,
a real 3-member etcd (the lab runs the host's etcd), the installer's output.

- fresh install, then: the cluster the profile promises, a second run that runs nothing,
  no secret anywhere, and rebooted nodes that come back with what the install set up;
- crash and resume: SIGKILL at seeded random moments (``FMP_E2E_SEED`` replays a run);
- faults: a command failing on one worker, a connection dropped during an idempotent
  step, a worker rebooting during the install, then the re-run that finishes it;
- a wrong sudo password: the lab logs in as root only, so the login name is simulated
  (see ``test_wrong_sudo_password_is_a_clear_error_before_anything_changes``).

No assertion depends on time; waits are bounded and poll what they wait for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e import Install, lab_install, wait_until
from tests.labkit import REPO, cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PROFILE = "kubeadm-etcd"
NODES = [f"kn{i}" for i in range(6)]
CONTROL_PLANES = NODES[:3]
WORKERS = NODES[3:]
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
ETCD_PKI = "etc/kubernetes/pki/etcd"  # under D/nodes/<node>/


def real_tools() -> None:
    """The lab runs these for real; without them the profile cannot install there."""
    for tool in ("etcd", "etcdctl", "haproxy", "keepalived", "openssl"):
        require_tool(tool)


def spec_args(root: Path, net: int, **spec: Any) -> list[str]:
    """``--spec FILE`` for a lab on 127.83.<net>.0/24 (its own addresses: labs run side by side)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "spec.yaml"
    data = {"base_address": f"127.83.{net}.11", "vip": f"127.83.{net}.100", **spec}
    path.write_text(yaml.safe_dump(data))
    return ["--spec", str(path)]


def tail(r: subprocess.CompletedProcess[str], n: int = 60) -> str:
    return "\n".join((r.stdout + r.stderr).splitlines()[-n:])


def done_rows(install: Install) -> dict[str, tuple[Any, ...]]:
    """Done tasks and what identifies the attempt that did them."""
    return {
        tid: (row["run_id"], row["finished_at"], row["attempts"])
        for tid, row in install.tasks().items()
        if row["status"] == "done"
    }


def assert_not_redone(before: dict[str, tuple[Any, ...]], install: Install, when: str) -> None:
    after = install.tasks()
    redone = [
        f"{tid}: {old} -> {(after[tid]['run_id'], after[tid]['finished_at'], after[tid]['attempts'])}"
        for tid, old in before.items()
        if (after[tid]["run_id"], after[tid]["finished_at"], after[tid]["attempts"]) != old
    ]
    assert not redone, f"{when}: tasks done earlier ran again:\n" + "\n".join(redone)


def runs(install: Install) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{install.state / 'journal.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY started_at")]
    finally:
        con.close()


def etcd_health(install: Install) -> subprocess.CompletedProcess[str]:
    """``etcdctl endpoint health --cluster`` from this machine, with kn0's healthcheck cert."""
    pki = install.lab.root / "nodes" / "kn0" / ETCD_PKI
    endpoints = ",".join(f"https://{install.lab.node(n)['address']}:2379" for n in CONTROL_PLANES)
    return subprocess.run(
        [require_tool("etcdctl"), f"--endpoints={endpoints}", f"--cacert={pki / 'ca.crt'}",
         f"--cert={pki / 'healthcheck-client.crt'}", f"--key={pki / 'healthcheck-client.key'}",
         "--dial-timeout=5s", "--command-timeout=10s", "endpoint", "health", "--cluster"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip


def healthy_members(r: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"^(https://\S+) is healthy", r.stdout + r.stderr, re.MULTILINE))


def new_calls(install: Install, before: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    return {
        n: [(c["tool"], " ".join(c["argv"])) for c in install.lab.calls(n)[before[n] :]]
        for n in before
    }


# --------------------------------------------------------------------------- fresh install


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Install, subprocess.CompletedProcess[str]]]:
    """One lab, installed once; the tests below read it in order (fresh, rerun, leaks, reboot)."""
    real_tools()
    root = tmp_path_factory.mktemp("kubeadm-fresh")
    with lab_install(root, PROFILE, *spec_args(root, 1)) as install:
        r = install.run()
        yield install, r


def test_fresh_install_builds_the_cluster(
    installed: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    install, r = installed
    assert r.returncode == 0, tail(r)
    assert "Install complete" in r.stdout, tail(r)
    assert f"export KUBECONFIG={install.state / 'kubeconfig'}" in r.stdout, tail(r)
    assert "kubectl get nodes -o wide" in r.stdout, tail(r)
    lab = install.lab

    # Every node joined, with its role, and only those: what kubectl says on kn0...
    rows = [
        line.split() for line in lab.ok("kn0", f"{KUBECTL} get nodes --no-headers").splitlines()
    ]
    assert [row[0] for row in rows] == NODES, rows
    roles = {row[0]: row[2] for row in rows}
    assert {n: roles[n] for n in CONTROL_PLANES} == dict.fromkeys(CONTROL_PLANES, "control-plane")
    assert {n: roles[n] for n in WORKERS} == dict.fromkeys(WORKERS, "<none>")
    assert {row[1] for row in rows} == {"Ready"}, rows  # the CNI (Calico) is applied
    # ...and the lab's shared cluster state.
    k8s = json.loads((lab.root / "state" / "kubernetes.json").read_text())
    assert k8s["initialized"] and k8s["external_etcd"] and k8s["cni"]
    assert k8s["endpoint"] == f"{lab.config['vip']}:8443"  # the API behind the VIP
    assert {n: v["control_plane"] for n, v in k8s["nodes"].items()} == {
        n: n in CONTROL_PLANES for n in NODES
    }
    keepalived = json.loads((lab.root / "state" / "keepalived.json").read_text())
    assert {n for n, v in keepalived.items() if v["active"]} == set(CONTROL_PLANES)
    # ingress-nginx on its fixed NodePorts, which haproxy on the VIP forwards to.
    ports = lab.ok(
        "kn0",
        f"{KUBECTL} -n ingress-nginx get service ingress-nginx-controller "
        "-o jsonpath='{.spec.ports[*].nodePort}'",
    )
    assert ports.split() == ["30080", "30443"]

    # A real 3-member etcd with TLS, from the certificates the install made.
    health = etcd_health(install)
    assert health.returncode == 0, health.stdout + health.stderr
    assert healthy_members(health) == {
        f"https://{lab.node(n)['address']}:2379" for n in CONTROL_PLANES
    }, health.stdout + health.stderr
    for n in CONTROL_PLANES:  # each member's certificates name its own address
        san = lab.ok(
            n, "openssl x509 -in /etc/kubernetes/pki/etcd/server.crt -noout -ext subjectAltName"
        )
        assert f"IP Address:{lab.node(n)['address']}" in san, san
    for n in WORKERS:  # the etcd CA key is only where it is needed
        assert lab.run(n, "test -e /etc/kubernetes/pki/etcd/ca.key").returncode == 1

    # The operator's kubeconfig: 0600, its server the VIP.
    kubeconfig = install.state / "kubeconfig"
    assert kubeconfig.is_file()
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert server == f"https://{lab.config['vip']}:8443"
    assert install.integrity() == "ok"


def test_second_run_executes_nothing(
    installed: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    install, first = installed
    assert first.returncode == 0, tail(first)
    rows = install.tasks()
    assert rows and {r["status"] for r in rows.values()} == {"done"}
    n_runs = len(runs(install))

    # The same command again: every task is done with the same inputs, so no host is touched.
    before = install.shim_calls()
    r = install.run()
    assert r.returncode == 0, tail(r)
    assert "Nothing to do" in r.stdout, tail(r)
    assert install.shim_calls() == before  # not one shim call on any node
    assert install.tasks() == rows  # no attempt, run id or time changed
    assert len(runs(install)) == n_runs

    # With --rediscover it reaches every host and runs discovery and preflight again, then
    # skips every task: the shims see the read-only discovery (what `fmp-install discover`
    # runs) and nothing else: no step, no check, no lock, no upload.
    start = install.shim_calls()
    d = cli("discover", "--answers", str(install.answers), timeout=300)
    # 3: its preflight finds the cluster's own ports taken; the facts were read all the same.
    assert d.returncode in (0, 3), d.stdout + d.stderr
    discovery = new_calls(install, start)
    assert all(discovery.values())
    before = install.shim_calls()
    r = install.run("--rediscover")
    assert r.returncode == 0, tail(r)
    assert f"(0 ran, {len(rows)} skipped)" in r.stdout, tail(r)
    assert install.tasks() == rows
    calls = new_calls(install, before)
    for n in NODES:
        assert sorted(calls[n]) == sorted(discovery[n]), f"{n}: {calls[n]}"


def test_no_secret_in_logs_journal_events_or_output(
    installed: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    install, first = installed
    assert first.returncode == 0, tail(first)
    secrets = install.secret_values()
    # The generated ones (etcd CA key, VRRP password) and the captured ones (join command,
    # token, certificate key, kubeconfig).
    assert len(secrets) >= 6
    status = cli("status", "--state-dir", str(install.state), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert install.leaked(first.stdout, first.stderr, status.stdout, status.stderr) == []
    # kubeadm init's own token and certificate key are not shown either (--skip-*-print).
    log = (install.state / "logs" / "kn0.log").read_text()
    assert "Using token:" not in log and "Using certificate key:" not in log
    assert "--token <value withheld>" in log


def test_every_check_holds_after_the_install(
    installed: tuple[Install, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Each step's check says "already satisfied" on its host once installed: a resumed run
    that finds a task cut off after it took effect can tell, and skip it."""
    install, first = installed
    assert first.returncode == 0, tail(first)
    out = tmp_path / "plan"
    p = cli("plan", "--answers", str(install.answers), "--out", str(out), "--json",
            "--state-dir", str(install.state), timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    tasks = json.loads((out / "plan.json").read_text())["tasks"]
    checked = 0
    for n in NODES:
        mine = [t for t in tasks if t["host"] == n and t["check"]]
        script = "".join(f'( {t["check"]} ) >/dev/null 2>&1; echo "{t["id"]} $?"\n' for t in mine)
        results = dict(line.rsplit(" ", 1) for line in install.lab.ok(n, script).splitlines())
        failing = sorted(tid for tid, rc in results.items() if rc != "0")
        assert failing == [], f"{n}: these checks fail after the install: {failing}"
        checked += len(mine)
    assert checked >= 80


def test_rebooted_nodes_come_back_with_what_the_install_set_up(
    installed: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    """The profile has no reboot step: reboot an etcd/control-plane node and a worker after
    the install, and check what a reboot must keep (enabled units, etcd membership, swap
    off in fstab, modules and sysctls from their files); the installer then reaches them
    again (--rediscover) and has nothing to do."""
    install, first = installed
    assert first.returncode == 0, tail(first)
    lab = install.lab
    rebooted = ["kn1", "kn4"]
    for n in rebooted:
        lab.ok(n, "touch /run/fmp-e2e-before-reboot")
        lab.run(n, "reboot", timeout=120)  # the connection drops, as on a real host
    for n in rebooted:
        assert wait_until(
            lambda n=n: lab.run(n, "test ! -e /run/fmp-e2e-before-reboot").returncode == 0,
            timeout=180,
            interval=1.0,
        ), f"{n} did not come back from its reboot"
    daemon_log = (lab.root / "daemon.log").read_text()
    assert all(f"{n}: reboot requested" in daemon_log for n in rebooted)
    for n in rebooted:
        assert lab.ok(n, "swapon --show --noheadings").strip() == ""
        assert lab.ok(n, "sysctl -n net.ipv4.ip_forward").strip() == "1"
        assert lab.ok(n, "sysctl -n net.bridge.bridge-nf-call-iptables").strip() == "1"
        lab.ok(n, "lsmod | grep -q '^br_netfilter '")
        lab.ok(n, "systemctl is-active -q containerd && test -S /run/containerd/containerd.sock")
        assert lab.ok(n, "systemctl is-active kubelet").strip() == "active"
    lab.ok("kn1", "systemctl is-active -q etcd && systemctl is-active -q keepalived")
    # etcd on kn1 rejoined its peers: the cluster is whole again.
    assert wait_until(lambda: len(healthy_members(etcd_health(install))) == 3, timeout=120)
    r = install.run("--rediscover")  # reach the rebooted hosts again, not just the journal
    assert r.returncode == 0, tail(r)
    assert "(0 ran," in r.stdout, tail(r)


# --------------------------------------------------------------------------- crash and resume


def run_killed_during_tasks(install: Install, delay: float) -> bool:
    """Like ``Install.run_killed_after``, but the delay counts from the moment this run's
    first task starts (discovery, preflight and planning take a varying while first,
    longer on a loaded machine). False when the install ended before the kill."""
    launched = time.time()
    proc = subprocess.Popen(
        install.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        start_new_session=True,
    )  # fmt: skip

    def tasks_started() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return any((r["started_at"] or 0) >= launched for r in install.tasks().values())
        except sqlite3.Error:  # no journal yet
            return False

    try:
        assert wait_until(tasks_started, timeout=600, interval=0.05), "no task started"
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_kill_9_at_random_moments_then_resume(tmp_path: Path) -> None:
    real_tools()
    seed = int(os.environ.get("FMP_E2E_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash/resume: seed {seed} (FMP_E2E_SEED={seed} replays these kill points)")
    rng = random.Random(seed)
    # Package installs and kubeadm take a moment, as they do on real hosts: the tasks then
    # last long enough (here 20-30 s) to be killed six times.
    slow = {"durations": [{"match": "apt-get install", "seconds": 2},
                          {"match": "kubeadm (init|join)", "seconds": 2}]}  # fmt: skip
    with lab_install(tmp_path, PROFILE, *spec_args(tmp_path, 2, **slow)) as install:
        done_before: dict[str, tuple[Any, ...]] = {}
        kills: list[str] = []
        # The first kill from the start of the process (in discovery, preflight, planning or
        # the first tasks); then kills during the tasks, a random while after the run's first
        # task started.
        points = [("from start", round(rng.uniform(0.5, 6.0), 2))]
        points += [("into the tasks", round(rng.uniform(0.0, 2.5), 2)) for _ in range(6)]
        for when, delay in points:
            if when == "from start":
                killed = install.run_killed_after(delay)
            else:
                killed = run_killed_during_tasks(install, delay)
            if (install.state / "journal.sqlite").exists():
                assert install.integrity() == "ok", f"journal corrupt after a kill {delay}s {when}"
                assert_not_redone(done_before, install, f"after the kill {delay}s {when}")
                done_before = done_rows(install)
            print(f"  killed {delay}s {when}: {killed}; {len(done_before)} tasks done so far")
            if not killed:
                break
            kills.append(f"{delay}s {when}")
        print(f"  kill points: {kills}")
        assert len(kills) >= 5, f"only {len(kills)} kills landed before the install finished"
        r = install.run()
        assert r.returncode == 0, tail(r)
        assert install.integrity() == "ok"
        assert_not_redone(done_before, install, "in the final run")
        rows = install.tasks()
        assert {row["status"] for row in rows.values()} == {"done"}
        nodes = install.lab.ok("kn0", f"{KUBECTL} get nodes --no-headers -o name").split()
        assert nodes == [f"node/{n}" for n in NODES]
        assert len(healthy_members(etcd_health(install))) == 3
        assert install.leaked(r.stdout, r.stderr) == []


# --------------------------------------------------------------------------- faults


class RebootWhenDone(threading.Thread):
    """Reboot ``node`` (over SSH, as an operator would) once ``task`` is done in the journal."""

    def __init__(self, install: Install, node: str, task: str) -> None:
        super().__init__(daemon=True)
        self.install, self.node, self.task = install, node, task
        self.stop = threading.Event()
        self.rebooted_at: float | None = None

    def _done(self) -> bool:
        try:
            return self.install.tasks().get(self.task, {}).get("status") == "done"
        except sqlite3.Error:
            return False  # not there yet, or busy

    def run(self) -> None:
        while not self.stop.is_set():
            if self._done():
                self.rebooted_at = time.time()
                self.install.lab.run(self.node, "reboot", timeout=120)
                return
            self.stop.wait(0.1)


def test_faults_failing_worker_dropped_connection_reboot_then_fixed_rerun(tmp_path: Path) -> None:
    real_tools()
    spec = {
        "reboot_seconds": 1,
        "faults": [
            # kubeadm join fails once on kn4 (the fault is used up: the re-run works).
            {"kind": "fail", "node": "kn4", "match": "kubeadm join --config", "exit_code": 1,
             "times": 1, "stderr": "error execution phase preflight: couldn't validate the "
             "identity of the API Server: connection refused"},
            # The connection drops as containerd-install (idempotent) starts on kn3.
            {"kind": "drop", "node": "kn3", "match": "tar -C /opt/cni/bin", "after_s": 0,
             "times": 1},
        ],
        # Room for kn5 to be busy when it reboots.
        "durations": [{"match": "apt-get install", "seconds": 1}],
    }  # fmt: skip
    with lab_install(tmp_path, PROFILE, *spec_args(tmp_path, 3, **spec)) as install:
        # kn5 (a worker) reboots in the middle of the install, once its sysctls are set.
        rebooter = RebootWhenDone(install, "kn5", "kn5:sysctls")
        rebooter.start()
        try:
            r = install.run()
        finally:
            rebooter.stop.set()
            rebooter.join(timeout=180)
        out = r.stdout + r.stderr
        assert r.returncode == 1, tail(r)
        rows = install.tasks()
        # The failing worker: named in the summary with its command and exit code.
        assert "FAILED: kn4 / kubeadm-join-worker (exit 1)" in out, tail(r)
        failure = out[out.index("FAILED: kn4 / kubeadm-join-worker") :]
        assert "kubeadm join --config /etc/kubernetes/kubeadm/join.yaml" in failure
        assert "couldn't validate the identity of the API Server" in failure
        assert rows["kn4:kubeadm-join-worker"]["status"] == "failed"
        failed = sorted(t for t, row in rows.items() if row["status"] == "failed")
        assert failed == ["kn4:kubeadm-join-worker"], failed
        # The other workers finished; only what needs every worker waits.
        for n in ("kn3", "kn5"):
            assert rows[f"{n}:kubeadm-join-worker"]["status"] == "done"
            assert all(row["status"] == "done" for t, row in rows.items() if t.startswith(f"{n}:"))
        blocked = sorted(t for t, row in rows.items() if row["status"] == "blocked")
        assert blocked == ["kn0:cluster-ready", "kn0:ingress-nginx", "kn0:kubeconfig"], blocked
        # The dropped connection: reconnected, containerd-install tried again, done.
        assert rows["kn3:containerd-install"]["status"] == "done"
        assert rows["kn3:containerd-install"]["attempts"] >= 2
        kn3_log = (install.state / "logs" / "kn3.log").read_text()
        assert "connection lost" in kn3_log and "reconnected after" in kn3_log
        # kn5 rebooted mid-install; the runner reached it again and finished its steps.
        assert rebooter.rebooted_at is not None, "kn5:sysctls never finished"
        assert "kn5: reboot requested" in (install.lab.root / "daemon.log").read_text()
        after = [t for t, row in rows.items() if t.startswith("kn5:")
                 and (row["started_at"] or 0) > rebooter.rebooted_at]  # fmt: skip
        assert "kn5:kubeadm-join-worker" in after, after
        assert install.integrity() == "ok"

        # The fault is gone (it fired once): the re-run finishes without redoing anything.
        done = done_rows(install)
        r2 = install.run()
        assert r2.returncode == 0, tail(r2)
        assert_not_redone(done, install, "in the re-run")
        rows2 = install.tasks()
        assert {row["status"] for row in rows2.values()} == {"done"}
        ran = sorted(t for t in rows2 if t not in done)
        assert ran == [
            "kn0:cluster-ready", "kn0:ingress-nginx", "kn0:kubeconfig", "kn4:kubeadm-join-worker",
        ], ran  # fmt: skip
        nodes = install.lab.ok("kn0", f"{KUBECTL} get nodes --no-headers -o name").split()
        assert nodes == [f"node/{n}" for n in NODES]
        assert install.leaked(r.stdout, r.stderr, r2.stdout, r2.stderr) == []


def test_wrong_sudo_password_is_a_clear_error_before_anything_changes(tmp_path: Path) -> None:
    """The lab accepts only root logins (installer/lab/server.py), and root needs no sudo,
    so the headless install never meets the ``sudo_reject`` fault. What can be tested: the
    installer's own sudo check (``installer.gather``, the one the headless flow runs) over
    real SSH against a lab node with the fault, with the login name of the connection set
    to a non-root user and a wrong sudo password. It must give a clear error naming the
    user and what to fix, never show the password, and change nothing on the host."""
    from installer.answers import load_answers
    from installer.gather import _sudo_works
    from installer.ssh import SudoStatus, connect
    from installer.ssh_target import target_for

    spec = {"nodes": [{"name": "kn0"}], "faults": [{"kind": "sudo_reject", "node": "kn0"}]}
    with lab_install(tmp_path, PROFILE, *spec_args(tmp_path, 4, **spec)) as install:
        answers = load_answers(install.answers)
        password = "not-the-sudo-password"

        async def check() -> tuple[SudoStatus, Any]:
            target = target_for(answers, "kn0", os.environ, None)
            conn = await connect(target)
            try:
                conn.target = dataclasses.replace(target, user="fmpadmin", sudo_password=password)
                return await conn.check_sudo(), await _sudo_works("kn0", conn)
            finally:
                await conn.close()

        before = install.shim_calls()
        status, problem = asyncio.run(check())
        assert status is SudoStatus.PASSWORD_WRONG
        assert problem is not None
        text = str(problem)
        assert "sudo did not accept the password for fmpadmin" in text, text
        assert "sudo_password_env" in text, text
        assert password not in text
        # Nothing changed: the only commands the host saw were sudo's own (which refused).
        calls = new_calls(install, before)["kn0"]
        assert calls and {tool for tool, _ in calls} == {"sudo"}, calls
        assert not (tmp_path / "state").exists()
