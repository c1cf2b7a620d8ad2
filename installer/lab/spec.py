"""The lab spec: which nodes, their facts, injected faults and simulated durations.

A spec is YAML (``lab up --spec FILE``); every key has a default, so ``{}`` is
the six nodes kn0-kn5 of the FMP runbook. Facts set under ``defaults`` apply to
every node; a node's own keys override them (lists such as ``disks`` replace
the default list whole).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_NODES = 6
DEFAULT_BASE_ADDRESS = "127.0.0.11"
DEFAULT_VIP = "127.0.0.100"
DEFAULT_SSH_PORT = 2222

XEON_FLAGS = [
    "fpu",
    "vme",
    "de",
    "pse",
    "tsc",
    "msr",
    "pae",
    "mce",
    "cx8",
    "apic",
    "sep",
    "mtrr",
    "pge",
    "mca",
    "cmov",
    "pat",
    "pse36",
    "clflush",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "ss",
    "syscall",
    "nx",
    "pdpe1gb",
    "rdtscp",
    "lm",
    "constant_tsc",
    "arch_perfmon",
    "rep_good",
    "nopl",
    "xtopology",
    "cpuid",
    "tsc_known_freq",
    "pni",
    "pclmulqdq",
    "vmx",
    "ssse3",
    "fma",
    "cx16",
    "pdcm",
    "pcid",
    "sse4_1",
    "sse4_2",
    "x2apic",
    "movbe",
    "popcnt",
    "tsc_deadline_timer",
    "aes",
    "xsave",
    "avx",
    "f16c",
    "rdrand",
    "hypervisor",
    "lahf_lm",
    "abm",
    "3dnowprefetch",
    "cpuid_fault",
    "invpcid_single",
    "ssbd",
    "ibrs",
    "ibpb",
    "stibp",
    "tpr_shadow",
    "flexpriority",
    "ept",
    "vpid",
    "ept_ad",
    "fsgsbase",
    "tsc_adjust",
    "bmi1",
    "avx2",
    "smep",
    "bmi2",
    "erms",
    "invpcid",
    "avx512f",
    "avx512dq",
    "rdseed",
    "adx",
    "smap",
    "clflushopt",
    "clwb",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "xsaveopt",
    "xsavec",
    "xgetbv1",
    "xsaves",
    "arat",
    "umip",
    "pku",
    "ospke",
    "avx512_vnni",
    "md_clear",
    "arch_capabilities",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OsSpec(_Model):
    id: str = "ubuntu"
    version_id: str = "22.04"
    pretty_name: str = "Ubuntu 22.04.4 LTS"
    codename: str = "jammy"
    id_like: str = "debian"
    name: str = "Ubuntu"


class DiskSpec(_Model):
    name: str  # kernel name: sda
    size_gb: float = Field(gt=0)
    model: str = "QEMU HARDDISK"
    vendor: str = "QEMU"
    serial: str | None = None  # default: derived from the node and disk names
    wwn: str | None = None  # default: derived; "" = none
    rotational: bool = False
    transport: str = "sata"
    system: bool = False  # Ubuntu's default layout: 1M bios_grub, 2G /boot, the rest LVM with /


class NicSpec(_Model):
    name: str
    addresses: list[str] = Field(default_factory=list)  # CIDR, e.g. 10.0.1.11/24
    mac: str | None = None
    state: Literal["UP", "DOWN"] = "UP"
    dhcp: bool = False


class NodeFacts(_Model):
    """Everything discovery can learn about a node, as the spec gives it."""

    os: OsSpec = Field(default_factory=OsSpec)
    kernel: str = "5.15.0-91-generic"
    arch: str = "x86_64"
    cpus: int = Field(default=8, ge=1)
    cpu_model: str = "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
    cpu_flags: list[str] = Field(default_factory=lambda: list(XEON_FLAGS))
    memory_gb: float = Field(default=32, gt=0)
    swap_gb: float = Field(default=4, ge=0)  # /swap.img, listed in /etc/fstab
    virtualization: str = "kvm"
    disks: list[DiskSpec] = Field(
        default_factory=lambda: [
            DiskSpec(name="sda", size_gb=50, system=True),
            DiskSpec(name="sdb", size_gb=200),
        ]
    )
    nics: list[NicSpec] | None = None  # default: ens18 on the node's address, ens19 on 10.0.1.0/24
    gateway: str = "127.0.0.1"
    dns: list[str] = Field(default_factory=lambda: ["10.0.1.1"])
    timezone: str = "Etc/UTC"
    time_sync: str | None = "systemd-timesyncd"  # chrony | ntp | systemd-timesyncd | None
    ntp_synchronized: bool = True
    machine_id: str | None = None  # default: derived from the node name
    product_uuid: str | None = None
    listening_ports: list[int] = Field(default_factory=list)  # besides sshd's 22
    firewall: Literal["inactive", "ufw"] = "inactive"
    firewall_open_ports: list[int] = Field(default_factory=lambda: [22])


class NodeSpec(_Model):
    name: str
    address: str | None = None  # default: base_address + index
    port: int | None = None
    raw: dict[str, str] = Field(default_factory=dict)  # discovery section -> captured output
    raw_rc: dict[str, int] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict)  # overrides of NodeFacts keys


FaultKind = Literal["fail", "drop", "latency", "fill_disk", "sudo_reject"]


class FaultSpec(_Model):
    """One injected fault. ``node`` None = every node; ``times`` None = every time."""

    kind: FaultKind
    node: str | None = None
    match: str | None = None  # regex searched in the command text (fail, drop, latency)
    exit_code: int = Field(default=1, ge=0, le=255)
    stderr: str | None = None
    times: int | None = Field(default=None, ge=1)
    after_s: float = Field(default=0.2, ge=0)  # drop: seconds into the command
    ms: int = Field(default=0, ge=0)  # latency per command
    path: str = "/var/lib"  # fill_disk: the directory whose filesystem is full
    size_kb: int = Field(default=64, ge=4)  # fill_disk: size of the full filesystem

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        import re

        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"'{value}' is not a valid regular expression: {exc}") from None
        return value


class DurationSpec(_Model):
    """A command matching ``match`` takes at least ``seconds`` (for the scheduler benchmark)."""

    match: str
    seconds: float = Field(ge=0)
    node: str | None = None


class LabSpec(_Model):
    version: Literal[1] = 1
    cluster_name: str = "lab"
    domain: str | None = None
    base_address: str = DEFAULT_BASE_ADDRESS
    vip: str = DEFAULT_VIP
    ssh_port: int = Field(default=DEFAULT_SSH_PORT, ge=1, le=65535)
    reboot_seconds: float = Field(default=3.0, ge=0)
    defaults: dict[str, Any] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    durations: list[DurationSpec] = Field(default_factory=list)

    @field_validator("base_address", "vip")
    @classmethod
    def _loopback(cls, value: str) -> str:
        ip = ipaddress.ip_address(value)
        if not ip.is_loopback or ip.version != 4:
            raise ValueError(
                f"{value} is not an IPv4 loopback address: the lab only uses 127.0.0.0/8"
            )
        return value


class SpecError(Exception):
    pass


def load_spec(path: Path) -> LabSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: {exc}") from None
    try:
        return LabSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SpecError("\n".join(lines)) from None


def with_node_count(spec: LabSpec, count: int | None) -> LabSpec:
    """The spec with exactly ``count`` nodes: kn0, kn1... are added or dropped at the end."""
    nodes = list(spec.nodes)
    if not nodes and count is None:
        count = DEFAULT_NODES
    if count is not None:
        if count < 1:
            raise SpecError("a lab needs at least one node")
        nodes = nodes[:count]
        taken = {n.name for n in nodes}
        i = 0
        while len(nodes) < count:
            name = f"kn{i}"
            if name not in taken:
                nodes.append(NodeSpec(name=name))
                taken.add(name)
            i += 1
    return spec.model_copy(update={"nodes": nodes})


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def node_address(spec: LabSpec, index: int) -> str:
    return str(ipaddress.ip_address(spec.base_address) + index)


class ResolvedNode(_Model):
    """One node with every fact filled in: what the daemon and the shims read (node.json)."""

    name: str
    index: int
    address: str
    port: int
    domain: str | None
    facts: NodeFacts
    raw: dict[str, str]
    raw_rc: dict[str, int]


def resolve_nodes(spec: LabSpec) -> list[ResolvedNode]:
    out = []
    names = set()
    for i, node in enumerate(spec.nodes):
        if node.name in names:
            raise SpecError(f"node name {node.name} is used twice")
        names.add(node.name)
        try:
            facts = NodeFacts.model_validate({**spec.defaults, **node.facts})
        except ValidationError as exc:
            raise SpecError(f"node {node.name}: {exc}") from None
        address = node.address or node_address(spec, i)
        if not ipaddress.ip_address(address).is_loopback:
            raise SpecError(f"node {node.name}: {address} is not a loopback address")
        facts = _fill_identity(facts, node.name, i, address)
        out.append(
            ResolvedNode(
                name=node.name,
                index=i,
                address=address,
                port=node.port or spec.ssh_port,
                domain=spec.domain,
                facts=facts,
                raw=node.raw,
                raw_rc=node.raw_rc,
            )
        )
    if spec.vip in {n.address for n in out}:
        raise SpecError(f"the VIP {spec.vip} is also a node's address")
    return out


def _fill_identity(facts: NodeFacts, name: str, index: int, address: str) -> NodeFacts:
    update: dict[str, Any] = {}
    if facts.machine_id is None:
        update["machine_id"] = _digest(name, "machine-id")[:32]
    if facts.product_uuid is None:
        update["product_uuid"] = str(uuid.UUID(_digest(name, "product-uuid")[:32]))
    disks = []
    for disk in facts.disks:
        d = disk
        if d.serial is None:
            d = d.model_copy(update={"serial": f"QM{index:03d}{_digest(name, d.name)[:8].upper()}"})
        if d.wwn is None:
            d = d.model_copy(update={"wwn": "0x5000c500" + _digest(name, d.name, "wwn")[:8]})
        disks.append(d)
    update["disks"] = disks
    if facts.nics is None:
        update["nics"] = [
            NicSpec(name="ens18", addresses=[f"{address}/8"]),
            NicSpec(name="ens19", addresses=[f"10.0.1.{11 + index}/24"]),
        ]
    nics = []
    for j, nic in enumerate(update.get("nics", facts.nics) or []):
        if nic.mac is None:
            h = _digest(name, nic.name, "mac")
            nic = nic.model_copy(update={"mac": f"52:54:00:{h[0:2]}:{h[2:4]}:{index * 4 + j:02x}"})
        nics.append(nic)
    update["nics"] = nics
    return facts.model_copy(update=update)
