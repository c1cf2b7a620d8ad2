"""helm against a lab cluster: repositories (per node), releases (per cluster)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, kubestate
from installer.lab.shims.base import die, out

REPOS_FILE = Path("/root/.config/helm/repositories.yaml")
VERSION = "v3.18.4"
# chart -> CRD kinds it installs (so manifests using them apply afterwards)
CHART_CRDS = {
    "metallb": ["IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement"],
    "openebs": ["DiskPool", "LVMVolume", "LVMNode", "ZFSVolume"],
    "cert-manager": ["Certificate", "Issuer", "ClusterIssuer"],
    "tigera-operator": ["Installation", "APIServer"],
    "rook-ceph": ["CephCluster", "CephBlockPool"],
    "kube-prometheus-stack": ["ServiceMonitor", "PrometheusRule"],
}
# chart -> the workloads it creates in the release's namespace (kind, name; {r} = release),
# so that "kubectl rollout status" finds them.
CHART_OBJECTS = {
    "ceph-csi-rbd": [("Deployment", "{r}-provisioner"), ("DaemonSet", "{r}-nodeplugin"),
                     ("ConfigMap", "ceph-csi-encryption-kms-config"), ("ConfigMap", "ceph-config"),
                     ("CSIDriver", "rbd.csi.ceph.com")],
    "ceph-csi-cephfs": [("Deployment", "{r}-provisioner"), ("DaemonSet", "{r}-nodeplugin"),
                        ("CSIDriver", "cephfs.csi.ceph.com")],
}  # fmt: skip


def _version() -> str:
    """This helm's version: the release it was downloaded as (get.helm.sh), else the packaged one."""
    v = os.environ.pop("FMP_SHIM_VERSION", None)
    return "v" + v.lstrip("v") if v else VERSION


def _repos() -> dict[str, str]:
    text = base.read_node_file(str(REPOS_FILE)) or ""
    repos: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        s = line.strip().lstrip("- ").strip()
        if s.startswith("name:"):
            name = s.split(":", 1)[1].strip()
        elif s.startswith("url:") and name:
            repos[name] = s.split(":", 1)[1].strip()
    return repos


def _save_repos(repos: dict[str, str]) -> None:
    REPOS_FILE.parent.mkdir(parents=True, exist_ok=True)
    body = 'apiVersion: ""\ngenerated: "0001-01-01T00:00:00Z"\nrepositories:\n' + "".join(
        f"- name: {n}\n  url: {u}\n" for n, u in sorted(repos.items())
    )
    REPOS_FILE.write_text(body, encoding="utf-8")


VALUED = {"-n", "--namespace", "--version", "-f", "--values", "--set", "--set-string", "--timeout",
          "--kubeconfig", "-o", "--output", "--kube-context", "--set-file", "--username", "--password",
          "--repo", "--filter"}  # fmt: skip


def _words(args: list[str]) -> list[str]:
    words, i = [], 0
    while i < len(args):
        if args[i] in VALUED:
            i += 2
            continue
        if not args[i].startswith("-"):
            words.append(args[i])
        i += 1
    return words


def run(args: list[str], microk8s: str | None) -> int:
    words = _words(args)
    verb = words[0] if words else ""
    version = _version()
    if verb == "version":
        out(
            f"{version}+gd80839c"
            if "--short" in args
            else f'version.BuildInfo{{Version:"{version}", GitCommit:"d80839cf37d860c8aa9a0503fe463278f26cd5e2", GitTreeState:"clean", GoVersion:"go1.24.5"}}'
        )
        return 0
    if verb == "repo":
        return _repo(words[1:], args)
    if verb in (
        "install",
        "upgrade",
        "list",
        "ls",
        "uninstall",
        "delete",
        "status",
        "get",
        "template",
    ):
        try:
            target = kubestate.resolve_target(args, microk8s)
        except kubestate.Unreachable as exc:
            prefix = {"install": "INSTALLATION FAILED: ", "upgrade": "UPGRADE FAILED: "}.get(
                verb, ""
            )
            die(
                f'Error: {prefix}Kubernetes cluster unreachable: Get "http://{exc.server}/version": dial tcp {exc.server.replace("localhost", "127.0.0.1")}: connect: connection refused',
                1,
            )
        ns = base.opt(args, "-n", "--namespace") or "default"
        if verb in ("install", "upgrade"):
            return _install(verb, words[1:], args, target, ns)
        if verb in ("list", "ls"):
            releases = target.read().get("helm", {})
            rows = [
                r
                for r in releases.values()
                if "-A" in args or "--all-namespaces" in args or r["namespace"] == ns
            ]
            # --filter is a regular expression on the release name; --deployed keeps deployed ones
            name_filter = base.opt(args, "--filter", "-f")
            if name_filter:
                rows = [r for r in rows if re.search(name_filter, r["name"])]
            if "--deployed" in args:
                rows = [r for r in rows if r["status"] == "deployed"]
            if base.opt(args, "-o", "--output") == "json":
                # helm's releaseElement, compact (json.Encoder); revision is a string
                keys = ("name", "namespace", "revision", "updated", "status", "chart")
                listed = [
                    {**{k: str(r[k]) for k in keys}, "app_version": r["app_version"]} for r in rows
                ]
                out(json.dumps(listed, separators=(",", ":")))
                return 0
            out("NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION")
            for r in rows:
                out(
                    f"{r['name']}\t{r['namespace']}\t{r['revision']}\t{r['updated']}\t{r['status']}\t{r['chart']}\t{r['app_version']}"
                )
            return 0
        if verb in ("uninstall", "delete"):
            with target.edit() as cluster:
                for name in words[1:]:
                    if cluster.setdefault("helm", {}).pop(f"{ns}/{name}", None) is None:
                        die(f"Error: uninstall: Release not loaded: {name}: release: not found", 1)
                    out(f'release "{name}" uninstalled')
            return 0
        if verb == "status":
            r = target.read().get("helm", {}).get(f"{ns}/{words[1] if len(words) > 1 else ''}")
            if r is None:
                die("Error: release: not found", 1)
            if base.opt(args, "-o", "--output") == "json":
                out(json.dumps(_release_json(r), separators=(",", ":")))
                return 0
            _print_release(r)
            return 0
        return 0
    if verb in ("search", "show", "pull", "dependency", "env", "plugin"):
        return 0
    die(f'Error: unknown command "{verb}" for "helm"\nRun \'helm --help\' for usage.', 1)


def _repo(words: list[str], args: list[str]) -> int:
    sub = words[0] if words else ""
    repos = _repos()
    if sub == "add" and len(words) >= 3:
        name, url = words[1], words[2]
        if name in repos and repos[name] != url and "--force-update" not in args:
            die(
                f"Error: repository name ({name}) already exists, please specify a different name",
                1,
            )
        if not url.startswith(("http://", "https://", "oci://")):
            die(f"Error: could not find protocol handler for: {url}", 1)
        existed = repos.get(name) == url
        repos[name] = url
        _save_repos(repos)
        out(
            f'"{name}" already exists with the same configuration, skipping'
            if existed
            else f'"{name}" has been added to your repositories'
        )
        return 0
    if sub == "update":
        if not repos:
            die("Error: no repositories found. You must add one before updating", 1)
        out("Hang tight while we grab the latest from your chart repositories...")
        for name in sorted(repos):
            out(f'...Successfully got an update from the "{name}" chart repository')
        out("Update Complete. ⎈Happy Helming!⎈")
        return 0
    if sub == "list":
        if not repos:
            die("Error: no repositories to show", 1)
        out("NAME\tURL")
        for n, u in sorted(repos.items()):
            out(f"{n}\t{u}")
        return 0
    if sub == "remove":
        for n in words[1:]:
            repos.pop(n, None)
            out(f'"{n}" has been removed from your repositories')
        _save_repos(repos)
        return 0
    return 0


def _user_values(args: list[str]) -> dict[str, Any]:
    """The values the user supplied (-f files merged in order, then --set a.b=c): what helm
    keeps as the release's config (``helm get values``)."""
    import yaml

    def merge(into: dict[str, Any], new: dict[str, Any]) -> None:
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v

    config: dict[str, Any] = {}
    for i, a in enumerate(args):
        if a in ("-f", "--values") and i + 1 < len(args):
            try:
                data = yaml.safe_load(base.read_node_file(args[i + 1]) or "")
            except yaml.YAMLError as exc:
                die(f"Error: failed to parse {args[i + 1]}: {exc}", 1)
            merge(config, data if isinstance(data, dict) else {})
    for item in base.opts(args, "--set"):
        for assignment in item.split(","):
            path, _, value = assignment.partition("=")
            node = config
            *parents, leaf = path.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[leaf] = {"true": True, "false": False}.get(value, value)
    return config


def _openebs_objects(chart: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """The openebs/openebs chart's CSI drivers and workloads for the engines its values enable
    (engines.local.lvm.enabled, engines.replicated.mayastor.enabled: both on by default)."""
    if chart != "openebs":
        return []
    engines = config.get("engines") or {}
    objs = [("Deployment", "{r}-localpv-provisioner")]
    if ((engines.get("local") or {}).get("lvm") or {}).get("enabled", True) is not False:
        objs += [("CSIDriver", "local.csi.openebs.io"), ("Deployment", "{r}-lvm-localpv-controller"),
                 ("DaemonSet", "{r}-lvm-localpv-node")]  # fmt: skip
    if ((engines.get("replicated") or {}).get("mayastor") or {}).get("enabled", True) is not False:
        objs += [("CSIDriver", "io.openebs.csi-mayastor"), ("DaemonSet", "{r}-io-engine"),
                 ("DaemonSet", "{r}-csi-node"), ("Deployment", "{r}-csi-controller"),
                 ("Deployment", "{r}-operator-diskpool"), ("Deployment", "{r}-api-rest")]  # fmt: skip
    return objs


def _release_json(r: dict[str, Any]) -> dict[str, Any]:
    """``helm status -o json``: the release as helm stores it (compact JSON)."""
    chart_name, _, chart_version = r["chart"].rpartition("-")
    return {
        "name": r["name"],
        "info": {"first_deployed": r.get("first", r["updated"]), "last_deployed": r["updated"], "deleted": "",
                 "description": "Install complete" if r["revision"] == 1 else "Upgrade complete",
                 "status": r["status"]},
        "chart": {"metadata": {"name": chart_name, "version": chart_version, "appVersion": r["app_version"],
                               "apiVersion": "v2"}},
        "config": r.get("config", {}),
        "version": r["revision"],
        "namespace": r["namespace"],
    }  # fmt: skip


def _print_release(r: dict[str, Any]) -> None:
    out(
        f"NAME: {r['name']}\nLAST DEPLOYED: {r['updated']}\nNAMESPACE: {r['namespace']}\nSTATUS: {r['status']}\nREVISION: {r['revision']}\nTEST SUITE: None"
    )


def _install(
    verb: str, words: list[str], args: list[str], target: kubestate.Target, ns: str
) -> int:
    prefix = "INSTALLATION FAILED" if verb == "install" else "UPGRADE FAILED"
    if len(words) < 2:
        die(f'Error: "helm {verb}" requires 2 arguments', 1)
    name, chart = words[0], words[1]
    repo_url = base.opt(args, "--repo")
    if repo_url is not None:
        if not repo_url.startswith(("http://", "https://")):
            die(f"Error: {prefix}: could not find protocol handler for: {repo_url}", 1)
    elif "/" in chart and not chart.startswith(("oci://", "./", "/")):
        repo = chart.split("/", 1)[0]
        if repo not in _repos():
            die(f"Error: {prefix}: repo {repo} not found", 1)
    elif (
        not chart.startswith("oci://")
        and base.read_node_file(chart.rstrip("/") + "/Chart.yaml") is None
        and not Path(chart).is_file()
    ):
        die(
            f"Error: {prefix}: non-absolute URLs should be in form of repo_name/path_to_chart, got: {chart}",
            1,
        )
    for values in [
        args[i + 1] for i, a in enumerate(args) if a in ("-f", "--values") and i + 1 < len(args)
    ]:
        if base.read_node_file(values) is None:
            die(f"Error: {prefix}: open {values}: no such file or directory", 1)
    config = _user_values(args)
    install = verb == "install" or "--install" in args or "-i" in args
    with target.edit() as cluster:
        releases = cluster.setdefault("helm", {})
        key = f"{ns}/{name}"
        old = releases.get(key)
        if verb == "install" and old is not None:
            die(f"Error: {prefix}: cannot re-use a name that is still in use", 1)
        if verb == "upgrade" and old is None and not install:
            die(f'Error: {prefix}: "{name}" has no deployed releases', 1)
        if ns not in kubestate.namespaces(cluster):
            if "--create-namespace" not in args:
                die(f'Error: {prefix}: create: failed to create: namespaces "{ns}" not found', 1)
            cluster.setdefault("objects", {})[kubestate.obj_key("Namespace", None, ns)] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns},
            }
        chart_name = chart.rstrip("/").rsplit("/", 1)[-1]
        version = base.opt(args, "--version") or "1.0.0"
        cluster.setdefault("crd_kinds", [])
        for k in CHART_CRDS.get(chart_name, []):
            if k not in cluster["crd_kinds"]:
                cluster["crd_kinds"].append(k)
        kubestate.note_cni(cluster, chart_name)
        objects = cluster.setdefault("objects", {})
        chart_objects = CHART_OBJECTS.get(chart_name, []) + _openebs_objects(chart_name, config)
        for kind, obj_name in chart_objects:
            obj_name = obj_name.format(r=name)
            scoped = kubestate.cluster_scoped(cluster, kind)
            meta = {"name": obj_name, **({} if scoped else {"namespace": ns}),
                    "labels": {"app.kubernetes.io/managed-by": "Helm", "chart": f"{chart_name}-{version.lstrip('v')}"},
                    "annotations": {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns}}  # fmt: skip
            api = {
                "Deployment": "apps/v1",
                "DaemonSet": "apps/v1",
                "CSIDriver": "storage.k8s.io/v1",
            }.get(kind, "v1")
            objects[kubestate.obj_key(kind, None if scoped else ns, obj_name)] = {
                "apiVersion": api,
                "kind": kind,
                "metadata": meta,
            }
        release = {
            "name": name, "namespace": ns, "revision": (old or {}).get("revision", 0) + 1,
            "updated": time.strftime("%a %b %d %H:%M:%S %Y"), "status": "deployed",
            "chart": f"{chart_name}-{version.lstrip('v')}", "app_version": version,
            "values": [a for a in args if a.startswith("--set")], "config": config,
        }  # fmt: skip
        releases[key] = release
    if verb == "upgrade" and old is not None:
        out(f'Release "{name}" has been upgraded. Happy Helming!')
    elif verb == "upgrade":
        out(f'Release "{name}" does not exist. Installing it now.')
    _print_release(release)
    return 0
