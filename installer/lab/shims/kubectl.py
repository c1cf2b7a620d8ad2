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
    parts = [p for p in re.split(r"\.(?![^\[]*\])", expr.lstrip(".")) if p]
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
    kind = kubestate.ALIASES.get(what.lower().split(".")[0], what)
    fmt = base.opt(args, "-o", "--output")
    no_headers = "--no-headers" in args
    all_ns = "-A" in args or "--all-namespaces" in args
    if kind == "Node":
        rows = nodes(cluster)
        if name:
            rows = [r for r in rows if r["name"] == name]
            if not rows:
                die(f'Error from server (NotFound): nodes "{name}" not found', 1)
        if _output([_node_json(r) for r in rows], fmt, single=bool(name)):
            return 0
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
        return 0
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
    namespaced = kind not in kubestate.CLUSTER_SCOPED
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
            namespaced = kind not in kubestate.CLUSTER_SCOPED
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
            out(f"{_resource(kind, d['apiVersion'])}/{d['metadata']['name']} {state}")
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


def _delete(words: list[str], args: list[str], target: Target | None, ns: str | None) -> int:
    assert target is not None
    ignore = "--ignore-not-found" in args or "--ignore-not-found=true" in args
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
    if kind != "Node":
        for w in words[1:] or ["all"]:
            out(f"{(words[0] if words else '').split('/')[0]}/{w} condition met")
        return 0
    while True:
        rows = nodes(target.read())
        if words[1:] and "--all" not in args:
            rows = [r for r in rows if r["name"] in words[1:]]
        not_ready = [r for r in rows if r["status"] != "Ready"]
        if cond.lower() == "condition=ready" and (not_ready or not rows):
            if time.time() >= deadline:
                first = not_ready[0]["name"] if not_ready else (words[1] if len(words) > 1 else "")
                die(f"error: timed out waiting for the condition on nodes/{first}", 1)
            time.sleep(0.5)
            continue
        for r in rows:
            out(f"node/{r['name']} condition met")
        return 0


def _mutate(verb: str, words: list[str], args: list[str], target: Target | None) -> int:
    assert target is not None
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
