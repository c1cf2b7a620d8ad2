"""A fresh node's files: a minimal Ubuntu-like /etc, /var, /root... under D/nodes/<name>/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from installer.lab.layout import NODE_MOUNTS, NodePaths
from installer.lab.shims import render

# Host /etc entries a node needs for the host's binaries to work (dynamic
# linker cache, alternatives symlinks, name service, TLS roots...).
HOST_ETC = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "bash.bashrc",
    "profile", "profile.d", "skel", "environment", "inputrc", "nsswitch.conf", "host.conf",
    "gai.conf", "protocols", "services", "networks", "rpc", "ethertypes", "ssl",
    "ca-certificates", "ca-certificates.conf", "login.defs", "shells", "adduser.conf",
    "deluser.conf", "security", "pam.d", "pam.conf", "mke2fs.conf", "xattr.conf", "terminfo",
    "subuid", "subgid", "debconf.conf", "selinux", "logrotate.conf",
)  # fmt: skip

ETC_USERS = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
_apt:x:100:65534::/nonexistent:/usr/sbin/nologin
systemd-network:x:101:102:systemd Network Management,,,:/run/systemd:/usr/sbin/nologin
systemd-resolve:x:102:103:systemd Resolver,,,:/run/systemd:/usr/sbin/nologin
messagebus:x:103:104::/nonexistent:/usr/sbin/nologin
systemd-timesync:x:104:105:systemd Time Synchronization,,,:/run/systemd:/usr/sbin/nologin
syslog:x:105:111::/home/syslog:/usr/sbin/nologin
sshd:x:106:65534::/run/sshd:/usr/sbin/nologin
"""

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:syslog
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
proxy:x:13:
kmem:x:15:
dialout:x:20:
cdrom:x:24:
sudo:x:27:
audio:x:29:
www-data:x:33:
backup:x:34:
shadow:x:42:
utmp:x:43:
video:x:44:
plugdev:x:46:
staff:x:50:
users:x:100:
nogroup:x:65534:
systemd-journal:x:101:
systemd-network:x:102:
systemd-resolve:x:103:
messagebus:x:104:
systemd-timesync:x:105:
crontab:x:106:
input:x:107:
syslog:x:111:
"""

SUDOERS = """\
Defaults\tenv_reset
Defaults\tmail_badpass
Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"
Defaults\tuse_pty

root\tALL=(ALL:ALL) ALL
%admin ALL=(ALL) ALL
%sudo\tALL=(ALL:ALL) ALL

@includedir /etc/sudoers.d
"""

SYSCTL_CONF = """\
#
# /etc/sysctl.conf - Configuration file for setting system variables
# See /etc/sysctl.d/ for additional system variables.
# See sysctl.conf (5) for information.
#

#kernel.domainname = example.com
#net.ipv4.ip_forward=1
"""


def _fstab(node: dict[str, Any]) -> str:
    name = node["name"]
    text = (
        "# /etc/fstab: static file system information.\n#\n"
        "# Use 'blkid' to print the universally unique identifier for a\n"
        "# device; this may be used with UUID= as a more robust way to name devices\n"
        "# that works even if disks are added and removed. See fstab(5).\n#\n"
        "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
        "# / was on /dev/ubuntu-vg/ubuntu-lv during curtin installation\n"
        f"/dev/disk/by-id/dm-uuid-LVM-{render.fake_uuid(name, 'lv').replace('-', '')} / ext4 defaults 0 1\n"
        "# /boot was on /dev/sda2 during curtin installation\n"
        f"/dev/disk/by-uuid/{render.fake_uuid(name, 'sda', 'boot')} /boot ext4 defaults 0 1\n"
    )
    if node["facts"]["swap_gb"]:
        text += f"{render.SWAP_FILE}\tnone\tswap\tsw\t0\t0\n"
    return text


def _hosts(node: dict[str, Any]) -> str:
    name = node["name"]
    fqdn = f"{name}.{node['domain']} " if node.get("domain") else ""
    return (
        f"127.0.0.1 localhost\n127.0.1.1 {fqdn}{name}\n\n"
        "# The following lines are desirable for IPv6 capable hosts\n"
        "::1     ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n"
        "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
    )


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _copy_host_etc(etc: Path) -> None:
    for entry in HOST_ETC:
        src = Path("/etc") / entry
        dst = etc / entry
        if not (src.exists() or src.is_symlink()):
            continue
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(
                src, dst, symlinks=True, dirs_exist_ok=True, ignore_dangling_symlinks=True
            )
        else:
            shutil.copy2(src, dst, follow_symlinks=False)


def seed_node(paths: NodePaths, node: dict[str, Any], lab_key_pub: str) -> None:
    """Create the node's directories and first files. Only for a node that does not exist yet."""
    facts = node["facts"]
    for key in NODE_MOUNTS:
        paths.fs(key).mkdir(parents=True, exist_ok=True)
    for sub in (paths.lab, paths.proc / "sys", paths.disks, paths.pkgbin):
        sub.mkdir(parents=True, exist_ok=True)
    etc = paths.fs("etc")
    _copy_host_etc(etc)
    o = facts["os"]
    _write(etc / "hostname", node["name"] + "\n")
    _write(etc / "hosts", _hosts(node))
    _write(etc / "machine-id", facts["machine_id"] + "\n", 0o444)
    raw = node.get("raw") or {}
    _write(etc / "os-release", raw.get("os_release") or render.os_release(facts))
    _write(etc / "lsb-release", render.lsb_release(facts))
    _write(etc / "debian_version", "bookworm/sid\n" if o["id"] == "ubuntu" else "12.5\n")
    _write(etc / "issue", f"{o['pretty_name']} \\n \\l\n\n")
    _write(etc / "timezone", facts["timezone"] + "\n")
    _write(etc / "passwd", ETC_USERS)
    _write(etc / "group", GROUP)
    shadow = "".join(
        f"{line.split(':')[0]}:*:19700:0:99999:7:::\n" for line in ETC_USERS.splitlines()
    )
    _write(etc / "shadow", shadow, 0o640)
    _write(
        etc / "gshadow",
        "".join(f"{line.split(':')[0]}:*::\n" for line in GROUP.splitlines()),
        0o640,
    )
    _write(etc / "fstab", _fstab(node))
    _write(etc / "sudoers", SUDOERS, 0o440)
    _write(etc / "sudoers.d" / "README", "# files in this directory are read by sudo\n", 0o440)
    _write(etc / "sysctl.conf", SYSCTL_CONF)
    _write(etc / "sysctl.d" / "10-network-security.conf",
           "net.ipv4.conf.default.rp_filter=2\nnet.ipv4.conf.all.rp_filter=2\n")  # fmt: skip
    (etc / "sysctl.d" / "99-sysctl.conf").symlink_to("../sysctl.conf")
    _write(etc / "modules", "# /etc/modules: kernel modules to load at boot time.\n")
    for d in ("modules-load.d", "modprobe.d", "systemd/system/multi-user.target.wants",
              "apt/sources.list.d", "apt/keyrings", "apt/trusted.gpg.d", "apt/apt.conf.d",
              "apt/preferences.d", "default", "cron.d", "logrotate.d", "ssh"):  # fmt: skip
        (etc / d).mkdir(parents=True, exist_ok=True)
    codename = o["codename"]
    _write(
        etc / "apt" / "sources.list",
        "".join(
            f"deb http://archive.ubuntu.com/ubuntu {codename}{suffix} main restricted universe multiverse\n"
            for suffix in ("", "-updates", "-backports")
        )
        + f"deb http://security.ubuntu.com/ubuntu {codename}-security main restricted universe multiverse\n",
    )
    nic = facts["nics"][0]["name"] if facts["nics"] else "ens18"
    _write(
        etc / "netplan" / "00-installer-config.yaml",
        "network:\n  ethernets:\n"
        + "".join(
            f"    {n['name']}:\n      addresses: [{', '.join(n['addresses'])}]\n"
            for n in facts["nics"]
        )
        + f"  version: 2\n# default route via {facts['gateway']} on {nic}\n",
        0o600,
    )
    _write(etc / "systemd" / "timesyncd.conf", "[Time]\n#NTP=\n")
    (etc / "resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    (etc / "mtab").symlink_to("../proc/self/mounts")

    var = paths.fs("var")
    for d in ("lib/apt/lists", "lib/dpkg", "lib/systemd", "log", "cache/apt", "spool", "mail",
              "backups", "local", "opt", "snap"):  # fmt: skip
        (var / d).mkdir(parents=True, exist_ok=True)
    (var / "tmp").mkdir(exist_ok=True)
    (var / "tmp").chmod(0o1777)
    (var / "run").symlink_to("/run")
    (var / "lock").symlink_to("/run/lock")
    paths.fs("tmp").chmod(0o1777)
    for d in ("bin", "sbin", "lib", "share", "include", "etc", "src", "games"):
        (paths.fs("usr-local") / d).mkdir(exist_ok=True)
    root = paths.fs("root")
    root.chmod(0o700)
    for f in (".bashrc", ".profile"):
        src = Path("/etc/skel") / f
        if src.is_file():
            shutil.copy2(src, root / f)
    _write(root / ".ssh" / "authorized_keys", lab_key_pub, 0o600)
    (root / ".ssh").chmod(0o700)

    for disk in facts["disks"]:
        image = paths.disks / disk["name"]
        with open(image, "wb") as fh:
            fh.truncate(int(disk["size_gb"] * render.GIB))  # sparse: costs nothing
    with open(paths.lab / "disks.json", "w", encoding="utf-8") as fh:
        json.dump(render.initial_disks(node), fh, indent=1)
    paths.node_json.write_text(json.dumps(node, indent=1), encoding="utf-8")


def swap_in_fstab(etc: Path) -> bool:
    try:
        lines = (etc / "fstab").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 3 and fields[2] == "swap":
            return True
    return False


def prepare_boot(paths: NodePaths, node: dict[str, Any], raw: dict[str, str]) -> None:
    """What a boot resets: /run is emptied, /proc and /proc/sys start from the kernel's defaults."""
    run = paths.fs("run")
    for entry in run.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    for d in ("systemd/system", "systemd/resolve", "lock", "user", "sshd", "fmp-lab"):
        (run / d).mkdir(parents=True, exist_ok=True)
    (run / "lock").chmod(0o1777)
    facts = node["facts"]
    _write(run / "systemd" / "resolve" / "stub-resolv.conf",
           "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")  # fmt: skip
    _write(run / "systemd" / "resolve" / "resolv.conf",
           "".join(f"nameserver {s}\n" for s in facts["dns"]) + "search .\n")  # fmt: skip
    if "resolv_upstream" in raw:
        _write(run / "systemd" / "resolve" / "resolv.conf", raw["resolv_upstream"] + "\n")
    swap_on = swap_in_fstab(paths.fs("etc"))
    with open(paths.lab / "swap.json", "w", encoding="utf-8") as fh:
        json.dump({"on": swap_on}, fh)
    proc = paths.proc
    _write(proc / "cpuinfo", raw.get("cpuinfo", render.cpuinfo(facts)))
    _write(proc / "meminfo", raw.get("meminfo", render.meminfo(facts, swap_on)))
    _write(proc / "swaps", raw.get("swaps", render.swaps(facts, swap_on)))
    sysdir = proc / "sys"
    shutil.rmtree(sysdir, ignore_errors=True)
    for key, value in render.SYSCTL_DEFAULTS.items():
        _write(sysdir / render.sysctl_path(key), value + "\n")
    _write(sysdir / "kernel" / "hostname", node["name"] + "\n")
    _write(sysdir / "kernel" / "osrelease", facts["kernel"] + "\n")
    (paths.lab / "modules.json").write_text(json.dumps({"loaded": []}), encoding="utf-8")
    _reset_units(paths.lab / "units.json")


def _reset_units(path: Path) -> None:
    """After a reboot nothing runs; enabled units are started again by the boot hook."""
    try:
        units = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for unit in units.values():
        unit["active"] = False
        unit.pop("pid", None)
    path.write_text(json.dumps(units, indent=1), encoding="utf-8")
