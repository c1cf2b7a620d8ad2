"""The rke-ceph profile's output, checked by the real tools.

keepalived -t, haproxy -c, chronyd -p, visudo -c, yamllint, kubernetes-validate
(strict, at the pinned Kubernetes version), bash -n / sh -n on every rendered
script, run and check; the RKE2 config.yaml keys against the documented server
and agent flags; the RKE1 legacy fmpclust.yml against RKE's documented keys;
the Ceph helper scripts against a fake ``ceph`` that answers like the real one;
a golden plan.txt; and ``fmp-install plan`` on the example answers.

The default inventory is examples/rke-ceph.yaml (the runbook's six nodes: kn0-kn2
servers, monitors and VIP holders, kn3-kn5 agents whose data disk becomes an OSD).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.answers import Answers
from installer.factsio import save_facts
from installer.headless import unconsented_wipes
from installer.plan import PlanError, make_plan, plan_text
from installer.plan_model import Plan
from installer.profile import load_profile
from installer.secrets import redactor_for
from tests.conftest import REPO, require_tool
from tests.profile_tools import (
    answers_file,
    answers_from,
    check_golden,
    distinct_files,
    files_at,
    generated_secrets,
    host_interface,
    minor_of,
    obsolete_names,
    profile_plan,
    read_doc,
    run_tool,
    synthetic_facts,
)
from tests.storage_helpers import dev, system_disk

PROFILE = "rke-ceph"
EXAMPLE = REPO / "examples" / "rke-ceph.yaml"
GOLDEN = Path(__file__).parent / "golden" / "rke-ceph.plan.txt"
# kubernetes-validate checks against the Kubernetes release the pinned RKE2 ships
# (v1.35.7+rke2r1 -> 1.35.7); its schemas are per minor (it uses v1.35.0's, which
# test_kubernetes_manifests_validate asserts is the pinned minor itself).
K8S_VERSION = re.sub(r"^v|\+rke2r\d+$", "", load_profile(PROFILE).spec.versions["rke2"])
VIP = "10.30.217.100"

# Fixed stand-ins, so that the golden plan does not change from run to run.
FAKE_SECRETS = {
    "rke2_token": "FAKE-rke2-token-0123456789abcdefghijklmnopq",
    "keepalived_auth": "Vrrp5678",
}


# --------------------------------------------------------------------------- inventories


def example_doc() -> dict[str, Any]:
    return read_doc(EXAMPLE)


def example_answers() -> Answers:
    return answers_file(EXAMPLE)


def api_8443_doc() -> dict[str, Any]:
    """The example with the API published on the VIP's port 8443 (haproxy on the lb hosts)."""
    doc = example_doc()
    doc["network"]["api_port"] = 8443
    return doc


def dedicated_lb_doc() -> dict[str, Any]:
    """Two lb hosts that run no server: haproxy forwards 9345 and 6443 to kn0-kn2."""
    doc = example_doc()
    for h in doc["hosts"][:3]:
        h["roles"] = [r for r in h["roles"] if r != "lb"]
    doc["hosts"] += [
        {"address": "10.30.217.30", "name": "lb0", "roles": ["lb"]},
        {"address": "10.30.217.31", "name": "lb1", "roles": ["lb"]},
    ]
    return doc


def compact_doc() -> dict[str, Any]:
    """Three hyperconverged nodes that hold every role (no agents, so no server taint)."""
    doc = example_doc()
    disks = [f"/dev/disk/by-id/wwn-0x5000c500a1b2c3e{i}" for i in range(3)]
    doc["hosts"] = [
        {
            "address": f"10.30.217.2{i}",
            "name": f"kn{i}",
            "roles": ["control-plane", "worker", "lb", "ceph-mon", "storage"],
            "storage_disk": disks[i],
        }
        for i in range(3)
    ]
    doc["storage"]["wipe"] = [f"kn{i}:{disks[i]}" for i in range(3)]
    return doc


def make(
    answers: Answers,
    secrets: dict[str, str],
    options: dict[str, Any] | None = None,
    nic: str | None = None,
) -> Plan:
    return profile_plan(PROFILE, answers, secrets, options=options, nic=nic or host_interface())


@pytest.fixture(scope="module")
def real_secrets() -> dict[str, str]:
    return generated_secrets(PROFILE)


@pytest.fixture(scope="module")
def plan(real_secrets: dict[str, str]) -> Plan:
    return make(example_answers(), real_secrets)


@pytest.fixture(scope="module")
def rke1_plan(real_secrets: dict[str, str]) -> Plan:
    return make(example_answers(), real_secrets, options={"flavour": "rke1"})


@pytest.fixture(scope="module")
def variant_plans(real_secrets: dict[str, str]) -> dict[str, Plan]:
    return {
        "api8443": make(answers_from(api_8443_doc()), real_secrets),
        "dedicated-lb": make(answers_from(dedicated_lb_doc()), real_secrets),
        "dedicated-lb-rke1": make(
            answers_from(dedicated_lb_doc()), real_secrets, options={"flavour": "rke1"}
        ),
        "compact": make(answers_from(compact_doc()), real_secrets, options={"cni": "cilium"}),
    }


@pytest.fixture(scope="module")
def all_plans(plan: Plan, rke1_plan: Plan, variant_plans: dict[str, Plan]) -> list[Plan]:
    return [plan, rke1_plan, *variant_plans.values()]


def steps_on(plan: Plan, step: str) -> list[str]:
    return [t.host for t in plan.tasks if t.step == step]


# --------------------------------------------------------------------------- the plan's shape


def test_default_plan_layout(plan: Plan) -> None:
    pos = {t.id: i for i, t in enumerate(plan.tasks)}
    servers, agents = ["kn0", "kn1", "kn2"], ["kn3", "kn4", "kn5"]
    assert steps_on(plan, "admin-user") == servers + agents
    assert steps_on(plan, "lb-keepalived") == servers
    assert steps_on(plan, "lb-haproxy") == []  # the VIP lands on the servers' own 9345/6443
    assert steps_on(plan, "ceph-bootstrap") == ["kn0"]
    assert steps_on(plan, "ceph-ssh-key") == ["kn1", "kn2", *agents]
    assert steps_on(plan, "rke2-server-init") == ["kn0"]
    assert steps_on(plan, "rke2-server-join") == ["kn1", "kn2"]
    assert plan.task("kn1:rke2-server-join").serial
    assert steps_on(plan, "rke2-agent-join") == agents
    assert not [t for t in plan.tasks if t.step.startswith("rke1-")]
    # The joins go through the VIP: keepalived everywhere first, servers before agents.
    join = plan.task("kn1:rke2-server-join")
    assert {"kn0:rke2-server-init", "kn0:lb-keepalived", "kn2:lb-keepalived"} <= set(join.needs)
    for a in agents:
        assert "kn2:rke2-server-join" in plan.task(f"{a}:rke2-agent-join").needs
    # Ceph before ceph-csi, and ceph-csi after every node joined.
    csi = plan.task("kn0:ceph-csi")
    assert {"kn0:ceph-client-key", "kn5:rke2-agent-join", "kn0:helm"} <= set(csi.needs)
    assert csi.uses == {"ceph.fsid", "ceph.client_key"}
    # The kubeconfig comes last.
    assert plan.tasks[-1].id == "kn0:kubeconfig"
    assert pos["kn0:storage-smoke-test"] < pos["kn0:kubeconfig"]


def test_osd_steps_only_on_storage_hosts_with_their_disks_wiped(plan: Plan) -> None:
    answers = example_answers()
    disks = {h.label: str(h.storage_disk) for h in answers.hosts if "storage" in h.roles}
    osd = [t for t in plan.tasks if t.step == "ceph-osd"]
    assert {t.host for t in osd} == set(disks) == {"kn3", "kn4", "kn5"}
    for t in osd:
        assert t.destructive and t.wipes == (disks[t.host],)
        assert disks[t.host] in t.run and disks[t.host] in (t.check or "")
    wiping = {t.host for t in plan.tasks if t.wipes or t.destructive}
    assert wiping == set(disks)
    text = plan_text(plan, None, answers)
    for host, disk in disks.items():
        assert f"- {host}:{disk} by step ceph-osd (consent in storage.wipe)" in text


SERIAL = "S3Z8NB0K123456A"


def serial_disk_answers(consent: str = f"kn3:serial:{SERIAL}") -> Answers:
    """The example with kn3's disk named by its serial (it has no by-id link or WWN)."""
    doc = example_doc()
    doc["hosts"][3]["storage_disk"] = f"serial:{SERIAL}"
    doc["storage"]["wipe"][0] = consent
    return answers_from(doc)


def test_a_serial_only_disk_becomes_an_osd_by_its_device_path(
    real_secrets: dict[str, str],
) -> None:
    """The facts find kn3's serial:S3Z8... at /dev/sdc: the OSD commands use that path, never
    the serial; the wipe and its consent name the disk as the answers do."""
    answers = serial_disk_answers()
    facts = synthetic_facts(answers, host_interface())
    disks = (system_disk(), dev("sdc", 500, serial=SERIAL))
    facts["kn3"] = dataclasses.replace(facts["kn3"], disks=disks)
    plan = profile_plan(PROFILE, answers, real_secrets, facts=facts)
    osd = plan.task("kn3:ceph-osd")
    assert osd.run == "/usr/local/lib/fmp/ceph-osd create '@@FMP_CAPTURE:ceph.fsid@@' /dev/sdc"
    assert (osd.check or "").endswith("ceph-osd check '@@FMP_CAPTURE:ceph.fsid@@' /dev/sdc")
    assert osd.title == f"wipe serial:{SERIAL} (/dev/sdc) and make it a Ceph OSD"
    assert osd.wipes == (f"serial:{SERIAL}",)
    for t in plan.tasks:
        texts = [t.run, t.check or "", *(f.content for f in t.files)]
        assert not [x for x in texts if "serial:" in x], t.id
    # kn4 and kn5 name their disks by by-id links, which stay as they are.
    assert plan.task("kn4:ceph-osd").run.endswith(" /dev/disk/by-id/wwn-0x5000c500a1b2c3d4")
    assert unconsented_wipes(plan, answers.storage.wipe) == []
    text = plan_text(plan, None, answers)
    assert f"- kn3:serial:{SERIAL} by step ceph-osd (consent in storage.wipe)" in text
    # Consent by the disk's device path is consent to the same disk.
    by_path = serial_disk_answers("kn3:/dev/sdc")
    assert unconsented_wipes(plan, by_path.storage.wipe) == []
    assert unconsented_wipes(plan, serial_disk_answers("kn3:/dev/sdd").storage.wipe) == [
        (f"kn3:serial:{SERIAL}", "kn3:ceph-osd")
    ]
    # Without facts that find the disk there is no device to run ceph-osd on.
    with pytest.raises(PlanError) as exc:
        make(answers, real_secrets)
    assert "(task kn3:ceph-osd)" in str(exc.value)
    assert f"kn3: storage_disk serial:{SERIAL} names a disk by its serial" in str(exc.value)


def test_three_monitors_managers_and_an_mds(plan: Plan) -> None:
    script = plan.task("kn0:ceph-services").files[0].content
    assert 'ceph orch apply mon --placement="label:mon"' in script
    assert 'ceph orch apply mgr --placement="label:mgr"' in script
    assert 'ceph fs volume create "$fs" --placement="label:mds"' in script
    assert "osd_pool_default_size 3" in script
    hosts = plan.task("kn0:ceph-hosts").files[0].content
    for i in range(3):
        assert f"kn{i} 10.30.217.2{i} _admin,mon,mgr,mds" in hosts
    for i in range(3, 6):
        assert f"kn{i} 10.30.217.2{i} _admin,osd" in hosts
    boot = plan.task("kn0:ceph-bootstrap").run
    assert "cephadm --image quay.io/ceph/ceph:v20.2.4 bootstrap" in boot
    assert "--mon-ip 10.30.217.20" in boot and "--ssh-user fmpadmin" in boot


def test_pool_and_client_key(plan: Plan) -> None:
    pool = plan.task("kn0:ceph-pool").run
    assert 'ceph osd pool create "$pool"' in pool and 'rbd pool init "$pool"' in pool
    assert "pg_autoscale_mode on" in pool
    key = plan.task("kn0:ceph-client-key").run
    caps = 'mon \'profile rbd\' osd "profile rbd pool=$pool" mgr "profile rbd pool=$pool"'
    assert f'ceph auth get-or-create "$client" {caps}' in key
    assert f'ceph auth caps "$client" {caps}' in key
    assert "client=client.kube" in key and "pool=kube" in key
    assert [c.name for c in plan.task("kn0:ceph-client-key").captures] == ["ceph.client_key"]
    assert plan.task("kn0:ceph-client-key").captures[0].secret


def test_captures_match_the_tools_output(plan: Plan) -> None:
    fsid = "b9127830-b0cc-4e34-aa47-9d1a2e9949a8"
    outputs = {
        "kn0:ceph-bootstrap": (
            "Bootstrap complete.\n"
            f"fmp: ceph fsid: {fsid}\n"
            "fmp: ceph ssh public key: ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7 ceph-" + fsid + "\n"
        ),
        "kn0:ceph-client-key": "fmp: ceph client key: AQD9o0Fd6hQRChAAt7fMaSZXduT3NWEqylNpmg==\n",
        "kn0:kubeconfig": "fmp: kubeconfig: YXBpVmVyc2lvbjogdjEKa2luZDogQ29uZmlnCg==\n",
    }
    got = {}
    for task_id, out in outputs.items():
        for c in plan.task(task_id).captures:
            m = re.search(c.pattern, out, re.MULTILINE)
            assert m, (task_id, c.name)
            got[c.name] = m.group("value")
    assert got["ceph.fsid"] == fsid
    assert got["ceph.ssh_pubkey"] == "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7"
    assert got["ceph.client_key"] == "AQD9o0Fd6hQRChAAt7fMaSZXduT3NWEqylNpmg=="
    assert got["kubeconfig"].startswith("YXBpVmVyc2lvbjog")
    secret = {c.name for t in plan.tasks for c in t.captures if c.secret}
    assert secret == {"ceph.client_key", "kubeconfig"}


def test_kubeconfig_is_handed_over_on_the_vip(plan: Plan, rke1_plan: Plan) -> None:
    for p in (plan, rke1_plan):
        t = p.task("kn0:kubeconfig")
        assert t.check is None and f"https://{VIP}:6443" in t.run and "base64 -w0" in t.run
        assert [c.name for c in t.captures] == ["kubeconfig"]


def test_every_step_is_rerunnable(all_plans: list[Plan]) -> None:
    # Steps without a check either only read (they re-issue values for later steps)
    # or are checks themselves.
    no_check = {
        "ceph-bootstrap",  # bootstraps once; prints the fsid and SSH key every run
        "ceph-client-key",  # get-or-create + caps, prints the key every run
        "rke1-ssh-key",  # makes the key once, prints it every run
        "cluster-ready",
        "storage-smoke-test",
        "kubeconfig",
    }
    for p in all_plans:
        for t in p.tasks:
            assert (t.check is None) == (t.step in no_check), t.id


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            {"kubernetes": "1.35.2"},
            "versions.kubernetes: '1.35.2' does not fit: it must be the Kubernetes minor",
        ),
        (
            {"rke2": "1.35.7"},
            "versions.rke2: '1.35.7' does not fit: it must be an exact RKE2 release",
        ),
        (
            {"kubernetes": "1.36"},
            "versions.rke2 v1.35.7+rke2r1 is not a release of Kubernetes 1.36",
        ),
    ],
)
def test_versions_must_be_exact_and_agree(
    versions: dict[str, str], message: str, real_secrets: dict[str, str]
) -> None:
    """versions.rke2 pins the patch release; versions.kubernetes is only its minor."""
    doc = example_doc()
    doc["versions"] = versions
    with pytest.raises(PlanError, match=re.escape(message)):
        make(answers_from(doc), real_secrets)
    doc["versions"] = {"kubernetes": "1.36", "rke2": "v1.36.1+rke2r1"}
    assert (
        "INSTALL_RKE2_VERSION=v1.36.1+rke2r1"
        in make(answers_from(doc), real_secrets).task("kn0:rke2-install").run
    )


def test_rke1_is_legacy_and_warned(plan: Plan, rke1_plan: Plan) -> None:
    assert not [t for t in rke1_plan.tasks if t.step.startswith("rke2-")]
    assert steps_on(rke1_plan, "rke1-up") == ["kn0"]
    for step in ("rke1-docker", "rke1-up"):
        for t in rke1_plan.tasks:
            if t.step == step:
                assert "END OF LIFE since 2025-07-31" in t.title and "LEGACY" in t.title
    assert load_profile(PROFILE).spec.options["flavour"].default == "rke2"

    def mentions_docker_ce(p: Plan) -> set[str]:
        return {
            t.step
            for t in p.tasks
            if "docker-ce" in t.run + (t.check or "") + "".join(f.content for f in t.files)
        }

    assert mentions_docker_ce(plan) == set()
    assert mentions_docker_ce(rke1_plan) == {"rke1-docker"}


def test_secrets_only_in_secret_files(all_plans: list[Plan], real_secrets: dict[str, str]) -> None:
    token, pw = real_secrets["rke2_token"], real_secrets["keepalived_auth"]
    for p in all_plans:
        for t in p.tasks:
            for text in (t.title, t.run, t.check or ""):
                assert token not in text and pw not in text, t.id
            for f in t.files:
                secret_capture = "@@FMP_CAPTURE:ceph.client_key@@" in f.content
                if token in f.content or pw in f.content or secret_capture:
                    assert f.secret and f.mode == 0o600, (t.id, f.path)
        text = plan_text(p, redactor_for(load_profile(PROFILE).spec.secrets, real_secrets))
        assert token not in text and pw not in text


# --------------------------------------------------------------------------- real tools


def test_keepalived_configs(all_plans: list[Plan], tmp_path: Path) -> None:
    keepalived = require_tool("keepalived")
    pairs = [
        (t, f, s)
        for p in all_plans
        for t in p.tasks
        if t.step == "lb-keepalived"
        for f, s in [(t.files[0], t.files[1])]
    ]
    assert len(pairs) >= 12
    for i, (t, conf, script) in enumerate(pairs):
        d = tmp_path / f"ka{i}"
        d.mkdir()
        (d / "check.sh").write_text(script.content)
        (d / "check.sh").chmod(0o755)
        text = conf.content.replace("/etc/keepalived/check_cluster_api.sh", str(d / "check.sh"))
        (d / "keepalived.conf").write_text(text)
        r = run_tool([keepalived, "-t", "-f", str(d / "keepalived.conf")])
        assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}\n{text}"
        assert "auth_type PASS" in conf.content and f"{VIP}/24 dev " in conf.content
    states = [re.search(r"state (\w+)", c.content).group(1) for _, c, _ in pairs[:3]]  # type: ignore[union-attr]
    assert states == ["MASTER", "BACKUP", "BACKUP"]
    default_check = pairs[0][2].content
    assert "https://127.0.0.1:9345/" in default_check and "https://127.0.0.1:6443/" in default_check


def test_haproxy_configs(plan: Plan, variant_plans: dict[str, Plan], tmp_path: Path) -> None:
    haproxy = require_tool("haproxy")
    configs = distinct_files(variant_plans.values(), "/haproxy/haproxy.cfg")
    assert len(configs) >= 7  # 3 (api 8443) + 2 (dedicated lb) + 2 (dedicated lb, RKE1)
    for i, (where, f) in enumerate(sorted(configs.items())):
        path = tmp_path / f"haproxy-{i}.cfg"
        path.write_text(f.content)
        r = run_tool([haproxy, "-c", "-f", str(path)])
        assert r.returncode == 0, f"{where}\n{r.stdout}{r.stderr}\n{f.content}"
    assert not files_at([plan], "/haproxy/haproxy.cfg")
    api = variant_plans["api8443"].task("kn0:lb-haproxy").files[0].content
    assert "bind *:8443" in api and "bind *:9345" not in api and "bind *:6443" not in api
    lb = variant_plans["dedicated-lb"].task("lb0:lb-haproxy").files[0].content
    assert "bind *:9345" in lb and "bind *:6443" in lb and "server kn2 10.30.217.22:9345" in lb
    lb1 = variant_plans["dedicated-lb-rke1"].task("lb0:lb-haproxy").files[0].content
    assert "9345" not in lb1 and "bind *:6443" in lb1


def test_chrony_configs(plan: Plan, tmp_path: Path) -> None:
    chronyd = require_tool("chronyd")
    configs = files_at([plan], "/chrony/chrony.conf")
    assert len(configs) == 6
    for i, (t, f) in enumerate(configs):
        path = tmp_path / f"chrony-{i}.conf"
        path.write_text(f.content)
        r = run_tool([chronyd, "-p", "-f", str(path)])
        assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}"
    assert "local stratum 10" in configs[0][1].content
    assert "server 10.30.217.20 iburst prefer" in configs[4][1].content


def test_sudoers_file(plan: Plan, tmp_path: Path) -> None:
    visudo = require_tool("visudo")
    (t, f), *_ = files_at([plan], "/sudoers.fmpadmin")
    path = tmp_path / "sudoers"
    path.write_text(f.content)
    path.chmod(0o440)
    r = run_tool([visudo, "-c", "-f", str(path)])
    assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}"
    assert "fmpadmin ALL=(root) NOPASSWD:ALL" in f.content and f.mode == 0o440


def test_bash_syntax_of_every_run_check_and_script(all_plans: list[Plan], tmp_path: Path) -> None:
    bash = require_tool("bash")
    n = 0
    for p in all_plans:
        for t in p.tasks:
            texts = [("run", t.run), ("check", t.check or "")]
            texts += [(f.path, f.content) for f in t.files if f.content.startswith("#!")]
            for what, text in texts:
                path = tmp_path / f"s{n}.sh"
                path.write_text(text)
                n += 1
                shell = "sh" if text.startswith("#!/bin/sh") else bash
                r = run_tool([shell, "-n", str(path)])
                assert r.returncode == 0, f"{t.id} {what}\n{r.stderr}\n{text}"
    assert n > 500


def test_yamllint(all_plans: list[Plan], tmp_path: Path) -> None:
    yamllint = require_tool("yamllint")
    # truthy check-keys off: a step's unquoted `on:` key is read as `on` by the loader.
    config = (
        "{extends: default, rules: {line-length: {max: 160}, document-start: disable, "
        "truthy: {check-keys: false}}}"
    )
    paths = [str(REPO / "profiles" / PROFILE / "profile.yaml"), str(EXAMPLE)]
    for suffix in (".yaml", ".yml"):
        for i, (_where, f) in enumerate(sorted(distinct_files(all_plans, suffix).items())):
            path = tmp_path / f"{len(paths)}-{i}{suffix}"
            path.write_text(f.content)
            paths.append(str(path))
    assert len(paths) > 12
    r = run_tool([yamllint, "-f", "parsable", "-d", config, *paths])
    assert r.returncode == 0, r.stdout + r.stderr


def test_kubernetes_manifests_validate(all_plans: list[Plan]) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    checked: set[str] = set()
    for p in all_plans:
        for _t, f in files_at([p], ".yaml"):
            # values.yaml holds Helm values for the ceph-csi-rbd chart, not a manifest;
            # config.yaml is RKE2's configuration (checked below).
            if not f.path.startswith("/etc/fmp/ceph-csi/") or f.path.endswith("/values.yaml"):
                continue
            for doc in yaml.safe_load_all(f.content):
                # Every manifest is a core object with an upstream schema (ConfigMap, Secret,
                # StorageClass, PersistentVolumeClaim): nothing is skipped.
                used = kv.validate(doc, K8S_VERSION, strict=True)
                assert used == minor_of(K8S_VERSION), (used, K8S_VERSION)
                checked.add(doc["kind"])
    assert checked == {"ConfigMap", "Secret", "StorageClass", "PersistentVolumeClaim"}


def test_storage_class_is_ceph_csi_rbd(plan: Plan) -> None:
    (_, sc), *_ = files_at([plan], "/storageclass.yaml")
    doc = yaml.safe_load(sc.content)
    assert doc["provisioner"] == "rbd.csi.ceph.com"
    params = doc["parameters"]
    assert params["clusterID"] == "@@FMP_CAPTURE:ceph.fsid@@"
    assert params["pool"] == "kube" and params["imageFeatures"] == "layering"
    for kind in ("provisioner", "controller-expand", "node-stage"):
        assert params[f"csi.storage.k8s.io/{kind}-secret-name"] == "csi-rbd-secret"
        assert params[f"csi.storage.k8s.io/{kind}-secret-namespace"] == "ceph-csi-rbd"
    (_, secret), *_ = files_at([plan], "/csi-rbd-secret.yaml")
    s = yaml.safe_load(secret.content)
    assert s["stringData"] == {"userID": "kube", "userKey": "@@FMP_CAPTURE:ceph.client_key@@"}
    (_, cm), *_ = files_at([plan], "/csi-config-map.yaml")
    clusters = json.loads(yaml.safe_load(cm.content)["data"]["config.json"])
    assert clusters == [
        {
            "clusterID": "@@FMP_CAPTURE:ceph.fsid@@",
            "monitors": [f"10.30.217.2{i}:6789" for i in range(3)],
        }
    ]
    values = yaml.safe_load(files_at([plan], "/ceph-csi/values.yaml")[0][1].content)
    assert values["externallyManagedConfigmap"] is True
    assert values["secret"]["create"] is False and values["storageClass"]["create"] is False


# RKE2 configuration keys, from the documented flag tables:
#   server: https://docs.rke2.io/reference/server_config
#           (github.com/rancher/rke2-docs docs/reference/server_config.md)
#   agent:  https://docs.rke2.io/reference/linux_agent_config
#           (github.com/rancher/rke2-docs docs/reference/linux_agent_config.md)
# config.yaml keys are the flag names (docs.rke2.io/install/configuration).
_COMMON = {"config", "debug", "data-dir"}
_NODE = {
    "node-name",
    "with-node-id",
    "node-label",
    "node-taint",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "protect-kernel-defaults",
    "selinux",
    "lb-server-port",
    "container-runtime-endpoint",
    "default-runtime",
    "snapshotter",
    "private-registry",
    "disable-default-registry-endpoint",
    "node-ip",
    "node-external-ip",
    "resolv-conf",
    "kubelet-arg",
    "kube-proxy-arg",
}
_COMPONENTS = {
    "control-plane-resource-requests",
    "control-plane-resource-limits",
    "control-plane-probe-configuration",
    "kube-apiserver-extra-mount",
    "kube-scheduler-extra-mount",
    "kube-controller-manager-extra-mount",
    "kube-proxy-extra-mount",
    "etcd-extra-mount",
    "cloud-controller-manager-extra-mount",
    "kube-apiserver-extra-env",
    "kube-scheduler-extra-env",
    "kube-controller-manager-extra-env",
    "kube-proxy-extra-env",
    "etcd-extra-env",
    "cloud-controller-manager-extra-env",
    "kube-apiserver-image",
    "kube-controller-manager-image",
    "cloud-controller-manager-image",
    "kube-proxy-image",
    "kube-scheduler-image",
    "pause-image",
    "runtime-image",
    "etcd-image",
    "cloud-provider-name",
    "cloud-provider-config",
    "profile",
    "audit-policy-file",
    "pod-security-admission-config-file",
    "kubelet-path",
}
RKE2_AGENT_KEYS = _COMMON | _NODE | _COMPONENTS | {"token", "token-file", "server"}
RKE2_SERVER_KEYS = RKE2_AGENT_KEYS | {
    "bind-address",
    "advertise-address",
    "tls-san",
    "tls-san-security",
    "cluster-cidr",
    "service-cidr",
    "service-node-port-range",
    "cluster-dns",
    "cluster-domain",
    "egress-selector-mode",
    "servicelb-namespace",
    "cni",
    "write-kubeconfig",
    "write-kubeconfig-mode",
    "helm-job-image",
    "agent-token",
    "agent-token-file",
    "cluster-reset",
    "cluster-reset-restore-path",
    "etcd-expose-metrics",
    "etcd-disable-snapshots",
    "etcd-snapshot-name",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "etcd-snapshot-dir",
    "etcd-snapshot-compress",
    "etcd-s3",
    "etcd-s3-endpoint",
    "etcd-s3-endpoint-ca",
    "etcd-s3-skip-ssl-verify",
    "etcd-s3-access-key",
    "etcd-s3-secret-key",
    "etcd-s3-session-token",
    "etcd-s3-bucket",
    "etcd-s3-bucket-lookup-type",
    "etcd-s3-region",
    "etcd-s3-folder",
    "etcd-s3-retention",
    "etcd-s3-proxy",
    "etcd-s3-config-secret",
    "etcd-s3-insecure",
    "etcd-s3-timeout",
    "kube-apiserver-arg",
    "etcd-arg",
    "kube-controller-manager-arg",
    "kube-scheduler-arg",
    "kube-cloud-controller-manager-arg",
    "disable",
    "disable-scheduler",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "enable-servicelb",
    "ingress-controller",
    "secrets-encryption-provider",
    "embedded-registry",
    "enable-pprof",
    "system-default-registry",
}
# Must be equal on every server ("Critical Configuration Values").
RKE2_CRITICAL = (
    "agent-token",
    "cluster-cidr",
    "cluster-dns",
    "cluster-domain",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "egress-selector-mode",
    "service-cidr",
)


def test_rke2_config_keys_are_documented_flags(
    plan: Plan, variant_plans: dict[str, Plan], real_secrets: dict[str, str]
) -> None:
    for p in (plan, *variant_plans.values()):
        if any(t.step == "rke1-up" for t in p.tasks):
            continue
        servers = {}
        for t, f in files_at([p], "/etc/rancher/rke2/config.yaml"):
            doc = yaml.safe_load(f.content)
            assert f.secret and f.mode == 0o600
            assert doc["token"] == real_secrets["rke2_token"]
            if t.step == "rke2-agent-join":
                assert set(doc) <= RKE2_AGENT_KEYS, set(doc) - RKE2_AGENT_KEYS
                assert doc["server"] == f"https://{VIP}:9345"
                continue
            assert set(doc) <= RKE2_SERVER_KEYS, set(doc) - RKE2_SERVER_KEYS
            assert VIP in doc["tls-san"] and "fmp-api" in doc["tls-san"]
            if t.step == "rke2-server-init":
                assert "server" not in doc
            else:
                assert doc["server"] == f"https://{VIP}:9345"
            servers[t.host] = doc
        assert len(servers) == 3
        for key in RKE2_CRITICAL:
            assert len({json.dumps(d.get(key)) for d in servers.values()}) == 1, key
    first = yaml.safe_load(plan.task("kn0:rke2-server-init").files[0].content)
    assert first["cluster-cidr"] == "10.244.0.0/16" and first["service-cidr"] == "10.96.0.0/12"
    assert first["cluster-dns"] == "10.96.0.10" and first["cni"] == "canal"
    assert first["node-taint"] == ["CriticalAddonsOnly=true:NoExecute"]
    compact = yaml.safe_load(variant_plans["compact"].task("kn0:rke2-server-init").files[0].content)
    assert "node-taint" not in compact and compact["cni"] == "cilium"
    install = plan.task("kn3:rke2-install").run
    assert "INSTALL_RKE2_VERSION=v1.35.7+rke2r1" in install
    assert "INSTALL_RKE2_TYPE=agent" in install and "https://get.rke2.io" in install


# RKE1 cluster.yml keys used here, from RKE's documentation (rancher.com/docs/rke/latest/en/
# example-yamls/ and .../etcd-snapshots/recurring-snapshots/): a dict is an object with those
# keys, a list holds items of its one element, None is a leaf.
_RKE1_SERVICE = {"image": None, "extra_args": None, "extra_binds": None, "extra_env": None}
RKE1_CLUSTER_YML: dict[str, Any] = {
    "cluster_name": None,
    "kubernetes_version": None,
    "ssh_key_path": None,
    "ssh_agent_auth": None,
    "ignore_docker_version": None,
    "enable_cri_dockerd": None,
    "nodes": [
        dict.fromkeys(
            [
                "address",
                "internal_address",
                "hostname_override",
                "user",
                "role",
                "port",
                "docker_socket",
                "ssh_key_path",
                "ssh_key",
                "labels",
                "taints",
            ]
        )
    ],
    "services": {
        "etcd": {
            **_RKE1_SERVICE,
            "backup_config": dict.fromkeys(
                ["enabled", "interval_hours", "retention", "safe_timestamp", "s3backupconfig"]
            ),
        },
        "kube-api": {
            **_RKE1_SERVICE,
            "service_cluster_ip_range": None,
            "service_node_port_range": None,
            "pod_security_policy": None,
            "always_pull_images": None,
        },
        "kube-controller": {
            **_RKE1_SERVICE,
            "cluster_cidr": None,
            "service_cluster_ip_range": None,
        },
        "scheduler": _RKE1_SERVICE,
        "kubelet": {
            **_RKE1_SERVICE,
            "cluster_domain": None,
            "cluster_dns_server": None,
            "fail_swap_on": None,
            "generate_serving_certificate": None,
        },
        "kubeproxy": _RKE1_SERVICE,
    },
    "network": {"plugin": None, "options": None, "mtu": None},
    "authentication": {"strategy": None, "sans": None, "webhook": None},
    "ingress": None,
    "dns": None,
    "monitoring": None,
    "private_registries": None,
}


def _unknown_keys(value: Any, schema: Any, where: str) -> list[str]:
    if schema is None:
        return []
    if isinstance(schema, list):
        assert isinstance(value, list), where
        return [
            e for i, v in enumerate(value) for e in _unknown_keys(v, schema[0], f"{where}[{i}]")
        ]
    assert isinstance(value, dict), where
    errors = [f"{where}.{k}" for k in value if k not in schema]
    return errors + [
        e
        for k, v in value.items()
        if k in schema
        for e in _unknown_keys(v, schema[k], f"{where}.{k}")
    ]


def test_rke1_fmpclust_yml_uses_current_keys(rke1_plan: Plan) -> None:
    ((_t, f),) = files_at([rke1_plan], "/fmpclust.yml")
    doc = yaml.safe_load(f.content)
    assert not _unknown_keys(doc, RKE1_CLUSTER_YML, "fmpclust.yml")
    etcd = doc["services"]["etcd"]
    assert etcd["backup_config"] == {"enabled": True, "interval_hours": 6, "retention": 4}
    assert not {"snapshot", "creation", "retention"} & set(etcd)  # the pre-v0.2.0 names
    assert "pod-eviction-timeout" not in json.dumps(doc)  # removed in Kubernetes 1.27
    roles = {n["hostname_override"]: n["role"] for n in doc["nodes"]}
    assert roles == {
        **{f"kn{i}": ["controlplane", "etcd"] for i in range(3)},
        **{f"kn{i}": ["worker"] for i in range(3, 6)},
    }
    assert doc["authentication"]["sans"][0] == VIP and doc["network"]["plugin"] == "canal"
    assert "END OF LIFE" in f.content.upper() or "end of life" in f.content


# --------------------------------------------------------------------------- the Ceph helpers

FAKE_CEPH = r"""#!/usr/bin/env python3
# A stand-in for the ceph CLI: answers from $FAKE_CEPH_STATE (JSON: "args joined" -> stdout),
# logs every call to $FAKE_CEPH_LOG.
import json, os, sys
args = " ".join(sys.argv[1:])
with open(os.environ["FAKE_CEPH_LOG"], "a") as log:
    log.write(args + "\n")
state = json.load(open(os.environ["FAKE_CEPH_STATE"]))
sys.stdout.write(state.get(args, ""))
"""


@pytest.fixture
def fake_ceph(tmp_path: Path) -> tuple[Path, Path, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ceph = bindir / "ceph"
    ceph.write_text(FAKE_CEPH.replace("/usr/bin/env python3", sys.executable, 1))
    ceph.chmod(0o755)
    return bindir, tmp_path / "state.json", tmp_path / "calls.log"


def _run_script(
    content: str, args: list[str], fake: tuple[Path, Path, Path], state: dict[str, str]
) -> tuple[int, list[str], str]:
    bindir, state_file, log = fake
    state_file.write_text(json.dumps(state))
    log.write_text("")
    script = bindir.parent / "script"
    script.write_text(content)
    r = run_tool(
        [require_tool("bash"), str(script), *args],
        env={
            "PATH": f"{bindir}:/usr/bin:/bin",
            "FAKE_CEPH_STATE": str(state_file),
            "FAKE_CEPH_LOG": str(log),
        },
    )
    return r.returncode, log.read_text().splitlines(), r.stdout + r.stderr


def test_ceph_hosts_script_adds_missing_hosts_and_labels(
    plan: Plan, fake_ceph: tuple[Path, Path, Path]
) -> None:
    require_tool("python3")
    script = plan.task("kn0:ceph-hosts").files[0].content
    partial = json.dumps(
        [
            {"hostname": "kn0", "addr": "10.30.217.20", "labels": ["_admin"]},
            {"hostname": "kn1", "addr": "10.30.217.21", "labels": ["_admin", "mon"]},
        ]
    )
    state = {"orch host ls --format json": partial}
    rc, calls, out = _run_script(script, ["--check"], fake_ceph, state)
    assert rc == 1, out
    rc, calls, out = _run_script(script, [], fake_ceph, state)
    assert rc == 0, out
    assert calls == [
        "orch host ls --format json",
        "orch host label add kn0 mon",
        "orch host label add kn0 mgr",
        "orch host label add kn0 mds",
        "orch host label add kn1 mgr",
        "orch host label add kn1 mds",
        "orch host add kn2 10.30.217.22 --labels=_admin,mon,mgr,mds",
        "orch host add kn3 10.30.217.23 --labels=_admin,osd",
        "orch host add kn4 10.30.217.24 --labels=_admin,osd",
        "orch host add kn5 10.30.217.25 --labels=_admin,osd",
        "orch host ls",
    ]
    labels = {f"kn{i}": ["_admin", "mon", "mgr", "mds"] for i in range(3)}
    labels |= {f"kn{i}": ["_admin", "osd"] for i in range(3, 6)}
    full = json.dumps([{"hostname": h, "addr": "x", "labels": v} for h, v in labels.items()])
    rc, calls, out = _run_script(
        script, ["--check"], fake_ceph, {"orch host ls --format json": full}
    )
    assert rc == 0 and calls == ["orch host ls --format json"], out


def test_ceph_services_check(plan: Plan, fake_ceph: tuple[Path, Path, Path]) -> None:
    require_tool("python3")
    script = plan.task("kn0:ceph-services").files[0].content
    ls = [
        {"service_name": "mon", "service_type": "mon", "placement": {"label": "mon"}},
        {"service_name": "mgr", "service_type": "mgr", "placement": {"label": "mgr"}},
        {"service_name": "mds.cephfs", "service_type": "mds", "placement": {"label": "mds"}},
    ]
    state = {
        "orch ls --format json": json.dumps(ls),
        "fs ls --format json": json.dumps([{"name": "cephfs"}]),
        "config get mon osd_pool_default_size": "3\n",
        "quorum_status --format json": json.dumps({"quorum_names": ["kn0", "kn1", "kn2"]}),
    }
    rc, _, out = _run_script(script, ["--check"], fake_ceph, state)
    assert rc == 0, out
    rc, _, out = _run_script(
        script,
        ["--check"],
        fake_ceph,
        {**state, "quorum_status --format json": '{"quorum_names": ["kn0"]}'},
    )
    assert rc == 1, out
    # Already in place: apply sets the pool defaults, re-applies the placements and returns.
    rc, calls, out = _run_script(script, [], fake_ceph, state)
    assert rc == 0, out
    assert "fs volume create cephfs --placement=label:mds" not in calls
    assert "orch apply mon --placement=label:mon" in calls
    assert "orch apply mds cephfs --placement=label:mds" in calls


def test_ceph_osd_check_recognises_its_cluster(plan: Plan, tmp_path: Path) -> None:
    bash = require_tool("bash")
    script = plan.task("kn3:ceph-osd").files[0].content
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pvs").write_text("#!/bin/sh\necho '  ceph-0a1b2c3d'\n")
    (bindir / "lvs").write_text(
        "#!/bin/sh\necho '  ceph.block_device=/dev/ceph-0a1b2c3d/osd-block-1,"
        "ceph.cluster_fsid=b9127830-b0cc-4e34-aa47-9d1a2e9949a8,ceph.osd_id=3,ceph.type=block'\n"
    )
    for tool in ("pvs", "lvs"):
        (bindir / tool).chmod(0o755)
    (tmp_path / "ceph-osd").write_text(script)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    disk = str(tmp_path / "disk")
    ours = run_tool(
        [bash, str(tmp_path / "ceph-osd"), "check", "b9127830-b0cc-4e34-aa47-9d1a2e9949a8", disk],
        env=env,
    )
    assert ours.returncode == 0, ours.stderr
    other = run_tool(
        [bash, str(tmp_path / "ceph-osd"), "check", "00000000-0000-0000-0000-000000000000", disk],
        env=env,
    )
    assert other.returncode == 1
    task = plan.task("kn3:ceph-osd")
    assert "/usr/local/lib/fmp/ceph-osd check '@@FMP_CAPTURE:ceph.fsid@@'" in (task.check or "")


# --------------------------------------------------------------------------- golden and CLI


def test_golden_plan_txt() -> None:
    answers = example_answers()
    profile = load_profile(PROFILE)
    plan = make_plan(answers, profile, facts=synthetic_facts(answers), secrets=FAKE_SECRETS)
    text = plan_text(plan, redactor_for(profile.spec.secrets, FAKE_SECRETS), answers)
    assert "Vrrp5678" not in text and "FAKE-rke2-token" not in text
    check_golden(GOLDEN, text)


def test_no_obsolete_names(plan: Plan, rke1_plan: Plan, variant_plans: dict[str, Plan]) -> None:
    plans = [plan, rke1_plan, *variant_plans.values()]
    rke1 = [p for p in plans if any(t.step.startswith("rke1-") for t in p.tasks)]
    rke2 = [p for p in plans if p not in rke1]
    assert len(rke2) >= 3 and len(rke1) >= 2
    assert obsolete_names(rke2) == []
    # The legacy flavour (RKE1) runs on Docker: docker-ce is the one name it may render.
    assert obsolete_names(rke1, allow=["docker-ce"]) == []
    assert any("docker-ce" in t.run for p in rke1 for t in p.tasks)


def test_fmp_install_plan_command(tmp_path: Path) -> None:
    answers = example_answers()
    facts_file = tmp_path / "facts.json"
    save_facts(facts_file, synthetic_facts(answers).values())
    out = tmp_path / "plan"
    r = run_tool(
        [
            sys.executable,
            "-m",
            "installer.cli",
            "plan",
            "--answers",
            str(EXAMPLE),
            "--facts",
            str(facts_file),
            "--out",
            str(out),
            "--json",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = (out / "plan.txt").read_text()
    assert "profile rke-ceph" in text and "WIPES /dev/disk/by-id/wwn-0x5000c500a1b2c3d3" in text
    assert (out / "kn0" / "etc" / "rancher" / "rke2" / "config.yaml").is_file()
    assert (out / "kn3" / "usr" / "local" / "lib" / "fmp" / "ceph-osd").is_file()
    dag = json.loads((out / "plan.json").read_text())
    assert dag["profile"] == "rke-ceph" and len(dag["tasks"]) == 90
