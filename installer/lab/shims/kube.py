"""kubectl and helm entry points: find the cluster the node's kubeconfig names, then act on it."""

from __future__ import annotations

from installer.lab.shims import base, kubestate
from installer.lab.shims.base import die, out
from installer.lab.shims.kubestate import Target, Unreachable


def k8s_version() -> str:
    pkgs = base.peek_node("packages").get("installed", {})
    for name in ("kubeadm", "kubectl", "kubelet"):
        if name in pkgs:
            return "v" + str(pkgs[name]["version"]).split("-")[0]
    return "v1.35.0"


# ---------------------------------------------------------------- kubeadm preflight


# ---------------------------------------------------------------- kubectl


def _target(args: list[str], microk8s: str | None) -> Target:
    try:
        return kubestate.resolve_target(args, microk8s)
    except Unreachable as exc:
        die(kubestate.unreachable_message(exc.server), 1)


def kubectl(args: list[str], microk8s: str | None = None) -> int:
    words: list[str] = []
    i = 0
    valued = {"--kubeconfig", "-n", "--namespace", "-o", "--output", "--context", "-l", "--selector",
              "--timeout", "--for", "-f", "--filename", "--type", "--from-literal", "--from-file",
              "--field-selector", "-c", "--container", "--field-manager", "--patch", "-p", "--sort-by"}  # fmt: skip
    while i < len(args):
        a = args[i]
        if a in valued:
            i += 2
            continue
        if not a.startswith("-"):
            words.append(a)
        i += 1
    verb = words[0] if words else ""
    if verb == "version":
        v = k8s_version()
        if "--client" in args:
            out(f"Client Version: {v}\nKustomize Version: v5.7.1")
            return 0
        t = _target(args, microk8s)
        sv = t.read().get("version", v)
        out(f"Client Version: {v}\nKustomize Version: v5.7.1\nServer Version: {sv}")
        return 0
    if verb in ("config",):
        return 0
    if verb == "completion":
        out("# kubectl completion")
        return 0
    dry_client = any(a.startswith("--dry-run") and a != "--dry-run=none" for a in args)
    target = None if (verb == "create" and dry_client) else _target(args, microk8s)
    ns = base.opt(args, "-n", "--namespace")
    from installer.lab.shims import kubectl as kc

    return kc.run(verb, words[1:], args, target, ns)


# ---------------------------------------------------------------- helm


def helm(args: list[str], microk8s: str | None = None) -> int:
    from installer.lab.shims import helm as h

    return h.run(args, microk8s)


# ---------------------------------------------------------------- container runtime
