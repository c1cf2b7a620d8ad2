"""The container runtime and kubelet binaries: containerd, ctr, crictl, kubelet."""

from __future__ import annotations

import json

from installer.lab.shims.base import err, out
from installer.lab.shims.kube import k8s_version

CONTAINERD_DEFAULT = """disabled_plugins = []
imports = []
oom_score = 0
plugin_dir = ""
required_plugins = []
root = "/var/lib/containerd"
state = "/run/containerd"
temp = ""
version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            SystemdCgroup = false
"""


def containerd(args: list[str]) -> int:
    if args[:2] == ["config", "default"]:
        out(CONTAINERD_DEFAULT.rstrip("\n"))
        return 0
    if "--version" in args or args[:1] == ["-v"]:
        out(
            "containerd github.com/containerd/containerd 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da"
        )
        return 0
    return 0


def ctr(args: list[str]) -> int:
    if args[:1] == ["version"]:
        out("Client:\n  Version:  1.7.27\n\nServer:\n  Version:  1.7.27")
    return 0


def crictl(args: list[str]) -> int:
    if "--version" in args or args[:1] == ["--version"]:
        out("crictl version v1.35.0")
    elif args[:1] == ["info"]:
        out(json.dumps({"status": {"conditions": [{"type": "RuntimeReady", "status": True}]}}))
    elif args[:1] in (["ps"], ["images"], ["pods"]):
        out("CONTAINER           IMAGE               CREATED             STATE               NAME")
    return 0


def kubelet(args: list[str]) -> int:
    if "--version" in args:
        out(f"Kubernetes {k8s_version()}")
        return 0
    err("E0101 kubelet: running the kubelet by hand is not supported in the lab; use systemctl")
    return 1
