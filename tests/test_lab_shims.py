"""The shims answer as the real tools do, and share cluster state across nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import require_tool
from tests.labkit import Lab, start_lab, stop_lab

pytestmark = pytest.mark.slow

K8S_REPO = (
    "mkdir -p /etc/apt/keyrings && curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key"
    " | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg && echo 'deb [signed-by=/etc/apt/keyrings/"
    "kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /' > /etc/apt/sources.list.d/kubernetes.list"
    " && apt-get update -q >/dev/null"
)
PREP = (
    "swapoff -a && modprobe br_netfilter && sysctl -qw net.ipv4.ip_forward=1 && "
    f"{K8S_REPO} && apt-get install -y -q containerd kubelet kubeadm kubectl >/dev/null"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_tool("ssh")
    spec = {"base_address": "127.77.8.11", "vip": "127.77.8.100", "reboot_seconds": 1,
            "nodes": [{"name": f"kn{i}"} for i in range(5)]}  # fmt: skip
    lab = start_lab(tmp_path_factory.mktemp("shims") / "D", spec)
    yield lab
    stop_lab(lab)


def test_packages_need_their_repository(lab: Lab) -> None:
    r = lab.run("kn4", "apt-get install -y kubeadm")
    assert r.returncode == 100 and "E: Unable to locate package kubeadm" in r.stderr
    r = lab.run(
        "kn4",
        "echo 'deb https://apt.kubernetes.io/ kubernetes-xenial main' > /etc/apt/sources.list.d/old.list; apt-get update",
    )
    assert r.returncode == 100 and "does not have a Release file" in r.stderr
    lab.ok("kn4", "rm /etc/apt/sources.list.d/old.list")
    assert lab.run("kn4", "command -v kubeadm").returncode == 1
    lab.ok(
        "kn4",
        f"{K8S_REPO} && apt-get install -y kubeadm=1.35.1-1.1 >/dev/null && apt-mark hold kubeadm",
    )
    assert lab.ok("kn4", "kubeadm version -o short").strip() == "v1.35.1"
    assert lab.ok("kn4", "dpkg -l kubeadm | tail -1").startswith("hi")
    r = lab.run("kn4", "apt-get install -y kubeadm=1.35.2-1.1")
    assert r.returncode == 100 and "Held packages were changed" in r.stderr
    # pkgs.k8s.io's <version>-<revision>, pinned by a glob as the profile does
    r = lab.run("kn4", "apt-get install -y 'kubeadm=1.35.99-*'")
    assert r.returncode == 100 and "E: Version '1.35.99-*' for 'kubeadm' was not found" in r.stderr
    lab.ok("kn4", "apt-get install -y --allow-change-held-packages 'kubeadm=1.35.9-*' >/dev/null")
    assert lab.ok("kn4", "kubeadm version -o short").strip() == "v1.35.9"
    assert lab.ok("kn4", "dpkg-query -W -f='${Version}' kubeadm") == "1.35.9-1.1"


@pytest.mark.parametrize(
    ("version", "error"),
    [
        ("1.35", 'version "1.35" doesn\'t match patterns for neither semantic version nor labels'),
        (
            "v1.33.4",
            "this version of kubeadm only supports deploying clusters with the control plane "
            "version >= 1.34.0. Current version: v1.33.4",
        ),
    ],
)
def test_kubeadm_init_refuses_a_version_it_cannot_deploy(
    lab: Lab, version: str, error: str
) -> None:
    """kubeadm 1.35.9 (kn4, above): a bare minor is no version, and 1.33 is too old."""
    config = (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        f"kubernetesVersion: {version}\n"
    )
    lab.ok("kn4", "mkdir -p /tmp/fmp && cat > /tmp/fmp/init.yaml", input=config)
    r = lab.run("kn4", "kubeadm init --config /tmp/fmp/init.yaml")
    assert r.returncode == 1 and error in r.stderr, r.stderr
    assert lab.run("kn4", "test -e /etc/kubernetes/admin.conf").returncode != 0


def test_kubeadm_join_and_kubectl_get_nodes(lab: Lab) -> None:
    for n in ("kn0", "kn1", "kn2"):
        lab.ok(n, PREP)
    r = lab.run("kn0", "kubectl get nodes")
    assert r.returncode == 1 and "localhost:8080 was refused" in r.stderr
    init = lab.ok(
        "kn0",
        "kubeadm init --upload-certs --control-plane-endpoint kn0.lab:6443 --pod-network-cidr 10.244.0.0/16".replace(
            "kn0.lab", lab.node("kn0")["address"]
        ),
    )
    assert "Your Kubernetes control-plane has initialized successfully!" in init
    assert "[init] Using Kubernetes version: v1.35.9" in init  # the newest in the repository
    # kubeadm token list: kubeadm's columns, an RFC 3339 expiry and init's own description
    lab.ok("kn0", "KUBECONFIG=/etc/kubernetes/admin.conf kubeadm token create --ttl 4h")
    listed = lab.ok("kn0", "kubeadm token list").splitlines()
    assert listed[0] == (
        "TOKEN                     TTL         EXPIRES                USAGES                   "
        "DESCRIPTION                                                EXTRA GROUPS"
    )
    ids = [line.split()[0] for line in listed[1:]]
    assert ids == sorted(ids)  # the API lists the bootstrap-token-<id> Secrets by name
    rows = {line.split()[1]: line for line in listed[1:]}  # by TTL
    assert sorted(rows) == ["23h", "3h"]
    for line in rows.values():
        _token, _ttl, expires, rest = line.split(maxsplit=3)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expires), line
        assert rest.startswith("authentication,signing   ")
        assert rest.endswith("   system:bootstrappers:kubeadm:default-node-token")
    init_token = "The default bootstrap token generated by 'kubeadm init'.   system:"
    assert init_token in rows["23h"]
    assert "   <none>" + " " * 53 + "system:" in rows["3h"]
    worker_join = re.search(
        r"^kubeadm join .*?(?=\n\S|\Z)", init.split("worker nodes")[1], re.MULTILINE | re.DOTALL
    )
    assert worker_join
    join = " ".join(worker_join.group(0).replace("\\\n", " ").split())
    token = re.search(r"--token (\S+)", join).group(1)  # type: ignore[union-attr]
    bad = lab.run("kn1", join.replace(token, "abcdef.0123456789abcdef"))
    assert bad.returncode == 1 and "could not find a JWS signature" in bad.stderr
    bad_hash = lab.run("kn1", re.sub(r"sha256:\w+", "sha256:" + "0" * 64, join))
    assert bad_hash.returncode == 1 and "none of the public keys" in bad_hash.stderr
    assert "This node has joined the cluster" in lab.ok("kn1", join)
    again = lab.run("kn1", join)
    assert again.returncode == 1 and "kubelet.conf already exists" in again.stderr
    swap_on = lab.run("kn2", "swapon -a && " + join)
    assert swap_on.returncode == 1 and "[ERROR Swap]" in swap_on.stderr
    lab.ok("kn2", "swapoff -a && " + join)
    nodes = lab.ok("kn0", "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get nodes --no-headers")
    assert [line.split()[:3] for line in nodes.splitlines()] == [
        ["kn0", "NotReady", "control-plane"], ["kn1", "NotReady", "<none>"], ["kn2", "NotReady", "<none>"]]  # fmt: skip
    lab.ok("kn0", "mkdir -p ~/.kube && cp /etc/kubernetes/admin.conf ~/.kube/config && "
           "kubectl apply -f https://raw.githubusercontent.com/projectcalico/calico/v3.29.1/manifests/calico.yaml")  # fmt: skip
    lab.ok("kn0", "kubectl wait --for=condition=Ready nodes --all --timeout=10s")
    names = json.loads(lab.ok("kn0", "kubectl get nodes -o json"))["items"]
    assert [n["metadata"]["name"] for n in names] == ["kn0", "kn1", "kn2"]
    r = lab.run(
        "kn0",
        "kubectl apply -f -",
        input="apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: default}\n",
    )
    assert r.returncode == 1 and "ensure CRDs are installed first" in r.stderr
    lab.ok("kn0", "snap install helm --classic")
    r = lab.run("kn0", "helm install x nope/chart")
    assert r.returncode == 1 and "repo nope not found" in r.stderr
    lab.ok(
        "kn0",
        "helm repo add metallb https://metallb.github.io/metallb && helm install metallb metallb/metallb -n metallb-system --create-namespace",
    )
    lab.ok(
        "kn0",
        "kubectl apply -f -",
        input="apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\n",
    )


def test_haproxy_and_keepalived_use_the_real_checks(lab: Lab) -> None:
    require_tool("haproxy")
    require_tool("keepalived")
    lab.ok("kn3", "apt-get install -y -q haproxy keepalived >/dev/null")
    good = "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 127.77.8.100:8443\n  default_backend b\nbackend b\n  server s 127.77.8.11:6443\n"
    lab.ok("kn3", "cat > /etc/haproxy/haproxy.cfg && systemctl restart haproxy", input=good)
    r = lab.run(
        "kn3",
        "cat > /etc/haproxy/haproxy.cfg && systemctl restart haproxy",
        input=good + "nonsense keyword\n",
    )
    assert r.returncode == 1 and "Job for haproxy.service failed" in r.stderr
    assert lab.run("kn3", "systemctl is-active haproxy").stdout.strip() == "failed"
    ka = "vrrp_instance VI_1 {\n  state MASTER\n  interface ens18\n  virtual_router_id 51\n  priority 150\n  virtual_ipaddress {\n    127.77.8.100/32\n  }\n}\n"
    lab.ok(
        "kn3",
        "cat > /etc/keepalived/keepalived.conf && systemctl enable --now keepalived",
        input=ka,
    )
    assert "127.77.8.100" in lab.ok("kn3", "ip -br addr show dev ens18")
    assert "127.77.8.100" not in lab.ok("kn4", "ip -br addr")


def test_microk8s_tokens_are_single_use(lab: Lab) -> None:
    assert lab.run("kn3", "microk8s enable dns").returncode == 127  # not installed yet
    for n in ("kn3", "kn4"):
        lab.ok(n, "snap install microk8s --classic --channel=1.35/stable")
    lab.ok("kn4", "microk8s stop")
    r = lab.run("kn4", "microk8s enable dns")
    assert r.returncode == 1 and "not running" in r.stdout + r.stderr
    lab.ok("kn4", "microk8s start")
    # snapd 2.58+: a held snap says so in snap list's Notes
    assert lab.ok("kn4", "snap refresh --hold microk8s").strip() == (
        'General refreshes of "microk8s" held indefinitely'
    )
    assert lab.ok("kn4", "snap list microk8s").splitlines()[1].split()[-1] == "classic,held"
    assert lab.run("kn4", "snap refresh --hold helm").returncode == 1  # not installed
    out = lab.ok("kn3", "microk8s add-node")
    url = re.search(r"microk8s join (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"127\.77\.8\.14:25000/[0-9a-f]{32}/[0-9a-f]{12}", url)
    assert "Successfully joined the cluster." in lab.ok("kn4", f"microk8s join {url}")
    reused = lab.run("kn1", f"snap install microk8s --classic >/dev/null; microk8s join {url}")
    assert reused.returncode == 1 and "Invalid token" in reused.stdout + reused.stderr
    nodes = lab.ok("kn3", "microk8s kubectl get nodes --no-headers")
    assert [line.split()[0] for line in nodes.splitlines()] == ["kn3", "kn4"]
    assert "MetalLB is enabled" in lab.ok(
        "kn3", "microk8s enable metallb:127.77.8.100-127.77.8.100"
    )


def test_ceph_status_counts_the_osds_added(lab: Lab) -> None:
    lab.ok("kn4", "apt-get install -y -q docker.io >/dev/null")
    lab.ok(
        "kn4",
        "curl -fsSLo /usr/local/bin/cephadm https://download.ceph.com/rpm-19.2.3/el9/noarch/cephadm && chmod +x /usr/local/bin/cephadm",
    )
    lab.ok("kn4", "cephadm install ceph-common >/dev/null")
    # rbd speaks for itself (librados), not like the ceph CLI, when there is no cluster to reach.
    r = lab.run("kn4", "rbd ls kube")
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[-2:] == [
        "rbd: couldn't connect to the cluster!",
        "rbd: listing images failed: (2) No such file or directory",
    ]
    assert "RADOS object not found" not in r.stderr and "cannot identify monitors" in r.stderr
    boot = lab.ok("kn4", f"cephadm bootstrap --mon-ip {lab.node('kn4')['address']}")
    assert "Bootstrap complete." in boot
    # No OSD has ever come up or in: no "(since ...)".
    assert "    osd: 0 osds: 0 up, 0 in\n" in lab.ok("kn4", "ceph -s")
    assert lab.ok("kn4", "ceph osd stat").startswith("0 osds: 0 up, 0 in; epoch: e")
    assert json.loads(lab.ok("kn4", "ceph -s -f json"))["osdmap"]["osd_up_since"] == 0
    # No admin keyring: cephx refuses, rbd exits with EACCES.
    keyring = "/etc/ceph/ceph.client.admin.keyring"
    r = lab.run(
        "kn4",
        f"mv {keyring} /root/k; rbd create kube/x --size 1G; rc=$?; mv /root/k {keyring}; exit $rc",
    )
    assert r.returncode == 13 and r.stderr.endswith("rbd: couldn't connect to the cluster!\n"), (
        r.stderr
    )
    r = lab.run("kn4", "ceph orch host add kn2 127.77.8.13")
    assert r.returncode == 22 and "Permission denied" in r.stderr
    pub = lab.ok("kn4", "cat /etc/ceph/ceph.pub")
    lab.ok("kn2", "cat >> /root/.ssh/authorized_keys", input=pub)
    lab.ok("kn4", "ceph orch host add kn2 127.77.8.13")
    lab.ok("kn4", "ceph orch daemon add osd kn4:/dev/sdb && ceph orch daemon add osd kn2:/dev/sdb")
    r = lab.run("kn4", "ceph orch daemon add osd kn2:/dev/sdb")
    assert r.returncode == 22 and "unavailable" in r.stderr
    status = lab.ok("kn4", "ceph -s")
    assert "osd: 2 osds: 2 up (since 2m), 2 in (since 2m)" in status and "HEALTH_WARN" in status
    assert "ceph--" in lab.ok("kn2", "lsblk")  # the OSD's LV shows on the disk's own node
    assert json.loads(lab.ok("kn4", "ceph -s -f json"))["osdmap"]["num_osds"] == 2
    assert "pool 'kube' created" in lab.run("kn4", "ceph osd pool create kube 32 32").stderr


def test_rke2_server_and_agent(lab: Lab) -> None:
    lab.ok(
        "kn1",
        "curl -sfL https://get.rke2.io | sh - >/dev/null && systemctl enable --now rke2-server",
    )
    token = lab.ok("kn1", "cat /var/lib/rancher/rke2/server/node-token").strip()
    cfg = f"server: https://{lab.node('kn1')['address']}:9345\ntoken: wrong\n"
    r = lab.run(
        "kn2",
        "curl -sfL https://get.rke2.io | INSTALL_RKE2_TYPE=agent sh - >/dev/null && mkdir -p /etc/rancher/rke2 && cat > /etc/rancher/rke2/config.yaml && systemctl start rke2-agent",
        input=cfg,
    )
    assert r.returncode == 1 and "rke2-agent.service failed" in r.stderr
    lab.ok(
        "kn2",
        "cat > /etc/rancher/rke2/config.yaml && systemctl restart rke2-agent",
        input=cfg.replace("wrong", token),
    )
    nodes = lab.ok(
        "kn1",
        "/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml get nodes --no-headers",
    )
    assert [line.split()[:2] for line in nodes.splitlines()] == [["kn1", "Ready"], ["kn2", "Ready"]]


def test_every_call_is_logged(lab: Lab) -> None:
    lab.ok("kn0", "systemctl is-enabled ssh >/dev/null; sysctl -n vm.swappiness")
    calls = lab.calls("kn0")
    tools = [c["tool"] for c in calls]
    assert "systemctl" in tools and "sysctl" in tools
    last = calls[-1]
    assert last["tool"] == "sysctl" and last["argv"] == ["-n", "vm.swappiness"] and last["rc"] == 0
    assert last["node"] == "kn0"
