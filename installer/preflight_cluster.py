"""Preflight checks that compare hosts with each other. Pure: no I/O.

Each still gives one finding per host (the grid stays host x check), except the
VIP probe, which is about the cluster as a whole.
"""

from __future__ import annotations

import ipaddress
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable

from installer.answer_checks import check_network
from installer.answers import Host
from installer.hostfacts import HostFacts
from installer.preflight_model import Context, Finding, Status, unknown_finding
from installer.preflight_network import physical_nics

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

# --------------------------------------------------------------------------- duplicates

MACHINE_ID_FIX = (
    "on each clone: sudo rm -f /etc/machine-id /var/lib/dbus/machine-id && "
    "sudo systemd-machine-id-setup && sudo ln -sf /etc/machine-id /var/lib/dbus/machine-id "
    "&& sudo reboot"
)
PRODUCT_UUID_FIX = (
    "give each cloned VM its own SMBIOS UUID in the hypervisor (libvirt: a new <uuid>; "
    "Proxmox: qm set <vmid> --smbios1 uuid=$(uuidgen); VMware: remove uuid.bios from the "
    ".vmx and answer 'I copied it'), then boot it again"
)
MAC_FIX = (
    "give each cloned VM new MAC addresses in the hypervisor (or regenerate them on clone), "
    "then reboot"
)

_BAD_MACS = {"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"}


def _hostname_values(f: HostFacts) -> Iterable[str] | None:
    return None if f.hostname is None else [f.hostname.lower().rstrip(".")]


def _machine_id_values(f: HostFacts) -> Iterable[str] | None:
    return None if f.machine_id is None else [f.machine_id.strip().lower()]


def _product_uuid_values(f: HostFacts) -> Iterable[str] | None:
    return None if f.product_uuid is None else [f.product_uuid.strip().lower()]


def _mac_values(f: HostFacts) -> Iterable[str] | None:
    if f.nics is None:
        return None
    real = set(physical_nics(f))
    macs = {nic.mac.lower() for nic in f.nics if nic.name in real and nic.mac}
    return sorted(macs - _BAD_MACS)


def _shared_with(
    ctx: Context, values: Callable[[HostFacts], Iterable[str] | None]
) -> dict[str, dict[str, list[str]]]:
    """host label -> {value it shares -> the other hosts holding it}."""
    holders: dict[str, list[str]] = {}
    for host, f in ctx.discovered:
        for v in set(values(f) or ()):
            holders.setdefault(v, []).append(host.label)
    out: dict[str, dict[str, list[str]]] = {}
    for v, labels in holders.items():
        if len(labels) > 1:
            for label in labels:
                out.setdefault(label, {})[v] = [x for x in labels if x != label]
    return out


def _duplicate_check(
    check: str,
    fact: str,
    what: str,
    values: Callable[[HostFacts], Iterable[str] | None],
    fix: Callable[[Host], str],
) -> Callable[[Context, Host, HostFacts], Finding]:
    def run(ctx: Context, host: Host, f: HostFacts) -> Finding:
        label = host.label
        mine = values(f)
        if mine is None:
            return unknown_finding(check, label, f, fact, what)
        mine = list(mine)
        if check == "duplicate-machine-id" and mine == [""]:
            return Finding(
                check,
                label,
                "fail",
                f"{label}: /etc/machine-id is empty (an unbooted template?)",
                MACHINE_ID_FIX,
            )
        shared = _shared_with(ctx, values).get(label)
        if not shared:
            shown = mine[0] if len(mine) == 1 else f"{len(mine)} addresses"
            return Finding(check, label, "pass", f"{label}: {what} {shown} is unique")
        parts = [f"{v} with {', '.join(others)}" for v, others in sorted(shared.items())]
        return Finding(
            check,
            label,
            "fail",
            f"{label}: shares its {what} {'; '.join(parts)} (cloned VMs?)",
            fix(host),
        )

    return run


check_duplicate_hostname = _duplicate_check(
    "duplicate-hostname",
    "hostname",
    "hostname",
    _hostname_values,
    lambda h: f"sudo hostnamectl set-hostname {h.name or '<unique-name>'}",
)
check_duplicate_machine_id = _duplicate_check(
    "duplicate-machine-id", "machine_id", "machine-id", _machine_id_values, lambda h: MACHINE_ID_FIX
)
check_duplicate_product_uuid = _duplicate_check(
    "duplicate-product-uuid",
    "product_uuid",
    "product_uuid",
    _product_uuid_values,
    lambda h: PRODUCT_UUID_FIX,
)
check_duplicate_mac = _duplicate_check(
    "duplicate-mac", "nics", "MAC address", _mac_values, lambda h: MAC_FIX
)

# --------------------------------------------------------------------------- clock skew

MAX_SKEW_S = 30.0


def clock_reference(ctx: Context) -> float | None:
    """The median of the hosts' clocks.

    A median of two clocks is their midpoint, which hides a 60 s gap as two
    30 s skews; with fewer than three known clocks the caller's ``now`` (the
    installer's clock at discovery) joins the sample when given.
    """
    samples = [
        f.clock_epoch
        for _, f in ctx.discovered
        if f.clock_epoch is not None and math.isfinite(f.clock_epoch)
    ]
    if len(samples) < 3 and ctx.now is not None and math.isfinite(ctx.now):
        samples.append(ctx.now)
    return statistics.median(samples) if samples else None


def check_clock_skew(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    clock = f.clock_epoch
    if clock is None or not math.isfinite(clock):
        return unknown_finding("clock-skew", label, f, "clock_epoch", "the clock")
    ref = clock_reference(ctx)
    assert ref is not None  # this host's clock is in the sample
    skew = clock - ref
    detail = None
    if ctx.now is not None and math.isfinite(ctx.now):
        detail = f"{clock - ctx.now:+.1f} s against the installer's clock"
    if abs(skew) <= MAX_SKEW_S:
        return Finding(
            "clock-skew",
            label,
            "pass",
            f"{label}: clock within {abs(skew):.1f} s of the hosts' median",
            detail=detail,
        )
    way = "ahead of" if skew > 0 else "behind"
    return Finding(
        "clock-skew",
        label,
        "fail",
        f"{label}: clock is {abs(skew):.0f} s {way} the hosts' median (limit {MAX_SKEW_S:.0f} s)",
        "enable time sync on every host (sudo timedatectl set-ntp true, or chrony), then step "
        "the clock now: sudo chronyc makestep",
        detail,
    )


# --------------------------------------------------------------------------- subnet


def host_network(host: Host, f: HostFacts, family: int | None = None) -> IPNet | None:
    """The subnet of the NIC address the host is reached at; failing that, the default
    interface's first address (of ``family`` when given)."""
    try:
        target: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.address
        )
    except ValueError:
        target = None
    fallback: IPNet | None = None
    for nic in f.nics or ():
        if nic.loopback:
            continue
        for a in nic.addresses:
            try:
                iface = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
            except ValueError:
                continue
            if target is not None and iface.ip == target:
                return iface.network
            if (
                fallback is None
                and nic.name == f.default_interface
                and not iface.ip.is_link_local
                and (family is None or iface.version == family)
            ):
                fallback = iface.network
    return fallback


def _networks(ctx: Context) -> dict[str, IPNet]:
    vip = ctx.answers.network.vip
    family = vip.version if vip is not None else None
    out = {}
    for host, f in ctx.discovered:
        net = host_network(host, f, family)
        if net is not None:
            out[host.label] = net
    return out


def _reference_network(ctx: Context, nets: dict[str, IPNet]) -> IPNet | None:
    vip = ctx.answers.network.vip
    if vip is not None:
        for net in nets.values():
            if net.version == vip.version and vip in net:
                return net
    counts = Counter(nets.values())
    if not counts:
        return None
    top = max(counts.values())
    return next(n for n in nets.values() if counts[n] == top)  # ties: answers order


def check_subnet(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.nics is None:
        return unknown_finding("subnet", label, f, "nics", "the host's subnet")
    nets = ctx.memo("subnet.networks", lambda: _networks(ctx))
    net = nets.get(label)
    if net is None:
        return Finding(
            "subnet",
            label,
            "warn",
            f"{label}: no NIC carries {host.address} and no default interface address: "
            "could not tell its subnet",
            "check the address in answers.yaml (hosts[].address) against `ip addr` on the host",
        )
    vip = ctx.answers.network.vip
    statuses: list[Status] = []
    texts: list[str] = []
    baseline = ctx.memo("subnet.baseline", lambda: {p.message for p in check_network(ctx.answers)})
    for p in check_network(ctx.answers, {label: net}):
        if p.message not in baseline:
            statuses.append("fail" if p.severity == "error" else "warn")
            texts.append(p.message)
    ref = ctx.memo("subnet.reference", lambda: _reference_network(ctx, nets))
    if ref is not None and net != ref:
        others = [x for x, n in nets.items() if n == ref and x != label]
        if others:
            statuses.append("warn")
            texts.append(
                f"{label} is on {net}, {', '.join(others)} on {ref}: the VIP can only move "
                "between hosts on one subnet"
            )
    if not texts:
        with_vip = f", with the VIP {vip}" if vip is not None else ""
        return Finding("subnet", label, "pass", f"{label}: on {net}{with_vip}")
    status: Status = "fail" if "fail" in statuses else "warn"
    return Finding(
        "subnet",
        label,
        status,
        f"{label} ({net}): " + "; ".join(texts),
        "put every host and network.vip on one subnet (same L2 segment), "
        "or choose a VIP inside the hosts' subnet",
    )


# --------------------------------------------------------------------------- VIP


def check_vip_free(ctx: Context) -> Finding | None:
    vip = ctx.answers.network.vip
    if vip is None or ctx.vip_answers is None:
        return None  # no VIP, or the caller did not probe it
    if not ctx.vip_answers:
        return Finding("vip-free", None, "pass", f"VIP {vip} does not answer: free")
    return Finding(
        "vip-free",
        None,
        "fail",
        f"VIP {vip} already answers: another machine holds this address",
        f"choose a free address for network.vip, or find the holder: arping -c 3 {vip} "
        "(the MAC it answers with), then free the address",
        "a VIP held by this cluster's own keepalived or MetalLB (a resumed install) answers too",
    )
