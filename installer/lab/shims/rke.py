"""RKE2 (installer script, binary, rke2-server/rke2-agent services) and legacy RKE."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from installer.lab.shims import base, kubestate, units
from installer.lab.shims.base import die, out

K8S = "kubernetes"
CONFIG = Path("/etc/rancher/rke2/config.yaml")
DEFAULT_VERSION = "v1.35.0+rke2r1"


def _unit_text(kind: str) -> str:
    return (
        f"[Unit]\nDescription=Rancher Kubernetes Engine v2 ({kind})\nWants=network-online.target\n"
        f"[Service]\nType=notify\nExecStart=/usr/local/bin/rke2 {kind}\n[Install]\nWantedBy=multi-user.target\n"
    )


def rke2_install(args: list[str]) -> int:
    """What ``curl -sfL https://get.rke2.io | sh -`` does."""
    kind = os.environ.get("INSTALL_RKE2_TYPE", "server")
    if kind not in ("server", "agent"):
        die(f"[ERROR]  Invalid INSTALL_RKE2_TYPE: {kind}", 1)
    version = os.environ.get("INSTALL_RKE2_VERSION") or DEFAULT_VERSION
    channel = os.environ.get("INSTALL_RKE2_CHANNEL", "stable")
    out(f"[INFO]  finding release for channel {channel}")
    out(f"[INFO]  using {version} as release")
    out(
        f"[INFO]  downloading checksums at https://github.com/rancher/rke2/releases/download/{version}/sha256sum-amd64.txt"
    )
    out(
        f"[INFO]  downloading tarball at https://github.com/rancher/rke2/releases/download/{version}/rke2.linux-amd64.tar.gz"
    )
    out("[INFO]  verifying tarball")
    out("[INFO]  unpacking tarball file to /usr/local")
    bindir = Path("/usr/local/bin")
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "rke2").write_text(
        f'#!/bin/bash\nFMP_SHIM_TOOL=rke2 exec {base.SHIM} "$@"\n', encoding="utf-8"
    )
    (bindir / "rke2").chmod(0o755)
    for script in ("rke2-killall.sh", "rke2-uninstall.sh"):
        (bindir / script).write_text(
            "#!/bin/sh\nsystemctl stop rke2-server rke2-agent 2>/dev/null\nexit 0\n",
            encoding="utf-8",
        )
        (bindir / script).chmod(0o755)
    unitdir = Path("/usr/local/lib/systemd/system")
    unitdir.mkdir(parents=True, exist_ok=True)
    for k in ("server", "agent"):
        (unitdir / f"rke2-{k}.service").write_text(_unit_text(k), encoding="utf-8")
        with base.node_state("units") as st:
            st.setdefault(f"rke2-{k}.service", {})["provided"] = {
                "description": f"Rancher Kubernetes Engine v2 ({k})", "behavior": f"rke2-{k}",
                "enabled": False, "active": False}  # fmt: skip
    with base.node_state("rke2") as st:
        st.update({"type": kind, "version": version})
    return 0


def _config() -> dict[str, object]:
    text = base.read_node_file(str(CONFIG))
    if not text:
        return {}
    docs = base.load_yaml_docs(text)
    return docs[0] if docs and isinstance(docs[0], dict) else {}


def _log(msg: str) -> None:
    with open(
        units._log(f"rke2-{base.peek_node('rke2').get('type', 'server')}.service"),
        "a",
        encoding="utf-8",
    ) as fh:
        fh.write(
            f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=fatal msg="{msg}"\n'
        )


def _vip_held() -> bool:
    """Some node's active keepalived holds the lab's VIP (the fixed registration address)."""
    vip = str(base.lab().get("vip"))
    return any(
        v.get("active") and any(x.split("/")[0] == vip for x in v.get("vips", []))
        for v in base.peek_cluster("keepalived").values()
    )


def _list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in str(value).split(",") if v]


def service_start(kind: str) -> None:
    cfg = _config()
    version = str(base.peek_node("rke2").get("version", DEFAULT_VERSION))
    server = str(cfg.get("server") or "")
    token = str(cfg.get("token") or "")
    name = str(cfg.get("node-name") or base.node_name())
    me = str(base.node().get("address"))
    with base.cluster_state(K8S) as st:
        db = Path("/var/lib/rancher/rke2/server/db/etcd")
        if not server and db.is_dir() and st.get("initialized") and st.get("flavour") == "rke2":
            # A restart of the first server: its datastore is there, the cluster goes on.
            if token and token not in (st["token"], st["secret"]):
                _log(
                    "starting kubernetes: preparing server: bootstrap data already found and encrypted with different token"
                )
                raise units.StartFailed("the control process exited with error code")
        elif not server:
            if kind == "agent":
                _log("--server is required")
                raise units.StartFailed("the control process exited with error code")
            secret = token or base.rand_hex(32)
            full = f"K10{base.rand_hex(64)}::server:{secret}"
            db.mkdir(parents=True, exist_ok=True)
            st.clear()
            st.update({"initialized": True, "flavour": "rke2", "version": "v" + version.lstrip("v").split("+")[0],
                       "endpoint": f"{me}:9345", "token": full, "secret": secret, "objects": {}, "cni": "canal",
                       "nodes": {}})  # fmt: skip
        else:
            m = re.match(r"https://([^:/]+):(\d+)", server)
            if (
                not st.get("initialized")
                or st.get("flavour") != "rke2"
                or not m
                or m.group(2) != "9345"
            ):
                _log(
                    f'starting kubernetes: preparing server: failed to get CA certs: Get "{server}/cacerts": dial tcp: connect: connection refused'
                )
                raise units.StartFailed("the control process exited with error code")
            host = m.group(1)
            servers = [n.get("address") for n in st["nodes"].values() if n.get("control_plane")]
            if host == base.lab().get("vip") and not _vip_held():
                _log(
                    f'starting kubernetes: preparing server: failed to get CA certs: Get "{server}/cacerts": dial tcp {host}:9345: connect: no route to host'
                )
                raise units.StartFailed("the control process exited with error code")
            if host not in servers and host != base.lab().get("vip"):
                _log(
                    f'starting kubernetes: preparing server: failed to get CA certs: Get "{server}/cacerts": dial tcp {host}:9345: connect: connection refused'
                )
                raise units.StartFailed("the control process exited with error code")
            if token not in (st["token"], st["secret"]):
                _log(
                    "starting kubernetes: preparing server: failed to validate token: token CA hash does not match the Cluster CA certificate hash"
                )
                raise units.StartFailed("the control process exited with error code")
        # RKE2 labels its servers with their roles and registers the node-label / node-taint
        # values of config.yaml ("key=value:Effect").
        labels = (
            {f"node-role.kubernetes.io/{r}": "true" for r in ("control-plane", "etcd", "master")}
            if kind == "server"
            else {}
        )
        for item in _list(cfg.get("node-label")):
            k, _, v = item.partition("=")
            labels[k] = v
        taints = []
        for item in _list(cfg.get("node-taint")):
            kv, _, effect = item.rpartition(":")
            k, _, v = kv.partition("=")
            taints.append(
                {"key": k, "value": v, "effect": effect} if v else {"key": k, "effect": effect}
            )
        old = st["nodes"].get(name, {})
        st["nodes"][name] = {
            "control_plane": kind == "server",
            "joined": old.get("joined", time.time()),
            "address": me,
            "host": base.node_name(),
            "labels": {**old.get("labels", {}), **labels},
            "taints": taints,
        }
        state = dict(st)
    if kind == "server":
        Path("/var/lib/rancher/rke2/server").mkdir(parents=True, exist_ok=True)
        Path("/var/lib/rancher/rke2/server/node-token").write_text(
            state["token"] + "\n", encoding="utf-8"
        )
        kubestate.write_kubeconfig("/etc/rancher/rke2/rke2.yaml", "rke2", "https://127.0.0.1:6443")
    bindir = Path("/var/lib/rancher/rke2/bin")
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in ("kubectl", "crictl", "ctr"):
        link = bindir / tool
        if not link.exists():
            link.symlink_to(base.SHIM)
    Path("/var/lib/rancher/rke2/agent").mkdir(parents=True, exist_ok=True)


def service_stop() -> None:
    return None


def rke2(args: list[str]) -> int:
    if "--version" in args or args[:1] == ["-v"] or args[:1] == ["--version"]:
        v = base.peek_node("rke2").get("version", DEFAULT_VERSION)
        out(f"rke2 version {v} (a1b2c3d4)\ngo version go1.24.11 X:boringcrypto")
        return 0
    if args[:1] in (["server"], ["agent"]):
        die("rke2 runs as a service in the lab: use systemctl start rke2-server|rke2-agent", 1)
    return 0


def rke(args: list[str]) -> int:
    """Legacy RKE (v1): ``rke up --config cluster.yml`` builds the cluster from one node."""
    if "--version" in args or args[:1] == ["-v"]:
        out("rke version v1.8.5")
        return 0
    words = [a for a in args if not a.startswith("-")]
    cfg_path = next(
        (args[i + 1] for i, a in enumerate(args) if a == "--config" and i + 1 < len(args)),
        "cluster.yml",
    )
    if words[:1] == ["up"]:
        text = base.read_node_file(cfg_path)
        if text is None:
            die(
                f"FATA[0000] Failed to resolve cluster file: open {cfg_path}: no such file or directory",
                1,
            )
        docs = base.load_yaml_docs(text)
        cfg = docs[0] if docs and isinstance(docs[0], dict) else {}
        nodes = cfg.get("nodes") or []
        if not nodes:
            die(
                "FATA[0000] Failed to validate cluster: Cluster must have at least one etcd plane host: please specify one or more etcd in cluster config",
                1,
            )
        out("INFO[0000] Running RKE version: v1.8.5")
        out("INFO[0000] Initiating Kubernetes cluster")
        members = {}
        for n in nodes:
            peer = base.node_by_address(str(n.get("address", "")))
            if peer is None:
                die(
                    f'FATA[0030] Failed to set up SSH tunneling for host [{n.get("address")}]: Can\'t retrieve Docker Info: error during connect: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/info": Failed to dial ssh using address [{n.get("address")}:22]: dial tcp: lookup {n.get("address")}: no such host',
                    1,
                )
            out(f"INFO[0001] [dialer] Setup tunnel for host [{n.get('address')}]")
            roles = n.get("role") or []
            members[peer["name"]] = {"control_plane": "controlplane" in roles, "joined": time.time(),
                                     "address": peer["address"], "host": peer["name"]}  # fmt: skip
        with base.cluster_state(K8S) as st:
            st.clear()
            st.update({"initialized": True, "flavour": "rke", "version": "v1.32.5", "nodes": members,
                       "objects": {}, "cni": "canal", "endpoint": f"{next(iter(members.values()))['address']}:6443"})  # fmt: skip
        stem = Path(cfg_path).stem
        kubestate.write_kubeconfig(
            str(Path(cfg_path).parent / f"kube_config_{stem}.yml"),
            "rke",
            f"https://{next(iter(members.values()))['address']}:6443",
        )
        Path(cfg_path).with_suffix(".rkestate").write_text("{}\n", encoding="utf-8")
        out("INFO[0103] Finished building Kubernetes cluster successfully")
        return 0
    if words[:1] == ["remove"]:
        with base.cluster_state(K8S) as st:
            st.clear()
        out("INFO[0010] Cluster removed successfully")
        return 0
    return 0
