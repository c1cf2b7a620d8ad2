"""kubectl's verbs against a lab cluster: get, apply, create, delete, wait, label, taint..."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, kubestate
from installer.lab.shims.base import die, err, out
from installer.lab.shims.kubestate import Target

SYSTEM_PODS = ("coredns-7c65d6cfc9-x2x5p", "coredns-7c65d6cfc9-zt8hq")


def _age(ts: float) -> str:
    s = int(time.time() - ts)
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def _resource(kind: str, api: str) -> str:
    group = api.split("/")[0] if "/" in api else ""
    return kind.lower() + (f".{group}" if group else "")


def nodes(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    ready = kubestate.cni_ready(cluster)
    rows = []
    for name, n in sorted(cluster.get("nodes", {}).items()):
        roles = "control-plane" if n.get("control_plane") else "<none>"
        if cluster.get("flavour") == "rke2" and n.get("control_plane"):
            roles = "control-plane,etcd,master"
        rows.append({"name": name, "status": "Ready" if ready else "NotReady", "roles": roles,
                     "age": _age(n.get("joined", time.time())), "version": cluster.get("version", "v1.35.0"),
                     "address": n.get("address", ""), "labels": n.get("labels", {}), "taints": n.get("taints", [])})  # fmt: skip
    return rows


def _node_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": row["name"], "labels": {"kubernetes.io/hostname": row["name"], **row["labels"],
                     **({"node-role.kubernetes.io/control-plane": ""} if "control-plane" in row["roles"] else {})}},
        "spec": {"taints": row["taints"]},
        "status": {"addresses": [{"type": "InternalIP", "address": row["address"]}, {"type": "Hostname", "address": row["name"]}],
                   "conditions": [{"type": "Ready", "status": "True" if row["status"] == "Ready" else "False"}],
                   "nodeInfo": {"kubeletVersion": row["version"]}},
    }  # fmt: skip


def _pods(cluster: dict[str, Any], ns: str | None) -> list[dict[str, Any]]:
    ready = kubestate.cni_ready(cluster)
    rows = []
    node_names = sorted(cluster.get("nodes", {}))
    for name in node_names:
        if cluster.get("nodes", {})[name].get("control_plane"):
            for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                rows.append(("kube-system", f"{comp}-{name}", "Running"))
        rows.append(("kube-system", f"kube-proxy-{base.rand_alnum(5)}", "Running"))
    for p in SYSTEM_PODS:
        rows.append(("kube-system", p, "Running" if ready else "Pending"))
    for key in cluster.get("objects", {}):
        kind, ons, oname = key.split("/", 2)
        if kind == "DaemonSet":
            rows += [(ons, f"{oname}-{base.rand_alnum(5)}", "Running") for _ in node_names]
        elif kind in ("Deployment", "StatefulSet"):
            rows.append((ons, f"{oname}-{base.rand_alnum(9)}-{base.rand_alnum(5)}", "Running"))
    return [
        {"namespace": r[0], "name": r[1], "status": r[2]} for r in rows if ns is None or r[0] == ns
    ]


def _print_table(headers: list[str], rows: list[list[str]], no_headers: bool) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if not no_headers:
        out("   ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for r in rows:
        out("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def _jsonpath(data: Any, expr: str) -> str:
    expr = expr.strip().removeprefix("{").removesuffix("}")
    # Keys holding dots are escaped ({.data.config\.json}).
    parts = [
        p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.(?![^\[]*\])", expr.lstrip(".")) if p
    ]
    items = [data]
    for p in parts:
        m = re.fullmatch(r"(\w*)\[(.*)\]", p)
        nxt = []
        for it in items:
            v = (
                it.get(m.group(1))
                if m and m.group(1) and isinstance(it, dict)
                else it
                if m
                else (it.get(p) if isinstance(it, dict) else None)
            )
            if m:
                if not isinstance(v, list):
                    continue
                sel = m.group(2)
                if sel in ("*", ""):
                    nxt += v
                elif sel.lstrip("-").isdigit():
                    idx = int(sel)
                    if -len(v) <= idx < len(v):
                        nxt.append(v[idx])
                elif sel.startswith("?(@."):
                    fm = re.match(r"\?\(@\.(\w+)==[\"']?([^\"')]*)[\"']?\)", sel)
                    if fm:
                        nxt += [
                            x
                            for x in v
                            if isinstance(x, dict) and str(x.get(fm.group(1))) == fm.group(2)
                        ]
            elif v is not None:
                nxt.append(v)
        items = nxt
    return " ".join(i if isinstance(i, str) else json.dumps(i) for i in items)


def _output(objs: list[dict[str, Any]], fmt: str | None, single: bool) -> bool:
    """Print in -o json/yaml/name/jsonpath; False when the table format should be used."""
    if not fmt or fmt == "wide":
        return False
    data: Any = objs[0] if single and objs else {"apiVersion": "v1", "kind": "List", "items": objs}
    if fmt == "json":
        out(json.dumps(data, indent=4))
    elif fmt == "yaml":
        import yaml

        out(yaml.safe_dump(data, sort_keys=False).rstrip("\n"))
    elif fmt == "name":
        for o in objs:
            out(f"{o['kind'].lower()}/{o['metadata']['name']}")
    elif fmt.startswith("jsonpath="):
        out(_jsonpath(data, fmt.split("=", 1)[1]), end="")
    return True


def run(verb: str, words: list[str], args: list[str], target: Target | None, ns: str | None) -> int:
    cluster = target.read() if target else {}
    if verb == "get":
        return _get(words, args, cluster, ns)
    if verb in ("apply", "create", "replace") and base.opt(args, "-f", "--filename"):
        return _apply(args, target, ns, verb)
    if verb == "create":
        return _create(words, args, target, ns)
    if verb == "delete":
        return _delete(words, args, target, ns)
    if verb == "wait":
        return _wait(words, args, target, ns)
    if verb in (
        "label",
        "taint",
        "annotate",
        "patch",
        "cordon",
        "uncordon",
        "drain",
        "scale",
        "set",
    ):
        return _mutate(verb, words, args, target)
    if verb == "rollout":
        kind_name = words[1] if len(words) > 1 else ""
        what, _, name = kind_name.partition("/")
        kind = kubestate.resolve_kind(cluster, what)
        if name and kind in ("Deployment", "DaemonSet", "StatefulSet"):
            key = kubestate.obj_key(kind, ns or "default", name)
            if key not in cluster.get("objects", {}):
                group = "apps" if kind != "Pod" else ""
                die(f'Error from server (NotFound): {kind.lower()}s.{group} "{name}" not found', 1)
        out(f'{kind_name.split("/")[0]} "{kind_name.split("/")[-1]}" successfully rolled out')
        return 0
    if verb == "cluster-info":
        assert target is not None
        out(f"Kubernetes control plane is running at {target.server}")
        out(
            f"CoreDNS is running at {target.server}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy"
        )
        return 0
    if verb in ("describe", "logs", "exec", "top", "api-resources", "auth"):
        if verb == "auth":
            out("yes")
        return 0
    die(f'error: unknown command "{verb}" for "kubectl"', 1)


def _get(words: list[str], args: list[str], cluster: dict[str, Any], ns: str | None) -> int:
    if "--raw" in args or any(a.startswith("--raw=") for a in args):
        out("ok")
        return 0
    if not words:
        die(
            'You must specify the type of resource to get. Use "kubectl api-resources" for a complete list of supported resources.',
            1,
        )
    what = words[0]
    name = words[1] if len(words) > 1 else None
    if "/" in what:
        what, name = what.split("/", 1)
    kind = kubestate.resolve_kind(cluster, what)
    fmt = base.opt(args, "-o", "--output")
    no_headers = "--no-headers" in args
    all_ns = "-A" in args or "--all-namespaces" in args
    if kind == "Node":
        rows = nodes(cluster)
        # kubectl get node a b, get node/a node/b: every name; -l: a label selector
        names = [w.split("/", 1)[-1] for w in words[1:]] if "/" not in words[0] else []
        names = [w.split("/", 1)[1] for w in words if "/" in w] or names
        missing = [n for n in names if n not in {r["name"] for r in rows}]
        if names:
            rows = [r for r in rows if r["name"] in names]
        selector = base.opt(args, "-l", "--selector")
        if selector is not None:
            rows = [r for r in rows if _selected(_node_json(r)["metadata"]["labels"], selector)]
        if missing and not rows:
            die(f'Error from server (NotFound): nodes "{missing[0]}" not found', 1)
        if _output([_node_json(r) for r in rows], fmt, single=len(names) == 1):
            for n in missing:
                err(f'Error from server (NotFound): nodes "{n}" not found')
            return 1 if missing else 0
        headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (
            ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
            if fmt == "wide"
            else []
        )
        f = base.facts()
        table = [
            [r["name"], r["status"], r["roles"], r["age"], r["version"]]
            + (
                [r["address"], "<none>", f["os"]["pretty_name"], f["kernel"], "containerd://1.7.27"]
                if fmt == "wide"
                else []
            )
            for r in rows
        ]
        _print_table(headers, table, no_headers)
        for n in missing:
            err(f'Error from server (NotFound): nodes "{n}" not found')
        return 1 if missing else 0
    if kind == "Pod":
        pods = _pods(cluster, None if all_ns else (ns or "default"))
        if not pods and not all_ns:
            err(f"No resources found in {ns or 'default'} namespace.")
            return 0
        pod_objs: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": p["name"], "namespace": p["namespace"]},
                "status": {"phase": p["status"]},
            }
            for p in pods
        ]
        if _output(pod_objs, fmt, single=False):
            return 0
        headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        _print_table(
            headers,
            [
                ([p["namespace"]] if all_ns else [])
                + [p["name"], "1/1" if p["status"] == "Running" else "0/1", p["status"], "0", "5m"]
                for p in pods
            ],
            no_headers,
        )
        return 0
    if kind in ("componentstatuses", "cs"):
        err("Warning: v1 ComponentStatus is deprecated in v1.19+")
        _print_table(
            ["NAME", "STATUS", "MESSAGE", "ERROR"],
            [
                ["scheduler", "Healthy", "ok", ""],
                ["controller-manager", "Healthy", "ok", ""],
                ["etcd-0", "Healthy", "ok", ""],
            ],
            no_headers,
        )
        return 0
    objs: list[dict[str, Any]] = []
    namespaced = not kubestate.cluster_scoped(cluster, kind)
    for key, obj in sorted(cluster.get("objects", {}).items()):
        k, ons, oname = key.split("/", 2)
        if k != kind:
            continue
        if namespaced and not all_ns and ons != (ns or "default"):
            continue
        if name and oname != name:
            continue
        objs.append(obj)
    if kind == "Namespace":
        objs = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": n},
                "status": {"phase": "Active"},
            }
            for n in kubestate.namespaces(cluster)
            if not name or n == name
        ]
    if name and not objs:
        die(f'Error from server (NotFound): {what.split(".")[0]} "{name}" not found', 1)
    if (
        kind not in kubestate.known_kinds(cluster)
        and kind[:1].isupper() is False
        and kind not in kubestate.ALIASES.values()
    ):
        die(f'error: the server doesn\'t have a resource type "{what}"', 1)
    if _output(objs, fmt, single=bool(name)):
        return 0
    if not objs:
        err(
            f"No resources found in {ns or 'default'} namespace."
            if namespaced
            else "No resources found"
        )
        return 0
    if kind == "StorageClass":

        def _default(o: dict[str, Any]) -> str:
            ann = (o.get("metadata") or {}).get("annotations") or {}
            return (
                " (default)"
                if str(ann.get("storageclass.kubernetes.io/is-default-class")) == "true"
                else ""
            )

        _print_table(
            ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
            [[o["metadata"]["name"] + _default(o), str(o.get("provisioner", "")), str(o.get("reclaimPolicy", "Delete")),
              str(o.get("volumeBindingMode", "Immediate")), str(bool(o.get("allowVolumeExpansion", False))).lower(), "5m"]
             for o in objs],
            no_headers,
        )  # fmt: skip
        return 0
    if kind == "PersistentVolumeClaim":
        _print_table(
            (["NAMESPACE"] if all_ns else [])
            + ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"],
            [
                ([o["metadata"].get("namespace", "")] if all_ns else [])
                + [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Pending"),
                   (o.get("spec") or {}).get("volumeName", ""),
                   ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
                   ",".join({"ReadWriteOnce": "RWO", "ReadWriteMany": "RWX", "ReadOnlyMany": "ROX",
                             "ReadWriteOncePod": "RWOP"}.get(m, m) for m in (o.get("status") or {}).get("accessModes", [])),
                   (o.get("spec") or {}).get("storageClassName", ""), "<unset>", "5s"]
                for o in objs
            ],
            no_headers,
        )  # fmt: skip
        return 0
    headers = (["NAMESPACE"] if all_ns and namespaced else []) + ["NAME", "AGE"]
    _print_table(
        headers,
        [
            ([o["metadata"].get("namespace", "")] if all_ns and namespaced else [])
            + [o["metadata"]["name"], "5m"]
            for o in objs
        ],
        no_headers,
    )
    return 0


def _read_sources(args: list[str]) -> list[tuple[str, str]]:
    from installer.lab.shims import downloads

    sources = []
    for f in base.opts(args, "-f") + base.opts(args, "--filename"):
        if f == "-":
            sources.append(("STDIN", sys.stdin.read()))
        elif f.startswith(("http://", "https://")):
            body, _, rc = downloads.fetch(f)
            if rc:
                die(f'error: unable to read URL "{f}", server reported 0 , status code=0', 1)
            assert body is not None
            sources.append((f, body.decode()))
        elif Path(f).is_dir():
            for p in sorted(Path(f).glob("*.y*ml")) + sorted(Path(f).glob("*.json")):
                sources.append((str(p), p.read_text(encoding="utf-8")))
        else:
            text = base.read_node_file(f)
            if text is None:
                die(f'error: the path "{f}" does not exist', 1)
            sources.append((f, text))
    return sources


def _apply(args: list[str], target: Target | None, ns: str | None, verb: str) -> int:
    if target is None:
        die("error: the server is required", 1)
    assert target is not None
    docs: list[tuple[str, dict[str, Any]]] = []
    for src, text in _read_sources(args):
        try:
            loaded = (
                base.load_yaml_docs(text)
                if not text.lstrip().startswith("{")
                else [json.loads(text)]
            )
        except Exception as exc:
            die(f"error: error parsing {src}: error converting YAML to JSON: {exc}", 1)
        for d in loaded:
            if isinstance(d, dict) and d.get("kind") == "List":
                docs += [(src, x) for x in d.get("items", [])]
            elif isinstance(d, dict):
                docs.append((src, d))
    rc = 0
    with target.edit() as cluster:
        for src, d in docs:
            missing = [k for k in ("apiVersion", "kind") if not d.get(k)]
            if missing or not (d.get("metadata") or {}).get("name"):
                what = ", ".join(f"{k} not set" for k in missing) or "metadata.name not set"
                err(
                    f'error: error validating "{src}": error validating data: [{what}]; if you choose to ignore these errors, turn validation off with --validate=false'
                )
                rc = 1
                continue
            kind = d["kind"]
            if kind not in kubestate.known_kinds(cluster):
                err(
                    f'error: resource mapping not found for name: "{d["metadata"]["name"]}" namespace: "{d["metadata"].get("namespace", "")}" from "{src}": no matches for kind "{kind}" in version "{d["apiVersion"]}"\nensure CRDs are installed first'
                )
                rc = 1
                continue
            namespaced = not kubestate.cluster_scoped(cluster, kind)
            ons = (d["metadata"].get("namespace") or ns or "default") if namespaced else None
            if namespaced and ons not in kubestate.namespaces(cluster):
                err(
                    f'Error from server (NotFound): error when creating "{src}": namespaces "{ons}" not found'
                )
                rc = 1
                continue
            if namespaced:
                d["metadata"]["namespace"] = ons
            key = kubestate.obj_key(kind, ons, d["metadata"]["name"])
            objects = cluster.setdefault("objects", {})
            old = objects.get(key)
            if old is not None and verb == "create":
                err(
                    f'Error from server (AlreadyExists): error when creating "{src}": {_resource(kind, d["apiVersion"]).split(".")[0]}s "{d["metadata"]["name"]}" already exists'
                )
                rc = 1
                continue
            if kind == "Secret" and d.get("stringData"):
                # The API server merges stringData into data (base64) and does not keep it.
                import base64

                d["data"] = {**(d.get("data") or {}), **{
                    k: base64.b64encode(str(v).encode()).decode() for k, v in d.pop("stringData").items()
                }}  # fmt: skip
            if kind == "PersistentVolumeClaim" and old is not None:
                # A claim's spec is immutable once bound: apply keeps what was provisioned.
                d = {**d, "spec": {**old.get("spec", {}), **d.get("spec", {}),
                                   **{k: v for k, v in old.get("spec", {}).items() if k == "volumeName"}},
                     "status": old.get("status", {})}  # fmt: skip
                d["metadata"] = {**old.get("metadata", {}), **d.get("metadata", {})}
                state_same = all(old.get(k) == d.get(k) for k in ("spec", "metadata"))
            if old is not None and "status" in old and "status" not in d:
                d["status"] = old["status"]  # apply never touches the status subresource
            objects[key] = d
            if kind in ("DaemonSet", "Deployment"):
                kubestate.note_cni(
                    cluster, d["metadata"]["name"] + " " + json.dumps(d.get("spec", {}))[:2000]
                )
            if kind == "Installation" or src.rsplit("/", 1)[-1].startswith(
                ("calico", "kube-flannel", "cilium", "canal", "tigera")
            ):
                kubestate.note_cni(cluster, src.rsplit("/", 1)[-1])
            state = "created" if old is None else ("unchanged" if old == d else "configured")
            if kind == "PersistentVolumeClaim" and old is not None and state_same:
                state = "unchanged"
            out(f"{_resource(kind, d['apiVersion'])}/{d['metadata']['name']} {state}")
        from installer.lab.shims import csi

        csi.reconcile(cluster)
        operators(cluster)
    return rc


def _create(words: list[str], args: list[str], target: Target | None, ns: str | None) -> int:
    what = words[0] if words else ""
    dry = any(a.startswith("--dry-run") and a != "--dry-run=none" for a in args)
    if what in ("namespace", "ns") and len(words) > 1:
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": words[1]},
        }
    elif what == "secret" and len(words) > 2:
        data = {}
        for lit in base.opts(args, "--from-literal"):
            k, _, v = lit.partition("=")
            data[k] = (
                base.__dict__.get("b64", None)
                or __import__("base64").b64encode(v.encode()).decode()
            )
        for f in base.opts(args, "--from-file"):
            k, _, path = f.partition("=")
            path = path or k
            content = base.read_node_file(path)
            if content is None:
                die(f"error: error reading {path}: no such file or directory", 1)
            data[Path(k).name] = __import__("base64").b64encode(content.encode()).decode()
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": words[2], "namespace": ns or "default"},
               "type": base.opt(args, "--type") or "Opaque", "data": data}  # fmt: skip
    elif what in ("configmap", "cm") and len(words) > 1:
        data = {}
        for lit in base.opts(args, "--from-literal"):
            k, _, v = lit.partition("=")
            data[k] = v
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": words[1], "namespace": ns or "default"},
            "data": data,
        }
    else:
        die(f"error: unknown command \"{what}\"\nSee 'kubectl create -h' for help and examples", 1)
    if dry:
        fmt = base.opt(args, "-o", "--output")
        if fmt == "json":
            out(json.dumps(obj, indent=2))
        elif fmt == "yaml":
            import yaml

            out(yaml.safe_dump(obj, sort_keys=False).rstrip("\n"))
        else:
            out(f"{obj['kind'].lower()}/{obj['metadata']['name']} created (dry run)")
        return 0
    assert target is not None
    with target.edit() as cluster:
        kind = obj["kind"]
        ons = obj["metadata"].get("namespace")
        if ons and ons not in kubestate.namespaces(cluster):
            die(f'error: failed to create {kind.lower()}: namespaces "{ons}" not found', 1)
        key = kubestate.obj_key(kind, ons, obj["metadata"]["name"])
        exists = key in cluster.get("objects", {}) or (
            kind == "Namespace" and obj["metadata"]["name"] in kubestate.namespaces(cluster)
        )
        if exists:
            die(
                f'Error from server (AlreadyExists): {kind.lower()}s "{obj["metadata"]["name"]}" already exists',
                1,
            )
        cluster.setdefault("objects", {})[key] = obj
    out(f"{obj['kind'].lower()}/{obj['metadata']['name']} created")
    return 0


def _delete_files(args: list[str], target: Target, ns: str | None, ignore: bool) -> int:
    """kubectl delete -f FILE: every object the file names."""
    from installer.lab.shims import csi

    docs = []
    for src, text in _read_sources(args):
        docs += [(src, d) for d in base.load_yaml_docs(text) if isinstance(d, dict)]
    rc = 0
    with target.edit() as cluster:
        objects = cluster.setdefault("objects", {})
        for src, d in docs:
            kind, name = d.get("kind", ""), (d.get("metadata") or {}).get("name", "")
            scoped = kubestate.cluster_scoped(cluster, kind)
            ons = (
                None if scoped else ((d.get("metadata") or {}).get("namespace") or ns or "default")
            )
            res = _resource(kind, d.get("apiVersion", "v1"))
            if objects.pop(kubestate.obj_key(kind, ons, name), None) is None:
                if not ignore:
                    err(
                        f'Error from server (NotFound): error when deleting "{src}": {res.split(".")[0]}s "{name}" not found'
                    )
                    rc = 1
                continue
            out(f'{res} "{name}" deleted' + (f" from {ons} namespace" if ons else ""))
        csi.reconcile(cluster)
    return rc


def _delete(words: list[str], args: list[str], target: Target | None, ns: str | None) -> int:
    assert target is not None
    ignore = "--ignore-not-found" in args or "--ignore-not-found=true" in args
    if base.opt(args, "-f", "--filename"):
        return _delete_files(args, target, ns, ignore)
    if not words:
        return 0
    what = words[0]
    names = words[1:]
    if "/" in what:
        what, names = what.split("/", 1)[0], [what.split("/", 1)[1]]
    kind = kubestate.ALIASES.get(what.lower().split(".")[0], what)
    with target.edit() as cluster:
        for name in names:
            if kind == "Node":
                if cluster.get("nodes", {}).pop(name, None) is None and not ignore:
                    die(f'Error from server (NotFound): nodes "{name}" not found', 1)
                out(f'node "{name}" deleted')
                continue
            key = kubestate.obj_key(
                kind, None if kind in kubestate.CLUSTER_SCOPED else (ns or "default"), name
            )
            if cluster.get("objects", {}).pop(key, None) is None and not ignore:
                die(f'Error from server (NotFound): {what}s "{name}" not found', 1)
            out(f'{kind.lower()} "{name}" deleted')
        if kind in ("PersistentVolumeClaim", "PersistentVolume"):
            from installer.lab.shims import csi

            csi.reconcile(cluster)
    return 0


def _timeout(args: list[str]) -> float:
    t = base.opt(args, "--timeout") or "30s"
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", t)
    if not m:
        return 30.0
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _wait(words: list[str], args: list[str], target: Target | None, ns: str | None) -> int:
    assert target is not None
    cond = base.opt(args, "--for") or ""
    kind = kubestate.ALIASES.get(
        (words[0] if words else "").split("/")[0].lower(), words[0] if words else ""
    )
    deadline = time.time() + _timeout(args)
    if kind == "PersistentVolumeClaim":
        return _wait_claims(words, args, target, ns, cond, deadline)
    # wait TYPE NAME..., or TYPE/NAME...
    names = [w.split("/", 1)[1] for w in words if "/" in w] or words[1:]
    if kind != "Node" and cond.startswith("jsonpath="):
        return _wait_jsonpath(words, names, target, ns, cond, deadline)
    if kind != "Node":
        for w in words[1:] or ["all"]:
            out(f"{(words[0] if words else '').split('/')[0]}/{w} condition met")
        return 0
    while True:
        rows = nodes(target.read())
        if names and "--all" not in args:
            rows = [r for r in rows if r["name"] in names]
        not_ready = [r for r in rows if r["status"] != "Ready"]
        if cond.lower() == "condition=ready" and (not_ready or not rows):
            if time.time() >= deadline:
                first = not_ready[0]["name"] if not_ready else (names[0] if names else "")
                die(f"error: timed out waiting for the condition on nodes/{first}", 1)
            time.sleep(0.5)
            continue
        for r in rows:
            out(f"node/{r['name']} condition met")
        return 0


def _wait_claims(
    words: list[str], args: list[str], target: Target, ns: str | None, cond: str, deadline: float
) -> int:
    """kubectl wait on claims: --for=jsonpath='{.status.phase}'=Bound, condition=..., delete."""
    from installer.lab.shims import csi

    names = [w.split("/", 1)[1] for w in words if "/" in w] or words[1:]
    ns = ns or "default"
    while True:
        with target.edit() as cluster:
            csi.reconcile(cluster)
            objects = cluster.get("objects", {})
            claims = {
                n: objects.get(kubestate.obj_key("PersistentVolumeClaim", ns, n)) for n in names
            }
        if cond == "delete":
            pending = [n for n, c in claims.items() if c is not None]
        else:
            missing = [n for n, c in claims.items() if c is None]
            if missing:
                die(
                    f'Error from server (NotFound): persistentvolumeclaims "{missing[0]}" not found',
                    1,
                )
            if cond.startswith("jsonpath="):
                expr, _, want = cond.removeprefix("jsonpath=").rpartition("=")
                pending = [n for n, c in claims.items() if _jsonpath(c, expr) != want]
            else:
                pending = []
        if not pending:
            for n in names:
                out(
                    f"persistentvolumeclaim/{n} condition met"
                    if cond != "delete"
                    else f"persistentvolumeclaim/{n} deleted"
                )
            return 0
        if time.time() >= deadline:
            die(
                f"error: timed out waiting for the condition on persistentvolumeclaims/{pending[0]}",
                1,
            )
        time.sleep(1)


def _mutate(verb: str, words: list[str], args: list[str], target: Target | None) -> int:
    assert target is not None
    node = words and kubestate.ALIASES.get(words[0].split("/")[0].lower()) == "Node"
    if verb == "patch" and not node:
        return _patch(words, args, target, base.opt(args, "-n", "--namespace"))
    if (
        verb in ("label", "taint")
        and words[:1]
        and kubestate.ALIASES.get(words[0].lower()) == "Node"
    ):
        with target.edit() as cluster:
            names = list(cluster.get("nodes", {})) if "--all" in args else [w for w in words[1:2]]
            changes = words[2:] if "--all" not in args else words[1:]
            for name in names:
                n = cluster.get("nodes", {}).get(name)
                if n is None:
                    die(f'Error from server (NotFound): nodes "{name}" not found', 1)
                for ch in changes:
                    if verb == "label":
                        k, _, v = ch.partition("=")
                        if k.endswith("-"):
                            n.setdefault("labels", {}).pop(k[:-1], None)
                        else:
                            n.setdefault("labels", {})[k] = v
                    else:
                        taints = n.setdefault("taints", [])
                        if ch.endswith("-"):
                            key = ch[:-1].split(":")[0].split("=")[0]
                            taints[:] = [t for t in taints if t.get("key") != key]
                        else:
                            kv, _, effect = ch.rpartition(":")
                            k, _, v = kv.partition("=")
                            taints.append({"key": k, "value": v, "effect": effect})
                out(
                    f"node/{name} {'labeled' if verb == 'label' else 'tainted' if not changes or not changes[0].endswith('-') else 'untainted'}"
                )
        return 0
    target_name = words[1] if len(words) > 1 else (words[0] if words else "")
    past = {"set": "updated", "scale": "scaled", "drain": "drained", "cordon": "cordoned",
            "uncordon": "uncordoned", "annotate": "annotated", "patch": "patched"}  # fmt: skip
    out(
        f"{words[0] if words else 'resource'}/{target_name.split('/')[-1]} {past.get(verb, verb + 'ed')}"
    )
    return 0


# ---------------------------------------------------------------- selectors, patch, jsonpath waits


def _selected(labels: dict[str, Any], selector: str) -> bool:
    """A label selector's equality terms: k=v, k==v, k!=v, k, !k (comma = and)."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _lookup(
    cluster: dict[str, Any], what: str, name: str, ns: str | None
) -> tuple[str, str, dict[str, Any] | None]:
    """(kind, object key, object or None) for a resource name such as ipaddresspool or dsp."""
    kind = kubestate.resolve_kind(cluster, what)
    if kind not in kubestate.known_kinds(cluster):
        die(f'error: the server doesn\'t have a resource type "{what}"', 1)
    scoped = kubestate.cluster_scoped(cluster, kind)
    key = kubestate.obj_key(kind, None if scoped else (ns or "default"), name)
    return kind, key, cluster.get("objects", {}).get(key)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _merge_patch(result.get(k), v)
    return result


def _json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add / replace / remove on a copy of ``doc``."""
    doc = json.loads(json.dumps(doc))
    for op in ops:
        parts = [
            p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]
        ]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1] if parts else ""
        if op.get("op") == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if op.get("op") == "add":
                parent.insert(idx, op.get("value"))
            else:
                parent[idx] = op.get("value")
        else:
            if op.get("op") == "replace" and last not in parent:
                raise KeyError(last)
            parent[last] = op.get("value")
    return doc


def _patch(words: list[str], args: list[str], target: Target, ns: str | None) -> int:
    """kubectl patch TYPE NAME / TYPE/NAME -p PATCH [--type strategic|merge|json]."""
    what, _, name = words[0].partition("/")
    name = name or (words[1] if len(words) > 1 else "")
    text = base.opt(args, "-p", "--patch")
    patch_file = base.opt(args, "--patch-file")
    if text is None and patch_file is not None:
        text = base.read_node_file(patch_file)
        if text is None:
            die(
                f"error: unable to read patch file: open {patch_file}: no such file or directory", 1
            )
    if text is None:
        die("error: must specify --patch or --patch-file containing the contents of the patch", 1)
    assert text is not None
    import yaml

    try:
        patch = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        die(f'error: unable to parse "{text}": {exc}', 1)
    kind_of_patch = base.opt(args, "--type") or "strategic"
    with target.edit() as cluster:
        kind, key, obj = _lookup(cluster, what, name, ns)
        if obj is None:
            api = next((o.get("apiVersion", "v1") for k, o in cluster.get("objects", {}).items()
                        if k.startswith(f"{kind}/")), "v1")  # fmt: skip
            res = _resource(kind, api)
            plural, _, group = res.partition(".")
            die(
                f'Error from server (NotFound): {plural}s{"." + group if group else ""} "{name}" not found',
                1,
            )
        assert obj is not None
        try:
            if kind_of_patch == "json":
                new = _json_patch(obj, patch if isinstance(patch, list) else [])
            else:
                # strategic merge behaves as a merge patch for custom resources and plain fields
                new = _merge_patch(obj, patch)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            die(
                f"The request is invalid: the server rejected our request due to an error in our request: {exc}",
                1,
            )
        changed = new != obj
        cluster["objects"][key] = new
        operators(cluster)
    out(
        f"{_resource(kind, obj.get('apiVersion', 'v1'))}/{name} patched{'' if changed else ' (no change)'}"
    )
    return 0


def _wait_jsonpath(
    words: list[str], names: list[str], target: Target, ns: str | None, cond: str, deadline: float
) -> int:
    """kubectl wait --for=jsonpath='{.status.x}'=VALUE TYPE/NAME...: until every object matches."""
    what = (words[0] if words else "").split("/")[0]
    expr, _, want = cond.removeprefix("jsonpath=").rpartition("=")
    if not expr:  # --for=jsonpath='{.status.x}': the field only has to exist
        expr, want = cond.removeprefix("jsonpath="), ""
    while True:
        with target.edit() as cluster:
            operators(cluster)
            found = {n: _lookup(cluster, what, n, ns) for n in names}
        missing = [n for n, (_, _, o) in found.items() if o is None]
        if missing:
            kind = found[missing[0]][0]
            die(f'Error from server (NotFound): {kind.lower()}s "{missing[0]}" not found', 1)
        pending = [
            n
            for n, (_, _, o) in found.items()
            if (_jsonpath(o, expr) != want if want else not _jsonpath(o, expr))
        ]
        if not pending:
            for n, (kind, _, o) in found.items():
                out(f"{_resource(kind, (o or {}).get('apiVersion', 'v1'))}/{n} condition met")
            return 0
        if time.time() >= deadline:
            die(f"error: timed out waiting for the condition on {what}/{pending[0]}", 1)
        time.sleep(1)


# ---------------------------------------------------------------- controllers


def operators(cluster: dict[str, Any]) -> None:
    """What the cluster's controllers do after a change: MetalLB, OpenEBS."""
    metallb_reconcile(cluster)
    openebs_reconcile(cluster)


def _pool_ips(pool: dict[str, Any], limit: int = 1024) -> list[str]:
    import ipaddress

    ips: list[str] = []
    for entry in (pool.get("spec") or {}).get("addresses") or []:
        entry = str(entry)
        if "-" in entry:
            lo, hi = (int(ipaddress.IPv4Address(x.strip())) for x in entry.split("-", 1))
            ips += [str(ipaddress.IPv4Address(a)) for a in range(lo, min(hi + 1, lo + limit))]
        else:
            net = ipaddress.ip_network(entry, strict=False)
            hosts = net.hosts() if net.num_addresses > 1 else iter([net.network_address])
            for a in hosts:
                if len(ips) >= limit:
                    break
                ips.append(str(a))
    return ips


def metallb_reconcile(cluster: dict[str, Any]) -> None:
    """MetalLB's controller: a LoadBalancer Service gets an address of an IPAddressPool (the one
    it asks for with spec.loadBalancerIP or metallb.universe.tf/loadBalancerIPs, if free)."""
    objects = cluster.setdefault("objects", {})
    if "Deployment/metallb-system/controller" not in objects:
        return
    pools = [o for k, o in sorted(objects.items()) if k.startswith("IPAddressPool/")]
    services = [o for k, o in sorted(objects.items()) if k.startswith("Service/")
                and (o.get("spec") or {}).get("type") == "LoadBalancer"]  # fmt: skip
    taken = {i.get("ip") for svc in services
             for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []}  # fmt: skip
    for svc in services:
        if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            continue
        ann = (svc.get("metadata") or {}).get("annotations") or {}
        wanted = (svc.get("spec") or {}).get("loadBalancerIP") or ann.get(
            "metallb.universe.tf/loadBalancerIPs"
        )
        free = [ip for pool in pools for ip in _pool_ips(pool) if ip not in taken]
        ip = (wanted if wanted in free else None) if wanted else (free[0] if free else None)
        if ip is None:
            continue  # <pending>, as kubectl get svc shows it
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
        taken.add(ip)


# ---------------------------------------------------------------- OpenEBS operators

MAYASTOR = "io.openebs.csi-mayastor"


def _lab_disk(node: dict[str, Any] | None, dev: str) -> dict[str, Any] | None:
    """The disk of a lab node that a DiskPool names (/dev/sdX or /dev/disk/by-id/...)."""
    for disk in ((node or {}).get("facts") or {}).get("disks", []):
        model = str(disk.get("model", "")).replace(" ", "_")
        names = {f"/dev/{disk['name']}"}
        if disk.get("wwn"):
            names.add(f"/dev/disk/by-id/wwn-{disk['wwn']}")
        if disk.get("serial"):
            names |= {f"/dev/disk/by-id/ata-{model}_{disk['serial']}",
                      f"/dev/disk/by-id/scsi-0{disk.get('vendor', '')}_{model}_{disk['serial']}"}  # fmt: skip
        if dev in names:
            return dict(disk)
    return None


def _quantity(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTE]i?)?", str(text).strip())
    if not m:
        return 0
    mult = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20,
            "Gi": 2**30, "Ti": 2**40}.get(m.group(2), 1)  # fmt: skip
    return int(float(m.group(1)) * mult)


def openebs_reconcile(cluster: dict[str, Any]) -> None:
    """What OpenEBS's operators do: the diskpool operator brings a DiskPool up (status.cr_state
    Created, pool_status Online) once the io-engine runs on its node (the openebs chart with
    replicated storage, the node labelled openebs.io/engine=mayastor) and its one disk exists
    there; the mayastor CSI controller provisions a claim on `repl` pools of different nodes."""
    objects = cluster.setdefault("objects", {})
    if not any(k.startswith(("DiskPool/", "PersistentVolumeClaim/")) for k in objects):
        return
    engine = f"CSIDriver//{MAYASTOR}" in objects
    lab_nodes = {str(n["name"]).lower(): n for n in base.lab().get("nodes", [])}
    members = {str(k).lower(): v for k, v in cluster.get("nodes", {}).items()}
    replicas: dict[str, list[list[Any]]] = cluster.setdefault("openebs_replicas", {})
    for pv in [pv for pv in replicas if f"PersistentVolume//{pv}" not in objects]:
        del replicas[pv]  # the volume was deleted with its claim
    used: dict[str, int] = {}
    for placed in replicas.values():
        for pool, size in placed:
            used[pool] = used.get(pool, 0) + int(size)
    pools: dict[str, dict[str, Any]] = {}
    for key, pool in objects.items():
        if not key.startswith("DiskPool/"):
            continue
        spec = pool.get("spec") or {}
        node = str(spec.get("node", "")).lower()
        disks = [re.sub(r"^[a-z]+://", "", str(d)).split("?")[0] for d in spec.get("disks") or []]
        labels = (members.get(node) or {}).get("labels") or {}
        disk = _lab_disk(lab_nodes.get(node), disks[0]) if len(disks) == 1 else None
        name = str((pool.get("metadata") or {}).get("name"))
        if (
            engine
            and labels.get("openebs.io/engine") == "mayastor"
            and disk
            and not disk.get("system")
        ):
            capacity = int(float(disk["size_gb"]) * 1024**3) - 4 * 1024**2  # pool metadata
            taken = used.get(name, 0)
            pool["status"] = {"cr_state": "Created", "pool_status": "Online", "capacity": capacity,
                              "used": taken, "available": capacity - taken}  # fmt: skip
            pools[name] = {"node": node, "available": capacity - taken}
        else:
            pool["status"] = {"cr_state": "Creating", "pool_status": "Unknown", "capacity": 0,
                              "used": 0, "available": 0}  # fmt: skip
    for key in [k for k in objects if k.startswith("PersistentVolumeClaim/")]:
        pvc = objects[key]
        spec = pvc.get("spec") or {}
        if (pvc.get("status") or {}).get("phase") == "Bound":
            continue
        sc = objects.get(f"StorageClass//{spec.get('storageClassName')}")
        if sc is None or sc.get("provisioner") != MAYASTOR or not engine:
            continue
        size = _quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
        repl = int(str((sc.get("parameters") or {}).get("repl", "1")))
        chosen: list[str] = []
        for name, info in sorted(pools.items(), key=lambda kv: -kv[1]["available"]):
            if info["available"] >= size and info["node"] not in {pools[c]["node"] for c in chosen}:
                chosen.append(name)
        if len(chosen) < repl:
            pvc.setdefault("status", {})["phase"] = "Pending"
            pvc["_events"] = [f'failed to provision volume with StorageClass "{sc["metadata"]["name"]}": rpc error: '
                              f"code = ResourceExhausted desc = Not enough suitable pools available, {len(chosen)}/{repl}"]  # fmt: skip
            continue
        meta = pvc.setdefault("metadata", {})
        from installer.lab.shims import render

        uid = meta.setdefault("uid", render.fake_uuid(key, str(time.time())))
        pv_name = f"pvc-{uid}"
        request = str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
        replicas[pv_name] = [[c, size] for c in chosen[:repl]]
        for c in chosen[:repl]:
            pools[c]["available"] -= size
            st = objects[
                next(k for k in objects if k.startswith("DiskPool/") and k.endswith(f"/{c}"))
            ]["status"]
            st["used"] += size
            st["available"] -= size
        objects[f"PersistentVolume//{pv_name}"] = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": MAYASTOR}},
            "spec": {"accessModes": spec.get("accessModes", ["ReadWriteOnce"]), "capacity": {"storage": request},
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"),
                                  "name": meta.get("name"), "uid": uid},
                     "csi": {"driver": MAYASTOR, "fsType": "ext4", "volumeHandle": uid,
                             "volumeAttributes": {"protocol": str((sc.get("parameters") or {}).get("protocol", "nvmf")),
                                                  "repl": str(repl)}},
                     "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                     "storageClassName": sc["metadata"]["name"], "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"},
        }  # fmt: skip
        spec["volumeName"] = pv_name
        pvc["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                         "capacity": {"storage": request}}  # fmt: skip
        pvc.pop("_events", None)
