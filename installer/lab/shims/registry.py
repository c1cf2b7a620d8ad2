"""Which tool names the shims answer to, and which module handles each."""

from __future__ import annotations

# tool name -> module under installer.lab.shims that has a function of the same
# name (with "-" and "." as "_").
TOOLS: dict[str, str] = {
    **dict.fromkeys(
        ["apt-get", "apt", "apt-mark", "apt-key", "apt-cache", "add-apt-repository", "dpkg",
         "dpkg-query", "gpg", "lsb_release"], "pkg"),
    "snap": "snap",
    **dict.fromkeys(["curl", "wget"], "downloads"),
    **dict.fromkeys(["ip", "ss", "ufw", "iptables", "ip6tables", "nft", "firewall-cmd"], "net"),
    **dict.fromkeys(
        ["systemctl", "journalctl", "service", "reboot", "shutdown", "poweroff", "halt",
         "keepalived"], "systemctl"),
    **dict.fromkeys(
        ["hostnamectl", "timedatectl", "systemd-detect-virt", "chronyc", "ntpq", "uname", "nproc",
         "sudo"], "host"),
    **dict.fromkeys(["modprobe", "lsmod", "rmmod", "insmod", "modinfo", "sysctl", "swapoff",
                     "swapon"], "kernel"),
    **dict.fromkeys(
        ["pvcreate", "pvs", "pvremove", "vgcreate", "vgextend", "vgs", "vgremove", "lvcreate",
         "lvs", "lvremove", "lvextend"], "lvm"),
    **dict.fromkeys(["lsblk", "wipefs", "sgdisk", "df", "blkid"], "disks"),
    "kubeadm": "kubeadm",
    **dict.fromkeys(["kubectl", "helm"], "kube"),
    **dict.fromkeys(["kubelet", "crictl", "containerd", "ctr", "runc", "containerd-shim-runc-v2",
                     "containerd-stress"], "runtime"),
    **dict.fromkeys(["rke2", "rke", "rke2-install"], "rke"),
    **dict.fromkeys(["cephadm", "podman"], "cephadm"),
    **dict.fromkeys(["ceph", "rbd"], "ceph"),
    **dict.fromkeys(["microk8s"], "microk8s"),
}  # fmt: skip

# Present on every node from the start (a fresh Ubuntu server has them).
ALWAYS = tuple(
    t for t in TOOLS
    if t not in {"kubeadm", "kubectl", "kubelet", "helm", "crictl", "containerd", "ctr", "runc",
                 "containerd-shim-runc-v2", "containerd-stress", "keepalived", "rke2",
                 "rke", "rke2-install", "cephadm", "podman", "ceph", "rbd", "microk8s", "chronyc", "ntpq",
                 "firewall-cmd"}
)  # fmt: skip

# Host binaries that would act on the machine itself: inside a node the shim
# answers even when they are called by absolute path.
OVERRIDE_HOST = (
    "sudo", "systemctl", "reboot", "shutdown", "poweroff", "halt", "swapoff", "swapon", "sysctl",
    "modprobe", "rmmod", "insmod", "modinfo", "ip", "iptables", "ip6tables", "nft", "ufw",
    "apt-get", "apt", "dpkg", "snap", "curl", "wget", "lsblk", "hostnamectl", "timedatectl",
    "uname", "nproc",
    "pvcreate", "vgcreate", "lvcreate", "pvremove", "vgremove", "lvremove", "vgs", "pvs", "lvs",
    "wipefs", "sgdisk", "df",
)  # fmt: skip

# Real binaries the lab uses when the host has them (exposed at /run/fmp-lab/real).
REAL_TOOLS = ("etcd", "etcdctl", "etcdutl", "haproxy", "keepalived", "curl")

# Host binaries hidden from a node until it installs the package that brings them.
PACKAGE_BINARIES: dict[str, tuple[str, ...]] = {
    "etcd-server": ("etcd",),
    "etcd-client": ("etcdctl", "etcdutl"),
    "haproxy": ("haproxy",),
    "keepalived": ("keepalived",),
    "containerd": ("containerd", "ctr", "runc"),
    "docker.io": ("docker", "dockerd"),
    "podman": ("podman",),
    "cri-tools": ("crictl",),
    "chrony": ("chronyc", "chronyd"),
    "ntp": ("ntpq", "ntpd"),
    # A fresh Ubuntu server has no kubectl: hide one the lab's machine may have (the
    # shim answers once a package, RKE2 or snap brings it).
    "kubectl": ("kubectl",),
    "helm": ("helm",),
}
