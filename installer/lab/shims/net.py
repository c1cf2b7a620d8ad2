"""The network as a node sees it: its NICs and routes (ip), listening ports (ss), firewalls."""

from __future__ import annotations

import json
import re
from typing import Any

from installer.lab.shims import base, render
from installer.lab.shims.base import err, out

ANY4 = "0.0.0.0"  # noqa: S104 - how ss prints a wildcard listener, not a bind


# ---------------------------------------------------------------- ip


def vip_here() -> list[str]:
    """The VIP, when this node is the keepalived master (highest priority among active ones)."""
    ka = base.peek_cluster("keepalived")
    active = [(v.get("priority", 0), n, v) for n, v in ka.items() if v.get("active")]
    if not active:
        return []
    _, holder, info = max(active, key=lambda t: (t[0], t[1]))
    if holder != base.node_name():
        return []
    return list(info.get("vips", []))


def nic_entries() -> list[dict[str, Any]]:
    """``ip -j addr``: the node's NICs with their lab addresses, added ones and the VIP.

    A node replayed from a capture (``--from-raw``) shows the captured interfaces instead, with
    the lab's address in place of the captured host's on its main interface.
    """
    f = base.facts()
    captured = _captured_interfaces()
    primary = _captured_primary(captured) if captured else None
    # The spec's first NIC is the captured main interface (the one of the default route).
    names = {f["nics"][0]["name"]: primary} if primary and f["nics"] else {}
    extra: dict[str, list[str]] = {}
    for nic, addrs in base.peek_node("net").get("added", {}).items():
        extra.setdefault(names.get(nic, nic), []).extend(addrs)
    ka = base.peek_cluster("keepalived").get(base.node_name(), {})
    for vip in vip_here():
        cidr = vip if "/" in vip else f"{vip}/32"
        dev = ka.get("interface") or (f["nics"][0]["name"] if f["nics"] else "lo")
        extra.setdefault(names.get(dev, dev), []).append(cidr)
    if not captured:
        return render.nic_entries(f, extra)
    lab_addresses = list(f["nics"][0]["addresses"]) if f["nics"] else []
    return _replayed(captured, primary, lab_addresses, extra)


def _captured_interfaces() -> list[dict[str, Any]]:
    """The interfaces of a replayed ``ip -j addr`` (``--from-raw``), else none."""
    found = base.raw_section("ip_addr")
    if found is None or found[1] != 0:
        return []
    try:
        data = json.loads(found[0])
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("ifname"), str)]


def _is_loopback(entry: dict[str, Any]) -> bool:
    return bool(entry.get("link_type") == "loopback" or entry["ifname"] == "lo")


def _captured_primary(captured: list[dict[str, Any]]) -> str | None:
    """The captured host's main interface: its default route's, else its first with an IPv4."""
    names = [e["ifname"] for e in captured if not _is_loopback(e)]
    route = base.raw_section("route")
    if route is not None:
        m = re.search(r"^default\b.*?\bdev\s+(\S+)", route[0], re.MULTILINE)
        if m and m.group(1) in names:
            return m.group(1)
    for e in captured:
        if not _is_loopback(e) and any(
            isinstance(a, dict) and a.get("family") == "inet" for a in e.get("addr_info") or []
        ):
            return str(e["ifname"])
    return names[0] if names else None


def _addr_info(cidr: str, label: str) -> dict[str, Any]:
    ip_, _, plen = cidr.partition("/")
    v6 = ":" in ip_
    info: dict[str, Any] = {"family": "inet6" if v6 else "inet", "local": ip_,
                            "prefixlen": int(plen or (128 if v6 else 32)), "scope": "global"}  # fmt: skip
    if not v6:
        info["label"] = label
    info.update({"valid_life_time": 4294967295, "preferred_life_time": 4294967295})
    return info


_ENTRY_DEFAULTS: dict[str, Any] = {
    "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500, "qdisc": "fq_codel",
    "operstate": "UP", "group": "default", "txqlen": 1000, "link_type": "ether",
    "address": "00:00:00:00:00:00", "broadcast": "ff:ff:ff:ff:ff:ff",
}  # fmt: skip


def _replayed(
    captured: list[dict[str, Any]],
    primary: str | None,
    lab_addresses: list[str],
    extra: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """The captured interfaces as they are now in the lab: the lab's address on the main
    interface (in place of the captured host's global addresses) and every address added since.
    """
    entries: list[dict[str, Any]] = []
    if not any(_is_loopback(e) for e in captured):
        entries.append(render.nic_entries({"nics": []})[0])
    for i, raw in enumerate(captured, start=len(entries) + 1):
        entry = {**_ENTRY_DEFAULTS, "ifindex": i, **raw}
        name = entry["ifname"]
        infos = [a for a in raw.get("addr_info") or [] if isinstance(a, dict) and "local" in a]
        if name == primary:
            kept = [a for a in infos if a.get("scope", "global") != "global"]
            infos = [_addr_info(c, name) for c in lab_addresses] + kept
        infos += [_addr_info(c, name) for c in extra.get(name, [])]
        # ip lists every IPv4 address before the IPv6 ones.
        infos.sort(key=lambda a: a.get("family") != "inet")
        entry["addr_info"] = infos
        entries.append(entry)
    return entries


def _route_source(entries: list[dict[str, Any]], dev: str) -> str:
    for e in entries:
        if e["ifname"] == dev:
            for a in e["addr_info"]:
                if a.get("family") == "inet":
                    return str(a["local"])
    return "127.0.0.1"


def ip(args: list[str]) -> int:
    opts: list[str] = []
    words: list[str] = []
    for a in args:
        (opts if a.startswith("-") and not words else words).append(a)
    as_json = any(o in ("-j", "-json", "--json") for o in opts)
    family = "inet6" if "-6" in opts else ("inet" if "-4" in opts else None)
    obj = words[0] if words else ""
    rest = words[1:]
    if obj in ("a", "addr", "address"):
        return _ip_addr(rest, as_json, family, brief="-br" in opts or "-brief" in opts)
    if obj in ("r", "route", "ro"):
        return _ip_route(rest, as_json, family)
    if obj in ("l", "link"):
        if rest[:1] in (["set"], ["add"], ["delete"], ["del"]):
            return 0
        entries = [{k: v for k, v in e.items() if k != "addr_info"} for e in nic_entries()]
        if as_json:
            out(json.dumps(entries))
        else:
            out(
                "\n".join(
                    render.ip_addr_text([{**e, "addr_info": []} for e in entries]).splitlines()[
                        0::2
                    ]
                )
            )
        return 0
    if obj in ("n", "neigh", "neighbour"):
        return 0
    err(f'Object "{obj}" is unknown, try "ip help".')
    return 255


def _ip_addr(rest: list[str], as_json: bool, family: str | None, brief: bool) -> int:
    if rest[:1] in (["add"], ["del"], ["delete"]):
        cidr = rest[1] if len(rest) > 1 else ""
        dev = rest[rest.index("dev") + 1] if "dev" in rest else base.facts()["nics"][0]["name"]
        with base.node_state("net") as st:
            added = st.setdefault("added", {}).setdefault(dev, [])
            if rest[0] == "add":
                if cidr in added:
                    err("RTNETLINK answers: File exists")
                    return 2
                added.append(cidr if "/" in cidr else cidr + "/32")
            else:
                key = cidr if "/" in cidr else cidr + "/32"
                if key not in added:
                    err("RTNETLINK answers: Cannot assign requested address")
                    return 2
                added.remove(key)
        return 0
    entries = nic_entries()
    dev = (
        rest[rest.index("dev") + 1]
        if "dev" in rest and rest.index("dev") + 1 < len(rest)
        else (rest[1] if rest[:1] in (["show"], ["list"], ["ls"]) and len(rest) > 1 else None)
    )
    if dev:
        entries = [e for e in entries if e["ifname"] == dev]
        if not entries:
            err(f'Device "{dev}" does not exist.')
            return 1
    if family:
        entries = [
            {**e, "addr_info": [a for a in e["addr_info"] if a["family"] == family]}
            for e in entries
        ]
    if as_json:
        out(json.dumps(entries))
    elif brief:
        for e in entries:
            addrs = " ".join(f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"])
            out(f"{e['ifname']:<16} {e['operstate']:<14} {addrs}")
    else:
        out(render.ip_addr_text(entries).rstrip("\n"))
    return 0


def _ip_route(rest: list[str], as_json: bool, family: str | None) -> int:
    if rest[:1] in (["add"], ["del"], ["delete"], ["replace"], ["flush"]):
        return 0
    f = base.facts()
    gw, dev = render.default_route(f)
    if family == "inet6":
        if as_json:
            out("[]")
        return 0
    entries = nic_entries()
    captured = _captured_interfaces()
    primary = _captured_primary(captured) if captured else None
    dev = primary or dev
    replay = base.raw_section("route")
    if replay is not None:
        m = re.search(r"^default via (\S+) dev (\S+)", replay[0], re.MULTILINE)
        if m:
            gw, dev = m.group(1), m.group(2)
        if "default" in rest and not as_json:
            out(replay[0].split("\n")[0])
            return 0
    routes = [{"dst": "default", "gateway": gw, "dev": dev, "protocol": "static", "flags": []}]
    import ipaddress

    for e in entries:
        if _is_loopback(e):
            continue
        for a in e["addr_info"]:
            if a.get("family") != "inet" or int(a.get("prefixlen", 32)) >= 32:
                continue
            net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            routes.append({"dst": str(net), "dev": e["ifname"], "protocol": "kernel", "scope": "link",
                           "prefsrc": a["local"], "flags": []})  # fmt: skip
    if rest[:1] == ["get"]:
        target = rest[1] if len(rest) > 1 else ANY4
        out(f"{target} via {gw} dev {dev} src {_route_source(entries, dev)} uid 0 \n    cache ")
        return 0
    if "default" in rest:
        routes = routes[:1]
    if as_json:
        out(json.dumps(routes))
        return 0
    for r in routes:
        if r["dst"] == "default":
            out(f"default via {r['gateway']} dev {r['dev']} proto static ")
        else:
            out(f"{r['dst']} dev {r['dev']} proto kernel scope link src {r['prefsrc']} ")
    return 0


# ---------------------------------------------------------------- ss


SERVICE_PORTS = {
    "etcd.service": [2379, 2380], "haproxy.service": [], "kubelet.service": [10250],
    "rke2-server.service": [9345, 6443, 10250, 2379, 2380], "rke2-agent.service": [10250],
}  # fmt: skip


def listening_ports() -> list[tuple[str, int]]:
    ports: list[tuple[str, int]] = [(ANY4, 22), ("127.0.0.53%lo", 53)]
    f = base.facts()
    ports += [(ANY4, p) for p in f.get("listening_ports", [])]
    units_state = base.peek_node("units")
    for unit, st in units_state.items():
        if st.get("active"):
            ports += [("*", p) for p in SERVICE_PORTS.get(unit, [])]
            if unit == "haproxy.service":
                cfg = base.read_node_file("/etc/haproxy/haproxy.cfg") or ""
                for m in re.finditer(r"^\s*bind\s+(\S*):(\d+)", cfg, re.MULTILINE):
                    ports.append((m.group(1) or "*", int(m.group(2))))
    k8s = base.peek_cluster("kubernetes")
    me = k8s.get("nodes", {}).get(base.node_name())
    if me:
        ports += [("*", 10250), ("*", 10256)]
        if me.get("control_plane"):
            ports += [("*", 6443), ("127.0.0.1", 10257), ("127.0.0.1", 10259)]
    if base.node_name() in base.peek_cluster("microk8s").get("nodes", {}):
        ports += [("*", 16443), ("*", 10250), (ANY4, 25000), ("*", 19001)]
    if base.node_name() in base.peek_cluster("ceph").get("mons", []):
        ports += [(ANY4, 3300), (ANY4, 6789)]
    seen = set()
    unique = []
    for addr, port in ports:
        if port not in seen:
            seen.add(port)
            unique.append((addr, port))
    return sorted(unique, key=lambda t: t[1])


def ss(args: list[str]) -> int:
    letters = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    if "l" in letters and "t" in letters and "H" in letters:
        base.replay("ports")
    if "H" not in letters and "--no-header" not in args:
        out("State  Recv-Q Send-Q  Local Address:Port   Peer Address:Port Process")
    if "l" not in letters:
        return 0
    for addr, port in listening_ports():
        local = f"{addr}:{port}"
        out(f"LISTEN 0      4096    {local:>21}        0.0.0.0:*")
    return 0


# ---------------------------------------------------------------- firewalls


def ufw(args: list[str]) -> int:
    base.replay("ufw")
    f = base.facts()
    st = base.peek_node("firewall")
    active = st.get("active", f.get("firewall") == "ufw")
    allowed = st.get("allowed", [f"{p}/tcp" for p in f.get("firewall_open_ports", [])])
    words = [a for a in args if not a.startswith("-")]
    verb = words[0] if words else "status"
    if verb == "status":
        out(f"Status: {'active' if active else 'inactive'}")
        if active:
            out(
                "\nTo                         Action      From\n--                         ------      ----"
            )
            for rule in allowed:
                out(f"{rule:<27}ALLOW       Anywhere")
        return 0
    with base.node_state("firewall") as s:
        s.setdefault("active", active)
        s.setdefault("allowed", allowed)
        if verb == "enable":
            s["active"] = True
            out("Firewall is active and enabled on system startup")
        elif verb == "disable":
            s["active"] = False
            out("Firewall stopped and disabled on system startup")
        elif verb == "allow" and len(words) > 1:
            rule = words[-1]
            if rule not in s["allowed"]:
                s["allowed"].append(rule)
            out("Rule added")
        elif verb in ("reload",):
            out("Firewall reloaded")
    return 0


def iptables(args: list[str]) -> int:
    base.replay("iptables")
    if "--version" in args or "-V" in args:
        out("iptables v1.8.7 (nf_tables)")
        return 0
    rules = base.peek_node("iptables").get("rules", [])
    if "-S" in args:
        chain = next((a for a in args if not a.startswith("-")), None)
        for c in [chain] if chain else ["INPUT", "FORWARD", "OUTPUT"]:
            out(f"-P {c} ACCEPT")
            for r in rules:
                if r.startswith(f"-A {c} "):
                    out(r)
        return 0
    if "-L" in args:
        for c in ("INPUT", "FORWARD", "OUTPUT"):
            out(
                f"Chain {c} (policy ACCEPT)\ntarget     prot opt source               destination\n"
            )
        return 0
    if "-A" in args or "-I" in args:
        with base.node_state("iptables") as st:
            st.setdefault("rules", []).append(" ".join(args))
    return 0


ip6tables = iptables


def nft(args: list[str]) -> int:
    base.replay("nft")
    return 0


def firewall_cmd(args: list[str]) -> int:
    base.replay("firewalld")
    out("not running")
    return 252
