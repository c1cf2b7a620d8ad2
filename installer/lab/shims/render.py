"""Facts as the real files and tools print them, from a node's resolved facts.

Used by the daemon to seed a node (/proc files, /etc/os-release) and by the
shims at run time (lsblk, ip, ss...). Pure functions over plain dicts.
"""

from __future__ import annotations

import hashlib
from typing import Any

GIB = 1024**3
SWAP_FILE = "/swap.img"


def _kib(gb: float) -> int:
    return int(gb * 1024 * 1024)


def cpuinfo(facts: dict[str, Any]) -> str:
    blocks = []
    cpus = int(facts["cpus"])
    flags = " ".join(facts["cpu_flags"])
    for i in range(cpus):
        blocks.append(
            f"processor\t: {i}\n"
            "vendor_id\t: GenuineIntel\n"
            "cpu family\t: 6\n"
            "model\t\t: 85\n"
            f"model name\t: {facts['cpu_model']}\n"
            "stepping\t: 7\n"
            "microcode\t: 0x5003604\n"
            "cpu MHz\t\t: 2095.078\n"
            "cache size\t: 28160 KB\n"
            "physical id\t: 0\n"
            f"siblings\t: {cpus}\n"
            f"core id\t\t: {i}\n"
            f"cpu cores\t: {cpus}\n"
            f"apicid\t\t: {i}\n"
            f"initial apicid\t: {i}\n"
            "fpu\t\t: yes\n"
            "fpu_exception\t: yes\n"
            "cpuid level\t: 22\n"
            "wp\t\t: yes\n"
            f"flags\t\t: {flags}\n"
            "bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs taa mmio_stale_data retbleed\n"
            "bogomips\t: 4190.15\n"
            "clflush size\t: 64\n"
            "cache_alignment\t: 64\n"
            "address sizes\t: 46 bits physical, 48 bits virtual\n"
            "power management:\n"
        )
    return "\n".join(blocks) + "\n"


def meminfo(facts: dict[str, Any], swap_on: bool) -> str:
    total = _kib(facts["memory_gb"]) - 250_000  # the kernel keeps some
    free = int(total * 0.93)
    avail = int(total * 0.95)
    swap = _kib(facts["swap_gb"]) - 4 if swap_on and facts["swap_gb"] else 0
    rows = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", avail),
        ("Buffers", 41_220),
        ("Cached", 812_344),
        ("SwapCached", 0),
        ("Active", 402_100),
        ("Inactive", 733_012),
        ("SwapTotal", swap),
        ("SwapFree", swap),
        ("Dirty", 12),
        ("Shmem", 1_204),
        ("Slab", 120_448),
        ("CommitLimit", total // 2 + swap),
        ("VmallocTotal", 34359738367),
    ]
    text = "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in rows)
    text += "HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\n"
    text += "HugePages_Surp:        0\nHugepagesize:       2048 kB\n"
    return text


def swaps(facts: dict[str, Any], swap_on: bool) -> str:
    head = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    if not swap_on or not facts["swap_gb"]:
        return head
    size = _kib(facts["swap_gb"]) - 4
    return head + f"{SWAP_FILE:<40}file\t\t{size}\t\t0\t\t-2\n"


def os_release(facts: dict[str, Any]) -> str:
    o = facts["os"]
    return (
        f'PRETTY_NAME="{o["pretty_name"]}"\n'
        f'NAME="{o["name"]}"\n'
        f'VERSION_ID="{o["version_id"]}"\n'
        f'VERSION="{o["version_id"]} ({o["codename"]})"\n'
        f"VERSION_CODENAME={o['codename']}\n"
        f"ID={o['id']}\n"
        f"ID_LIKE={o['id_like']}\n"
        'HOME_URL="https://www.ubuntu.com/"\n'
        'SUPPORT_URL="https://help.ubuntu.com/"\n'
        'BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"\n'
        f"UBUNTU_CODENAME={o['codename']}\n"
    )


def lsb_release(facts: dict[str, Any]) -> str:
    o = facts["os"]
    return (
        f"DISTRIB_ID={o['name']}\nDISTRIB_RELEASE={o['version_id']}\n"
        f'DISTRIB_CODENAME={o["codename"]}\nDISTRIB_DESCRIPTION="{o["pretty_name"]}"\n'
    )


def fake_uuid(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# ------------------------------------------------------------------ disks


def initial_disks(node: dict[str, Any]) -> dict[str, Any]:
    """The disk state a fresh node starts with (kept in lab/disks.json and changed by shims)."""
    facts = node["facts"]
    disks = []
    vgs: dict[str, Any] = {}
    for d in facts["disks"]:
        size = int(d["size_gb"] * GIB)
        disk: dict[str, Any] = {
            "name": d["name"],
            "size": size,
            "model": d["model"],
            "vendor": d["vendor"],
            "serial": d["serial"],
            "wwn": d["wwn"] or None,
            "rota": d["rotational"],
            "tran": d["transport"],
            "pttype": None,
            "fstype": None,
            "parts": [],
        }
        if d["system"]:
            n = d["name"]
            boot = 2 * GIB
            pv = size - boot - 2 * 1024**2
            disk["pttype"] = "gpt"
            disk["parts"] = [
                {"name": f"{n}1", "size": 1024**2, "fstype": None, "mountpoint": None},
                {"name": f"{n}2", "size": boot, "fstype": "ext4", "mountpoint": "/boot",
                 "uuid": fake_uuid(node["name"], n, "boot")},
                {"name": f"{n}3", "size": pv, "fstype": "LVM2_member", "mountpoint": None,
                 "uuid": fake_uuid(node["name"], n, "pv")},
            ]  # fmt: skip
            root = min(pv // 2, 100 * GIB) // (4 * 1024**2) * (4 * 1024**2)
            vgs["ubuntu-vg"] = {
                "pvs": [f"/dev/{n}3"],
                "size": pv // (4 * 1024**2) * (4 * 1024**2),
                "lvs": {"ubuntu-lv": {"size": root, "fstype": "ext4", "mountpoint": "/"}},
            }
        disks.append(disk)
    return {"disks": disks, "vgs": vgs}


def _vg_of(state: dict[str, Any], dev: str) -> str | None:
    for name, vg in state["vgs"].items():
        if dev in vg["pvs"]:
            return str(name)
    return None


def dm_name(vg: str, lv: str) -> str:
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


LSBLK_ALL = [
    "alignment",
    "id-link",
    "id",
    "disc-aln",
    "dax",
    "disc-gran",
    "disk-seq",
    "disc-max",
    "disc-zero",
    "fsavail",
    "fsroots",
    "fssize",
    "fstype",
    "fsused",
    "fsuse%",
    "fsver",
    "group",
    "hctl",
    "hotplug",
    "kname",
    "label",
    "log-sec",
    "maj:min",
    "min-io",
    "mode",
    "model",
    "name",
    "opt-io",
    "owner",
    "partflags",
    "partlabel",
    "partn",
    "parttype",
    "parttypename",
    "partuuid",
    "path",
    "phy-sec",
    "pkname",
    "pttype",
    "ptuuid",
    "ra",
    "rand",
    "rev",
    "rm",
    "ro",
    "rota",
    "rq-size",
    "sched",
    "serial",
    "size",
    "start",
    "state",
    "subsystems",
    "mountpoint",
    "mountpoints",
    "tran",
    "type",
    "uuid",
    "vendor",
    "wsame",
    "wwn",
    "zoned",
    "zone-sz",
]


def _dev(
    name: str, kind: str, size: int, *, parent: str | None, major: int, minor: int, **extra: Any
) -> dict[str, Any]:
    mount = extra.get("mountpoint")
    d: dict[str, Any] = {c: None for c in LSBLK_ALL}
    d.update(
        {
            "alignment": 0, "disc-aln": 0, "dax": False, "disc-gran": 4096, "disc-max": 1073741824,
            "disc-zero": False, "fsroots": [None], "group": "disk", "hotplug": False,
            "kname": name, "log-sec": 512, "maj:min": f"{major}:{minor}", "min-io": 512,
            "mode": "brw-rw----", "name": name, "opt-io": 0, "owner": "root",
            "path": f"/dev/{name}", "phy-sec": 512, "pkname": parent, "ra": 128, "rand": False,
            "rm": False, "ro": False, "rota": False, "rq-size": 256, "sched": "mq-deadline",
            "size": size, "state": "running" if kind == "disk" else None, "subsystems": "block",
            "mountpoint": mount, "mountpoints": [mount], "type": kind, "wsame": 0,
            "zoned": "none", "zone-sz": 0, "disk-seq": minor // 16 + 1,
        }
    )  # fmt: skip
    for key, value in extra.items():
        d[key] = value
    if mount:
        d["fsroots"] = ["/"]
    return d


def lsblk_tree(state: dict[str, Any]) -> list[dict[str, Any]]:
    """``lsblk -J -b -O`` blockdevices, as util-linux 2.37 (Ubuntu 22.04) prints them."""
    out = []
    for i, disk in enumerate(state["disks"]):
        major, minor = 8, i * 16
        dev = _dev(
            disk["name"], "disk", disk["size"], parent=None, major=major, minor=minor,
            model=disk["model"], serial=disk["serial"], wwn=disk["wwn"], rota=disk["rota"],
            tran=disk["tran"], vendor=f"{disk['vendor']:<8}", hctl=f"{i}:0:0:0", rev="2.5+",
            pttype=disk.get("pttype"), fstype=disk.get("fstype"), uuid=disk.get("uuid"),
            ptuuid=fake_uuid(disk["name"], "pt") if disk.get("pttype") else None,
        )  # fmt: skip
        if dev["fstype"] == "LVM2_member":
            dev["children"] = _lv_children(state, f"/dev/{disk['name']}", disk["name"])
        children = []
        for j, part in enumerate(disk.get("parts", []), start=1):
            p = _dev(
                part["name"], "part", part["size"], parent=disk["name"], major=major,
                minor=minor + j, fstype=part.get("fstype"), uuid=part.get("uuid"),
                mountpoint=part.get("mountpoint"), partn=j, rota=disk["rota"],
                partuuid=fake_uuid(part["name"], "partuuid"), start=2048 * j,
                parttype="0fc63daf-8483-4772-8e79-3d69d8477de4",
                parttypename="Linux filesystem",
            )  # fmt: skip
            if part.get("fstype") == "LVM2_member":
                p["children"] = _lv_children(state, f"/dev/{part['name']}", part["name"])
            children.append(p)
        if children:
            dev["children"] = children
        if "children" in dev and not dev["children"]:
            del dev["children"]
        out.append(dev)
    return out


def _lv_children(state: dict[str, Any], pv: str, parent: str) -> list[dict[str, Any]]:
    vg = _vg_of(state, pv)
    if vg is None:
        return []
    kids = []
    for k, (lv, info) in enumerate(sorted(state["vgs"][vg]["lvs"].items())):
        name = dm_name(vg, lv)
        kids.append(
            _dev(
                name,
                "lvm",
                info["size"],
                parent=parent,
                major=253,
                minor=k,
                fstype=info.get("fstype"),
                mountpoint=info.get("mountpoint"),
                path=f"/dev/mapper/{name}",
                kname=f"dm-{k}",
                uuid=fake_uuid(vg, lv) if info.get("fstype") else None,
            )
        )
    return kids


def by_id_links(state: dict[str, Any]) -> dict[str, str]:
    """/dev/disk/by-id link name -> kernel name."""
    links = {}
    for disk in state["disks"]:
        serial = disk["serial"]
        model = disk["model"].replace(" ", "_")
        if serial:
            links[f"ata-{model}_{serial}"] = disk["name"]
            links[f"scsi-0{disk['vendor']}_{model}_{serial}"] = disk["name"]
            for j, part in enumerate(disk.get("parts", []), start=1):
                links[f"ata-{model}_{serial}-part{j}"] = part["name"]
        if disk["wwn"]:
            links[f"wwn-{disk['wwn']}"] = disk["name"]
            for j, part in enumerate(disk.get("parts", []), start=1):
                links[f"wwn-{disk['wwn']}-part{j}"] = part["name"]
    return links


# ------------------------------------------------------------------ network


def nic_entries(
    facts: dict[str, Any], extra: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """``ip -j addr`` entries: lo, then the spec's NICs (``extra``: more CIDRs per NIC, the VIP)."""
    entries: list[dict[str, Any]] = [
        {
            "ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
            "qdisc": "noqueue", "operstate": "UNKNOWN", "group": "default", "txqlen": 1000,
            "link_type": "loopback", "address": "00:00:00:00:00:00",
            "broadcast": "00:00:00:00:00:00",
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host",
                 "label": "lo", "valid_life_time": 4294967295, "preferred_life_time": 4294967295},
                {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host",
                 "valid_life_time": 4294967295, "preferred_life_time": 4294967295},
            ],
        }
    ]  # fmt: skip
    for i, nic in enumerate(facts["nics"], start=2):
        up = nic["state"] == "UP"
        addrs = []
        for cidr in list(nic["addresses"]) + list((extra or {}).get(nic["name"], [])):
            ip, _, plen = cidr.partition("/")
            a: dict[str, Any] = {"family": "inet6" if ":" in ip else "inet", "local": ip,
                                 "prefixlen": int(plen or 32), "scope": "global"}  # fmt: skip
            if nic.get("dhcp"):
                a["dynamic"] = True
            a.update({"label": nic["name"], "valid_life_time": 4294967295,
                      "preferred_life_time": 4294967295})  # fmt: skip
            addrs.append(a)
        entries.append(
            {
                "ifindex": i, "ifname": nic["name"],
                "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"] if up else ["BROADCAST", "MULTICAST"],
                "mtu": 1500, "qdisc": "fq_codel", "operstate": "UP" if up else "DOWN",
                "group": "default", "txqlen": 1000, "link_type": "ether", "address": nic["mac"],
                "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": addrs,
            }
        )  # fmt: skip
    return entries


def ip_addr_text(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        lines.append(
            f"{e['ifindex']}: {e['ifname']}: <{','.join(e['flags'])}> mtu {e['mtu']} qdisc {e['qdisc']} "
            f"state {e['operstate']} group default qlen {e['txqlen']}"
        )
        kind = "loopback" if e["link_type"] == "loopback" else "ether"
        lines.append(f"    link/{kind} {e['address']} brd {e['broadcast']}")
        for a in e["addr_info"]:
            scope = a["scope"]
            dyn = " dynamic" if a.get("dynamic") else ""
            label = f" {a['label']}" if a["family"] == "inet" and "label" in a else ""
            lines.append(
                f"    {a['family']} {a['local']}/{a['prefixlen']} scope {scope}{dyn}{label}"
            )
            lines.append("       valid_lft forever preferred_lft forever")
    return "\n".join(lines) + "\n"


def default_route(facts: dict[str, Any]) -> tuple[str, str]:
    return facts["gateway"], facts["nics"][0]["name"] if facts["nics"] else "lo"


# ------------------------------------------------------------------ sysctl

SYSCTL_DEFAULTS = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.ip_nonlocal_bind": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.all.rp_filter": "2",
    "net.ipv4.conf.default.rp_filter": "2",
    "net.ipv4.tcp_keepalive_time": "7200",
    "net.ipv6.conf.all.forwarding": "0",
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.core.somaxconn": "4096",
    "vm.swappiness": "60",
    "vm.overcommit_memory": "0",
    "vm.max_map_count": "65530",
    "vm.nr_hugepages": "0",
    "kernel.panic": "0",
    "kernel.panic_on_oops": "0",
    "kernel.pid_max": "4194304",
    "kernel.keys.root_maxkeys": "1000000",
    "fs.inotify.max_user_instances": "128",
    "fs.inotify.max_user_watches": "29677",
    "fs.file-max": "9223372036854775807",
}
# Only present once the br_netfilter module is loaded, as on a real kernel.
BRIDGE_SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.bridge.bridge-nf-call-arptables": "1",
}


def sysctl_path(key: str) -> str:
    return key.replace(".", "/")
