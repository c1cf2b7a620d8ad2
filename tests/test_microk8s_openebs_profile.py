"""The microk8s-openebs profile's output, checked by the real tools.

kubernetes-validate (strict, at the pinned Kubernetes minor) on every Kubernetes
manifest; the OpenEBS DiskPool against the fields of its CRD (openebs.io/v1beta3,
no upstream JSON schema); the Helm values against the keys the charts document;
yamllint on every YAML file; ``netplan generate`` on the static-address configs
(and the step's script against the real netplan); bash -n on every run and check;
the join, hosts-file and add-node scripts run against fakes of ``microk8s``; a
golden plan.txt; and ``fmp-install plan`` on the example answers.

The default inventory is examples/microk8s-openebs.yaml (the runbook's six nodes:
kn0-kn2 managers that give /dev/sdb to the replicated storage, kn3-kn5 workers).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.answers import Answers
from installer.factsio import save_facts
from installer.headless import unconsented_wipes
from installer.hostfacts import BlockDevice, HostFacts
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
    minor_of,
    obsolete_names,
    profile_plan,
    read_doc,
    run_tool,
    synthetic_facts,
)
from tests.storage_helpers import dev, system_disk

PROFILE = "microk8s-openebs"
EXAMPLE = REPO / "examples" / "microk8s-openebs.yaml"
GOLDEN = Path(__file__).parent / "golden" / "microk8s-openebs.plan.txt"
# kubernetes-validate checks against the MicroK8s track the pinned channel follows
# (1.35/stable -> 1.35: the snap decides the patch release, so x.y.0 stands for it); its
# schemas are per minor, and test_kubernetes_manifests_validate asserts it used this one.
K8S_VERSION = load_profile(PROFILE).spec.versions["microk8s_channel"].split("/")[0] + ".0"
VIP = "10.30.217.100"
KUBELET_DIR = "/var/snap/microk8s/common/var/lib/kubelet"

# A fixed stand-in, so that the golden plan does not change from run to run.
FAKE_SECRETS = {"microk8s_join_secret": "0123456789abcdef01234567"}

# Keys of the openebs/openebs chart 4.3.3 (its charts/README.md "Values" table) and of the
# sub-chart keys this profile sets: lvm-localpv's README (lvmNode.kubeletDir, default
# "/var/lib/kubelet/") and the mayastor chart's README (csi.node.kubeletDir, default
# "/var/lib/kubelet"). The OpenEBS docs' MicroK8s page sets exactly these kubeletDir keys.
OPENEBS_CHART_KEYS = {
    "engines.local.lvm.enabled",
    "engines.local.zfs.enabled",
    "engines.replicated.mayastor.enabled",
    "lvm-localpv.lvmNode.kubeletDir",
    "mayastor.csi.node.kubeletDir",
}

# DiskPool openebs.io/v1beta3 from mayastor's CRD (DiskPoolSpec: node and disks required;
# topology, encryptionConfig, clusterSize, maxExpansion optional); namespaced.
DISKPOOL_SPEC_REQUIRED = {"node", "disks"}
DISKPOOL_SPEC_FIELDS = DISKPOOL_SPEC_REQUIRED | {
    "topology",
    "encryptionConfig",
    "clusterSize",
    "maxExpansion",
}


# --------------------------------------------------------------------------- inventories


def example_doc() -> dict[str, Any]:
    return read_doc(EXAMPLE)


def example_answers() -> Answers:
    return answers_file(EXAMPLE)


def storage_on(n: int) -> dict[str, Any]:
    """The example with the storage role (and a disk) on the first ``n`` hosts."""
    doc = example_doc()
    wipe = []
    for i, h in enumerate(doc["hosts"]):
        roles = [r for r in h["roles"] if r != "storage"]
        h.pop("storage_disk", None)
        if i < n:
            disk = f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"
            roles.append("storage")
            h["storage_disk"] = disk
            wipe.append(f"{h['name']}:{disk}")
        h["roles"] = roles
    doc["storage"]["wipe"] = wipe
    return doc


def full_facts(answers: Answers) -> dict[str, HostFacts]:
    """Synthetic facts plus the gateway and DNS servers static_address needs."""
    return {
        label: dataclasses.replace(
            f, default_gateway="10.30.217.1", dns_servers=("127.0.0.53", "10.30.217.1", "9.9.9.9")
        )
        for label, f in synthetic_facts(answers).items()
    }


def make(
    answers: Answers,
    secrets: dict[str, str],
    options: dict[str, Any] | None = None,
    facts: dict[str, HostFacts] | None = None,
) -> Plan:
    return profile_plan(PROFILE, answers, secrets, options=options, facts=facts)


@pytest.fixture(scope="module")
def real_secrets() -> dict[str, str]:
    return generated_secrets(PROFILE)


@pytest.fixture(scope="module")
def plan(real_secrets: dict[str, str]) -> Plan:
    return make(example_answers(), real_secrets)


@pytest.fixture(scope="module")
def variant_plans(real_secrets: dict[str, str]) -> dict[str, Plan]:
    full = example_answers()
    return {
        "options": make(
            full,
            real_secrets,
            options={
                "static_address": True,
                "ingress_on_vip": True,
                "default_storage_class": "openebs-replicated",
                "lvm_vg": "vg_data",
            },
            facts=full_facts(full),
        ),
        "no-storage": make(answers_from(storage_on(0)), real_secrets),
        "two-pools": make(answers_from(storage_on(2)), real_secrets),
        "five-pools": make(answers_from(storage_on(5)), real_secrets),
    }


@pytest.fixture(scope="module")
def all_plans(plan: Plan, variant_plans: dict[str, Plan]) -> list[Plan]:
    return [plan, *variant_plans.values()]


def steps_on(plan: Plan, step: str) -> list[str]:
    return [t.host for t in plan.tasks if t.step == step]


def yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


# --------------------------------------------------------------------------- the plan's shape


def test_default_plan_layout(plan: Plan) -> None:
    managers, workers = ["kn1", "kn2"], ["kn3", "kn4", "kn5"]
    everyone = ["kn0", *managers, *workers]
    for step in ("hostname", "hosts-file", "swap-off", "kernel-modules", "lvm", "microk8s-install"):
        assert steps_on(plan, step) == everyone, step
    assert steps_on(plan, "hugepages") == ["kn0", "kn1", "kn2"]
    assert steps_on(plan, "static-address") == []  # an option, off by default
    assert steps_on(plan, "microk8s-add-node") == ["kn0"]
    assert steps_on(plan, "microk8s-join-manager") == managers
    assert steps_on(plan, "microk8s-join-worker") == workers
    for step in (
        "cluster-ready",
        "kubeconfig",
        "addon-dns",
        "addon-ingress",
        "addon-metallb",
        "openebs",
        "diskpools",
        "storageclasses",
        "storage-smoke-test",
    ):
        assert steps_on(plan, step) == ["kn0"], step
    assert steps_on(plan, "ingress-on-vip") == []


def test_joins_are_serial_managers_first_then_workers(plan: Plan) -> None:
    pos = {t.id: i for i, t in enumerate(plan.tasks)}
    joins = [t for t in plan.tasks if t.step.startswith("microk8s-join-")]
    assert [t.host for t in joins] == ["kn1", "kn2", "kn3", "kn4", "kn5"]
    for t in joins:
        assert t.serial, t.id
        assert "kn0:microk8s-add-node" in t.needs
        assert t.uses == {"microk8s.fingerprint"}
        assert "10.30.217.20:25000/$token/@@FMP_CAPTURE:microk8s.fingerprint@@" in t.run
    for w in ("kn3", "kn4", "kn5"):
        join = plan.task(f"{w}:microk8s-join-worker")
        assert join.run.rstrip().endswith("--worker")
        assert {"kn1:microk8s-join-manager", "kn2:microk8s-join-manager"} <= set(join.needs)
        assert pos[join.id] > pos["kn2:microk8s-join-manager"]
    for m in ("kn1", "kn2"):
        assert "--worker" not in plan.task(f"{m}:microk8s-join-manager").run
    # Add-ons once the cluster is formed (enabling them earlier fails); storage after them.
    ready = plan.task("kn0:cluster-ready")
    assert {f"kn{i}:microk8s-join-{'manager' if i < 3 else 'worker'}" for i in range(1, 6)} <= set(
        ready.needs
    )
    for step in ("addon-dns", "addon-ingress", "addon-metallb", "kubeconfig"):
        assert "kn0:cluster-ready" in plan.task(f"kn0:{step}").needs
    openebs = plan.task("kn0:openebs")
    assert {"kn0:storage-node-labels", "kn2:hugepages", "kn5:lvm", "kn5:kernel-modules"} <= set(
        openebs.needs
    )


def test_one_join_token_per_node_registered_on_the_first_manager(
    plan: Plan, real_secrets: dict[str, str]
) -> None:
    secret = real_secrets["microk8s_join_secret"]
    assert re.fullmatch(r"[0-9a-f]{24}", secret)
    tokens = {}
    for t, f in files_at([plan], "/etc/fmp/microk8s-join-token"):
        assert f.secret and f.mode == 0o600
        tokens[t.host] = f.content.strip()
    assert set(tokens) == {"kn1", "kn2", "kn3", "kn4", "kn5"}
    assert len(set(tokens.values())) == 5
    for token in tokens.values():
        # microk8s add-node --token: "must be 32 characters long"
        assert len(token) == 32 and token.startswith(secret)
    (add, registry), *_ = files_at([plan], "/etc/fmp/microk8s-join-tokens")
    assert add.id == "kn0:microk8s-add-node" and registry.secret and registry.mode == 0o600
    listed = dict(line.split() for line in registry.content.splitlines())
    assert listed == tokens
    assert "--token-ttl 1800 --format token-check" in add.run
    assert add.check is None  # tokens expire: registered again on every run
    assert add.fresh_for == 1620  # a resume past 90% of the TTL registers them again
    longer = make(example_answers(), real_secrets, options={"join_token_ttl": 7200})
    assert next(t for t in longer.tasks if t.step == "microk8s-add-node").fresh_for == 6480
    expired = make(example_answers(), real_secrets, options={"join_token_ttl": 0})
    assert next(t for t in expired.tasks if t.step == "microk8s-add-node").fresh_for == 0


def test_captures_match_the_tools_output(plan: Plan) -> None:
    kubeconfig = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.30.217.20:16443\n"
    b64 = base64.b64encode(kubeconfig.encode()).decode()
    outputs = {
        "kn0:microk8s-add-node": (
            "fmp: join token for kn1 registered\nfmp: cluster fingerprint: e8d855527aa7\n"
        ),
        "kn0:kubeconfig": f"fmp: kubeconfig: {b64}\n",
    }
    got = {}
    for task_id, out in outputs.items():
        for c in plan.task(task_id).captures:
            m = re.search(c.pattern, out, re.MULTILINE)
            assert m, (task_id, c.name)
            got[c.name] = m.group("value")
    assert got["microk8s.fingerprint"] == "e8d855527aa7"
    assert base64.b64decode(got["kubeconfig"]).decode() == kubeconfig
    secret = {c.name for t in plan.tasks for c in t.captures if c.secret}
    assert secret == {"kubeconfig"}
    kc = plan.task("kn0:kubeconfig")
    assert kc.check is None and "microk8s config" in kc.run and "base64 -w0" in kc.run


def test_addons_and_metallb_on_the_vip(plan: Plan) -> None:
    assert "microk8s enable dns" in plan.task("kn0:addon-dns").run
    assert "microk8s enable ingress" in plan.task("kn0:addon-ingress").run
    metallb = plan.task("kn0:addon-metallb")
    assert f"microk8s enable metallb:{VIP}/32" in metallb.run
    assert f"grep -qxF {VIP}/32" in (metallb.check or "")
    for step in ("addon-dns", "addon-ingress"):
        assert "microk8s status --addon" in (plan.task(f"kn0:{step}").check or "")


def test_diskpools_only_on_storage_hosts_with_their_disks_wiped(plan: Plan) -> None:
    answers = example_answers()
    disks = {h.label: h.storage_disk for h in answers.hosts if "storage" in h.roles}
    assert disks == {"kn0": "/dev/sdb", "kn1": "/dev/sdb", "kn2": "/dev/sdb"}
    wiping = [t for t in plan.tasks if t.wipes or t.destructive]
    assert {t.id for t in wiping} == {f"{h}:storage-disk-wipe" for h in disks}
    for t in wiping:
        assert t.destructive and t.wipes == (disks[t.host],)
        assert t.check == "test -f /var/lib/fmp/wiped/_dev_sdb"  # wiped once, never again
    text = plan_text(plan, None, answers)
    for host, disk in disks.items():
        assert f"- {host}:{disk} by step storage-disk-wipe (consent in storage.wipe)" in text
    (task, f), *rest = files_at([plan], "/openebs-diskpools.yaml")
    assert not rest and task.id == "kn0:diskpools"
    assert {"kn0:storage-disk-wipe", "kn2:storage-disk-wipe", "kn0:openebs"} <= set(task.needs)
    pools = yaml_docs(f.content)
    assert [(p["metadata"]["name"], p["spec"]["node"], p["spec"]["disks"]) for p in pools] == [
        (f"pool-kn{i}", f"kn{i}", ["aio:///dev/sdb"]) for i in range(3)
    ]
    labels = plan.task("kn0:storage-node-labels")
    for i in range(3):
        assert f"label node kn{i} openebs.io/engine=mayastor --overwrite" in labels.run
    assert "kn3" not in labels.run


def test_diskpools_name_the_disk_by_its_stable_id_when_facts_know_it(
    real_secrets: dict[str, str],
) -> None:
    """OpenEBS recommends a device link that survives reboots ("Create DiskPool(s)"): the
    example says /dev/sdb, discovery knows its by-id links, the pool gets the WWN link."""
    answers = example_answers()
    facts = full_facts(answers)
    sdb = BlockDevice(
        "sdb",
        "/dev/sdb",
        "disk",
        500 * 2**30,
        wwn="0x5000c500a1b2c3d0",
        by_id=("/dev/disk/by-id/ata-DISK_B0", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0"),
    )
    facts["kn0"] = dataclasses.replace(facts["kn0"], disks=(sdb,))
    # kn1: a disk without any stable name; kn2: no disk facts at all
    facts["kn1"] = dataclasses.replace(
        facts["kn1"], disks=(BlockDevice("sdb", "/dev/sdb", "disk", 2**40),)
    )
    plan = make(answers, real_secrets, facts=facts)
    pools = yaml_docs(plan.task("kn0:diskpools").files[0].content)
    assert {p["spec"]["node"]: p["spec"]["disks"] for p in pools} == {
        "kn0": ["aio:///dev/disk/by-id/wwn-0x5000c500a1b2c3d0"],
        "kn1": ["aio:///dev/sdb"],
        "kn2": ["aio:///dev/sdb"],
    }
    # the wipe step works on the same link; it still names the disk as the answers do
    # (storage.wipe consents to that name) and so does its marker, which must not change
    wipe = plan.task("kn0:storage-disk-wipe")
    assert "disk=/dev/disk/by-id/wwn-0x5000c500a1b2c3d0\n" in wipe.run
    assert wipe.wipes == ("/dev/sdb",)
    assert wipe.check == "test -f /var/lib/fmp/wiped/_dev_sdb"
    assert "disk=/dev/sdb\n" in plan.task("kn1:storage-disk-wipe").run


SERIAL = "S3Z8NB0K123456A"


def test_a_serial_only_disk_is_wiped_and_pooled_by_its_device_path(
    real_secrets: dict[str, str],
) -> None:
    """kn1's disk has no by-id link or WWN: the answers name it serial:S3Z8..., the facts find
    it at /dev/sdc; the wipe and the DiskPool use that path, never the serial."""
    doc = example_doc()
    doc["hosts"][1]["storage_disk"] = f"serial:{SERIAL}"
    doc["storage"]["wipe"][1] = f"kn1:serial:{SERIAL}"
    answers = answers_from(doc)
    facts = full_facts(answers)
    disks = (system_disk(), dev("sdc", 500, serial=SERIAL))
    facts["kn1"] = dataclasses.replace(facts["kn1"], disks=disks)
    plan = make(answers, real_secrets, facts=facts)
    wipe = plan.task("kn1:storage-disk-wipe")
    assert "disk=/dev/sdc\n" in wipe.run
    assert wipe.title == f"wipe serial:{SERIAL} (/dev/sdc) for the replicated storage pool"
    assert wipe.wipes == (f"serial:{SERIAL}",)
    # The marker keeps the answers' name: a new kernel name after a reboot is the same disk.
    assert wipe.check == f"test -f /var/lib/fmp/wiped/serial_{SERIAL}"
    assert f"> /var/lib/fmp/wiped/serial_{SERIAL}\n" in wipe.run
    pools = yaml_docs(plan.task("kn0:diskpools").files[0].content)
    assert {p["spec"]["node"]: p["spec"]["disks"] for p in pools} == {
        "kn0": ["aio:///dev/sdb"],
        "kn1": ["aio:///dev/sdc"],
        "kn2": ["aio:///dev/sdb"],
    }
    for t in plan.tasks:
        texts = [t.run, t.check or "", *(f.content for f in t.files)]
        assert not [x for x in texts if "serial:" in x], t.id
    assert unconsented_wipes(plan, answers.storage.wipe) == []
    text = plan_text(plan, None, answers)
    assert f"- kn1:serial:{SERIAL} by step storage-disk-wipe (consent in storage.wipe)" in text
    # Without facts that find the disk, neither the wipe nor the DiskPool has a device.
    with pytest.raises(PlanError) as exc:
        make(answers, real_secrets)
    assert "(task kn1:storage-disk-wipe)" in str(exc.value)
    assert f"kn1: storage_disk serial:{SERIAL} names a disk by its serial" in str(exc.value)


def test_diskpools_match_the_crd(all_plans: list[Plan]) -> None:
    seen = 0
    for _, f in files_at(all_plans, "/openebs-diskpools.yaml"):
        for doc in yaml_docs(f.content):
            seen += 1
            assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
            assert doc["apiVersion"] == "openebs.io/v1beta3" and doc["kind"] == "DiskPool"
            assert doc["metadata"]["namespace"] == "openebs"  # the chart's namespace
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
            spec = doc["spec"]
            assert DISKPOOL_SPEC_REQUIRED <= set(spec) <= DISKPOOL_SPEC_FIELDS
            assert isinstance(spec["node"], str)
            # One disk per pool; aio:// URIs (OpenEBS "Create DiskPool(s)" permissible schemes).
            assert len(spec["disks"]) == 1 and spec["disks"][0].startswith("aio:///dev/")
    assert seen == 3 + 3 + 2 + 5  # default, options, two-pools, five-pools


def test_replicas_follow_the_pool_count(variant_plans: dict[str, Plan], plan: Plan) -> None:
    def storage_classes(p: Plan) -> dict[str, dict[str, Any]]:
        (_, f), *_ = files_at([p], "/openebs-storageclasses.yaml")
        return {d["metadata"]["name"]: d for d in yaml_docs(f.content)}

    for p, repl in (
        (plan, "3"),
        (variant_plans["two-pools"], "2"),
        (variant_plans["five-pools"], "3"),
    ):
        sc = storage_classes(p)
        rep = sc["openebs-replicated"]
        assert rep["provisioner"] == "io.openebs.csi-mayastor"
        assert rep["parameters"] == {"protocol": "nvmf", "repl": repl}
        lvm = sc["openebs-lvm"]
        assert lvm["provisioner"] == "local.csi.openebs.io"
        assert lvm["parameters"] == {"storage": "lvm", "volgroup": "ubuntu-vg"}
        assert lvm["volumeBindingMode"] == "WaitForFirstConsumer"
        assert lvm["metadata"]["annotations"] == {
            "storageclass.kubernetes.io/is-default-class": "true"
        }
    none = variant_plans["no-storage"]
    assert set(storage_classes(none)) == {"openebs-lvm"}
    for step in ("hugepages", "storage-disk-wipe", "diskpools", "storage-node-labels"):
        assert steps_on(none, step) == [], step
    (_, values), *_ = files_at([none], "/etc/fmp/openebs-values.yaml")
    assert yaml.safe_load(values.content)["engines"]["replicated"]["mayastor"]["enabled"] is False
    opts = storage_classes(variant_plans["options"])
    assert "annotations" not in opts["openebs-lvm"]["metadata"]
    assert opts["openebs-replicated"]["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    assert opts["openebs-lvm"]["parameters"]["volgroup"] == "vg_data"


def test_helm_values_use_documented_keys(all_plans: list[Plan]) -> None:
    def leaves(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix: d}
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out

    for t, f in files_at(all_plans, "/etc/fmp/openebs-values.yaml"):
        values = leaves(yaml.safe_load(f.content))
        assert set(values) <= OPENEBS_CHART_KEYS, t.id
        assert values["engines.local.lvm.enabled"] is True
        assert values["engines.local.zfs.enabled"] is False
        assert values["lvm-localpv.lvmNode.kubeletDir"] == KUBELET_DIR + "/"
        if values["engines.replicated.mayastor.enabled"]:
            assert values["mayastor.csi.node.kubeletDir"] == KUBELET_DIR
    install = all_plans[0].task("kn0:openebs").run
    assert "microk8s helm3 repo add openebs https://openebs.github.io/openebs" in install
    assert "upgrade --install openebs openebs/openebs" in install and "--version 4.3.3" in install


def test_every_step_is_rerunnable(all_plans: list[Plan]) -> None:
    # Without a check: steps that re-issue values for later steps, or are tests themselves.
    no_check = {"microk8s-add-node", "cluster-ready", "kubeconfig", "storage-smoke-test"}
    for p in all_plans:
        for t in p.tasks:
            assert (t.check is None) == (t.step in no_check), t.id


def test_secrets_only_in_secret_files(all_plans: list[Plan], real_secrets: dict[str, str]) -> None:
    secret = real_secrets["microk8s_join_secret"]
    for p in all_plans:
        for t in p.tasks:
            for text in (t.title, t.run, t.check or ""):
                assert secret not in text, t.id
            for f in t.files:
                if secret in f.content:
                    assert f.secret and f.mode == 0o600, (t.id, f.path)
        text = plan_text(p, redactor_for(load_profile(PROFILE).spec.secrets, real_secrets))
        assert secret not in text


def test_the_snap_is_held_unless_the_option_says_not(
    plan: Plan, real_secrets: dict[str, str]
) -> None:
    # snapd refreshes every node to the channel's newest revision by itself, all at once:
    # held, the operator refreshes node by node. snap list's Notes say "held".
    t = plan.task("kn3:microk8s-install")
    assert "snap refresh --hold microk8s" in t.run
    assert t.check is not None and "{print $6}' | tr , '\\n' | grep -qx held" in t.check
    assert "! snap list" not in t.check
    free = make(example_answers(), real_secrets, options={"hold_refresh": False})
    t = free.task("kn3:microk8s-install")
    assert "snap refresh --unhold microk8s" in t.run and "--hold " not in t.run
    assert t.check is not None and "&& ! snap list microk8s" in t.check


def test_options(variant_plans: dict[str, Plan]) -> None:
    p = variant_plans["options"]
    assert steps_on(p, "static-address") == [f"kn{i}" for i in range(6)]
    assert steps_on(p, "ingress-on-vip") == ["kn0"]
    netplan = yaml.safe_load(p.task("kn3:static-address").files[0].content)
    assert netplan == {
        "network": {
            "version": 2,
            "ethernets": {
                "ens160": {
                    "dhcp4": False,
                    "addresses": ["10.30.217.23/24"],
                    "routes": [{"to": "default", "via": "10.30.217.1"}],
                    "nameservers": {"addresses": ["10.30.217.1", "9.9.9.9"]},
                }
            },
        }
    }
    assert p.task("kn3:static-address").files[0].mode == 0o600  # netplan refuses open modes
    assert "netplan apply" in p.task("kn3:static-address").run
    (_, svc), *_ = files_at([p], "/ingress-service.yaml")
    doc = yaml.safe_load(svc.content)
    assert doc["spec"]["type"] == "LoadBalancer"
    assert doc["spec"]["selector"] == {"name": "nginx-ingress-microk8s"}


def test_static_address_needs_facts(real_secrets: dict[str, str]) -> None:
    answers = example_answers()
    with pytest.raises(PlanError, match="no default gateway known for kn0"):
        make(answers, real_secrets, options={"static_address": True})


def test_channel_must_match_the_kubernetes_minor(real_secrets: dict[str, str]) -> None:
    doc = example_doc()
    doc["versions"] = {"kubernetes": "1.36"}
    with pytest.raises(PlanError, match=r"microk8s_channel 1\.35/stable is not on the track"):
        make(answers_from(doc), real_secrets)
    doc["versions"] = {"kubernetes": "1.36", "microk8s_channel": "1.36/candidate"}
    p = make(answers_from(doc), real_secrets)
    assert (
        'snap install microk8s --classic --channel="$channel"' in p.task("kn0:microk8s-install").run
    )
    assert "channel=1.36/candidate" in p.task("kn0:microk8s-install").run


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            {"kubernetes": "1.35.2"},
            "versions.kubernetes: '1.35.2' does not fit: it must be the MicroK8s track",
        ),
        (
            {"microk8s_channel": "latest/edge"},
            "versions.microk8s_channel: 'latest/edge' does not fit",
        ),
    ],
)
def test_a_patch_release_or_an_odd_channel_is_refused(
    versions: dict[str, str], message: str, real_secrets: dict[str, str]
) -> None:
    """A patch release here would pin nothing (the snap channel decides it): refused rather
    than cut to its minor."""
    doc = example_doc()
    doc["versions"] = versions
    with pytest.raises(PlanError, match=re.escape(message)):
        make(answers_from(doc), real_secrets)


def test_no_obsolete_names(all_plans: list[Plan]) -> None:
    assert obsolete_names(all_plans) == []


# --------------------------------------------------------------------------- real tools


def test_kubernetes_manifests_validate(all_plans: list[Plan]) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    kinds: dict[str, int] = {}
    for f in distinct_files(all_plans, ".yaml").values():
        if "/etc/fmp/manifests/" not in f.path:
            continue
        for doc in yaml_docs(f.content):
            if doc["apiVersion"].startswith("openebs.io/"):
                continue  # a CRD without an upstream schema: test_diskpools_match_the_crd
            used = kv.validate(doc, K8S_VERSION, strict=True)
            assert used == minor_of(K8S_VERSION), (used, K8S_VERSION)
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert set(kinds) == {"StorageClass", "Service", "PersistentVolumeClaim"}, kinds


def test_yamllint(all_plans: list[Plan], tmp_path: Path) -> None:
    yamllint = require_tool("yamllint")
    # truthy check-keys off: a step's unquoted `on:` key is read as `on` by the loader.
    config = (
        "{extends: default, rules: {line-length: {max: 160}, document-start: disable, "
        "truthy: {check-keys: false}}}"
    )
    paths = [str(REPO / "profiles" / PROFILE / "profile.yaml"), str(EXAMPLE)]
    for i, (_, f) in enumerate(sorted(distinct_files(all_plans, ".yaml").items())):
        path = tmp_path / f"{i}-{Path(f.path).name}"
        path.write_text(f.content)
        paths.append(str(path))
    assert len(paths) > 15
    r = run_tool([yamllint, "-f", "parsable", "-d", config, *paths])
    assert r.returncode == 0, r.stdout + r.stderr


def test_bash_syntax_of_every_run_and_check(all_plans: list[Plan], tmp_path: Path) -> None:
    bash = require_tool("bash")
    n = 0
    for p in all_plans:
        for t in p.tasks:
            for what, text in (("run", t.run), ("check", t.check or "")):
                path = tmp_path / f"s{n}.sh"
                path.write_text(text)
                n += 1
                r = run_tool([bash, "-n", str(path)])
                assert r.returncode == 0, f"{t.id} {what}\n{r.stderr}\n{text}"
    assert n > 200


INSTALLER_DHCP = "network:\n  version: 2\n  ethernets:\n    ens160:\n      dhcp4: true\n"


def test_netplan_generate_accepts_the_static_configs(
    variant_plans: dict[str, Plan], tmp_path: Path
) -> None:
    netplan = require_tool("netplan")
    configs = files_at([variant_plans["options"]], "/etc/netplan/90-fmp-static.yaml")
    assert len(configs) == 6
    for i, (t, f) in enumerate(configs):
        root = tmp_path / f"root{i}"
        (root / "etc/netplan").mkdir(parents=True)
        # Over the Ubuntu installer's DHCP file, as on a freshly installed host.
        for name, text in (
            ("00-installer-config.yaml", INSTALLER_DHCP),
            (Path(f.path).name, f.content),
        ):
            (root / "etc/netplan" / name).write_text(text)
            (root / "etc/netplan" / name).chmod(0o600)
        r = run_tool([netplan, "generate", "--root-dir", str(root)])
        assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}\n{f.content}"
        network = (root / "run/systemd/network/10-netplan-ens160.network").read_text()
        address = f"10.30.217.2{i}/24"
        assert f"Address={address}" in network and "Gateway=10.30.217.1" in network
        assert "DNS=10.30.217.1" in network and "DHCP=" not in network


@pytest.mark.parametrize("earlier", ["dhcp", "static"])
def test_static_address_script_refuses_a_second_address(
    variant_plans: dict[str, Plan], tmp_path: Path, earlier: str
) -> None:
    bash, netplan = require_tool("bash"), require_tool("netplan")
    t = variant_plans["options"].task("kn1:static-address")
    netplan_dir = tmp_path / "etc/netplan"
    netplan_dir.mkdir(parents=True)
    first = INSTALLER_DHCP
    if earlier == "static":
        first = first.replace("dhcp4: true", "addresses: [10.30.217.99/24]")
    for name, text in (
        ("00-installer-config.yaml", first),
        ("90-fmp-static.yaml", t.files[0].content),
    ):
        (netplan_dir / name).write_text(text)
        (netplan_dir / name).chmod(0o600)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # The real netplan on the test's root; "apply" only logged.
    (bindir / "netplan").write_text(
        "#!/bin/bash\n"
        f'if [ "$1" = apply ]; then echo apply >> {tmp_path}/applied; exit 0; fi\n'
        f'cmd=$1; shift; exec {netplan} "$cmd" --root-dir {tmp_path} "$@"\n'
    )
    (bindir / "netplan").chmod(0o755)
    run = t.run.replace("/etc/netplan/", f"{netplan_dir}/")
    r = run_tool([bash, "-c", run], env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    if earlier == "dhcp":
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / "applied").read_text() == "apply\n"
    else:
        assert r.returncode == 1 and "also sets addresses for ens160" in r.stderr, r.stderr
        assert not (tmp_path / "applied").exists()
        assert not (netplan_dir / "90-fmp-static.yaml").exists()


# --------------------------------------------------------------------------- scripts against fakes

FAKE_MICROK8S = """#!/bin/bash
# A stand-in for microk8s: logs its arguments, answers as the real one does.
echo "$*" >> "$FAKE_LOG"
case "$1" in
  status) exit 0 ;;
  add-node)
    while [ $# -gt 0 ]; do
      [ "$1" = --token ] && token=$2
      shift
    done
    echo "$token/e8d855527aa7" ;;
  kubectl) [ -e "$FAKE_STATE/joined" ] ;;
  join) touch "$FAKE_STATE/joined"; echo "Contacting cluster at ${2%%:*}" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


def fake_env(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "microk8s"
    fake.write_text(FAKE_MICROK8S)
    fake.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_STATE": str(state),
    }


def relocated(text: str, tmp_path: Path) -> str:
    return text.replace("/etc/fmp/", f"{tmp_path}/")


def test_add_node_script_registers_every_token(plan: Plan, tmp_path: Path) -> None:
    bash = require_tool("bash")
    env = fake_env(tmp_path)
    t = plan.task("kn0:microk8s-add-node")
    (tmp_path / "microk8s-join-tokens").write_text(t.files[0].content)
    r = run_tool([bash, "-c", relocated(t.run, tmp_path)], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(t.captures[0].pattern, r.stdout).group("value") == "e8d855527aa7"  # type: ignore[union-attr]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    adds = [c for c in calls if c.startswith("add-node")]
    assert len(adds) == 5
    for line in t.files[0].content.splitlines():
        _node, token = line.split()
        assert f"add-node --token {token} --token-ttl 1800 --format token-check" in adds
    assert token not in r.stdout  # the tokens are never printed


@pytest.mark.parametrize("task_id", ["kn1:microk8s-join-manager", "kn4:microk8s-join-worker"])
def test_join_script_joins_once(plan: Plan, tmp_path: Path, task_id: str) -> None:
    bash = require_tool("bash")
    env = fake_env(tmp_path)
    t = plan.task(task_id)
    token = t.files[0].content.strip()
    (tmp_path / "microk8s-join-token").write_text(t.files[0].content)
    run = relocated(t.run, tmp_path).replace("@@FMP_CAPTURE:microk8s.fingerprint@@", "e8d855527aa7")
    run = run.replace("/var/snap/microk8s/current/var/lock", env["FAKE_STATE"])
    for _ in range(2):  # the second run finds the node joined and does nothing
        r = run_tool([bash, "-c", run], env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        if t.step == "microk8s-join-worker":
            (Path(env["FAKE_STATE"]) / "clustered.lock").touch()
    joins = [c for c in (tmp_path / "calls.log").read_text().splitlines() if c.startswith("join")]
    expected = f"join 10.30.217.20:25000/{token}/e8d855527aa7"
    if t.step == "microk8s-join-worker":
        expected += " --worker"
    assert joins == [expected]


def test_hosts_file_script(plan: Plan, tmp_path: Path) -> None:
    bash = require_tool("bash")
    t = plan.task("kn2:hosts-file")
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n127.0.1.1 ubuntu-server\n\n"
        "# The following lines are desirable for IPv6 capable hosts\n::1 ip6-localhost\n"
    )
    (tmp_path / "hosts.block").write_text(t.files[0].content)
    run = relocated(t.run, tmp_path).replace("/etc/hosts", str(hosts))
    check = relocated(t.check or "", tmp_path).replace("/etc/hosts", str(hosts))
    check = check.split("&&", 1)[1]  # without files_ok (the block is at the test's path)
    assert run_tool([bash, "-c", check]).returncode != 0
    for _ in range(2):
        r = run_tool([bash, "-c", run])
        assert r.returncode == 0, r.stderr
        assert run_tool([bash, "-c", check]).returncode == 0
    text = hosts.read_text()
    assert "127.0.1.1" not in text and "127.0.0.1 localhost" in text and "::1 ip6-localhost" in text
    assert text.count("# BEGIN fmp-install") == 1
    assert "10.30.217.22\tkn2\n" in text and "10.30.217.25\tkn5\n" in text


# --------------------------------------------------------------------------- golden and CLI


def test_golden_plan_txt() -> None:
    answers = example_answers()
    profile = load_profile(PROFILE)
    p = make_plan(answers, profile, facts=synthetic_facts(answers), secrets=FAKE_SECRETS)
    text = plan_text(p, redactor_for(profile.spec.secrets, FAKE_SECRETS), answers)
    assert FAKE_SECRETS["microk8s_join_secret"] not in text
    check_golden(GOLDEN, text)


def test_fmp_install_plan_cli(tmp_path: Path) -> None:
    answers = example_answers()
    facts = tmp_path / "facts.json"
    save_facts(facts, synthetic_facts(answers).values())
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
            str(facts),
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = (out / "plan.txt").read_text()
    assert "microk8s join" in text and f"microk8s enable metallb:{VIP}/32" in text
    assert (out / "kn0" / "etc/fmp/manifests/openebs-diskpools.yaml").exists()
    token = (out / "kn3" / "etc/fmp/microk8s-join-token").read_text().strip()
    assert len(token) == 32 and token not in text
    assert shlex.quote(token) not in text
