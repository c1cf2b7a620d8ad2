"""helm against a lab cluster: repositories (per node), releases (per cluster)."""

from __future__ import annotations

import json
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
          "--kubeconfig", "-o", "--output", "--kube-context", "--set-file", "--username", "--password"}  # fmt: skip


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
    if verb == "version":
        out(
            f"{VERSION}+gd80839c"
            if "--short" in args
            else f'version.BuildInfo{{Version:"{VERSION}", GitCommit:"d80839cf37d860c8aa9a0503fe463278f26cd5e2", GitTreeState:"clean", GoVersion:"go1.24.5"}}'
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
            if base.opt(args, "-o", "--output") == "json":
                out(
                    json.dumps(
                        [
                            {
                                k: r[k]
                                for k in (
                                    "name",
                                    "namespace",
                                    "revision",
                                    "status",
                                    "chart",
                                    "app_version",
                                )
                            }
                            for r in rows
                        ]
                    )
                )
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
    if "/" in chart and not chart.startswith(("oci://", "./", "/")):
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
        release = {
            "name": name, "namespace": ns, "revision": (old or {}).get("revision", 0) + 1,
            "updated": time.strftime("%a %b %d %H:%M:%S %Y"), "status": "deployed",
            "chart": f"{chart_name}-{version.lstrip('v')}", "app_version": version,
            "values": [a for a in args if a.startswith("--set")],
        }  # fmt: skip
        releases[key] = release
    if verb == "upgrade" and old is not None:
        out(f'Release "{name}" has been upgraded. Happy Helming!')
    elif verb == "upgrade":
        out(f'Release "{name}" does not exist. Installing it now.')
    _print_release(release)
    return 0
