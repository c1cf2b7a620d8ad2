"""Where a lab keeps its files: everything lives under its directory D."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = ".fmp-lab"

# node directory under D/nodes/<name>/ -> where the node sees it
NODE_MOUNTS = {
    "etc": "/etc",
    "var": "/var",
    "opt": "/opt",
    "usr-local": "/usr/local",
    "root": "/root",
    "home": "/home",
    "run": "/run",
    "tmp": "/tmp",
}

# Inside a node: the lab's own corner of /run (a tmpfs, not the node's files).
LAB_RUN = "/run/fmp-lab"
NODE_PATH = "/run/fmp-lab/bin:/run/fmp-lab/pkgbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def pidfile(self) -> Path:
        return self.root / "lab.pid"

    @property
    def status(self) -> Path:
        return self.root / "lab.json"

    @property
    def log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def answers(self) -> Path:
        return self.root / "answers.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        """The resolved spec: nodes with every fact, faults, durations (read by daemon and shims)."""
        return self.state / "lab.json"

    @property
    def shims(self) -> Path:
        return self.root / "shims"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes"

    def node(self, name: str) -> NodePaths:
        return NodePaths(self.nodes / name)

    def created_entries(self) -> list[Path]:
        """What ``lab up`` creates in D, so ``lab down`` removes exactly that."""
        return [
            self.pidfile, self.status, self.log, self.key, self.key.with_suffix(".pub"),
            self.known_hosts, self.answers, self.state, self.shims, self.nodes,
        ]  # fmt: skip


@dataclass(frozen=True)
class NodePaths:
    root: Path

    def fs(self, key: str) -> Path:
        return self.root / key

    @property
    def lab(self) -> Path:
        """The lab's own state about this node (units, packages, disks), not seen by the node."""
        return self.root / "lab"

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def disks(self) -> Path:
        return self.root / "disks"

    @property
    def usr_upper(self) -> Path:
        """The node's changes to /usr (an overlayfs upper layer)."""
        return self.root / "usr-upper"

    @property
    def usr_work(self) -> Path:
        return self.root / "usr-work"

    @property
    def pkgbin(self) -> Path:
        return self.root / "pkgbin"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def node_json(self) -> Path:
        return self.root / "node.json"

    @property
    def calls(self) -> Path:
        return self.root / "calls.log"

    @property
    def reboot_request(self) -> Path:
        return self.lab / "reboot.request"
