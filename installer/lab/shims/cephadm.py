"""cephadm: add-repo, install, bootstrap (the first mon and mgr), shell, ls, rm-cluster."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from installer.lab.shims import base, render
from installer.lab.shims import ceph as ceph_shim
from installer.lab.shims.base import die, err, out
from installer.lab.shims.ceph import CEPH, VERSION, _key

# cephadm's own options, given before the command (``cephadm --image IMG bootstrap ...``).
GLOBAL_VALUED = {"--image", "--data-dir", "--log-dir", "--logrotate-dir", "--sysctl-dir",
                 "--unit-dir", "--timeout", "--retry"}  # fmt: skip
RELEASES = {"15": "octopus", "16": "pacific", "17": "quincy", "18": "reef", "19": "squid",
            "20": "tentacle"}  # fmt: skip


def release_name(version: str) -> str:
    return RELEASES.get(version.split(".")[0], "squid")


def own_version() -> str:
    """The release of this cephadm: the one it was downloaded as, else the packaged one."""
    return os.environ.pop("FMP_SHIM_VERSION", None) or VERSION


def cephadm(args: list[str]) -> int:
    version = own_version()
    image = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a in GLOBAL_VALUED and i + 1 < len(args):
            if a == "--image":
                image = args[i + 1]
            i += 2
            continue
        if a.startswith("--image="):
            image = a.split("=", 1)[1]
        i += 1
    global_args, args = args[:i], args[i:]
    words = [a for a in args if not a.startswith("-")]
    verb = words[0] if words else ""
    if verb == "version" or "--version" in global_args:
        out(
            f"cephadm version {version} (c92aebb279828e9c3c1f5d24613efca272649e62) "
            f"{release_name(version)} (stable)"
        )
        return 0
    if verb == "add-repo":
        release = next(
            (args[i + 1] for i, a in enumerate(args) if a == "--release" and i + 1 < len(args)),
            "squid",
        )
        Path("/etc/apt/sources.list.d/ceph.list").write_text(
            f"deb https://download.ceph.com/debian-{release}/ {base.facts()['os']['codename']} main\n",
            encoding="utf-8",
        )
        out(
            "Installing repo GPG key from https://download.ceph.com/keys/release.gpg...\nInstalling repo file at /etc/apt/sources.list.d/ceph.list..."
        )
        return 0
    if verb == "install":
        from installer.lab.shims import pkg

        for name in words[1:] or ["cephadm"]:
            pkg.install_package(
                name, pkg.PACKAGES.get(name, {}).get("version", f"{VERSION}-1jammy")
            )
        out("Installing packages ['" + "', '".join(words[1:] or ["cephadm"]) + "']...")
        return 0
    if verb == "bootstrap":
        return _bootstrap(args, image or f"quay.io/ceph/ceph:v{version}")
    if verb == "shell":
        if "--" in args:
            rest = args[args.index("--") + 1 :]
            if rest and rest[0] in ("ceph", "rbd"):
                return int(getattr(ceph_shim, rest[0])(rest[1:]))
        return 0
    if verb == "ls":
        st = base.peek_cluster(CEPH)
        me = base.node_name()
        daemons = (
            [{"name": f"mon.{me}", "fsid": st.get("fsid"), "state": "running"}]
            if me in st.get("mons", [])
            else []
        )
        daemons += [
            {"name": f"osd.{o['id']}", "fsid": st.get("fsid"), "state": "running"}
            for o in st.get("osds", [])
            if o["host"] == me
        ]
        out(json.dumps(daemons, indent=4))
        return 0
    if verb == "rm-cluster":
        with base.cluster_state(CEPH) as st:
            st.clear()
        for f in ("ceph.conf", "ceph.client.admin.keyring", "ceph.pub"):
            Path("/etc/ceph", f).unlink(missing_ok=True)
        return 0
    if verb in ("check-host", "prepare-host"):
        return _container_engine() or 0
    die(f"cephadm: error: argument {{...}}: invalid choice: '{verb}'", 2)


PODMAN_VERSION = "3.4.4"  # Ubuntu 22.04's podman package


def podman(args: list[str]) -> int:
    """podman as cephadm needs it on a host: present, its version; the lab runs no containers."""
    words = [a for a in args if not a.startswith("-")]
    if "--version" in args or args[:1] == ["-v"]:
        out(f"podman version {PODMAN_VERSION}")
        return 0
    verb = words[0] if words else ""
    if verb == "version":
        out(f"Version:      {PODMAN_VERSION}\nAPI Version:  {PODMAN_VERSION}\nGo Version:   go1.18.1\n"
            "Built:        Thu Jan  1 00:00:00 1970\nOS/Arch:      linux/amd64")  # fmt: skip
        return 0
    if verb in ("ps", "container"):
        if "--format" not in " ".join(args):
            out("CONTAINER ID  IMAGE       COMMAND     CREATED     STATUS      PORTS       NAMES")
        return 0
    if verb == "images":
        if "--format" not in " ".join(args):
            out("REPOSITORY  TAG         IMAGE ID    CREATED     SIZE")
        return 0
    if verb in ("info", "pull", "rm", "rmi", "stop", "inspect"):
        return 0
    die(
        f"Error: unrecognized command `podman {verb}`\nTry 'podman --help' for more information.",
        125,
    )


def _container_engine() -> int | None:
    pkgs = base.peek_node("packages").get("installed", {})
    if not any(p in pkgs for p in ("podman", "docker.io", "docker-ce")):
        err("ERROR: Unable to locate any of ['podman', 'docker']")
        return 1
    return None


def _image_version(image: str) -> str:
    """The Ceph release an image tag names (quay.io/ceph/ceph:v20.2.4 -> 20.2.4)."""
    import re

    m = re.search(r":v?(\d+(?:\.\d+){0,2})(?:$|-)", image)
    if not m:
        return VERSION
    v = m.group(1)
    return v + ".0" * (2 - v.count("."))


def _bootstrap(args: list[str], image: str) -> int:
    mon_ip = next(
        (args[i + 1] for i, a in enumerate(args) if a == "--mon-ip" and i + 1 < len(args)), None
    )
    mon_ip = mon_ip or next((a.split("=", 1)[1] for a in args if a.startswith("--mon-ip=")), None)
    if not mon_ip:
        die("ERROR: must specify --mon-ip or --mon-addrv", 1)
    rc = _container_engine()
    if rc:
        return rc
    if mon_ip not in _addresses():
        die(
            f"ERROR: Failed to infer CIDR network for mon IP `{mon_ip}`; pass --skip-mon-network to configure it later",
            1,
        )
    if Path("/etc/ceph/ceph.conf").exists() and "--allow-overwrite" not in args:
        die(
            "ERROR: /etc/ceph/ceph.conf already exists; delete or pass --allow-overwrite to overwrite",
            1,
        )
    fsid = render.fake_uuid(base.rand_hex(16))
    me = base.node_name()
    ceph_version = _image_version(image)
    ssh_user = base.opt(args, "--ssh-user") or "root"
    key = _key()
    out(
        "Verifying podman|docker is present...\nVerifying lvm2 is present...\nVerifying time synchronization is in place..."
    )
    out("Unit systemd-timesyncd.service is enabled and running\nRepeating the final host check...")
    out(
        f"Host looks OK\nCluster fsid: {fsid}\nVerifying IP {mon_ip} port 3300 ...\nVerifying IP {mon_ip} port 6789 ..."
    )
    out(
        f"Pulling container image {image}...\nCeph version: ceph version {ceph_version} "
        f"(c92aebb279828e9c3c1f5d24613efca272649e62) {release_name(ceph_version)} (stable)"
    )
    out(
        "Creating initial keys...\nCreating initial monmap...\nCreating mon...\nWaiting for mon to start...\nmon is available"
    )
    out("Creating mgr...\nWaiting for mgr to start...\nmgr is available\nGenerating ssh key...")
    out(
        f"Wrote public SSH key to /etc/ceph/ceph.pub\nAdding key to {ssh_user}@localhost authorized_keys...\nAdding host {me}..."
    )
    with base.cluster_state(CEPH) as st:
        st.clear()
        st.update({"fsid": fsid, "mons": [me], "mgrs": [me], "hosts": {me: {"addr": mon_ip, "labels": ["_admin"]}},
                   "osds": [], "pools": {}, "auth": {"client.admin": {"key": key, "caps": {"mds": "allow *", "mgr": "allow *", "mon": "allow *", "osd": "allow *"}}},
                   "pubkey": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{base.rand_alnum(43)} ceph-{fsid}", "images": {},
                   "created": time.time(), "version": ceph_version, "image": image, "ssh_user": ssh_user,
                   "config": {}, "services": {"mon": {"placement": {"count": 5}}, "mgr": {"placement": {"count": 2}},
                                              "crash": {"placement": {"host_pattern": "*"}}}})  # fmt: skip
        pub = st["pubkey"]
    Path("/etc/ceph").mkdir(parents=True, exist_ok=True)
    Path("/etc/ceph/ceph.conf").write_text(
        f"# minimal ceph.conf for {fsid}\n[global]\n\tfsid = {fsid}\n\tmon_host = [v2:{mon_ip}:3300/0,v1:{mon_ip}:6789/0]\n",
        encoding="utf-8",
    )
    Path("/etc/ceph/ceph.client.admin.keyring").write_text(
        f"[client.admin]\n\tkey = {key}\n", encoding="utf-8"
    )
    Path("/etc/ceph/ceph.client.admin.keyring").chmod(0o600)
    Path("/etc/ceph/ceph.pub").write_text(pub + "\n", encoding="utf-8")
    ak = user_home(ssh_user) / ".ssh" / "authorized_keys"
    ak.parent.mkdir(parents=True, exist_ok=True)
    with open(ak, "a", encoding="utf-8") as fh:
        fh.write(pub + "\n")
    from installer.lab.shims import pkg

    if not pkg.installed("ceph-common"):
        base.link_tool("ceph")
    out(
        "Deploying mon service with default placement...\nDeploying mgr service with default placement..."
    )
    if "--skip-monitoring-stack" not in args:
        out(
            "Deploying ceph-exporter service with default placement...\nDeploying prometheus service with default placement...\n"
            "Deploying grafana service with default placement...\nDeploying node-exporter service with default placement...\n"
            "Deploying alertmanager service with default placement..."
        )
    if "--skip-dashboard" not in args:
        out(
            "Enabling the dashboard module...\nWaiting for the mgr to restart...\nGenerating a dashboard self-signed certificate..."
        )
        out(
            f"Ceph Dashboard is now available at:\n\n\t     URL: https://{me}:8443/\n\t    User: admin\n\tPassword: {base.rand_alnum(10)}\n"
        )
    out(
        f"You can access the Ceph CLI as following in case of multi-cluster or non-default config:\n\n\tsudo /usr/sbin/cephadm shell --fsid {fsid} -c /etc/ceph/ceph.conf -k /etc/ceph/ceph.client.admin.keyring\n"
    )
    out("Bootstrap complete.")
    return 0


def user_home(user: str, root: Path = Path("/")) -> Path:
    """A user's home directory from ``root``/etc/passwd (a peer node's root too)."""
    try:
        for line in (root / "etc/passwd").read_text(encoding="utf-8").splitlines():
            f = line.split(":")
            if len(f) > 5 and f[0] == user:
                return root / f[5].lstrip("/")
    except OSError:
        pass
    return root / ("root" if user == "root" else f"home/{user}")


def _addresses() -> list[str]:
    return [a.split("/")[0] for nic in base.facts()["nics"] for a in nic["addresses"]]
