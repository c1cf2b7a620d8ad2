"""Kernel knobs of a node: modules, sysctls, swap. None of them touch the real kernel."""

from __future__ import annotations

import glob
from pathlib import Path

from installer.lab.shims import base, render
from installer.lab.shims.base import err, out

PROC_SYS = Path("/proc/sys")  # the node's own directory, bind-mounted there
KNOWN_MODULES = {
    "br_netfilter", "bridge", "overlay", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_lc",
    "nf_conntrack", "ip_tables", "ip6_tables", "iptable_nat", "iptable_filter", "iptable_mangle",
    "xt_conntrack", "xt_REDIRECT", "xt_owner", "xt_set", "xt_comment", "xt_mark", "xt_multiport",
    "ip_set", "vxlan", "veth", "rbd", "ceph", "libceph", "nbd", "dm_snapshot", "dm_mirror",
    "dm_thin_pool", "dm_crypt", "dm_mod", "nvme_tcp", "nvme_fabrics", "nvme_core", "iscsi_tcp",
    "libiscsi", "sctp", "wireguard", "loop", "tun", "nfs", "nfsd", "8021q", "bonding", "zram",
    "nf_nat", "nf_defrag_ipv4", "nf_defrag_ipv6", "nf_tables", "nft_chain_nat", "ipip", "xfs",
}  # fmt: skip
GATED = {"net.bridge.": "br_netfilter", "net.netfilter.": "nf_conntrack"}
OPEN_PREFIXES = ("vm.", "kernel.", "fs.", "net.ipv4.", "net.ipv6.", "net.core.", "user.")


def loaded_modules() -> list[str]:
    return list(base.peek_node("modules").get("loaded", []))


def load_module(name: str, quiet: bool = False) -> bool:
    name = name.replace("-", "_")
    if name not in KNOWN_MODULES:
        if not quiet:
            err(
                f"modprobe: FATAL: Module {name} not found in directory /lib/modules/{base.facts().get('kernel')}"
            )
        return False
    with base.node_state("modules", {"loaded": []}) as st:
        if name not in st["loaded"]:
            st["loaded"].append(name)
            if name == "br_netfilter" and "bridge" not in st["loaded"]:
                st["loaded"].append("bridge")
            if name in ("ip_vs", "nf_nat") and "nf_conntrack" not in st["loaded"]:
                st["loaded"].append("nf_conntrack")
    if name == "br_netfilter":
        for key, value in render.BRIDGE_SYSCTLS.items():
            p = PROC_SYS / render.sysctl_path(key)
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(value + "\n", encoding="utf-8")
    if name in ("nf_conntrack", "ip_vs", "nf_nat"):
        p = PROC_SYS / "net/netfilter/nf_conntrack_max"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("262144\n", encoding="utf-8")
    return True


def modprobe(args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    if "-r" in args or "--remove" in args:
        return rmmod(names)
    if "-a" not in args and "--all" not in args:
        names = names[:1]  # the rest are module parameters
    if not names:
        err("modprobe: ERROR: missing module name.")
        return 1
    ok = all([load_module(n, quiet="-q" in args or "--quiet" in args) for n in names])
    return 0 if ok else 1


insmod = modprobe


def rmmod(args: list[str]) -> int:
    with base.node_state("modules", {"loaded": []}) as st:
        for n in args:
            if not n.startswith("-") and n.replace("-", "_") in st["loaded"]:
                st["loaded"].remove(n.replace("-", "_"))
    return 0


# Where the known modules live under /lib/modules/<kernel>/ (the rest: kernel/<name>.ko).
_MODULE_FILES = {
    "nvme_tcp": "kernel/drivers/nvme/host/nvme-tcp.ko",
    "nvme_fabrics": "kernel/drivers/nvme/host/nvme-fabrics.ko",
    "nvme_core": "kernel/drivers/nvme/host/nvme-core.ko",
    "br_netfilter": "kernel/net/bridge/br_netfilter.ko",
    "overlay": "kernel/fs/overlayfs/overlay.ko",
    "rbd": "kernel/drivers/block/rbd.ko",
    "dm_snapshot": "kernel/drivers/md/dm-snapshot.ko",
    "iscsi_tcp": "kernel/drivers/scsi/iscsi_tcp.ko",
}


def modinfo(args: list[str]) -> int:
    """kmod's modinfo for the known modules: ``-n`` (the file), ``-F FIELD``, or every field.

    The file is under the node's kernel (the spec's), never the host's real one.
    """
    field = base.opt(args, "-F", "--field")
    kernel = base.opt(args, "-k") or str(base.facts().get("kernel"))
    skip = {field, base.opt(args, "-k")}
    names = [a for a in args if not a.startswith("-") and a not in skip]
    if "-n" in args or "--filename" in args:
        field = "filename"
    if not names:
        err("modinfo: ERROR: missing module or filename.")
        return 1
    rc = 0
    for raw in names:
        name = raw.replace("-", "_")
        if name not in KNOWN_MODULES:
            err(f"modinfo: ERROR: Module {raw} not found.")
            rc = 1
            continue
        rel = _MODULE_FILES.get(name, f"kernel/{name.replace('_', '-')}.ko")
        info = {
            "filename": f"/lib/modules/{kernel}/{rel}",
            "license": "GPL",
            "name": name,
            "vermagic": f"{kernel} SMP mod_unload modversions ",
        }
        if field is not None:
            if field.lower() in info:
                out(info[field.lower()])
            continue
        for key, value in info.items():
            out(f"{key + ':':<16}{value}")
    return rc


def lsmod(args: list[str]) -> int:
    out("Module                  Size  Used by")
    for m in loaded_modules():
        out(f"{m:<24}{32768:>6}  0")
    return 0


# ---------------------------------------------------------------- sysctl


def _key(raw: str) -> str:
    return raw.strip().replace("/", ".")


def _path(key: str) -> Path:
    return PROC_SYS / render.sysctl_path(key)


def _set(key: str, value: str, quiet: bool, ignore: bool) -> bool:
    p = _path(key)
    gate = next((mod for prefix, mod in GATED.items() if key.startswith(prefix)), None)
    creatable = gate is None and key.startswith(OPEN_PREFIXES)
    if not p.exists() and not creatable:
        if not ignore:
            err(
                f"sysctl: cannot stat /proc/sys/{render.sysctl_path(key)}: No such file or directory"
            )
        return ignore
    p.parent.mkdir(parents=True, exist_ok=True)
    value = " ".join(value.split())
    p.write_text(value + "\n", encoding="utf-8")
    if not quiet:
        out(f"{key} = {value}")
    return True


def _get(key: str, names_only: bool, value_only: bool, ignore: bool) -> bool:
    p = _path(key)
    if not p.is_file():
        if not ignore:
            err(
                f"sysctl: cannot stat /proc/sys/{render.sysctl_path(key)}: No such file or directory"
            )
        return ignore
    value = p.read_text(encoding="utf-8").strip()
    out(value if value_only else key if names_only else f"{key} = {value}")
    return True


def _apply_file(path: Path, quiet: bool) -> bool:
    ok = True
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        err(f'sysctl: cannot open "{path}": No such file or directory')
        return False
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        ignore = line.startswith("-")
        key, _, value = line.lstrip("-").partition("=")
        ok = _set(_key(key), value.strip(), quiet, ignore) and ok
    return ok


def sysctl(args: list[str]) -> int:
    quiet = any(a in ("-q", "--quiet") for a in args)
    value_only = "-n" in args or "--values" in args
    names_only = "-N" in args or "--names" in args
    ignore = "-e" in args or "--ignore" in args
    write = "-w" in args or "--write" in args
    ok = True
    if "--system" in args:
        seen: dict[str, Path] = {}
        for d in ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d"):
            for f in sorted(glob.glob(f"{d}/*.conf")):
                seen.setdefault(Path(f).name, Path(f))
        for name in sorted(seen):
            if not quiet:
                out(f"* Applying {seen[name]} ...")
            ok = _apply_file(seen[name], quiet) and ok
        if Path("/etc/sysctl.conf").exists():
            if not quiet:
                out("* Applying /etc/sysctl.conf ...")
            ok = _apply_file(Path("/etc/sysctl.conf"), quiet) and ok
        return 0 if ok else 255
    if "-p" in args or "--load" in args or any(a.startswith("--load=") for a in args):
        files = [a for a in args if not a.startswith("-")] or ["/etc/sysctl.conf"]
        for f in files:
            ok = _apply_file(Path(f), quiet) and ok
        return 0 if ok else 255
    if any(a in ("-a", "-A", "-X", "--all") for a in args):
        for p in sorted(PROC_SYS.rglob("*")):
            if p.is_file():
                key = str(p.relative_to(PROC_SYS)).replace("/", ".")
                _get(key, names_only, value_only, True)
        return 0
    for a in args:
        if a.startswith("-"):
            continue
        if "=" in a:
            key, _, value = a.partition("=")
            ok = _set(_key(key), value, quiet, ignore) and ok
        elif write:
            err(f'sysctl: "{a}" must be of the form name=value')
            ok = False
        else:
            ok = _get(_key(a), names_only, value_only, ignore) and ok
    return 0 if ok else 255


# ---------------------------------------------------------------- swap


def set_swap(on: bool) -> None:
    with base.node_state("swap", {"on": True}) as st:
        st["on"] = on
    f = base.facts()
    proc = base.NODE_DIR / "proc"
    # Written in place: /proc/meminfo and /proc/swaps are bind mounts of these very files.
    for name, text in (("meminfo", render.meminfo(f, on)), ("swaps", render.swaps(f, on))):
        with open(proc / name, "r+", encoding="utf-8") as fh:
            fh.seek(0)
            fh.write(text)
            fh.truncate()


def swap_on() -> bool:
    return bool(base.peek_node("swap").get("on", False))


def swapoff(args: list[str]) -> int:
    targets = [a for a in args if not a.startswith("-")]
    if "-a" in args or "--all" in args or render.SWAP_FILE in targets:
        if "-v" in args and swap_on():
            out(f"swapoff {render.SWAP_FILE}")
        set_swap(False)
        return 0
    if not targets:
        err("swapoff: bad usage")
        err("Try 'swapoff --help' for more information.")
        return 1
    err(f"swapoff: {targets[0]}: swapoff failed: Invalid argument")
    return 255


def swapon(args: list[str]) -> int:
    f = base.facts()
    if "--show" in args or any(a.startswith("--show=") for a in args):
        if swap_on() and f["swap_gb"]:
            if "--noheadings" not in args:
                out("NAME      TYPE SIZE USED PRIO")
            size = str(int(f["swap_gb"] * 1024**3)) if "--bytes" in args else f"{f['swap_gb']:g}G"
            out(f"{render.SWAP_FILE} file {size:>4}   0B   -2")
        return 0
    if "-s" in args or "--summary" in args:
        out((base.NODE_DIR / "proc" / "swaps").read_text(encoding="utf-8").rstrip("\n"))
        return 0
    if "-a" in args or "--all" in args:
        from installer.lab import seed

        if seed.swap_in_fstab(Path("/etc")):
            set_swap(True)
        return 0
    targets = [a for a in args if not a.startswith("-")]
    if targets and targets[0] == render.SWAP_FILE and f["swap_gb"]:
        set_swap(True)
        return 0
    if targets:
        err(f"swapon: cannot open {targets[0]}: No such file or directory")
        return 255
    return 0
