"""Pure parsers: one command's output in, one fact out.

Every ``parse_*`` takes the text a command printed and returns the fact, or
``None`` (or an empty value, where "nothing" is a real answer) when the text is
not what that command prints. They never raise on any input: a host with an odd
tool must make one fact unknown, not crash discovery. ``installer.discovery``
runs the commands and records why a fact stayed unknown.

Sizes are bytes everywhere: ``/proc`` counts in KiB, lsblk in bytes with ``-b``
(and in 1024-based units like ``128G`` without it).

The parsers are grouped by subject: ``system`` (the host, CPU, memory, swap,
sudo, installed pieces), ``disks``, ``network``, ``timesync`` and
``firewall``, sharing the helpers in ``textparse``. Import them from here.
"""

from __future__ import annotations

from installer.facts.disks import (
    parse_by_id,
    parse_lsblk,
    parse_mounts,
    parse_vgs,
)
from installer.facts.firewall import (
    combine_firewall,
    parse_firewalld,
    parse_iptables_input,
    parse_nft_ruleset,
    parse_ufw,
    parse_ufw_rules,
    parse_ufw_status,
)
from installer.facts.network import (
    DefaultRoute,
    parse_default_route,
    parse_ip_addr,
    parse_listening_ports,
    parse_resolv_conf,
)
from installer.facts.system import (
    INSTALLED_BINARIES,
    INSTALLED_PATHS,
    KERNEL_MODULE_PROBES,
    parse_cgroup_fs,
    parse_cpuinfo,
    parse_epoch,
    parse_hostname,
    parse_installed,
    parse_kernel_modules,
    parse_machine_id,
    parse_meminfo,
    parse_os_release,
    parse_product_uuid,
    parse_single_token,
    parse_sudo,
    parse_swaps,
    parse_systemd,
    parse_virtualization,
)
from installer.facts.textparse import (
    KIB,
    load_json,
)
from installer.facts.timesync import (
    TimedatectlState,
    combine_time_sync,
    parse_chronyc_tracking,
    parse_ntpq_peers,
    parse_time_services,
    parse_timedatectl,
)

__all__ = [
    "INSTALLED_BINARIES",
    "INSTALLED_PATHS",
    "KERNEL_MODULE_PROBES",
    "KIB",
    "DefaultRoute",
    "TimedatectlState",
    "combine_firewall",
    "combine_time_sync",
    "load_json",
    "parse_by_id",
    "parse_cgroup_fs",
    "parse_chronyc_tracking",
    "parse_cpuinfo",
    "parse_default_route",
    "parse_epoch",
    "parse_firewalld",
    "parse_hostname",
    "parse_installed",
    "parse_ip_addr",
    "parse_iptables_input",
    "parse_kernel_modules",
    "parse_listening_ports",
    "parse_lsblk",
    "parse_machine_id",
    "parse_meminfo",
    "parse_mounts",
    "parse_nft_ruleset",
    "parse_ntpq_peers",
    "parse_os_release",
    "parse_product_uuid",
    "parse_resolv_conf",
    "parse_single_token",
    "parse_sudo",
    "parse_swaps",
    "parse_systemd",
    "parse_time_services",
    "parse_timedatectl",
    "parse_ufw",
    "parse_ufw_rules",
    "parse_ufw_status",
    "parse_vgs",
    "parse_virtualization",
]
