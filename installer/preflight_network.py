"""Preflight checks of one host's network side: NICs, listening ports, firewall. Pure."""

from __future__ import annotations

from installer.answers import Host
from installer.hostfacts import HostFacts
from installer.preflight_model import Context, Finding, Status, unknown_finding

# --------------------------------------------------------------------------- NICs

VIRTUAL_NIC_PREFIXES = (
    "docker",
    "veth",
    "cni",
    "flannel",
    "cali",
    "vxlan",
    "tunl",
    "kube-",
    "virbr",
    "lxc",
    "lxd",
    "br-",
    "cilium",
    "weave",
    "vnet",
    "tap",
    "tun",
    "genev",
    "nodelocaldns",
    "wg",
    "dummy",
)


def physical_nics(f: HostFacts) -> list[str]:
    return [
        nic.name
        for nic in f.nics or ()
        if not nic.loopback and nic.name != "lo" and not nic.name.startswith(VIRTUAL_NIC_PREFIXES)
    ]


def check_nics(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.nics is None:
        return unknown_finding("nics", label, f, "nics", "the network interfaces")
    names = physical_nics(f)
    listed = ", ".join(names) or "none"
    if len(names) >= 2:
        return Finding("nics", label, "pass", f"{label}: {len(names)} NICs ({listed})")
    return Finding(
        "nics",
        label,
        "warn",
        f"{label}: {len(names)} network interface(s) ({listed}); the FMP runbook asks for two, "
        "one of them for traffic between the nodes",
        "add a second NIC on the nodes' private network",
    )


# --------------------------------------------------------------------------- ports, firewall


def _port_list(ports: dict[int, tuple[str, ...]], which: list[int]) -> str:
    return ", ".join(f"{p} ({'/'.join(ports[p])})" if ports[p] else str(p) for p in which)


def check_ports(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    needs = ctx.needs(host)
    if not needs.ports:
        return Finding("ports", label, "pass", f"{label}: no ports required by its roles")
    if f.listening_ports is None:
        return unknown_finding("ports", label, f, "listening_ports", "listening ports")
    ports = dict(needs.ports)
    busy = sorted(p for p in ports if p in f.listening_ports)
    if not busy:
        return Finding(
            "ports", label, "pass", f"{label}: ports {', '.join(map(str, ports))} are free"
        )
    first = busy[0]
    return Finding(
        "ports",
        label,
        "fail",
        f"{label}: port(s) already in use: {_port_list(ports, busy)}",
        f"find what listens (sudo ss -ltnp 'sport = :{first}') and stop it; "
        "a leftover Kubernetes install is removed with its own reset/uninstall command",
    )


def _firewall_fix(kind: str | None, ports: list[int]) -> str:
    if kind == "ufw":
        return " && ".join(f"sudo ufw allow {p}/tcp" for p in ports)
    if kind == "firewalld":
        adds = " ".join(f"--add-port={p}/tcp" for p in ports)
        return f"sudo firewall-cmd --permanent {adds} && sudo firewall-cmd --reload"
    listed = ", ".join(map(str, ports))
    return f"allow TCP {listed} in the {kind or 'firewall'} rules, or stop the firewall"


def check_firewall(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    fw = f.firewall
    if fw is None:
        return unknown_finding("firewall", label, f, "firewall", "the firewall")
    kind = fw.kind or "firewall"
    if not fw.active:
        return Finding("firewall", label, "pass", f"{label}: no active firewall")
    needs = ctx.needs(host)
    ports = dict(needs.ports)
    closed = sorted(p for p in ports if p not in fw.open_ports)
    overlay = "the pod network also needs its overlay ports (e.g. UDP 8472 or 4789) between nodes"
    if not closed:
        return Finding(
            "firewall",
            label,
            "pass",
            f"{label}: {kind} active, required ports open",
            detail=overlay,
        )
    # ufw and firewalld list what they allow; raw nftables/iptables rules are only
    # partly understood, so a port missing from their list may still be allowed.
    status: Status = "fail" if fw.kind in ("ufw", "firewalld") else "warn"
    return Finding(
        "firewall",
        label,
        status,
        f"{label}: {kind} is active and does not allow TCP {_port_list(ports, closed)}",
        _firewall_fix(fw.kind, closed),
        overlay,
    )
