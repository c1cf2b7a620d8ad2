"""The kubeadm-etcd profile's output, checked by the real tools.

haproxy -c, keepalived -t, a real 3-member TLS etcd cluster on loopback started
from the rendered unit's flags, kubernetes-validate, chronyd -p, yamllint, the
kubeadm v1beta4 field names, bash -n, a golden plan.txt, and no obsolete
names in any profile's default output.

kubeadm is not installed here: the etcd certificates the plan makes with
``kubeadm init phase certs etcd-*`` are made by ``make_member_certs`` below with
the same CA (from the secrets), subjects, SANs and usages as kubeadm's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.answers import Answers, parse_answers
from installer.plan import PlanError, plan_text
from installer.plan_model import Plan, Task
from installer.profile import load_profile
from installer.secrets import redactor_for
from tests.conftest import REPO, require_tool
from tests.profile_tools import (
    answers_file,
    check_golden,
    generated_secrets,
    host_interface,
    minor_of,
    obsolete_names,
    profile_plan,
)

GOLDEN = Path(__file__).parent / "golden" / "kubeadm-etcd.plan.txt"
# kubernetes-validate checks against the profile's pinned release (1.35.9). It ships one
# schema per minor (v1.35.0-local...), and uses the newest one not newer than the minor asked
# for: test_kubernetes_manifests_validate asserts that this is the pinned minor itself.
K8S_VERSION = load_profile("kubeadm-etcd").spec.versions["kubernetes"]

# Fixed stand-ins, so that the golden plan does not change from run to run.
FAKE_SECRETS = {
    "etcd_ca.crt": "-----BEGIN CERTIFICATE-----\nFAKE-CA-CERT\n-----END CERTIFICATE-----\n",
    "etcd_ca.key": "-----BEGIN RSA PRIVATE KEY-----\nFAKE-CA-KEY-0123456789\n-----END RSA PRIVATE KEY-----\n",
    "keepalived_auth": "Vrrp1234",
}


def example_answers() -> Answers:
    return answers_file(REPO / "examples" / "answers.yaml")


@pytest.fixture(scope="module")
def real_secrets() -> dict[str, str]:
    return generated_secrets("kubeadm-etcd")


@pytest.fixture(scope="module")
def plan(real_secrets: dict[str, str]) -> Plan:
    return profile_plan("kubeadm-etcd", example_answers(), real_secrets, nic=host_interface())


@pytest.fixture(scope="module")
def local_lb_plan(real_secrets: dict[str, str]) -> Plan:
    return profile_plan(
        "kubeadm-etcd",
        example_answers(),
        real_secrets,
        options={"worker_local_lb": True, "cni": "flannel"},
        nic=host_interface(),
    )


def files_named(plan: Plan, suffix: str) -> list[tuple[Task, Any]]:
    return [(t, f) for t in plan.tasks for f in t.files if f.path.endswith(suffix)]


def unique_files(plans: list[Plan], suffix: str) -> dict[str, str]:
    """path-per-host -> content, over several plans (identical files counted once)."""
    out: dict[str, str] = {}
    for p in plans:
        for t, f in files_named(p, suffix):
            out.setdefault(f"{t.host}:{f.path}:{hash(f.content)}", f.content)
    return out


# --------------------------------------------------------------------------- the plan's shape


def test_order_and_placement(plan: Plan) -> None:
    ids = [t.id for t in plan.tasks]
    pos = {t: i for i, t in enumerate(ids)}
    assert [t for t in ids if t.endswith(":kubeadm-init")] == ["kn0:kubeadm-init"]
    assert [t for t in ids if t.endswith(":kubeadm-join-control-plane")] == [
        "kn1:kubeadm-join-control-plane",
        "kn2:kubeadm-join-control-plane",
    ]
    assert plan.task("kn1:kubeadm-join-control-plane").serial
    assert {t for t in ids if t.endswith(":etcd-service")} == {
        f"kn{i}:etcd-service" for i in range(3)
    }
    for w in ("kn3", "kn4", "kn5"):
        join = plan.task(f"{w}:kubeadm-join-worker")
        assert "kn2:kubeadm-join-control-plane" in join.needs  # workers after the control plane
        assert pos[join.id] > pos["kn0:kubeadm-init"]
        assert f"{w}:etcd-service" not in pos
    init = plan.task("kn0:kubeadm-init")
    assert {"kn0:etcd-health", "kn1:lb-keepalived", "kn2:lb-haproxy"} <= set(init.needs)
    # Uploaded certificates are deleted after 2 h: a later join gets fresh ones first.
    assert init.fresh_for is not None and init.fresh_for < 2 * 3600
    assert {c.name for c in init.captures} == {
        "kubeadm.join_command",
        "kubeadm.token",
        "kubeadm.ca_cert_hash",
        "kubeadm.certificate_key",
    }
    assert plan.task("kn1:kubeadm-join-control-plane").uses == {
        "kubeadm.token",
        "kubeadm.ca_cert_hash",
        "kubeadm.certificate_key",
    }
    assert "kn0:cni-calico" in pos and not [t for t in ids if "flannel" in t]


def test_captures_match_kubeadm_output(plan: Plan) -> None:
    token, key = "abcdef.0123456789abcdef", "a" * 64
    hash_ = "sha256:" + "b" * 64
    out = (
        "[upload-certs] Using certificate key:\n" + "c" * 64 + "\n"
        f"fmp: join command: kubeadm join 10.30.217.100:8443 --token {token} "
        f"--discovery-token-ca-cert-hash {hash_} \n"
        f"fmp: certificate key: {key}\n"
    )
    got = {}
    for c in plan.task("kn0:kubeadm-init").captures:
        m = re.search(c.pattern, out, re.MULTILINE)
        assert m, c.name
        got[c.name] = m.group("value")
    assert got["kubeadm.token"] == token
    assert got["kubeadm.ca_cert_hash"] == hash_
    assert got["kubeadm.certificate_key"] == key
    assert got["kubeadm.join_command"].startswith("kubeadm join 10.30.217.100:8443 --token")


def test_every_step_is_rerunnable(plan: Plan, local_lb_plan: Plan) -> None:
    # Without a check: the health checks themselves, and the steps that re-issue values for
    # later steps on every run (their captures).
    no_check = {
        "etcd-health",  # etcdctl endpoint health: a check
        "kubeadm-init",  # re-issues join credentials; init itself is guarded in its script
        "cluster-ready",  # kubectl wait: a check
        "kubeconfig",  # prints the admin kubeconfig for the capture
    }
    for p in (plan, local_lb_plan):
        for t in p.tasks:
            assert (t.check is None) == (t.step in no_check), t.id


def test_kubeadm_init_runs_once_and_reissues_credentials(plan: Plan, tmp_path: Path) -> None:
    """kubeadm-init has no check, so its script is what makes a re-run safe: run it twice
    against a stand-in kubeadm and count the inits."""
    k8s = tmp_path / "etc-kubernetes"
    (k8s / "kubeadm").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "kubeadm.log"
    (bindir / "kubeadm").write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        'case "$1 $2" in\n'
        f'  "init --config") touch {k8s}/admin.conf ;;\n'
        '  "init phase") echo "[upload-certs] Using certificate key:"; printf "%064d\\n" 7 ;;\n'
        '  "token create") echo "kubeadm join 10.30.217.100:8443 --token abcdef.0123456789abcdef'
        ' --discovery-token-ca-cert-hash sha256:$(printf "%064d" 3) " ;;\n'
        "esac\n"
    )
    (bindir / "kubeadm").chmod(0o755)
    task = plan.task("kn0:kubeadm-init")
    script = task.run.replace("/etc/kubernetes", str(k8s))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    for _ in range(2):
        r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert {c.name for c in task.captures if re.search(c.pattern, r.stdout)} == {
            c.name for c in task.captures
        }
    calls = log.read_text().splitlines()
    assert [c for c in calls if c.startswith("init --config")] == [
        f"init --config {k8s}/kubeadm/init.yaml --upload-certs --skip-token-print "
        "--skip-certificate-key-print"
    ]
    assert len([c for c in calls if c.startswith("token create")]) == 2


# --------------------------------------------------------------------------- versions


def test_kubernetes_is_pinned_to_a_patch_release(plan: Plan) -> None:
    version = load_profile("kubeadm-etcd").spec.versions["kubernetes"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    minor = minor_of(version)
    packages = plan.task("kn3:k8s-packages")
    assert f"version='{version}-*'" in packages.run
    assert '"kubelet=$version" "kubeadm=$version" "kubectl=$version"' in packages.run
    assert "apt-mark hold kubelet kubeadm kubectl" in packages.run
    assert f'test "$(kubeadm version -o short)" = v{version}' in (packages.check or "")
    for t, f in files_named(plan, "init.yaml") + files_named(plan, "etcd-certs.yaml"):
        assert f"\nkubernetesVersion: v{version}\n" in f.content, t.id
        assert "stable-" not in f.content  # no lookup of a release label on the internet
    repo = plan.task("kn3:k8s-apt-repo")
    assert f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key" in repo.run


@pytest.mark.parametrize("version", ["1.34", "v1.35.9", "1.35.9-1.1", "stable-1.35"])
def test_a_bare_minor_is_refused(version: str, real_secrets: dict[str, str]) -> None:
    answers = example_answers().model_copy(update={"versions": {"kubernetes": version}})
    with pytest.raises(PlanError) as exc:
        profile_plan("kubeadm-etcd", answers, real_secrets)
    assert str(exc.value).startswith(
        f"versions.kubernetes: '{version}' does not fit: it must be an exact Kubernetes patch release"
    )
    assert "e.g. 1.35.9" in str(exc.value)


def test_the_pinned_minor_names_the_pinned_release(real_secrets: dict[str, str]) -> None:
    # DESIGN.md's example answers say kubernetes: "1.35": that is the release the profile pins.
    answers = example_answers().model_copy(update={"versions": {"kubernetes": "1.35"}})
    p = profile_plan("kubeadm-etcd", answers, real_secrets)
    assert "version='1.35.9-*'" in p.task("kn0:k8s-packages").run
    init = next(f for t, f in files_named(p, "/kubeadm/init.yaml"))
    assert "\nkubernetesVersion: v1.35.9\n" in init.content


def test_an_override_with_a_patch_release_is_used_whole(real_secrets: dict[str, str]) -> None:
    answers = example_answers().model_copy(update={"versions": {"kubernetes": "1.35.2"}})
    p = profile_plan("kubeadm-etcd", answers, real_secrets)
    assert "version='1.35.2-*'" in p.task("kn0:k8s-packages").run
    init = next(f for t, f in files_named(p, "/kubeadm/init.yaml"))
    assert "\nkubernetesVersion: v1.35.2\n" in init.content


def test_options(local_lb_plan: Plan) -> None:
    ids = {t.id for t in local_lb_plan.tasks}
    assert {"kn3:worker-local-lb", "kn3:kubelet-local-lb", "kn0:cni-flannel"} <= ids
    assert "kn0:cni-calico" not in ids
    join = local_lb_plan.task("kn4:kubeadm-join-worker")
    assert "kn4:worker-local-lb" in join.needs


def test_secrets_only_in_secret_files(plan: Plan, real_secrets: dict[str, str]) -> None:
    key = real_secrets["etcd_ca.key"]
    pw = real_secrets["keepalived_auth"]
    for t in plan.tasks:
        assert pw not in t.run and key not in t.run and pw not in (t.check or "")
        for f in t.files:
            if key in f.content or pw in f.content:
                assert f.secret and f.mode == 0o600, (t.id, f.path)
    text = plan_text(plan, redactor_for(load_profile("kubeadm-etcd").spec.secrets, real_secrets))
    assert pw not in text and key.splitlines()[5] not in text


# --------------------------------------------------------------------------- real tools


def test_haproxy_configs(plan: Plan, local_lb_plan: Plan, tmp_path: Path) -> None:
    haproxy = require_tool("haproxy")
    configs = unique_files([plan, local_lb_plan], "/haproxy/haproxy.cfg")
    assert len(configs) >= 4  # kn0-kn2 (VIP) and the workers' local ones
    for i, (where, text) in enumerate(sorted(configs.items())):
        path = tmp_path / f"haproxy-{i}.cfg"
        path.write_text(text)
        r = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{where}\n{r.stdout}{r.stderr}"
    lb = plan.task("kn0:lb-haproxy").files[0].content
    assert "bind *:8443" in lb and "http-check send meth GET uri /healthz" in lb
    assert "server kn2 10.30.217.22:6443" in lb


def test_keepalived_configs(plan: Plan, tmp_path: Path) -> None:
    keepalived = require_tool("keepalived")
    configs = files_named(plan, "/keepalived/keepalived.conf")
    scripts = files_named(plan, "/keepalived/check_apiserver.sh")
    assert len(configs) == 3 and len(scripts) == 3
    states = []
    for i, ((t, conf), (_, script)) in enumerate(zip(configs, scripts, strict=True)):
        d = tmp_path / f"ka{i}"
        d.mkdir()
        (d / "check_apiserver.sh").write_text(script.content)
        (d / "check_apiserver.sh").chmod(0o755)
        text = conf.content.replace(
            "/etc/keepalived/check_apiserver.sh", str(d / "check_apiserver.sh")
        )
        (d / "keepalived.conf").write_text(text)
        r = subprocess.run(
            [keepalived, "-t", "-f", str(d / "keepalived.conf")], capture_output=True, text=True
        )
        assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}"
        states.append(re.search(r"state (\w+)", conf.content).group(1))  # type: ignore[union-attr]
        assert "virtual_router_id 51" in conf.content and "auth_type PASS" in conf.content
    assert states == ["MASTER", "BACKUP", "BACKUP"]


def test_chrony_configs(plan: Plan, tmp_path: Path) -> None:
    chronyd = require_tool("chronyd")
    configs = files_named(plan, "/chrony/chrony.conf")
    assert len(configs) == 6
    for i, (t, f) in enumerate(configs):
        path = tmp_path / f"chrony-{i}.conf"
        path.write_text(f.content)
        r = subprocess.run([chronyd, "-p", "-f", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{t.id}\n{r.stdout}{r.stderr}"
    assert "local stratum 10" in configs[0][1].content
    assert "server 10.30.217.20 iburst prefer" in configs[3][1].content


def test_bash_syntax_of_every_run_check_and_script(
    plan: Plan, local_lb_plan: Plan, tmp_path: Path
) -> None:
    bash = require_tool("bash")
    n = 0
    for p in (plan, local_lb_plan):
        for t in p.tasks:
            texts = [("run", t.run), ("check", t.check or "")]
            texts += [(f.path, f.content) for f in t.files if f.content.startswith("#!/bin/")]
            for what, text in texts:
                path = tmp_path / f"s{n}.sh"
                path.write_text(text)
                n += 1
                shell = "sh" if text.startswith("#!/bin/sh") else bash
                r = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
                assert r.returncode == 0, f"{t.id} {what}\n{r.stderr}\n{text}"
    assert n > 150


def test_yamllint(plan: Plan, local_lb_plan: Plan, tmp_path: Path) -> None:
    yamllint = require_tool("yamllint")
    # truthy check-keys off: a step's unquoted `on:` key is read as `on` by the loader.
    config = (
        "{extends: default, rules: {line-length: {max: 160}, document-start: disable, "
        "truthy: {check-keys: false}}}"
    )
    paths = [str(REPO / "profiles" / "kubeadm-etcd" / "profile.yaml")]
    for p in (plan, local_lb_plan):
        for i, (_where, text) in enumerate(sorted(unique_files([p], ".yaml").items())):
            path = tmp_path / f"{p.tasks[0].host}-{len(paths)}-{i}.yaml"
            path.write_text(text)
            paths.append(str(path))
    assert len(paths) > 10
    r = subprocess.run(
        [yamllint, "-f", "parsable", "-d", config, *paths], capture_output=True, text=True
    )
    errors = [line for line in r.stdout.splitlines() if "[error]" in line]
    assert r.returncode == 0 and not errors, r.stdout


def test_kubernetes_manifests_validate(plan: Plan, local_lb_plan: Plan) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    checked, skipped = 0, []
    for p in (plan, local_lb_plan):
        for t in p.tasks:
            for f in t.files:
                if not f.path.startswith("/etc/kubernetes/fmp/"):
                    continue
                for doc in yaml.safe_load_all(f.content):
                    api = doc["apiVersion"]
                    if api.endswith("tigera.io/v1"):  # a CRD of the operator: no schema upstream
                        skipped.append(doc["kind"])
                        continue
                    used = kv.validate(doc, K8S_VERSION, strict=True)
                    assert used == minor_of(K8S_VERSION), (used, K8S_VERSION)
                    checked += 1
    assert checked >= 1 and "Installation" in skipped


# kubeadm.k8s.io/v1beta4, field for field from cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go
# (and bootstraptoken/v1 for bootstrapTokens). A dict is an object with those keys, a list
# holds items of its one element, None is a leaf.
_ARG = {"name": None, "value": None}
_ENV = {"name": None, "value": None, "valueFrom": None}
_TAINT = {"key": None, "value": None, "effect": None, "timeAdded": None}
_NODE_REG = {
    "name": None,
    "criSocket": None,
    "taints": [_TAINT],
    "kubeletExtraArgs": [_ARG],
    "ignorePreflightErrors": None,
    "imagePullPolicy": None,
    "imagePullSerial": None,
}
_ENDPOINT = {"advertiseAddress": None, "bindPort": None}
_TIMEOUTS = dict.fromkeys(
    [
        "controlPlaneComponentHealthCheck",
        "kubeletHealthCheck",
        "kubernetesAPICall",
        "etcdAPICall",
        "tlsBootstrap",
        "discovery",
        "upgradeManifests",
    ]
)
_PATCHES = {"directory": None}
_VOLUME = {"name": None, "hostPath": None, "mountPath": None, "readOnly": None, "pathType": None}
_COMPONENT = {"extraArgs": [_ARG], "extraVolumes": [_VOLUME], "extraEnvs": [_ENV]}
_BOOTSTRAP_TOKEN = dict.fromkeys(["token", "description", "ttl", "expires", "usages", "groups"])
_META = {"apiVersion": None, "kind": None}
KUBEADM_V1BETA4: dict[str, dict[str, Any]] = {
    "InitConfiguration": {
        **_META,
        "bootstrapTokens": [_BOOTSTRAP_TOKEN],
        "dryRun": None,
        "nodeRegistration": _NODE_REG,
        "localAPIEndpoint": _ENDPOINT,
        "certificateKey": None,
        "skipPhases": None,
        "patches": _PATCHES,
        "timeouts": _TIMEOUTS,
    },
    "ClusterConfiguration": {
        **_META,
        "etcd": {
            "local": {
                "imageRepository": None,
                "imageTag": None,
                "dataDir": None,
                "extraArgs": [_ARG],
                "extraEnvs": [_ENV],
                "serverCertSANs": None,
                "peerCertSANs": None,
            },
            "external": dict.fromkeys(["endpoints", "caFile", "certFile", "keyFile"]),
        },
        "networking": dict.fromkeys(["serviceSubnet", "podSubnet", "dnsDomain"]),
        "kubernetesVersion": None,
        "controlPlaneEndpoint": None,
        "apiServer": {**_COMPONENT, "certSANs": None},
        "controllerManager": _COMPONENT,
        "scheduler": _COMPONENT,
        "dns": dict.fromkeys(["imageRepository", "imageTag", "disabled"]),
        "proxy": {"disabled": None},
        "certificatesDir": None,
        "imageRepository": None,
        "featureGates": None,
        "clusterName": None,
        "encryptionAlgorithm": None,
        "certificateValidityPeriod": None,
        "caCertificateValidityPeriod": None,
    },
    "JoinConfiguration": {
        **_META,
        "dryRun": None,
        "nodeRegistration": _NODE_REG,
        "caCertPath": None,
        "discovery": {
            "bootstrapToken": dict.fromkeys(
                ["token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"]
            ),
            "file": {"kubeConfigPath": None},
            "tlsBootstrapToken": None,
        },
        "controlPlane": {"localAPIEndpoint": _ENDPOINT, "certificateKey": None},
        "skipPhases": None,
        "patches": _PATCHES,
        "timeouts": _TIMEOUTS,
    },
}
REQUIRED = {"JoinConfiguration": ["discovery"], "ClusterConfiguration": []}


def _check_fields(value: Any, schema: Any, where: str) -> list[str]:
    if schema is None:
        return []
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [
            e for i, v in enumerate(value) for e in _check_fields(v, schema[0], f"{where}[{i}]")
        ]
    if not isinstance(value, dict):
        return [f"{where}: expected a mapping"]
    errors = [f"{where}.{k}: not a v1beta4 field" for k in value if k not in schema]
    for k, v in value.items():
        if k in schema:
            errors += _check_fields(v, schema[k], f"{where}.{k}")
    return errors


def test_kubeadm_configs_use_v1beta4_fields(plan: Plan) -> None:
    seen: set[str] = set()
    for t in plan.tasks:
        for f in t.files:
            if "/etc/kubernetes/kubeadm/" not in f.path:
                continue
            for doc in yaml.safe_load_all(f.content):
                if doc["apiVersion"] == "kubelet.config.k8s.io/v1beta1":
                    assert set(doc) <= {"apiVersion", "kind", "cgroupDriver"}
                    continue
                assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta4", f.path
                kind = doc["kind"]
                seen.add(kind)
                assert not _check_fields(doc, KUBEADM_V1BETA4[kind], f"{t.id}:{f.path}:{kind}")
                for key in REQUIRED.get(kind, []):
                    assert key in doc
                if kind == "ClusterConfiguration" and "external" in doc.get("etcd", {}):
                    ext = doc["etcd"]["external"]
                    assert ext["endpoints"] == [f"https://10.30.217.2{i}:2379" for i in range(3)]
                    assert doc["controlPlaneEndpoint"] == "10.30.217.100:8443"
                    assert "10.30.217.100" in doc["apiServer"]["certSANs"]
                    assert doc["networking"]["podSubnet"] == "10.244.0.0/16"
    assert seen == {"InitConfiguration", "ClusterConfiguration", "JoinConfiguration"}


def test_containerd_script_sets_systemd_cgroup_per_config_version(
    plan: Plan, tmp_path: Path
) -> None:
    bash = require_tool("bash")
    script = plan.task("kn0:containerd-config").files[0].content
    (tmp_path / "fix").write_text(script)
    v3 = (
        "version = 3\n\n[plugins]\n  [plugins.'io.containerd.cri.v1.runtime']\n"
        "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
        "      runtime_type = 'io.containerd.runc.v2'\n"
        "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
        "        BinaryName = ''\n        SystemdCgroup = false\n"
        "  [plugins.'io.containerd.gc.v1.scheduler']\n    pause_threshold = 0.02\n"
    )
    v2 = (
        'version = 2\n\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n'
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
        '      BinaryName = ""\n'
    )
    for name, default, table in (
        ("v3", v3, "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]"),
        ("v2", v2, '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]'),
    ):
        bindir = tmp_path / name
        bindir.mkdir()
        (bindir / "default.toml").write_text(default)
        fake = bindir / "containerd"
        fake.write_text(f"#!/bin/sh\ncat {shlex.quote(str(bindir / 'default.toml'))}\n")
        fake.chmod(0o755)
        out = bindir / "config.toml"
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
        r = subprocess.run(
            [bash, str(tmp_path / "fix"), str(out)], env=env, capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        text = out.read_text()
        section = text.split(table, 1)[1].split("\n  [", 1)[0]
        assert "SystemdCgroup = true" in section, text
        assert "SystemdCgroup = false" not in text


# --------------------------------------------------------------------------- a real etcd cluster

# A loopback /24 of its own per test process, so that two runs on one machine do not collide.
ETCD_NET = f"127.{100 + os.getpid() % 150}.{os.getpid() // 150 % 250 + 1}"
ETCD_ANSWERS = """\
version: 1
cluster: {{name: fmp}}
profile: kubeadm-etcd
ssh: {{user: fmpadmin}}
hosts:
  - {{address: {net}.1, name: kn0, roles: [control-plane, etcd, lb]}}
  - {{address: {net}.2, name: kn1, roles: [control-plane, etcd, lb]}}
  - {{address: {net}.3, name: kn2, roles: [control-plane, etcd, lb]}}
  - {{address: {net}.4, name: kn3, roles: [worker]}}
network: {{vip: {net}.100}}
"""


def make_member_certs(pki: Path, name: str, address: str, ca_crt: str, ca_key: str) -> None:
    """What kubeadm init phase certs etcd-server/etcd-peer/etcd-healthcheck-client make."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = x509.load_pem_x509_certificate(ca_crt.encode())
    ca_private = serialization.load_pem_private_key(ca_key.encode(), password=None)
    etcd = pki / "etcd"
    etcd.mkdir(parents=True, exist_ok=True)
    (etcd / "ca.crt").write_text(ca_crt)
    now = dt.datetime.now(dt.UTC)
    # kubeadm: DNS names = node name + localhost, IPs = advertise address, 127.0.0.1, ::1,
    # plus serverCertSANs/peerCertSANs from etcd-certs.yaml (address and name).
    sans = [
        x509.DNSName(name),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address(address)),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    server_client = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for base, cn, usages, alt in (
        ("server", name, server_client, sans),
        ("peer", name, server_client, sans),
        (
            "healthcheck-client",
            "kube-etcd-healthcheck-client",
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            None,
        ),
    ):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(ca_private, hashes.SHA256())  # type: ignore[arg-type]
        (etcd / f"{base}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (etcd / f"{base}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (etcd / f"{base}.key").chmod(0o600)


def exec_start(unit: str) -> list[str]:
    m = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit.replace("\\\n", " "), re.MULTILINE)
    assert m, unit
    return shlex.split(m.group(1))


# Flags the profile's etcd unit may render that only etcd 3.6 knows (flag -> why it is
# there). None today: every flag of the unit is one etcd 3.4 has too, so the cluster below
# runs the rendered flags as they are even where only an older etcd is installed (Debian 12
# has 3.4.23, and no 3.6 package is reachable from the test machines).
ETCD_36_ONLY: dict[str, str] = {}


def etcd_version(etcd: str) -> str:
    r = subprocess.run([etcd, "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"^etcd Version: (\S+)", r.stdout, re.MULTILINE)
    assert m, r.stdout + r.stderr
    return m.group(1)


def etcd_flags(etcd: str) -> set[str]:
    """The flags ``etcd --help`` documents (it prints part of the text on stderr)."""
    r = subprocess.run([etcd, "--help"], capture_output=True, text=True, timeout=30)
    flags = set(re.findall(r"^\s+--([a-z0-9-]+)", r.stdout + r.stderr, re.MULTILINE))
    assert {"name", "data-dir", "listen-client-urls"} <= flags, r.stdout + r.stderr
    return flags


@pytest.fixture
def etcd_cluster(
    tmp_path: Path, real_secrets: dict[str, str], record_property: Any
) -> Iterator[tuple[Plan, Path, str]]:
    etcd = require_tool("etcd")
    version = etcd_version(etcd)
    pinned = load_profile("kubeadm-etcd").spec.versions["etcd"]
    record_property("etcd_version", version)
    print(f"real etcd cluster: etcd {version} (the profile pins {pinned})")
    answers = parse_answers(ETCD_ANSWERS.format(net=ETCD_NET), semantic=False)
    plan = profile_plan("kubeadm-etcd", answers, real_secrets)
    units = [t for t in plan.tasks if t.step == "etcd-service"]
    assert len(units) == 3
    # Every flag the unit renders for etcd 3.6 must be one this etcd accepts too; a flag
    # only 3.6 has skips the cluster test on an older etcd, naming it.
    known = etcd_flags(etcd)
    rendered = {a[2:].split("=", 1)[0] for t in units for a in exec_start(t.files[0].content)[1:]}
    missing = sorted(rendered - known)
    assert not set(missing) - set(ETCD_36_ONLY), (
        f"etcd {version} does not know the rendered flags {missing}"
    )
    if missing:
        pytest.skip(f"etcd {version} lacks the etcd 3.6 flags {missing}: needs etcd 3.6")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for t in units:
            host = answers.host(t.host)
            assert host is not None and host.name is not None
            root = tmp_path / host.name
            make_member_certs(
                root / "pki",
                host.name,
                host.address,
                real_secrets["etcd_ca.crt"],
                real_secrets["etcd_ca.key"],
            )
            # The unit's own flags; only its folders move into this test's directory. (Each
            # member listens on its host's address only, so three share this machine.)
            argv = [
                a.replace("/etc/kubernetes/pki", str(root / "pki")).replace(
                    "/var/lib/etcd", str(root / "data")
                )
                for a in exec_start(t.files[0].content)
            ]
            assert argv[0] == "/usr/local/bin/etcd"
            assert not [a for a in argv if "127.0.0.1" in a], argv
            log = (tmp_path / f"{host.name}.log").open("wb")
            procs.append(subprocess.Popen([etcd, *argv[1:]], stdout=log, stderr=subprocess.STDOUT))
        yield plan, tmp_path, version
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_real_etcd_cluster_from_rendered_flags(etcd_cluster: tuple[Plan, Path, str]) -> None:
    require_tool("etcdctl")
    plan, tmp, version = etcd_cluster
    ran = f"(etcd {version})"
    # The plan's own health check, with this test's certificate folder.
    check = plan.task("kn0:etcd-health").run
    check = check.replace("/etc/kubernetes/pki", str(tmp / "kn0" / "pki")).replace(
        "/usr/local/bin/etcdctl", "etcdctl"
    )
    assert "endpoint health --cluster" in check
    deadline = time.monotonic() + 60
    while True:
        # A member that is still starting can be missing from a successful answer:
        # wait (bounded) until the cluster reports all three.
        r = subprocess.run(["bash", "-c", check], capture_output=True, text=True, timeout=30)
        healthy = [line for line in (r.stdout + r.stderr).splitlines() if "is healthy" in line]
        if (r.returncode == 0 and len(healthy) == 3) or time.monotonic() > deadline:
            break
        time.sleep(1)
    logs = "".join((tmp / f"kn{i}.log").read_text(errors="replace")[-2000:] for i in range(3))
    assert r.returncode == 0, f"{ran} {r.stdout}{r.stderr}\n{logs}"
    assert len(healthy) == 3, ran + r.stdout + r.stderr
    # The backup script takes a real snapshot (it talks to the member's own address).
    script = plan.task("kn0:etcd-backup").files[0].content
    assert f"--endpoints=https://{ETCD_NET}.1:2379" in script
    script = (
        script.replace("/etc/kubernetes/pki", str(tmp / "kn0" / "pki"))
        .replace("/var/backups/etcd", str(tmp / "backups"))
        .replace("/usr/local/bin/etcdctl", "etcdctl")
    )
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, ran + r.stdout + r.stderr
    assert list((tmp / "backups").glob("etcd-*.db"))


# --------------------------------------------------------------------------- golden and hygiene


def test_golden_plan_txt() -> None:
    answers = example_answers()
    profile = load_profile("kubeadm-etcd")
    plan = profile_plan("kubeadm-etcd", answers, FAKE_SECRETS)
    text = plan_text(plan, redactor_for(profile.spec.secrets, FAKE_SECRETS), answers)
    assert "Vrrp1234" not in text and "FAKE-CA-KEY" not in text
    check_golden(GOLDEN, text)


def test_no_obsolete_names(plan: Plan, local_lb_plan: Plan) -> None:
    assert obsolete_names([plan, local_lb_plan]) == []


def test_obsolete_names_catch_bare_old_betas_outside_the_allowed_apis(plan: Plan) -> None:
    task = plan.tasks[0]

    def found(text: str) -> list[str]:
        return obsolete_names(
            [dataclasses.replace(plan, tasks=(dataclasses.replace(task, run=text),))]
        )

    assert found("apiVersion: kubeadm.k8s.io/v1beta3") == [f"{task.id} contains 'v1beta3'"]
    assert found("apiVersion: flowcontrol.apiserver.k8s.io/v1beta2") == [
        f"{task.id} contains 'v1beta2'"
    ]
    assert found("apiVersion: openebs.io/v1beta3") == []  # OpenEBS's current DiskPool API
    assert found("apiVersion: openebs.io/v1beta3\n# was kubeadm.k8s.io/v1beta3") == [
        f"{task.id} contains 'v1beta3'"
    ]
