"""Preflight checks that look at one host's facts alone. Pure: no I/O."""

from __future__ import annotations

import re

from installer.answers import DNS_LABEL_RE, Host, is_hostname
from installer.hostfacts import HostFacts, OsRelease
from installer.preflight_model import (
    Context,
    Finding,
    Status,
    fmt_bytes,
    unknown_finding,
)
from installer.profile_model import Requirements

# --------------------------------------------------------------------------- reachable, sudo


def check_reachable(ctx: Context, host: Host, f: HostFacts) -> Finding:
    bits = [b for b in (_os_name(f.os), f.kernel and f"kernel {f.kernel}", f.arch) if b]
    seen = ", ".join(bits) or "no details"
    return Finding("reachable", host.label, "pass", f"{host.label}: discovered ({seen})")


def check_sudo(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if label in ctx.sudo_checked:
        failed = ctx.sudo_checked[label]
        if failed is None:
            return Finding("sudo", label, "pass", f"{label}: sudo works with the password")
        return Finding("sudo", label, "fail", failed[0], failed[1])
    if f.sudo_ok is None:
        return unknown_finding("sudo", label, f, "sudo_ok", "sudo")
    if f.sudo_ok:
        return Finding("sudo", label, "pass", f"{label}: sudo works")
    user = ctx.answers.ssh_for(host).user or "<user>"
    return Finding(
        "sudo",
        label,
        "fail",
        f"{label}: sudo does not work for {user}",
        f"give {user} sudo (echo '{user} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/{user}), "
        "or set ssh.sudo_password_env to the name of a variable holding the sudo password",
    )


# --------------------------------------------------------------------------- OS

# os-release ID -> supported VERSION_IDs (a version matches itself and its point releases).
DEFAULT_SUPPORTED_OS: dict[str, tuple[str, ...]] = {
    "ubuntu": ("22.04", "24.04"),
    "debian": ("12", "13"),
    "rhel": ("9", "10"),
    "rocky": ("9", "10"),
    "almalinux": ("9", "10"),
    "centos": ("9", "10"),  # CentOS Stream
    "ol": ("9", "10"),
}
# Families we know: another version or a derivative is a warn, anything else a fail.
KNOWN_OS_FAMILIES = frozenset(
    DEFAULT_SUPPORTED_OS
    | {
        "fedora": (),
        "sles": (),
        "opensuse-leap": (),
        "opensuse-tumbleweed": (),
        "suse": (),
        "opensuse": (),
        "amzn": (),
    }
)
_SUPPORTED_TEXT = "Ubuntu 22.04/24.04, Debian 12/13, RHEL/Rocky/Alma/CentOS Stream/Oracle 9/10"


def _os_name(os: OsRelease | None) -> str | None:
    if os is None:
        return None
    return os.pretty_name or " ".join(p for p in (os.id, os.version_id) if p) or None


def _version_matches(version: str | None, wanted: str) -> bool:
    return version is not None and (version == wanted or version.startswith(wanted + "."))


def _profile_os_matches(os: OsRelease, entry: str) -> bool:
    """'ubuntu' matches any Ubuntu; 'ubuntu:22.04' (or 'ubuntu 22.04') only that version."""
    os_id, _, version = entry.replace(" ", ":").partition(":")
    if os_id.lower() != os.id.lower():
        return False
    return not version or _version_matches(os.version_id, version)


def check_os(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    os = f.os
    if os is None:
        return unknown_finding("os", label, f, "os", "the OS")
    name = _os_name(os) or "?"
    if not os.id:
        return Finding(
            "os",
            label,
            "fail",
            f"{label}: /etc/os-release has no ID: unknown OS",
            f"install one of: {_SUPPORTED_TEXT}",
        )
    needs = ctx.needs(host)
    pinned = False  # a profile entry names this very version
    for role, allowed in needs.os:
        matching = [entry for entry in allowed if _profile_os_matches(os, entry)]
        if not matching:
            return Finding(
                "os",
                label,
                "fail",
                f"{label}: {name} is not supported for role {role} by profile {ctx.meta.name} "
                f"(supported: {', '.join(allowed)})",
                f"install one of: {', '.join(allowed)}",
            )
        pinned = pinned or any(":" in e.replace(" ", ":") for e in matching)
    os_id = os.id.lower()
    versions = DEFAULT_SUPPORTED_OS.get(os_id)
    if pinned or (needs.os and versions is None):
        # the profile vouches for this version, or for a distribution we have no table for
        return Finding("os", label, "pass", f"{label}: {name}")
    if versions is not None and any(_version_matches(os.version_id, v) for v in versions):
        return Finding("os", label, "pass", f"{label}: {name}")
    family = {os_id, *(x.lower() for x in os.id_like)} & KNOWN_OS_FAMILIES
    if family:
        why = (
            f"version {os.version_id} is not one fmp-install is tested on"
            if versions is not None and os.version_id
            else "not tested with fmp-install"
        )
        return Finding(
            "os",
            label,
            "warn",
            f"{label}: {name}: {why}",
            f"it may work; for a supported install use {_SUPPORTED_TEXT}",
        )
    return Finding(
        "os",
        label,
        "fail",
        f"{label}: {name} ({os.id}) is not a supported OS",
        f"install one of: {_SUPPORTED_TEXT}",
    )


# --------------------------------------------------------------------------- CPU, memory

MEMORY_SLACK = 0.95  # MemTotal hides what the kernel and firmware reserve


def check_cpu_count(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.cpu is None:
        return unknown_finding("cpu-count", label, f, "cpu", "the CPU count")
    needs = ctx.needs(host)
    have = f.cpu.count
    cpus = f"{have} CPU" if have == 1 else f"{have} CPUs"
    if have >= needs.cpus:
        return Finding("cpu-count", label, "pass", f"{label}: {cpus} (needs {needs.cpus})")
    return Finding(
        "cpu-count",
        label,
        "fail",
        f"{label}: {cpus}, below the {needs.cpus} that {needs.why(needs.cpus_role)} needs "
        f"(profile {ctx.meta.name})",
        f"give {label} at least {needs.cpus} CPUs (vCPUs on a VM), or move it to a lighter role",
    )


def check_memory(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.memory is None:
        return unknown_finding("memory", label, f, "memory", "the memory size")
    needs = ctx.needs(host)
    have = f.memory.total_bytes
    want = needs.memory_mb * 2**20
    found = f"{label}: {fmt_bytes(have)} of memory"
    if have >= want:
        return Finding("memory", label, "pass", f"{found} (needs {fmt_bytes(want)})")
    why = (
        f"the {fmt_bytes(want)} that {needs.why(needs.memory_role)} needs (profile {ctx.meta.name})"
    )
    fix = f"give {label} at least {fmt_bytes(want)} of memory, or move it to a lighter role"
    return _short_of_memory("memory", label, have, want, f"{found}, below {why}", found, why, fix)


def _short_of_memory(
    check: str, label: str, have: int, want: int, fail: str, found: str, why: str, fix: str
) -> Finding:
    """A host with less than ``want`` bytes of memory: a warning when it is within what
    MemTotal hides (MEMORY_SLACK), else ``fail``."""
    if have >= want * MEMORY_SLACK:
        return Finding(
            check,
            label,
            "warn",
            f"{found}, a little below {why}",
            fix,
            "MemTotal leaves out what the kernel and firmware reserve: a host with "
            f"{fmt_bytes(want)} installed usually shows a few percent less",
        )
    return Finding(check, label, "fail", fail, fix)


def check_cpu_flags(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    needs = ctx.needs(host)
    if not needs.cpu_flags:
        return Finding("cpu-flags", label, "pass", f"{label}: no CPU flags required")
    if f.cpu is None:
        return unknown_finding("cpu-flags", label, f, "cpu", "the CPU flags")
    have = {flag.lower() for flag in f.cpu.flags}
    missing = [flag for flag in needs.cpu_flags if flag not in have]
    wanted = ", ".join(needs.cpu_flags)
    if not missing:
        return Finding("cpu-flags", label, "pass", f"{label}: CPU has {wanted}")
    roles = sorted({r for flag in missing for r in needs.cpu_flags[flag]})
    who = f"role {', '.join(roles)}" if roles else needs.why(None)
    model = f" ({f.cpu.model})" if f.cpu.model else ""
    virt = f.virtualization not in (None, "none")
    fix = (
        f"expose {', '.join(missing)} to the VM ({f.virtualization}): set the CPU type to "
        "host-passthrough (libvirt: <cpu mode='host-passthrough'/>; Proxmox: cpu: host; "
        "VMware: turn EVC off or raise its baseline)"
        if virt
        else f"run {label} on a CPU with {', '.join(missing)}"
    )
    return Finding(
        "cpu-flags",
        label,
        "fail",
        f"{label}: CPU{model} lacks {', '.join(missing)}, needed by {who} "
        f"(profile {ctx.meta.name})",
        fix,
    )


# --------------------------------------------------------------------------- huge pages, modules

HUGEPAGE_BYTES = 2 * 2**20  # requires.hugepages_mib counts 2 MiB pages (vm.nr_hugepages)
HUGEPAGE_SIZE_FIX = (
    "boot with 2 MiB as the default huge page size: add default_hugepagesz=2M to "
    "GRUB_CMDLINE_LINUX in /etc/default/grub, run sudo update-grub (grub2-mkconfig on RHEL), reboot"
)


def _held_requirements(ctx: Context, host: Host) -> list[tuple[str, Requirements]]:
    """(role, its requirements) for every role of the profile that the host holds."""
    return [(r, ctx.meta.roles[r].requires) for r in host.roles if r in ctx.meta.roles]


def check_hugepages(ctx: Context, host: Host, f: HostFacts) -> Finding | None:
    """Can the host reserve the huge pages its roles ask for (``requires.hugepages_mib``)?

    Pinned huge pages are memory nothing else can use: unless the host has them
    reserved already, MemTotal must hold them on top of the memory of the role asking
    for them (else fail), and should hold them on top of the host's whole memory need,
    the most any of its roles needs as ``check_memory`` counts it (else warn). The role
    asking for the most pages sets how many. None when no role of the host asks.
    """
    label = host.label
    asking = [(role, req) for role, req in _held_requirements(ctx, host) if req.hugepages_mib]
    if not asking:
        return None
    role, req = max(asking, key=lambda rr: (rr[1].hugepages_mib, rr[0]))
    m = f.memory
    if m is None:
        return unknown_finding("hugepages", label, f, "memory", "huge pages")
    huge = req.hugepages_mib * 2**20
    what = f"{fmt_bytes(huge)} of huge pages ({req.hugepages_mib // 2} x 2 MiB) for role {role}"
    size = m.hugepage_size_bytes
    if size is not None and size != HUGEPAGE_BYTES:
        return Finding(
            "hugepages",
            label,
            "fail",
            f"{label}: the default huge page size is {fmt_bytes(size)}, and the install reserves "
            f"{what} as vm.nr_hugepages, which counts pages of the default size "
            f"(profile {ctx.meta.name})",
            HUGEPAGE_SIZE_FIX,
        )
    reserved = (m.hugepages_total or 0) * HUGEPAGE_BYTES
    if reserved >= huge:
        return Finding(
            "hugepages",
            label,
            "pass",
            f"{label}: {fmt_bytes(reserved)} of huge pages reserved (role {role} needs "
            f"{fmt_bytes(huge)})",
        )
    base = req.memory_mb * 2**20
    want = base + huge
    have = m.total_bytes
    found = f"{label}: {fmt_bytes(have)} of memory"
    needs = ctx.needs(host)
    host_want = needs.memory_mb * 2**20 + huge
    if have >= max(want, host_want):
        return Finding(
            "hugepages",
            label,
            "pass",
            f"{found} holds {what} besides the {fmt_bytes(base)} the role needs",
        )
    if have >= want:
        # The pages fit beside the storage role, not beside the host's biggest role.
        left = have - huge
        return Finding(
            "hugepages",
            label,
            "warn",
            f"{found} holds {what}, but leaves {fmt_bytes(left)} for the "
            f"{fmt_bytes(needs.memory_mb * 2**20)} that {needs.why(needs.memory_role)} needs: "
            "pinned huge pages are memory nothing else can use",
            f"give {label} {fmt_bytes(host_want)} of memory, or give role {role} to a host "
            f"without role {needs.memory_role}",
        )
    why = (
        f"{what} on top of the {fmt_bytes(base)} the role needs: {fmt_bytes(want)} in all "
        f"(profile {ctx.meta.name})"
    )
    fix = (
        f"give {label} at least {fmt_bytes(want)} of memory, or give role {role} to a host "
        "with more"
    )
    return _short_of_memory(
        "hugepages", label, have, want, f"{found} cannot hold {why}", found, why, fix
    )


def _module_fix(missing: list[str], f: HostFacts) -> str:
    load = " && ".join(f"sudo modprobe {m}" for m in missing)
    if f.os is not None and "ubuntu" in (f.os.id, *f.os.id_like):
        return (
            "install the running kernel's extra modules, then load them: sudo apt-get install "
            f"linux-modules-extra-$(uname -r) && {load}"
        )
    return f"boot a kernel that ships {', '.join(missing)} (check with modinfo), then: {load}"


def check_kernel_modules(ctx: Context, host: Host, f: HostFacts) -> Finding | None:
    """Are the kernel modules the host's roles need (``requires.kernel_modules``) there:
    loaded, built in, or loadable? None when no role of the host names one."""
    label = host.label
    needed: dict[str, list[str]] = {}
    for role, req in _held_requirements(ctx, host):
        for module in req.kernel_modules:
            needed.setdefault(module, []).append(role)
    if not needed:
        return None
    known = f.kernel_modules
    if known is None:
        return unknown_finding("kernel-modules", label, f, "kernel_modules", "kernel modules")
    missing = [m for m in needed if known.get(m) == "missing"]
    unsure = [m for m in needed if m not in known]
    if missing:
        roles = sorted({r for m in missing for r in needed[m]})
        kernel = f"kernel {f.kernel}" if f.kernel else "the kernel"
        return Finding(
            "kernel-modules",
            label,
            "fail",
            f"{label}: {kernel} has no module {', '.join(missing)} (modinfo does not find it), "
            f"needed by role {', '.join(roles)} (profile {ctx.meta.name})",
            _module_fix(missing, f),
        )
    if unsure:
        return Finding(
            "kernel-modules",
            label,
            "warn",
            f"{label}: could not check kernel module {', '.join(unsure)}: discovery could not "
            "tell (no modinfo on the host, or facts from before the module was probed)",
            "install kmod (it brings modinfo), then run discovery again",
        )
    return Finding(
        "kernel-modules", label, "pass", f"{label}: kernel module {', '.join(needed)} available"
    )


# --------------------------------------------------------------------------- swap, cgroup

SWAP_FIX = "sudo swapoff -a && sudo sed -i '/\\sswap\\s/ s/^/#/' /etc/fstab"


def check_swap(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.swaps is None:
        return unknown_finding("swap", label, f, "swaps", "swap")
    if not f.swaps:
        return Finding("swap", label, "pass", f"{label}: swap is off")
    areas = ", ".join(f"{s.path} ({s.kind}, {fmt_bytes(s.size_bytes)})" for s in f.swaps)
    return Finding(
        "swap",
        label,
        "warn",
        f"{label}: swap is on: {areas}; the install turns it off",
        SWAP_FIX,
    )


_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)")


def _k8s_minor(text: str | None) -> tuple[int, int] | None:
    m = _VERSION_RE.match(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


CGROUP_V2_FIX = (
    "boot with cgroup v2: add systemd.unified_cgroup_hierarchy=1 to GRUB_CMDLINE_LINUX in "
    "/etc/default/grub, run sudo update-grub (grub2-mkconfig on RHEL), reboot"
)


def check_cgroup(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.cgroup_version is None:
        return unknown_finding("cgroup", label, f, "cgroup_version", "the cgroup version")
    if f.cgroup_version >= 2:
        return Finding("cgroup", label, "pass", f"{label}: cgroup v{f.cgroup_version}")
    k8s = ctx.version("kubernetes")
    minor = _k8s_minor(k8s)
    refuses = minor is None or minor >= (1, 35)
    status: Status = "fail" if refuses else "warn"
    why = (
        f"Kubernetes {k8s or '(version unknown)'} kubelet refuses to start on cgroup v1 "
        "(failCgroupV1)"
        if refuses
        else f"Kubernetes {k8s} still runs on it but cgroup v1 is deprecated"
    )
    return Finding(
        "cgroup",
        label,
        status,
        f"{label}: cgroup v{f.cgroup_version}: {why}",
        CGROUP_V2_FIX,
    )


# --------------------------------------------------------------------------- hostname


def _suggest_hostname(name: str) -> str:
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower().split(".")[0]).strip("-")[:63].strip("-")
    return out or "node1"


def check_hostname(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    if f.hostname is None:
        return unknown_finding("hostname", label, f, "hostname", "the hostname")
    name = f.hostname
    target = host.name or _suggest_hostname(name)
    fix = f"sudo hostnamectl set-hostname {target}"
    if name.lower().rstrip(".") in ("localhost", "localhost.localdomain", ""):
        return Finding(
            "hostname",
            label,
            "fail",
            f"{label}: hostname is '{name}': every node needs its own name",
            fix,
        )
    if not is_hostname(name) or not all(DNS_LABEL_RE.match(p) for p in name.split(".")):
        return Finding(
            "hostname",
            label,
            "fail",
            f"{label}: hostname '{name}' is not a valid RFC 1123 name (letters, digits and '-', "
            "labels of at most 63 characters, not starting or ending with '-')",
            fix,
        )
    if name != name.lower():
        return Finding(
            "hostname",
            label,
            "warn",
            f"{label}: hostname '{name}' has upper-case letters; the Kubernetes node will be "
            f"named '{name.lower()}'",
            f"sudo hostnamectl set-hostname {name.lower()}",
        )
    return Finding("hostname", label, "pass", f"{label}: hostname '{name}'")


# --------------------------------------------------------------------------- time sync

TIME_SYNC_FIX = (
    "sudo apt-get install -y chrony && sudo systemctl enable --now chrony "
    "(dnf install -y chrony && systemctl enable --now chronyd on RHEL)"
)


def check_time_sync(ctx: Context, host: Host, f: HostFacts) -> Finding:
    label = host.label
    ts = f.time_sync
    if ts is None:
        return unknown_finding("time-sync", label, f, "time_sync", "time sync")
    if ts.service is None:
        return Finding(
            "time-sync",
            label,
            "warn",
            f"{label}: no time sync service (chrony, systemd-timesyncd or ntp)",
            TIME_SYNC_FIX,
        )
    if ts.synchronized is False:
        return Finding(
            "time-sync",
            label,
            "warn",
            f"{label}: {ts.service} runs but the clock is not synchronized",
            "check that the NTP servers are reachable: chronyc sources -v (or timedatectl "
            "timesync-status); then sudo timedatectl set-ntp true",
        )
    state = "synchronized" if ts.synchronized else "sync state unknown"
    return Finding("time-sync", label, "pass", f"{label}: {ts.service}, {state}")
