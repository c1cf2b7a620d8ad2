"""The host itself: os-release, identity, kernel features, CPU, memory, swap,
sudo and what is already installed."""

from __future__ import annotations

import re
from collections.abc import Mapping

from installer.facts.textparse import (
    KIB,
    colon_pairs,
    first_word,
    split_lines,
    to_int,
    to_str,
    unescape_octal,
)
from installer.hostfacts import (
    Cpu,
    KernelModuleState,
    Memory,
    OsRelease,
    SwapArea,
)

# ---------------------------------------------------------------- os, kernel, host


def _os_release_value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r'\\([\\"$`])', r"\1", raw[1:-1])
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    return raw


def parse_os_release(text: str) -> OsRelease | None:
    """/etc/os-release. None when no ``KEY=value`` line is found."""
    values: dict[str, str] = {}
    for line in split_lines(text):
        m = re.fullmatch(r"\s*([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            values[m.group(1)] = _os_release_value(m.group(2))
    if not values:
        return None
    # os-release(5): ID defaults to "linux" when absent.
    os_id = (values.get("ID") or "linux").lower()
    return OsRelease(
        id=os_id,
        version_id=values.get("VERSION_ID") or None,
        pretty_name=values.get("PRETTY_NAME") or values.get("NAME") or None,
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_codename=values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or None,
    )


def parse_single_token(text: str) -> str | None:
    """``uname -r``, ``uname -m``, ``hostname``, ``systemd-detect-virt``: one word, one line."""
    words = text.split()
    if len(words) != 1 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~:@-]*", words[0]):
        return None
    return words[0]


def parse_hostname(text: str) -> str | None:
    """``hostname`` / ``hostname -f``: DNS label characters only (errors have spaces or ':')."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", word):
        return None
    return word


def parse_machine_id(text: str) -> str | None:
    """/etc/machine-id: 32 hex digits."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[0-9a-fA-F]{32}", word):
        return None
    return word.lower()


def parse_product_uuid(text: str) -> str | None:
    """/sys/class/dmi/id/product_uuid: an 8-4-4-4-12 UUID, lower-cased for comparison."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(
        r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", word
    ):
        return None
    return word.lower()


def parse_epoch(text: str) -> float | None:
    """``date +%s.%N`` (busybox date prints ``%N`` literally: keep the seconds)."""
    m = re.fullmatch(r"\s*(\d{1,15})(?:\.(\d{1,9}|%N))?\s*", text)
    if not m:
        return None
    frac = m.group(2)
    return float(f"{m.group(1)}.{frac}") if frac and frac != "%N" else float(m.group(1))


def parse_cgroup_fs(text: str) -> int | None:
    """``stat -fc %T /sys/fs/cgroup``: cgroup2fs is the unified v2; tmpfs is v1 or hybrid."""
    word = parse_single_token(text)
    if word == "cgroup2fs":
        return 2
    if word == "tmpfs":
        return 1
    return None


def parse_systemd(text: str) -> bool | None:
    """The script's ``booted=yes|no`` line (sd_booted(3): /run/systemd/system exists)."""
    for line in split_lines(text):
        if line.strip() == "booted=yes":
            return True
        if line.strip() == "booted=no":
            return False
    return None


def parse_virtualization(text: str) -> str | None:
    """``systemd-detect-virt``: ``none``, ``kvm``, ``docker``... (exit 1 with ``none``)."""
    word = parse_single_token(text)
    if word is None or not re.fullmatch(r"[a-z][a-z0-9_-]*", word):
        return None
    return word


# ---------------------------------------------------------------- cpu, memory, swap

# /proc/cpuinfo on arm64 names no model: the implementer/part pair identifies it.
_ARM_PARTS = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd04"): "ARM Cortex-A35",
    ("0x41", "0xd05"): "ARM Cortex-A55",
    ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
}


def _cpu_model(first: Mapping[str, str]) -> str | None:
    for key in ("model name", "cpu"):  # x86 and arm32; ppc64 says "cpu : POWER8 ..."
        if first.get(key):
            return first[key]
    processor = first.get("processor", "")
    if processor and not processor.isdigit():  # old arm32 kernels: "Processor : ARMv7 ..."
        return processor
    impl, part = first.get("cpu implementer"), first.get("cpu part")
    if impl and part:
        return _ARM_PARTS.get((impl.lower(), part.lower()), f"ARM implementer {impl} part {part}")
    return None


def _s390_model(pairs: list[tuple[str, str]]) -> str | None:
    vendor = next((v for k, v in pairs if k == "vendor_id"), "")
    for key, value in pairs:
        m = re.search(r"machine\s*=\s*(\w+)", value)
        if key.startswith("processor") and m:
            return f"{vendor or 's390x'} machine {m.group(1)}".strip()
    return None


def parse_cpuinfo(text: str) -> Cpu | None:
    """/proc/cpuinfo on x86, arm, ppc64 and s390x.

    Count = ``processor : N`` blocks (s390x: ``processor N:`` lines, else
    ``# processors``). Flags are those every CPU has, so a flag present on only
    some cores (never seen, but cheap to respect) does not count.
    """
    pairs = list(colon_pairs(text))
    blocks: list[dict[str, str]] = []
    for key, value in pairs:
        if key == "processor" and value.isdigit():
            blocks.append({})
        if blocks:
            blocks[-1].setdefault(key, value)
    header = dict(pairs)
    count = len(blocks)
    if count == 0:
        count = sum(1 for k, _ in pairs if re.fullmatch(r"processor \d+", k))
    if count == 0:
        count = to_int(header.get("# processors")) or 0
    if count <= 0:
        return None
    flag_sets = [
        frozenset(b.get("flags", b.get("features", "")).split())
        for b in blocks
        if "flags" in b or "features" in b
    ]
    if not flag_sets and ("flags" in header or "features" in header):
        flag_sets = [frozenset(header.get("flags", header.get("features", "")).split())]
    flags = frozenset.intersection(*flag_sets) if flag_sets else frozenset()
    model = _cpu_model(blocks[0] if blocks else header) or _s390_model(pairs)
    if model is None:
        model = to_str(header.get("model name")) or to_str(header.get("cpu"))
    return Cpu(count=count, model=model, flags=flags)


def _meminfo_bytes(value: str) -> int | None:
    m = re.fullmatch(r"(\d{1,20})(?:\s*kB)?", value)
    if not m:
        return None
    # "kB" in /proc/meminfo is KiB; HugePages_* counts have no unit.
    return int(m.group(1)) * KIB if value.endswith("kB") else int(m.group(1))


def parse_meminfo(text: str) -> Memory | None:
    """/proc/meminfo. None without a MemTotal line."""
    values: dict[str, int] = {}
    for line in split_lines(text):
        key, sep, value = line.partition(":")
        if sep:
            number = _meminfo_bytes(value.strip())
            if number is not None:
                values[key.strip()] = number
    total = values.get("MemTotal")
    if total is None:
        return None
    return Memory(
        total_bytes=total,
        available_bytes=values.get("MemAvailable"),
        hugepages_total=values.get("HugePages_Total"),
        hugepage_size_bytes=values.get("Hugepagesize"),
    )


def parse_swaps(text: str) -> tuple[SwapArea, ...] | None:
    """/proc/swaps (header line, then one line per area, sizes in KiB).

    An empty tuple means swap is off. None when a line does not parse: half a
    list would make "swap is off" look true.
    """
    lines = [line for line in split_lines(text) if line.strip()]
    if not lines or not lines[0].startswith("Filename"):
        return None
    areas: list[SwapArea] = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 4:
            return None
        size, used = to_int(fields[2]), to_int(fields[3])
        if size is None or used is None or size < 0 or used < 0:
            return None
        areas.append(SwapArea(unescape_octal(fields[0]), fields[1], size * KIB, used * KIB))
    return tuple(areas)


# ---------------------------------------------------------------- sudo, installed pieces


def parse_sudo(text: str) -> bool | None:
    """The script's sudo probe: ``root``/``nopasswd`` → True, ``absent`` → False.

    ``password`` (sudo wants a password discovery does not have) → None: the
    SSH layer checks sudo with the password at connect time.
    """
    word = first_word(text)
    if word in ("root", "nopasswd"):
        return True
    if word == "absent":
        return False
    return None


# What each probe line means: "bin NAME" (found on PATH) or "path PATH" (exists).
INSTALLED_BINARIES = {
    "containerd": "containerd",
    "docker": "docker",
    "dockerd": "docker",
    "podman": "podman",
    "crio": "cri-o",
    "runc": "runc",
    "crictl": "crictl",
    "kubelet": "kubelet",
    "kubeadm": "kubeadm",
    "kubectl": "kubectl",
    "microk8s": "microk8s",
    "rke2": "rke2",
    "rke": "rke",
    "k3s": "k3s",
    "etcd": "etcd",
    "etcdctl": "etcdctl",
    "ceph": "ceph",
    "cephadm": "cephadm",
    "haproxy": "haproxy",
    "keepalived": "keepalived",
    "helm": "helm",
}
INSTALLED_PATHS = {
    "/var/lib/rancher/rke2": "rke2",
    "/var/snap/microk8s": "microk8s",
    "/etc/kubernetes/admin.conf": "kubernetes-config",  # this host already runs a cluster
    "/etc/kubernetes/kubelet.conf": "kubernetes-config",
    "/var/lib/etcd/member": "etcd-data",
    "/etc/ceph/ceph.conf": "ceph-config",
    "/var/lib/containerd": "containerd-data",
    "/var/lib/docker": "docker-data",
}


# Kernel modules whose availability discovery probes (a profile may require only these).
# Each one not loaded costs a host one `modinfo` fork at discovery.
KERNEL_MODULE_PROBES: tuple[str, ...] = (
    "nvme_tcp",  # OpenEBS replicated storage: volumes are attached over NVMe-oF TCP
)
# The states a ``kmod NAME STATE`` probe line may give; ``unknown`` (no modinfo) is none.
_KMOD_STATES: dict[str, KernelModuleState] = {
    "loaded": "loaded",
    "available": "available",
    "missing": "missing",
}


def parse_installed(text: str) -> frozenset[str] | None:
    """The script's ``bin NAME`` / ``path PATH`` probe lines → installed piece names.

    Needs the closing ``done`` line, so a cut-off probe is unknown, not "nothing".
    """
    names: set[str] = set()
    finished = False
    for line in split_lines(text):
        kind, _, value = line.strip().partition(" ")
        if kind == "bin" and value in INSTALLED_BINARIES:
            names.add(INSTALLED_BINARIES[value])
        elif kind == "path" and value in INSTALLED_PATHS:
            names.add(INSTALLED_PATHS[value])
        elif kind == "done":
            finished = True
    return frozenset(names) if finished else None


def parse_kernel_modules(text: str) -> dict[str, KernelModuleState] | None:
    """The same probe's ``kmod NAME STATE`` lines → module → loaded, available or missing.

    Only the modules of ``KERNEL_MODULE_PROBES``; one reported ``unknown`` (no
    ``modinfo`` on the host) is left out. Needs the closing ``done`` line, as
    ``parse_installed`` does.
    """
    modules: dict[str, KernelModuleState] = {}
    finished = False
    for line in split_lines(text):
        kind, _, value = line.strip().partition(" ")
        if kind == "kmod":
            module, _, state = value.partition(" ")
            if module in KERNEL_MODULE_PROBES and state in _KMOD_STATES:
                modules[module] = _KMOD_STATES[state]
        elif kind == "done":
            finished = True
    return modules if finished else None
