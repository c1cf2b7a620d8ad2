"""microk8s: every node starts as its own cluster; add-node/join merge them (D/state/microk8s.json)."""

from __future__ import annotations

import time
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
            "tokens": {}, "objects": {}, "cni": "calico", "ca": base.rand_hex(12),
        }  # fmt: skip
    return str(cid)


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
    with base.cluster_state(STORE) as st:
        cid = _cluster_of(st, _me())
        cluster = st["clusters"][cid]
    me = cluster["nodes"].get(_me(), {})
    if me.get("role") == "worker":
        out(
            "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the master node."
        )
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
    _running()
    token = next(
        (args[i + 1] for i, a in enumerate(args) if a in ("--token", "-t") and i + 1 < len(args)),
        None,
    ) or base.rand_hex(32)
    ttl = next(
        (
            int(args[i + 1])
            for i, a in enumerate(args)
            if a in ("--token-ttl", "-l") and i + 1 < len(args)
        ),
        3600,
    )
    with base.cluster_state(STORE) as st:
        cid = _cluster_of(st, _me())
        cluster = st["clusters"][cid]
        if cluster["nodes"].get(_me(), {}).get("role") == "worker":
            die(
                "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the master node.",
                1,
            )
        cluster["tokens"][token] = {"expires": time.time() + ttl, "used": False}
        ca = cluster["ca"]
    addrs = [a.split("/")[0] for nic in base.facts()["nics"] for a in nic["addresses"]]
    url = f"{addrs[0]}:25000/{token}/{ca}"
    out("From the node you wish to join to this cluster, run the following:")
    out(f"microk8s join {url}\n")
    out("Use the '--worker' flag to join a node as a worker not running the control plane, eg:")
    out(f"microk8s join {url} --worker\n")
    out(
        "If the node you are adding is not reachable through the default interface you can use one of the following:"
    )
    for a in addrs:
        out(f"microk8s join {a}:25000/{token}/{ca}")
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
        if t is None or t["used"] or t["expires"] < time.time():
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
        out("The node has joined the cluster and will appear in the nodes list in a few seconds.\n")
        out(
            "This worker node gets automatically configured with the API server endpoints.\nIf the API servers are behind a loadbalancer please set the '--refresh-interval' to '0s' in:\n    /var/snap/microk8s/current/args/apiserver-proxy"
        )
    else:
        out("Waiting for this node to finish joining the cluster. .. .. .. .")
        out("Successfully joined the cluster.")
    return 0


def _addon(verb: str, names: list[str]) -> int:
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
                out(
                    "Enabling MetalLB\nApplying Metallb manifest\ncustomresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created\nMetalLB is enabled"
                )
            else:
                out(f"Enabling {name}\n{name.upper() if name == 'dns' else name} is enabled")
    return 0
