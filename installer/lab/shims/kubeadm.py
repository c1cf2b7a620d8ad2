"""kubeadm: init, join, tokens, certificate keys, reset, with the real preflight errors."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, kubestate
from installer.lab.shims.base import die, err, out
from installer.lab.shims.kube import k8s_version

CERTS_TTL = 2 * 3600


TOKEN_TTL = 24 * 3600


def _token() -> str:
    return f"{base.rand_alnum(6)}.{base.rand_alnum(16)}"


def _my_address() -> str:
    return str(base.node().get("address", "127.0.0.1"))


def _preflight(ignore: set[str], joining: bool, control_plane: bool) -> list[str]:
    errors = []
    f = base.facts()
    if base.peek_node("swap").get("on") and "swap" not in ignore:
        errors.append("[ERROR Swap]: running with swap on is not supported. Please disable swap")
    fwd = base.read_node_file("/proc/sys/net/ipv4/ip_forward")
    if (fwd or "0").strip() != "1" and "filecontent--proc-sys-net-ipv4-ip_forward" not in ignore:
        errors.append(
            "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"
        )
    pkgs = base.peek_node("packages").get("installed", {})
    cri_ok = any(p in pkgs for p in ("containerd", "containerd.io")) or _cri_socket_answers()
    cfg = base.read_node_file("/etc/containerd/config.toml") or ""
    if "cri" not in ignore:
        if not cri_ok:
            errors.append(
                '[ERROR CRI]: could not connect to the container runtime: failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory"'
            )
        elif re.search(r'disabled_plugins\s*=\s*\[[^\]]*"cri"', cfg):
            errors.append(
                '[ERROR CRI]: could not connect to the container runtime: failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService'
            )
    if control_plane and int(f["cpus"]) < 2 and "numcpu" not in ignore:
        errors.append(
            f"[ERROR NumCPU]: the number of available CPUs {f['cpus']} is less than the required 2"
        )
    if control_plane and f["memory_gb"] * 1024 < 1700 and "mem" not in ignore:
        errors.append(
            f"[ERROR Mem]: the system RAM ({int(f['memory_gb'] * 1024)} MB) is less than the minimum 1700 MB"
        )
    if Path("/etc/kubernetes/kubelet.conf").exists() and joining:
        errors.append(
            "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"
        )
    if Path("/etc/kubernetes/manifests/kube-apiserver.yaml").exists() and control_plane:
        errors.append("[ERROR Port-6443]: Port 6443 is in use")
        errors.append(
            "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists"
        )
    if Path("/var/lib/kubelet/config.yaml").exists():
        errors.append("[ERROR Port-10250]: Port 10250 is in use")
    if "all" in ignore:
        return []
    return errors


def _cri_socket_answers(path: str = "/run/containerd/containerd.sock") -> bool:
    """kubeadm dials the CRI socket: a containerd started from its release binaries listens there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
        return True
    except OSError:
        return False


def _fail_preflight(errors: list[str]) -> None:
    err("error execution phase preflight: [preflight] Some fatal errors occurred:")
    for e in errors:
        err(f"\t{e}")
    err(
        "[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
    )
    err("To see the stack trace of this error execute with --v=5 or higher")
    raise base.ShimExit(1)


def _load_config(path: str | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    text = base.read_node_file(path)
    if text is None:
        die(f'unable to read config from "{path}" : open {path}: no such file or directory', 1)
    try:
        docs = base.load_yaml_docs(text)
    except Exception as exc:
        die(f"error converting YAML to JSON: {exc}", 1)
    found: dict[str, dict[str, Any]] = {}
    for d in docs:
        if not isinstance(d, dict):
            continue
        api, kind = str(d.get("apiVersion", "")), str(d.get("kind", ""))
        if api.startswith("kubeadm.k8s.io/") and api.split("/")[1] in ("v1beta1", "v1beta2"):
            die(
                f"your configuration file uses an old API spec: \"{api}\". Please use kubeadm v1.22 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.",
                1,
            )
        if api.startswith("kubeadm.k8s.io/") and api.split("/")[1] not in ("v1beta3", "v1beta4"):
            die(
                f'no kind "{kind}" is registered for version "{api}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"',
                1,
            )
        if api == "kubeadm.k8s.io/v1beta3":
            err(
                f'W0101 00:00:00.000000    1234 common.go:101] your configuration file uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: "{kind}"). Please use \'kubeadm config migrate --old-config old.yaml --new-config new.yaml\', which will write the new, similar spec using a newer API version.'
            )
        found[kind] = d
    return found


def _external_etcd(cc: dict[str, Any]) -> list[str]:
    ext = (cc.get("etcd") or {}).get("external") or {}
    endpoints = ext.get("endpoints") or []
    if not endpoints:
        return []
    errors = []
    for key in ("caFile", "certFile", "keyFile"):
        f = ext.get(key)
        if f and not Path(f).exists():
            errors.append(f"[ERROR ExternalEtcdClientCertificates]: {f} doesn't exist")
    if errors:
        return errors
    for ep in endpoints:
        m = re.match(r"(\w+)://([^:/]+):(\d+)", ep)
        if not m:
            continue
        try:
            with socket.create_connection((m.group(2), int(m.group(3))), timeout=1):
                return []
        except OSError:
            continue
    first = endpoints[0]
    host = re.sub(r"^\w+://", "", first)
    return [
        f'[ERROR ExternalEtcdVersion]: Get "{first}/version": dial tcp {host}: connect: connection refused'
    ]


def _ca_hash() -> str:
    return "sha256:" + hashlib.sha256(base.rand_hex(32).encode()).hexdigest()


WITHHELD = "<value withheld>"  # kubeadm init --skip-token-print / --skip-certificate-key-print


def _join_command(
    st: dict[str, Any], token: str, control_plane: bool, *, key: str | None = None
) -> str:
    cmd = f"kubeadm join {st['endpoint']} --token {token} \\\n\t--discovery-token-ca-cert-hash {st['ca_hash']}"
    if control_plane:
        cmd += f" \\\n\t--control-plane --certificate-key {key or st['certificate_key']}"
    return cmd


def _write_control_plane_files(server: str, local_etcd: bool) -> None:
    for d in ("/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubelet"):
        Path(d).mkdir(parents=True, exist_ok=True)
    for comp in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] + (
        ["etcd"] if local_etcd else []
    ):
        Path(f"/etc/kubernetes/manifests/{comp}.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {comp}\n  namespace: kube-system\n",
            encoding="utf-8",
        )
    for f in ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key"):
        p = Path("/etc/kubernetes/pki") / f
        if not p.exists():
            p.write_text(
                f"-----BEGIN {'CERTIFICATE' if f.endswith('crt') else 'PRIVATE KEY'}-----\n{base.rand_hex(64)}\n-----END-----\n",
                encoding="utf-8",
            )
    for conf in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"):
        kubestate.write_kubeconfig(f"/etc/kubernetes/{conf}", "kubeadm", server)


def _write_node_files(server: str) -> None:
    Path("/var/lib/kubelet").mkdir(parents=True, exist_ok=True)
    Path("/etc/kubernetes/pki").mkdir(parents=True, exist_ok=True)
    kubestate.write_kubeconfig("/etc/kubernetes/kubelet.conf", "kubeadm", server)
    Path("/var/lib/kubelet/config.yaml").write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
        encoding="utf-8",
    )
    Path("/var/lib/kubelet/kubeadm-flags.env").write_text(
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"\n',
        encoding="utf-8",
    )
    ca = Path("/etc/kubernetes/pki/ca.crt")
    if not ca.exists():
        ca.write_text(
            f"-----BEGIN CERTIFICATE-----\n{base.rand_hex(64)}\n-----END CERTIFICATE-----\n",
            encoding="utf-8",
        )


def _start_kubelet() -> None:
    with base.node_state("units") as st:
        u = st.setdefault("kubelet.service", {})
        u.update({"active": True, "enabled": True, "failed": False, "since": time.time()})


# kubeadm's flags that take a value (``--ttl 4h``): their values are not positional arguments.
VALUED_FLAGS = {
    "--config", "--ttl", "--kubeconfig", "--cert-dir", "--node-name", "--token",
    "--discovery-token", "--discovery-token-ca-cert-hash", "--discovery-file",
    "--tls-bootstrap-token", "--certificate-key", "--ignore-preflight-errors", "--cri-socket",
    "--apiserver-advertise-address", "--apiserver-bind-port", "--apiserver-cert-extra-sans",
    "--control-plane-endpoint", "--pod-network-cidr", "--service-cidr", "--service-dns-domain",
    "--kubernetes-version", "-o", "--output", "--description", "--groups", "--usages",
    "--skip-phases", "--feature-gates", "--image-repository", "--rootfs", "-v", "--v",
    "--log-file", "--patches", "--kubeconfig-dir", "--csr-dir",
}  # fmt: skip


def _positional(args: list[str]) -> list[str]:
    words, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in VALUED_FLAGS:
            skip = True
        elif not a.startswith("-"):
            words.append(a)
    return words


def kubeadm(args: list[str]) -> int:
    words = _positional(args)
    verb = words[0] if words else ""
    ignore = {x.lower() for v in base.opts(args, "--ignore-preflight-errors") for x in v.split(",")}
    if verb == "version":
        v = k8s_version()
        fmt = base.opt(args, "-o", "--output")
        if fmt == "short":
            out(v)
        else:
            out(
                f'kubeadm version: &version.Info{{Major:"1", Minor:"{v.split(".")[1]}", GitVersion:"{v}", GitCommit:"0a1b2c3d", GitTreeState:"clean", BuildDate:"2025-12-17T12:00:00Z", GoVersion:"go1.25.5", Compiler:"gc", Platform:"linux/amd64"}}'
            )
        return 0
    if verb == "init" and words[1:2] == ["phase"]:
        return _init_phase(words[2:], args)
    if verb == "init":
        return _init(args, ignore)
    if verb == "join":
        return _join(args, words, ignore)
    if verb == "token":
        return _token_cmd(words[1:], args)
    if verb == "reset":
        return _reset(args)
    if verb == "certs" and words[1:2] == ["certificate-key"]:
        out(base.rand_hex(64))
        return 0
    if verb == "config":
        return _config_cmd(words[1:], args)
    if verb == "upgrade":
        out(
            f"[upgrade/versions] Cluster version: {k8s_version()}\n[upgrade/versions] kubeadm version: {k8s_version()}"
        )
        return 0
    die(f'unknown command "{verb}" for "kubeadm"\nRun \'kubeadm --help\' for usage.', 1)


def _init(args: list[str], ignore: set[str]) -> int:
    cfg = _load_config(base.opt(args, "--config"))
    init_cfg = cfg.get("InitConfiguration", {})
    cc = cfg.get("ClusterConfiguration", {})
    version = str(
        cc.get("kubernetesVersion") or base.opt(args, "--kubernetes-version") or k8s_version()
    )
    if re.match(r"(stable|latest)(-\d+(\.\d+)?)?$", version):
        # A release label (dl.k8s.io/release/stable-1.35.txt): the newest patch of that
        # minor, which is the kubeadm installed from that minor's repository.
        version = k8s_version()
    if not version.startswith("v"):
        version = "v" + version
    out(f"[init] Using Kubernetes version: {version}")
    out("[preflight] Running pre-flight checks")
    errors = _preflight(ignore, joining=False, control_plane=True) + _external_etcd(cc)
    if errors:
        _fail_preflight(errors)
    name = (
        (init_cfg.get("nodeRegistration") or {}).get("name")
        or base.opt(args, "--node-name")
        or base.node_name()
    )
    advertise = ((init_cfg.get("localAPIEndpoint") or {}).get("advertiseAddress")
                 or base.opt(args, "--apiserver-advertise-address") or _my_address())  # fmt: skip
    endpoint = (
        cc.get("controlPlaneEndpoint")
        or base.opt(args, "--control-plane-endpoint")
        or f"{advertise}:6443"
    )
    if ":" not in str(endpoint):
        endpoint = f"{endpoint}:6443"
    upload = "--upload-certs" in args
    cert_key = (
        base.opt(args, "--certificate-key") or init_cfg.get("certificateKey") or base.rand_hex(64)
    )
    tokens = [
        t.get("token")
        for t in init_cfg.get("bootstrapTokens", [])
        if isinstance(t, dict) and t.get("token")
    ]
    token = str(base.opt(args, "--token") or (tokens[0] if tokens else _token()))
    local_etcd = not ((cc.get("etcd") or {}).get("external"))
    server = f"https://{endpoint}"
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out(
        "[preflight] This might take a minute or two, depending on the speed of your internet connection"
    )
    out(
        "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
    )
    out('[certs] Using certificateDir folder "/etc/kubernetes/pki"')
    out('[certs] Generating "ca" certificate and key')
    out('[certs] Generating "apiserver" certificate and key')
    out(
        f"[certs] apiserver serving cert is signed for DNS names [{name} kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local] and IPs [10.96.0.1 {advertise} {endpoint.rsplit(':', 1)[0]}]"
    )
    if not local_etcd:
        out("[certs] External etcd mode: Skipping etcd/ca certificate authority generation")
    _write_control_plane_files(server, local_etcd)
    _write_node_files(server)
    out('[kubeconfig] Using kubeconfig folder "/etc/kubernetes"')
    for conf in (
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ):
        out(f'[kubeconfig] Writing "{conf}" kubeconfig file')
    out('[control-plane] Using manifest folder "/etc/kubernetes/manifests"')
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        out(f'[control-plane] Creating static Pod manifest for "{comp}"')
    out(
        '[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"'
    )
    out('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    out("[kubelet-start] Starting the kubelet")
    _start_kubelet()
    out(
        '[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory "/etc/kubernetes/manifests"'
    )
    out("[kubelet-check] The kubelet is healthy after 501.33ms")
    out("[control-plane-check] kube-apiserver is healthy after 4.50s")
    out(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace'
    )
    with base.cluster_state(kubestate.K8S) as st:
        st.clear()
        st.update({
            "initialized": True, "flavour": "kubeadm", "endpoint": endpoint, "version": version,
            "ca_hash": _ca_hash(), "certificate_key": cert_key if upload else None,
            "certs_uploaded_at": time.time() if upload else None,
            "tokens": {token: {"expires": time.time() + TOKEN_TTL}},
            "pod_subnet": ((cc.get("networking") or {}).get("podSubnet") or base.opt(args, "--pod-network-cidr")),
            "external_etcd": not local_etcd,
            "nodes": {name: {"control_plane": True, "joined": time.time(), "address": advertise, "host": base.node_name()}},
            "objects": {}, "cni": None,
        })  # fmt: skip
        state = dict(st)
    if upload:
        out(
            '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
        )
        if "--skip-certificate-key-print" not in args:
            out("[upload-certs] Using certificate key:")
            out(cert_key)
    out(
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"
    )
    out(
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]"
    )
    shown_token = WITHHELD if "--skip-token-print" in args else token
    shown_key = WITHHELD if "--skip-certificate-key-print" in args else None
    if "--skip-token-print" not in args:
        out(f"[bootstrap-token] Using token: {token}")
    out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    out('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    out(
        '[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client certificate and key'
    )
    out("[addons] Applied essential addon: CoreDNS")
    out("[addons] Applied essential addon: kube-proxy")
    out("\nYour Kubernetes control-plane has initialized successfully!\n")
    out("To start using your cluster, you need to run the following as a regular user:\n")
    out(
        "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
    )
    out(
        "Alternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n"
    )
    out("You should now deploy a pod network to the cluster.")
    out('Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:')
    out("  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n")
    if upload:
        out(
            "You can now join any number of control-plane nodes running the following command on each as root:\n"
        )
        out("  " + _join_command(state, shown_token, True, key=shown_key) + "\n")
        out(
            "Please note that the certificate-key gives access to cluster sensitive data, keep it secret!"
        )
        out(
            "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use"
        )
        out('"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n')
    out("Then you can join any number of worker nodes by running the following on each as root:\n")
    out(_join_command(state, shown_token, False) + " ")
    return 0


def _endpoint_reachable(endpoint: str) -> bool:
    host = endpoint.rpartition(":")[0]
    lab = base.lab()
    st = base.peek_cluster(kubestate.K8S)
    cps = [n for n in st.get("nodes", {}).values() if n.get("control_plane")]
    if host == lab.get("vip"):
        ka = base.peek_cluster("keepalived")
        holders = [n for n, v in ka.items() if v.get("active")]
        return bool(holders) and bool(cps)
    return any(host in (n.get("address"), n.get("host")) for n in cps) or host == endpoint


def _join(args: list[str], words: list[str], ignore: set[str]) -> int:
    cfg = _load_config(base.opt(args, "--config"))
    jc = cfg.get("JoinConfiguration", {})
    discovery = (jc.get("discovery") or {}).get("bootstrapToken") or {}
    endpoint = (words[1] if len(words) > 1 else None) or discovery.get("apiServerEndpoint")
    token = base.opt(args, "--token", "--discovery-token") or discovery.get("token")
    hashes = base.opts(args, "--discovery-token-ca-cert-hash") or list(
        discovery.get("caCertHashes") or []
    )
    control_plane = "--control-plane" in args or bool(jc.get("controlPlane"))
    cert_key = base.opt(args, "--certificate-key") or (jc.get("controlPlane") or {}).get(
        "certificateKey"
    )
    name = (
        base.opt(args, "--node-name")
        or (jc.get("nodeRegistration") or {}).get("name")
        or base.node_name()
    )
    out("[preflight] Running pre-flight checks")
    errors = _preflight(ignore, joining=True, control_plane=control_plane)
    if errors:
        _fail_preflight(errors)
    st = base.peek_cluster(kubestate.K8S)
    if not endpoint or not token:
        die(
            'discovery: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue',
            1,
        )
    if (
        not st.get("initialized")
        or st.get("flavour") != "kubeadm"
        or not _endpoint_reachable(endpoint)
    ):
        die(
            f'error execution phase preflight: couldn\'t validate the identity of the API Server: failed to request the cluster-info ConfigMap: Get "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp {endpoint}: connect: connection refused\nTo see the stack trace of this error execute with --v=5 or higher',
            1,
        )
    tok = st.get("tokens", {}).get(token)
    if tok is None or (tok.get("expires") and tok["expires"] < time.time()):
        die(
            f'error execution phase preflight: couldn\'t validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "{token.split(".")[0]}"\nTo see the stack trace of this error execute with --v=5 or higher',
            1,
        )
    if "--discovery-token-unsafe-skip-ca-verification" not in args and st["ca_hash"] not in hashes:
        die(
            f'error execution phase preflight: couldn\'t validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "{st["ca_hash"]}" are pinned\nTo see the stack trace of this error execute with --v=5 or higher',
            1,
        )
    if control_plane:
        uploaded = st.get("certs_uploaded_at")
        if not st.get("certificate_key") or not uploaded or uploaded + CERTS_TTL < time.time():
            die(
                'error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one\nTo see the stack trace of this error execute with --v=5 or higher',
                1,
            )
        if cert_key != st["certificate_key"]:
            die(
                "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed\nTo see the stack trace of this error execute with --v=5 or higher",
                1,
            )
    out(
        '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...'
    )
    server = f"https://{endpoint}"
    if control_plane:
        out(
            "[preflight] Running pre-flight checks before initializing the new control plane instance"
        )
        out(
            '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
        )
        _write_control_plane_files(server, not st.get("external_etcd"))
    _write_node_files(server)
    out('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    out(
        '[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"'
    )
    out("[kubelet-start] Starting the kubelet")
    _start_kubelet()
    out(
        "[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s"
    )
    out("[kubelet-check] The kubelet is healthy after 500.9ms")
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    with base.cluster_state(kubestate.K8S) as s:
        s.setdefault("nodes", {})[name] = {"control_plane": control_plane, "joined": time.time(),
                                           "address": _my_address(), "host": base.node_name()}  # fmt: skip
    if control_plane:
        out(
            f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"
        )
        out("\nThis node has joined the cluster and a new control plane instance was created:\n")
        out("* Certificate signing request was sent to apiserver and approval was received.")
        out("* The Kubelet was informed of the new secure connection details.")
        out("* Control plane label and taint were applied to the new node.")
        out("* The Kubernetes control plane instances scaled up.\n")
        out(
            "To start administering your cluster from this node, you need to run the following as a regular user:\n"
        )
        out(
            "\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
        )
        out("Run 'kubectl get nodes' to see this node join the cluster.\n")
    else:
        out("\nThis node has joined the cluster:")
        out("* Certificate signing request was sent to apiserver and a response was received.")
        out("* The Kubelet was informed of the new secure connection details.\n")
        out("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")
    return 0


def _need_admin() -> dict[str, Any]:
    st = base.peek_cluster(kubestate.K8S)
    if not Path("/etc/kubernetes/admin.conf").exists() or not st.get("initialized"):
        die(
            "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory\nTo see the stack trace of this error execute with --v=5 or higher",
            1,
        )
    return st  # type: ignore[no-any-return]


def _ttl(args: list[str]) -> float | None:
    ttl = base.opt(args, "--ttl")
    if ttl is None:
        return TOKEN_TTL
    m = re.fullmatch(r"(\d+)([hms]?)", ttl.replace("h0m0s", "h"))
    if not m:
        return TOKEN_TTL
    n = int(m.group(1)) * {"h": 3600, "m": 60, "s": 1, "": 1}[m.group(2)]
    return None if n == 0 else float(n)


def _token_cmd(words: list[str], args: list[str]) -> int:
    st = _need_admin()
    verb = words[0] if words else "list"
    if verb == "create":
        token = words[1] if len(words) > 1 else _token()
        ttl = _ttl(args)
        with base.cluster_state(kubestate.K8S) as s:
            s.setdefault("tokens", {})[token] = {"expires": time.time() + ttl if ttl else None}
        if "--print-join-command" in args:
            out(
                f"kubeadm join {st['endpoint']} --token {token} --discovery-token-ca-cert-hash {st['ca_hash']} "
            )
        else:
            out(token)
        return 0
    if verb == "list":
        out(
            "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS"
        )
        for token, t in st.get("tokens", {}).items():
            left = (
                "<forever>"
                if not t.get("expires")
                else f"{max(0, int((t['expires'] - time.time()) / 3600))}h"
            )
            out(
                f"{token}   {left:<11} -                      authentication,signing   <none>        system:bootstrappers:kubeadm:default-node-token"
            )
        return 0
    if verb == "delete":
        with base.cluster_state(kubestate.K8S) as s:
            for t in words[1:]:
                s.get("tokens", {}).pop(t, None)
                out(f'bootstrap token "{t.split(".")[0]}" deleted')
        return 0
    return 0


def _init_phase(words: list[str], args: list[str]) -> int:
    if words[:1] == ["upload-certs"] and "--upload-certs" in args:
        _need_admin()
        key = base.opt(args, "--certificate-key") or base.rand_hex(64)
        with base.cluster_state(kubestate.K8S) as s:
            s["certificate_key"] = key
            s["certs_uploaded_at"] = time.time()
        out(
            '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
        )
        out("[upload-certs] Using certificate key:")
        out(key)
        return 0
    if words[:1] == ["certs"] and len(words) > 1:
        return _certs_phase(words[1], args)
    if words[:1] == ["preflight"]:
        errors = _preflight(set(), joining=False, control_plane=True)
        if errors:
            _fail_preflight(errors)
        return 0
    return 0


# init phase certs: real X.509 files, as kubeadm makes them (RSA 2048, one year, signed by
# the CA already in the certificate directory). name -> (file base, CA base, CN, kind)
ETCD_CERTS: dict[str, tuple[str, str, str | None, str]] = {
    "etcd-server": ("etcd/server", "etcd/ca", None, "serving"),
    "etcd-peer": ("etcd/peer", "etcd/ca", None, "peer"),
    "etcd-healthcheck-client": ("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client", "client"),
    "apiserver-etcd-client": ("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", "client"),
}  # fmt: skip


def _alt_names(name: str, address: str, extra: list[Any]) -> tuple[list[str], list[str]]:
    """kubeadm's etcd SANs: node name and localhost; advertise address, 127.0.0.1, ::1; plus extra."""
    import ipaddress

    dns, ips = [name, "localhost"], [address, "127.0.0.1", "::1"]
    for san in extra:
        san = str(san)
        try:
            ipaddress.ip_address(san)
        except ValueError:
            if san not in dns:
                dns.append(san)
        else:
            if san not in ips:
                ips.append(san)
    return dns, ips


def _openssl(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *argv], capture_output=True, text=True, check=False)


def _certs_phase(phase: str, args: list[str]) -> int:
    """kubeadm init phase certs etcd-*/apiserver-etcd-client with the CA already on disk.

    Real files, as kubeadm makes them (RSA 2048, one year, signed by that CA), made with
    the real openssl (the lab's interpreter has no crypto library)."""
    if phase not in ETCD_CERTS:
        return 0  # the other certificates: made by kubeadm init / join here
    cfg = _load_config(base.opt(args, "--config"))
    init_cfg, cc = cfg.get("InitConfiguration", {}), cfg.get("ClusterConfiguration", {})
    pki = Path(base.opt(args, "--cert-dir") or cc.get("certificatesDir") or "/etc/kubernetes/pki")
    name = str((init_cfg.get("nodeRegistration") or {}).get("name") or base.node_name())
    address = str((init_cfg.get("localAPIEndpoint") or {}).get("advertiseAddress") or _my_address())
    local = (cc.get("etcd") or {}).get("local") or {}
    file_base, ca_base, cn, kind = ETCD_CERTS[phase]
    where = f"error execution phase certs/{phase}"
    trace = "\nTo see the stack trace of this error execute with --v=5 or higher"
    ca_crt, ca_key = pki / f"{ca_base}.crt", pki / f"{ca_base}.key"
    if not ca_crt.exists():
        die(
            f"{where}: couldn't load CA certificate {ca_base.replace('/', '-')}: couldn't load the certificate file {ca_crt}: open {ca_crt}: no such file or directory{trace}",
            1,
        )
    if _openssl("x509", "-in", str(ca_crt), "-noout").returncode != 0:
        die(
            f"{where}: couldn't load CA certificate {ca_base.replace('/', '-')}: error reading {ca_crt}: data does not contain any valid RSA or ECDSA certificates{trace}",
            1,
        )
    crt_path, key_path = pki / f"{file_base}.crt", pki / f"{file_base}.key"
    if crt_path.exists() and key_path.exists():
        if _openssl("verify", "-CAfile", str(ca_crt), str(crt_path)).returncode != 0:
            die(
                f"{where}: failure loading {file_base} certificate: certificate {file_base} is not signed by corresponding CA{trace}",
                1,
            )
        out(f"[certs] Using existing {file_base} certificate and key on disk")
        return 0
    if not ca_key.exists():
        die(
            f"{where}: couldn't load CA private key {ca_key}: open {ca_key}: no such file or directory{trace}",
            1,
        )
    out(f'[certs] Generating "{file_base}" certificate and key')
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
    ]
    if kind in ("serving", "peer"):
        extra = local.get("serverCertSANs" if kind == "serving" else "peerCertSANs") or []
        dns, ips = _alt_names(name, address, extra)
        ext += [
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectAltName=" + ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]),
        ]
        out(
            f"[certs] {file_base} serving cert is signed for DNS names [{' '.join(dns)}] and IPs [{' '.join(ips)}]"
        )
    else:
        ext.append("extendedKeyUsage=clientAuth")
    crt_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kubeadm-certs-"))
    try:
        (work / "ext.cnf").write_text("\n".join(ext) + "\n", encoding="utf-8")
        key = work / "key.pem"
        steps = [
            ("genrsa", "-traditional", "-out", str(key), "2048"),
            ("req", "-new", "-key", str(key), "-subj", f"/CN={cn or name}", "-out", str(work / "csr.pem")),
            ("x509", "-req", "-in", str(work / "csr.pem"), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-set_serial", "0x" + base.rand_hex(16), "-days", "365", "-sha256",
             "-extfile", str(work / "ext.cnf"), "-out", str(work / "crt.pem")),
        ]  # fmt: skip
        for argv in steps:
            r = _openssl(*argv)
            if r.returncode != 0:
                die(
                    f"{where}: failure while creating {file_base} key and certificate: {r.stderr.strip()}{trace}",
                    1,
                )
        key_path.write_bytes(key.read_bytes())
        key_path.chmod(0o600)
        crt_path.write_bytes((work / "crt.pem").read_bytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _reset(args: list[str]) -> int:
    if "-f" not in args and "--force" not in args:
        out("[reset] Are you sure you want to proceed? [y/N]: ", end="")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            die(
                "error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue",
                1,
            )
    import shutil

    out("[preflight] Running pre-flight checks")
    out("[reset] Stopping the kubelet service")
    out('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
    out(
        "[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]"
    )
    out(
        "[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]"
    )
    for d in ("/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubelet"):
        shutil.rmtree(d, ignore_errors=True)
    for f in (
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ):
        Path(f"/etc/kubernetes/{f}").unlink(missing_ok=True)
    with base.node_state("units") as u:
        u.setdefault("kubelet.service", {})["active"] = False
    with base.cluster_state(kubestate.K8S) as s:
        for name, n in list(s.get("nodes", {}).items()):
            if n.get("host") == base.node_name():
                del s["nodes"][name]
        if s.get("flavour") == "kubeadm" and not any(
            n.get("control_plane") for n in s.get("nodes", {}).values()
        ):
            s.clear()
    out(
        "\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d"
    )
    return 0


def _config_cmd(words: list[str], args: list[str]) -> int:
    if words[:2] == ["images", "pull"]:
        pkgs = base.peek_node("packages").get("installed", {})
        if not any(p in pkgs for p in ("containerd", "containerd.io")):
            die(
                'failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unavailable',
                1,
            )
        v = k8s_version()
        for img in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            out(f"[config/images] Pulled registry.k8s.io/{img}:{v}")
        out(
            "[config/images] Pulled registry.k8s.io/coredns/coredns:v1.12.1\n[config/images] Pulled registry.k8s.io/pause:3.10.1"
        )
        return 0
    if words[:2] == ["images", "list"]:
        v = k8s_version()
        for img in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            out(f"registry.k8s.io/{img}:{v}")
        return 0
    if words[:1] == ["validate"]:
        _load_config(base.opt(args, "--config"))
        out("ok")
        return 0
    if words[:2] == ["print", "init-defaults"]:
        out(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
            f"kubernetesVersion: {k8s_version()}\nnetworking:\n  serviceSubnet: 10.96.0.0/12\n"
        )
        return 0
    return 0
