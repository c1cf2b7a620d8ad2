"""A Kubernetes cluster as the shims share it: nodes, tokens, objects (D/state/*.json).

kubeadm, RKE2 and RKE clusters live in ``kubernetes.json``; every MicroK8s
cluster (each node starts as its own) in ``microk8s.json``. kubectl and helm
reach whichever one the node's kubeconfig points at.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from installer.lab.shims import base

K8S = "kubernetes"  # kubeadm, RKE2 and RKE clusters: D/state/kubernetes.json
NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]
MARKER = "# fmp-lab-cluster:"
CNI_NAMES = re.compile(r"calico|flannel|cilium|weave|canal|kube-router|antrea|tigera")
BUILTIN_KINDS = {
    "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "PersistentVolume",
    "PersistentVolumeClaim", "Endpoints", "LimitRange", "ResourceQuota", "Node", "Event",
    "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Ingress",
    "IngressClass", "NetworkPolicy", "StorageClass", "CSIDriver", "VolumeAttachment",
    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "CustomResourceDefinition",
    "PodDisruptionBudget", "PriorityClass", "HorizontalPodAutoscaler", "Lease",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "CertificateSigningRequest", "RuntimeClass", "PodSecurityPolicy", "EndpointSlice",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "FlowSchema",
    "PriorityLevelConfiguration", "CSINode", "CSIStorageCapacity",
}  # fmt: skip
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CSIDriver", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "CertificateSigningRequest", "RuntimeClass", "PodSecurityPolicy", "VolumeAttachment",
    "CSINode", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "FlowSchema",
    "PriorityLevelConfiguration", "IPAddressPool", "L2Advertisement", "BGPPeer", "ClusterIssuer",
    "DiskPool",
}  # fmt: skip
ALIASES = {
    "no": "Node", "node": "Node", "nodes": "Node", "po": "Pod", "pod": "Pod", "pods": "Pod",
    "ns": "Namespace", "namespace": "Namespace", "namespaces": "Namespace", "svc": "Service",
    "service": "Service", "services": "Service", "deploy": "Deployment",
    "deployment": "Deployment", "deployments": "Deployment", "ds": "DaemonSet",
    "daemonset": "DaemonSet", "daemonsets": "DaemonSet", "sts": "StatefulSet",
    "statefulset": "StatefulSet", "statefulsets": "StatefulSet", "cm": "ConfigMap",
    "configmap": "ConfigMap", "configmaps": "ConfigMap", "secret": "Secret", "secrets": "Secret",
    "sc": "StorageClass", "storageclass": "StorageClass", "storageclasses": "StorageClass",
    "pv": "PersistentVolume", "pvc": "PersistentVolumeClaim", "crd": "CustomResourceDefinition",
    "crds": "CustomResourceDefinition", "customresourcedefinitions": "CustomResourceDefinition",
    "ipaddresspool": "IPAddressPool", "ipaddresspools": "IPAddressPool",
    "l2advertisement": "L2Advertisement", "l2advertisements": "L2Advertisement",
    "ing": "Ingress", "ingress": "Ingress", "csidriver": "CSIDriver", "csidrivers": "CSIDriver",
    "sa": "ServiceAccount", "serviceaccount": "ServiceAccount", "job": "Job", "jobs": "Job",
    "diskpool": "DiskPool", "diskpools": "DiskPool", "dsp": "DiskPool",
}  # fmt: skip


class Unreachable(Exception):
    def __init__(self, server: str) -> None:
        super().__init__(server)
        self.server = server


def kubeconfig_text(flavour: str, server: str, cluster_id: str = "") -> str:
    return (
        f"{MARKER} {flavour} {cluster_id}\n"
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
        f"    certificate-authority-data: {base.rand_hex(64)}\n    server: {server}\n"
        f"  name: {flavour}\ncontexts:\n- context:\n    cluster: {flavour}\n    user: admin\n"
        f"  name: {flavour}\ncurrent-context: {flavour}\nusers:\n- name: admin\n  user:\n"
        f"    client-certificate-data: {base.rand_hex(64)}\n    client-key-data: {base.rand_hex(64)}\n"
    )


def write_kubeconfig(path: str, flavour: str, server: str, cluster_id: str = "") -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(kubeconfig_text(flavour, server, cluster_id), encoding="utf-8")
    p.chmod(0o600)


class Target:
    """Which cluster a kubectl/helm call talks to."""

    def __init__(self, store: str, cluster_id: str | None, server: str) -> None:
        self.store = store
        self.cluster_id = cluster_id
        self.server = server

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        with base.cluster_state(self.store) as st:
            if self.cluster_id is None:
                yield st
            else:
                yield st.setdefault("clusters", {}).setdefault(self.cluster_id, {})

    def read(self) -> dict[str, Any]:
        st = base.peek_cluster(self.store)
        if self.cluster_id is None:
            return st  # type: ignore[no-any-return]
        return st.get("clusters", {}).get(self.cluster_id, {})  # type: ignore[no-any-return]


def resolve_target(args: list[str], microk8s_cluster: str | None = None) -> Target:
    """The cluster named by --kubeconfig / $KUBECONFIG / ~/.kube/config; raises Unreachable."""
    if microk8s_cluster is not None:
        return Target("microk8s", microk8s_cluster, "https://127.0.0.1:16443")
    path = None
    for i, a in enumerate(args):
        if a == "--kubeconfig" and i + 1 < len(args):
            path = args[i + 1]
        elif a.startswith("--kubeconfig="):
            path = a.split("=", 1)[1]
    path = (
        path
        or os.environ.get("KUBECONFIG", "").split(":")[0]
        or str(Path(os.environ.get("HOME", "/root")) / ".kube/config")
    )
    text = base.read_node_file(path)
    if text is None:
        if path and ("--kubeconfig" in " ".join(args) or os.environ.get("KUBECONFIG")):
            base.die(f"error: stat {path}: no such file or directory", 1)
        raise Unreachable("localhost:8080")
    m = re.search(r"server:\s*(\S+)", text)
    server = m.group(1) if m else "https://localhost:8080"
    marker = re.search(rf"^{re.escape(MARKER)}\s*(\S+)\s*(\S*)", text, re.MULTILINE)
    if marker and marker.group(1) == "microk8s":
        return Target("microk8s", marker.group(2) or base.node_name(), server)
    target = Target("kubernetes", None, server)
    if not target.read().get("initialized"):
        raise Unreachable(server.removeprefix("https://"))
    return target


def unreachable_message(server: str) -> str:
    host = server.split("//")[-1]
    if host == "localhost:8080":
        return (
            'E0101 00:00:00.000000    1234 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API group list: '
            'Get \\"http://localhost:8080/api?timeout=32s\\": dial tcp 127.0.0.1:8080: connect: connection refused"\n'
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
        )
    return (
        f"The connection to the server {host} was refused - did you specify the right host or port?"
    )


def cni_ready(cluster: dict[str, Any]) -> bool:
    if cluster.get("flavour") in ("rke2", "rke", "microk8s"):
        return True
    return bool(cluster.get("cni"))


def obj_key(kind: str, ns: str | None, name: str) -> str:
    return f"{kind}/{ns or ''}/{name}"


def known_kinds(cluster: dict[str, Any]) -> set[str]:
    kinds = set(BUILTIN_KINDS)
    kinds |= set(cluster.get("crd_kinds", []))
    for key, obj in cluster.get("objects", {}).items():
        if key.startswith("CustomResourceDefinition/"):
            kind = ((obj.get("spec") or {}).get("names") or {}).get("kind")
            if kind:
                kinds.add(kind)
    return kinds


def _crds(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        obj.get("spec") or {}
        for key, obj in cluster.get("objects", {}).items()
        if key.startswith("CustomResourceDefinition/")
    ]


def resolve_kind(cluster: dict[str, Any], what: str) -> str:
    """The kind a resource name means, as kubectl finds it by discovery: built-in names, then
    each CRD's plural, singular, kind and short names, alone or with the group (installations,
    installation.operator.tigera.io)."""
    low = what.lower()
    if low.split(".")[0] in ALIASES:
        return ALIASES[low.split(".")[0]]
    for spec in _crds(cluster):
        names = spec.get("names") or {}
        kind = names.get("kind")
        group = str(spec.get("group", "")).lower()
        if not kind:
            continue
        for name in (
            names.get("plural"),
            names.get("singular"),
            kind,
            *(names.get("shortNames") or []),
        ):
            if name and low in (str(name).lower(), f"{str(name).lower()}.{group}"):
                return str(kind)
    return what


def cluster_scoped(cluster: dict[str, Any], kind: str) -> bool:
    if kind in CLUSTER_SCOPED:
        return True
    return any(
        (spec.get("names") or {}).get("kind") == kind and spec.get("scope") == "Cluster"
        for spec in _crds(cluster)
    )


def namespaces(cluster: dict[str, Any]) -> list[str]:
    found = list(NAMESPACES)
    for key in cluster.get("objects", {}):
        if key.startswith("Namespace//"):
            found.append(key.split("/")[-1])
    return found


def note_cni(cluster: dict[str, Any], name: str) -> None:
    if CNI_NAMES.search(name):
        cluster["cni"] = CNI_NAMES.search(name).group(0)  # type: ignore[union-attr]


def now() -> float:
    return time.time()
