"""The container runtime and kubelet binaries: containerd, ctr, runc, crictl, kubelet."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

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


# containerd 2.x (config version 3); like 2.1.4, it lists no SystemdCgroup key
# (containerd/containerd#12101).
CONTAINERD_DEFAULT_V3 = """disabled_plugins = []
imports = []
oom_score = 0
plugin_dir = ''
required_plugins = []
root = '/var/lib/containerd'
state = '/run/containerd'
temp = ''
version = 3

[cgroup]
  path = ''

[grpc]
  address = '/run/containerd/containerd.sock'
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216
  tcp_address = ''
  tcp_tls_ca = ''
  tcp_tls_cert = ''
  tcp_tls_key = ''
  uid = 0

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    disable_snapshot_annotations = true
    discard_unpacked_layers = false
    max_concurrent_downloads = 3
    image_pull_progress_timeout = '5m0s'
    image_pull_with_sync_fs = false
    stats_collect_period = 10

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ''

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    selinux_category_range = 1024
    max_container_log_line_size = 16384
    disable_apparmor = false
    restrict_oom_score_adj = false
    disable_proc_mount = false
    unset_seccomp_profile = ''
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    device_ownership_from_security_context = false
    ignore_image_defined_volumes = false
    netns_mounts_under_state_dir = false
    enable_unprivileged_ports = true
    enable_unprivileged_icmp = true
    enable_cdi = true
    cdi_spec_dirs = ['/etc/cdi', '/var/run/cdi']
    drain_exec_sync_io_timeout = '0s'
    ignore_deprecation_warnings = []

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      ignore_blockio_not_enabled_errors = false
      ignore_rdt_not_enabled_errors = false

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          runtime_path = ''
          pod_annotations = []
          container_annotations = []
          privileged_without_host_devices = false
          privileged_without_host_devices_all_devices_allowed = false
          base_runtime_spec = ''
          cni_conf_dir = ''
          cni_max_conf_num = 0
          snapshotter = ''
          sandboxer = 'podsandbox'
          io_type = ''

          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            BinaryName = ''
            CriuImagePath = ''
            CriuWorkPath = ''
            IoGid = 0
            IoUid = 0
            NoNewKeyring = false
            Root = ''
            ShimCgroup = ''

    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dir = ''
      conf_dir = '/etc/cni/net.d'
      max_conf_num = 1
      setup_serially = false
      conf_template = ''
      ip_pref = ''
      use_internal_loopback = false

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
    stream_idle_timeout = '4h0m0s'
    enable_tls_streaming = false

    [plugins.'io.containerd.grpc.v1.cri'.x509_key_pair_streaming]
      tls_cert_file = ''
      tls_key_file = ''
"""

CONTAINERD_COMMIT = {"2": "75cb2b7193e4e490e9fbdc236c0e811ccaba3376", "1": "05044ec0a9a75232cad458027ca83437aae3f4da"}  # fmt: skip
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


def _release_version() -> str | None:
    """The version of a release binary (downloaded tarball), None for the distribution package."""
    return os.environ.pop("FMP_SHIM_VERSION", None)


def _config_path(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a in ("-c", "--config") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return "/etc/containerd/config.toml"


def containerd(args: list[str]) -> int:
    release = _release_version()
    v2 = bool(release and not release.startswith("1."))
    words = [a for a in args if not a.startswith("-")]
    if words[:2] == ["config", "default"]:
        out((CONTAINERD_DEFAULT_V3 if v2 else CONTAINERD_DEFAULT).rstrip("\n"))
        return 0
    if words[:2] == ["config", "dump"]:
        # The merged configuration; here: the config file (written from the defaults) or them.
        try:
            text = Path(_config_path(args)).read_text(encoding="utf-8")
        except OSError:
            text = CONTAINERD_DEFAULT_V3 if v2 else CONTAINERD_DEFAULT
        out(text.rstrip("\n"))
        return 0
    if "--version" in args or args[:1] == ["-v"]:
        if release:
            major = release.split(".")[0]
            module = "github.com/containerd/containerd" + ("/v2" if major != "1" else "")
            out(
                f"containerd {module} v{release} {CONTAINERD_COMMIT.get(major, CONTAINERD_COMMIT['2'])}"
            )
            return 0
        out(
            "containerd github.com/containerd/containerd 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da"
        )
        return 0
    if release and not words:
        return _serve_cri()
    return 0


def _serve_cri() -> int:
    """The daemon (a unit's ExecStart): listen on the CRI socket, tell systemd it is ready."""
    path = Path(CONTAINERD_SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    err(f'time="{time.strftime("%Y-%m-%dT%H:%M:%S")}" level=info msg="serving..." address={path}')
    err(
        f'time="{time.strftime("%Y-%m-%dT%H:%M:%S")}" level=info msg="containerd successfully booted"'
    )
    notify = os.environ.pop("NOTIFY_SOCKET", "")
    if notify:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as n:
            n.sendto(b"READY=1", notify)
    # Keep the socket open (connections queue on it) in a process that costs nothing.
    sock.set_inheritable(True)
    os.execv("/bin/sleep", ["sleep", "infinity"])  # noqa: S606 - a fixed command


def containerd_shim_runc_v2(args: list[str]) -> int:
    if "-v" in args or "--version" in args:
        v = _release_version() or "1.7.27"
        out(
            f"containerd-shim-runc-v2:\n  Version:  v{v}\n  Revision: {CONTAINERD_COMMIT['2']}\n  Go version: go1.24.6"
        )
        return 0
    err("containerd-shim-runc-v2: started by containerd only")
    return 1


def containerd_stress(args: list[str]) -> int:
    out("containerd-stress: not run in the lab")
    return 0


def runc(args: list[str]) -> int:
    v = _release_version() or "1.1.12"
    if "--version" in args or args[:1] in (["-v"], ["version"]):
        out(
            f"runc version {v}\ncommit: v{v}-0-gd842d771\nspec: 1.2.1\ngo: go1.24.9\nlibseccomp: 2.5.6"
        )
        return 0
    if args[:1] == ["list"]:
        out("ID          PID         STATUS      BUNDLE      CREATED     OWNER")
        return 0
    return 0


def ctr(args: list[str]) -> int:
    if args[:1] == ["version"]:
        v = _release_version() or "1.7.27"
        out(f"Client:\n  Version:  {v}\n\nServer:\n  Version:  {v}")
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
