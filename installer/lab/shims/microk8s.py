"""microk8s: every node starts as its own cluster; add-node/join merge them (D/state/microk8s.json)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, kubestate
from installer.lab.shims.base import die, out

STORE = "microk8s"
ADDONS = {
    "dns": "(core) CoreDNS", "ingress": "(core) Ingress controller for external access",
    "metallb": "(core) Loadbalancer for your Kubernetes cluster", "helm": "(core) Helm - the package manager for Kubernetes",
    "helm3": "(core) Helm 3 - the package manager for Kubernetes", "hostpath-storage": "(core) Storage class; allocates storage from host directory",
    "storage": "(core) Alias to hostpath-storage add-on, deprecated", "rbac": "(core) Role-Based Access Control for authorisation",
    "dashboard": "(core) The Kubernetes dashboard", "metrics-server": "(core) K8s Metrics Server for API access to service metrics",
    "cert-manager": "(core) Cloud native certificate management", "observability": "(core) A lightweight observability stack for logs, traces and metrics",
    "ha-cluster": "(core) Configure high availability on the current node", "registry": "(core) Private image registry exposed on localhost:32000",
    "community": "(core) The community addons repository", "mayastor": "(core) OpenEBS MayaStor",
    "openebs": "(community) OpenEBS is the open-source storage solution for Kubernetes", "cis-hardening": "(core) Apply CIS K8s hardening",
}  # fmt: skip
DEFAULT_ENABLED = ["dns", "ha-cluster", "helm", "helm3"]
METALLB_KINDS = ["IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement"]
# ${SNAP_DATA}/var/lock: join --worker marks the node with these (cluster/join.py mark_worker_node)
LOCK_DIR = Path("/var/snap/microk8s/current/var/lock")
WORKER_LOCKS = ("clustered.lock", "no-k8s-dqlite")
WORKER_REFUSAL = (
    "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the master node."
)
TOKEN_MIN_LEN = 32
# The Calico CNI that MicroK8s ships: its CRDs, and the FelixConfiguration calico-node creates.
CALICO_CRDS = {"FelixConfiguration": "felixconfigurations", "IPPool": "ippools"}


def _me() -> str:
    return base.node_name()


def _cluster_of(st: dict[str, Any], name: str) -> str:
    """The cluster a node is in; a node nobody joined is a cluster of its own."""
    cid = st.setdefault("member_of", {}).get(name)
    if cid is None:
        cid = name
        st["member_of"][name] = cid
        st.setdefault("clusters", {})[cid] = {
            "flavour": "microk8s", "initialized": True, "version": _version(), "addons": list(DEFAULT_ENABLED),
            "nodes": {name: {"control_plane": True, "role": "voter", "joined": time.time(),
                             "address": base.node().get("address"), "host": name}},
            "tokens": {}, "objects": _calico_objects(), "cni": "calico", "ca": base.rand_hex(12),
        }  # fmt: skip
    return str(cid)


def _calico_objects() -> dict[str, Any]:
    objects: dict[str, Any] = {}
    for kind, plural in CALICO_CRDS.items():
        name = f"{plural}.crd.projectcalico.org"
        objects[f"CustomResourceDefinition//{name}"] = {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": "crd.projectcalico.org", "scope": "Cluster",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True}]},
        }  # fmt: skip
    objects["FelixConfiguration//default"] = {
        "apiVersion": "crd.projectcalico.org/v1", "kind": "FelixConfiguration",
        "metadata": {"name": "default"}, "spec": {"bpfLogLevel": "", "logSeverityScreen": "Info",
                                                  "reportingInterval": "0s", "vxlanEnabled": True},
    }  # fmt: skip
    objects["IPPool//default-ipv4-ippool"] = {
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": "10.1.0.0/16", "ipipMode": "Never", "natOutgoing": True, "vxlanMode": "Always"},
    }  # fmt: skip
    return objects


def _is_worker() -> bool:
    """join --worker left ${SNAP_DATA}/var/lock/clustered.lock (common/utils.py is_cluster_locked)."""
    return (LOCK_DIR / "clustered.lock").exists()


def _version() -> str:
    return str(base.peek_node("snaps").get("microk8s", {}).get("version", "v1.35.0"))


def _running() -> None:
    if base.peek_node("microk8s").get("stopped"):
        die("microk8s is not running, try microk8s start", 1)


def microk8s(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    verb = words[0] if words else ""
    rest = args[args.index(verb) + 1 :] if verb in args else []
    if verb in ("kubectl", "helm", "helm3"):
        _running()
        with base.cluster_state(STORE) as st:
            cid = _cluster_of(st, _me())
        from installer.lab.shims import kube

        if verb == "kubectl":
            return kube.kubectl(rest, microk8s=cid)
        return kube.helm(rest, microk8s=cid)
    if verb == "version":
        out(f"MicroK8s {_version()} revision 8300")
        return 0
    if verb == "start":
        with base.node_state("microk8s") as s:
            s["stopped"] = False
        return 0
    if verb == "stop":
        with base.node_state("microk8s") as s:
            s["stopped"] = True
        out("Stopped.")
        return 0
    if verb == "status":
        return _status(args)
    if verb == "config":
        _running()
        with base.cluster_state(STORE) as st:
            cid = _cluster_of(st, _me())
        out(
            kubestate.kubeconfig_text(
                "microk8s", f"https://{base.node().get('address')}:16443", cid
            ).rstrip("\n")
        )
        return 0
    if verb == "add-node":
        return _add_node(args)
    if verb == "join":
        return _join(words[1:], args)
    if verb in ("enable", "disable"):
        return _addon(verb, words[1:])
    if verb == "leave":
        with base.cluster_state(STORE) as st:
            cid = _cluster_of(st, _me())
            st["clusters"][cid]["nodes"].pop(_me(), None)
            st["member_of"].pop(_me(), None)
            _cluster_of(st, _me())
        for lock in WORKER_LOCKS:
            (LOCK_DIR / lock).unlink(missing_ok=True)
        out("Generating new cluster certificates.\nWaiting for node to start.")
        return 0
    if verb == "remove-node" and len(words) > 1:
        with base.cluster_state(STORE) as st:
            cid = _cluster_of(st, _me())
            if st["clusters"][cid]["nodes"].pop(words[1], None) is None:
                die(f"Error: node {words[1]} does not exist in the cluster", 1)
            st["member_of"].pop(words[1], None)
        return 0
    if verb == "inspect":
        out(
            "Inspecting services\n  Service snap.microk8s.daemon-kubelite is running\nReport tarball is at /var/snap/microk8s/current/inspection-report.tar.gz"
        )
        return 0
    die(f"'{verb}' is not a valid MicroK8s subcommand.", 1)


def _status(args: list[str]) -> int:
    if base.peek_node("microk8s").get("stopped"):
        out("microk8s is not running. Use microk8s inspect for a deeper inspection.")
        return 1
    if _is_worker():
        out(WORKER_REFUSAL)
        return 1
    with base.cluster_state(STORE) as st:
        cid = _cluster_of(st, _me())
        cluster = st["clusters"][cid]
    me = cluster["nodes"].get(_me(), {})
    if me.get("role") == "worker":
        out(WORKER_REFUSAL)
        return 1
    addon = base.opt(args, "--addon", "-a")
    if addon is not None and addon != "all":
        # status.py: print_addon_status
        out("enabled" if addon in cluster["addons"] else "disabled")
        return 0
    voters = [n["address"] for n in cluster["nodes"].values() if n.get("role") == "voter"]
    standby = [n["address"] for n in cluster["nodes"].values() if n.get("role") == "standby"]
    if "--format" in args and "short" in args:
        for a in sorted(ADDONS):
            out(f"core/{a}: {'enabled' if a in cluster['addons'] else 'disabled'}")
        return 0
    out("microk8s is running")
    out(f"high-availability: {'yes' if len(voters) >= 3 else 'no'}")
    out(f"  datastore master nodes: {' '.join(f'{a}:19001' for a in voters)}")
    out(f"  datastore standby nodes: {' '.join(f'{a}:19001' for a in standby) or 'none'}")
    out("addons:\n  enabled:")
    for a in sorted(cluster["addons"]):
        out(f"    {a:<21}# {ADDONS.get(a, '')}")
    out("  disabled:")
    for a in sorted(set(ADDONS) - set(cluster["addons"])):
        out(f"    {a:<21}# {ADDONS[a]}")
    return 0


def _add_node(args: list[str]) -> int:
    """add_token.py: register a token (single use, or reusable until --token-ttl runs out)."""
    if _is_worker():
        die(
            "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s add-node on the master.",
            1,
        )
    _running()
    token = base.opt(args, "--token", "-t") or base.rand_hex(32)
    ttl_text = base.opt(args, "--token-ttl", "-l") or "-1"
    fmt = base.opt(args, "--format") or "pretty"
    if fmt not in ("pretty", "short", "token", "token-check", "json", "yaml"):
        die(
            f"usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN] [--format {{pretty,short,token,token-check,json,yaml}}]\n"
            f"microk8s add-node: error: argument --format: invalid choice: '{fmt}'",
            2,
        )
    try:
        ttl = int(ttl_text)
    except ValueError:
        die(
            f"microk8s add-node: error: argument --token-ttl/-l: invalid int value: '{ttl_text}'", 2
        )
    if len(token) < TOKEN_MIN_LEN:
        out("Invalid token size.  It must be 32 characters long.")
        return 1
    with base.cluster_state(STORE) as st:
        cid = _cluster_of(st, _me())
        cluster = st["clusters"][cid]
        if cluster["nodes"].get(_me(), {}).get("role") == "worker":
            die(WORKER_REFUSAL, 1)
        # cluster-tokens.txt: "<token>" (once) or "<token>|<expiry>" (reusable until then)
        cluster["tokens"][token] = {"expires": time.time() + ttl if ttl != -1 else None,
                                    "once": ttl == -1, "used": False}  # fmt: skip
        check = cluster["ca"]
    addrs = [a.split("/")[0] for nic in base.facts()["nics"] for a in nic["addresses"]]
    urls = [f"{a}:25000/{token}/{check}" for a in addrs]
    if fmt == "token-check":
        out(f"{token}/{check}")
    elif fmt == "token":
        out(token)
    elif fmt == "short":
        for u in urls:
            out(f"microk8s join {u}")
    elif fmt == "json":
        out(json.dumps({"token": f"{token}/{check}", "urls": urls}, indent=2))
    elif fmt == "yaml":
        out(f"token: {token}/{check}\nurls:\n" + "".join(f"- {u}\n" for u in urls), end="")
    else:
        out("From the node you wish to join to this cluster, run the following:")
        out(f"microk8s join {urls[0]}\n")
        out("Use the '--worker' flag to join a node as a worker not running the control plane, eg:")
        out(f"microk8s join {urls[0]} --worker\n")
        out(
            "If the node you are adding is not reachable through the default interface you can use one of the following:"
        )
        for u in urls:
            out(f"microk8s join {u}")
    return 0


def _join(words: list[str], args: list[str]) -> int:
    if not words:
        die("Usage: microk8s join <master>:<port>/<token>/<cert-hash> [--worker]", 1)
    _running()
    target = words[0]
    host_port, _, rest = target.partition("/")
    host = host_port.split(":")[0]
    token, _, ca = rest.partition("/")
    out(f"Contacting cluster at {host}")
    with base.cluster_state(STORE) as st:
        peer = base.node_by_address(host)
        cid = st.get("member_of", {}).get(peer["name"]) if peer else None
        cluster = st.get("clusters", {}).get(cid) if cid else None
        if cluster is None or host_port.split(":")[-1] != "25000":
            die(
                f'Connection failed. The hostname ({host}) of the joining node does not resolve to the IP "{host}". Refusing join (400).',
                1,
            )
        t = cluster["tokens"].get(token)
        once = t is not None and t.get("once", True)
        expired = t is not None and t.get("expires") is not None and t["expires"] < time.time()
        if t is None or (once and t["used"]) or expired:
            die("Connection failed. Invalid token (500).", 1)
        if ca and ca != cluster["ca"]:
            die(
                "Joining cluster failed. Cluster CA certificate hash does not match (--skip-verify to skip this check).",
                1,
            )
        me = _me()
        if me in cluster["nodes"]:
            die("Connection failed. The node is already part of the cluster (500).", 1)
        t["used"] = True
        old = st["member_of"].get(me)
        if old and old in st["clusters"] and old != cid:
            st["clusters"][old]["nodes"].pop(me, None)
            if not st["clusters"][old]["nodes"]:
                del st["clusters"][old]
        worker = "--worker" in args
        voters = sum(1 for n in cluster["nodes"].values() if n.get("role") == "voter")
        role = "worker" if worker else ("voter" if voters < 3 else "standby")
        cluster["nodes"][me] = {"control_plane": not worker, "role": role, "joined": time.time(),
                                "address": base.node().get("address"), "host": me}  # fmt: skip
        st["member_of"][me] = cid
    if worker:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for lock in WORKER_LOCKS:
            (LOCK_DIR / lock).touch()
            os.chmod(LOCK_DIR / lock, 0o700)
        out("The node has joined the cluster and will appear in the nodes list in a few seconds.\n")
        out(
            "This worker node gets automatically configured with the API server endpoints.\nIf the API servers are behind a loadbalancer please set the '--refresh-interval' to '0s' in:\n    /var/snap/microk8s/current/args/apiserver-proxy"
        )
    else:
        out("Waiting for this node to finish joining the cluster. .. .. .. .")
        out("Successfully joined the cluster.")
    return 0


def _metallb_objects(cluster: dict[str, Any], ranges: list[str]) -> dict[str, Any]:
    """What enabling metallb creates: metallb.yaml's namespace and workloads, then
    addresspool.yaml's IPAddressPool default-addresspool and L2Advertisement."""
    from installer.lab.shims import kubestate

    ns = "metallb-system"

    def key(kind: str, name: str) -> str:
        return kubestate.obj_key(
            kind, None if kubestate.cluster_scoped(cluster, kind) else ns, name
        )

    meta = {"namespace": ns, "labels": {"app": "metallb"}}
    return {
        kubestate.obj_key("Namespace", None, ns): {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        key("Deployment", "controller"): {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "metadata": {"name": "controller", **meta}},
        key("DaemonSet", "speaker"): {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "speaker", **meta}},
        key("IPAddressPool", "default-addresspool"): {
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default-addresspool", "namespace": ns}, "spec": {"addresses": ranges}},
        key("L2Advertisement", "default-advertise-all-pools"): {
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "default-advertise-all-pools", "namespace": ns}},
    }  # fmt: skip


def _addon(verb: str, names: list[str]) -> int:
    if _is_worker():
        die(WORKER_REFUSAL, 1)
    _running()
    if not names:
        die(f"Usage: microk8s {verb} ADDON...", 1)
    with base.cluster_state(STORE) as st:
        cid = _cluster_of(st, _me())
        cluster = st["clusters"][cid]
        if cluster["nodes"].get(_me(), {}).get("role") == "worker":
            die(
                "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the master node.",
                1,
            )
        for spec in names:
            name, _, arg = spec.partition(":")
            if name not in ADDONS:
                die(f"Addon {name} was not found in any repository", 1)
            if verb == "disable":
                if name in cluster["addons"]:
                    cluster["addons"].remove(name)
                if name in ("metallb", "ingress"):
                    made = (
                        _metallb_objects(cluster, []) if name == "metallb" else _ingress_objects()
                    )
                    for key in made:
                        cluster.get("objects", {}).pop(key, None)
                out(
                    f"Disabling {name}\n{name} is disabled"
                    if name != "metallb"
                    else "Disabling MetalLB\nMetalLB disabled"
                )
                continue
            if name in cluster["addons"]:
                out(f"Addon core/{name} is already enabled")
                continue
            if name == "metallb" and not arg:
                die(
                    "Enabling MetalLB\nEnter each IP address range delimited by comma (e.g. '10.64.140.43-10.64.140.49,192.168.0.105-192.168.0.111'): Error: no IP address range given",
                    1,
                )
            if name == "metallb":
                # addons/metallb/enable: each range is a-b or a CIDR
                for r in arg.split(","):
                    if not (re.fullmatch(r"\d+\.\d+\.\d+\.\d+-\d+\.\d+\.\d+\.\d+", r)
                            or re.fullmatch(r"\d+\.\d+\.\d+\.\d{1,3}/\d{1,3}", r)):  # fmt: skip
                        die(
                            f"Infer repository core for addon metallb\nEnabling MetalLB\nYour input value ({r}) is not a valid IP Range",
                            1,
                        )
            if name == "openebs" and "community" not in cluster["addons"]:
                die(
                    "Addon openebs was not found in any repository\nTo use the community maintained flavor enable the respective repository:\n\n    microk8s enable community",
                    1,
                )
            cluster["addons"].append(name)
            out(f"Infer repository core for addon {name}")
            if name == "metallb":
                cluster.setdefault("crd_kinds", [])
                cluster["crd_kinds"] += [k for k in METALLB_KINDS if k not in cluster["crd_kinds"]]
                cluster["metallb_ranges"] = arg.split(",")
                cluster.setdefault("objects", {}).update(_metallb_objects(cluster, arg.split(",")))
                out(
                    "Enabling MetalLB\nApplying Metallb manifest\ncustomresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created\n"
                    "namespace/metallb-system created\ndeployment.apps/controller created\ndaemonset.apps/speaker created\n"
                    "Waiting for Metallb controller to be ready.\ndeployment.apps/controller condition met\n"
                    "ipaddresspool.metallb.io/default-addresspool created\nl2advertisement.metallb.io/default-advertise-all-pools created\n"
                    "MetalLB is enabled"
                )
            elif name == "ingress":
                cluster.setdefault("objects", {}).update(_ingress_objects())
                out(
                    "Enabling Ingress\ningressclass.networking.k8s.io/public created\ningressclass.networking.k8s.io/nginx created\n"
                    "namespace/ingress created\ndaemonset.apps/nginx-ingress-microk8s-controller created\nIngress is enabled"
                )
            else:
                out(f"Enabling {name}\n{name.upper() if name == 'dns' else name} is enabled")
    return 0


def _ingress_objects() -> dict[str, Any]:
    """addons/ingress/ingress.yaml: the IngressClasses, the namespace and the controller."""
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "nginx-ingress-microk8s-controller", "namespace": "ingress",
                       "labels": {"microk8s-application": "nginx-ingress-microk8s"}},
          "spec": {"selector": {"matchLabels": {"name": "nginx-ingress-microk8s"}},
                   "template": {"metadata": {"labels": {"name": "nginx-ingress-microk8s"}}}}}  # fmt: skip
    classes = {
        f"IngressClass//{n}": {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                               "metadata": {"name": n, **({"annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}
                                                         if n == "public" else {})},
                               "spec": {"controller": "k8s.io/ingress-nginx"}}
        for n in ("public", "nginx")
    }  # fmt: skip
    return {
        **classes,
        "Namespace//ingress": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "ingress"},
        },
        "DaemonSet/ingress/nginx-ingress-microk8s-controller": ds,
    }
