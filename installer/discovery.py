"""Learn what every host is: one shell script per host, over one channel.

One script that prints delimited sections was about 27x faster than one SSH
channel per command, so every probe runs in a single ``Transport.run``:

    @@FMP-DISCOVERY v=1@@
    @@FMP-BEGIN lsblk@@
    <exactly what the probe printed, stdout and stderr merged>
    @@FMP-END lsblk rc=0@@
    ...
    @@FMP-DONE@@

Each probe is a shell function run with stdin from /dev/null, so a missing tool
only gives its section a non-zero ``rc`` and a "command not found" line; the
fact then lands in ``HostFacts.unknown`` with that reason. The script is POSIX sh,
runs as a normal user, and uses ``sudo -n`` only when sudo works without a
password (probed once, so a host without it logs one refusal, not six).

``parse_discovery`` is pure, so a raw output saved with ``--save-raw`` can be
parsed again later, or replayed by the lab: ``parse_discovery(address,
result.raw) == result.facts`` always holds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from installer import facts as F
from installer.hostfacts import Firewall, HostFacts, TimeSync
from installer.transport import Transport, TransportError

T = TypeVar("T")

FORMAT_VERSION = 1
SCRIPT_MARKER = f"@@FMP-DISCOVERY v={FORMAT_VERSION}@@"
DONE_MARKER = "@@FMP-DONE@@"
PROBE_TIMEOUT_S = 5  # per command that may hang (DNS, D-Bus, LDAP-backed sudo)
DEFAULT_TIMEOUT_S = 60.0

# Sections added by discover_host, not by the script: they start with "_".
STDERR_SECTION = "_stderr"
ERROR_SECTION = "_error"


@dataclass(frozen=True)
class Probe:
    name: str
    body: str  # POSIX sh; $T prefixes a command with a timeout, $SUDO with "sudo -n"
    any_rc: bool = False  # parse whatever the exit status (systemd-detect-virt exits 1 on "none")
    needs_root: bool = False


def _installed_probe() -> str:
    binaries = " ".join(F.INSTALLED_BINARIES)
    paths = " ".join(F.INSTALLED_PATHS)
    modules = " ".join(F.KERNEL_MODULE_PROBES)
    return (
        f"for fmp_b in {binaries}; do\n"
        '  if command -v "$fmp_b" >/dev/null 2>&1; then echo "bin $fmp_b"; fi\n'
        "done\n"
        f"for fmp_p in {paths}; do\n"
        '  if [ -e "$fmp_p" ]; then echo "path $fmp_p"; fi\n'
        "done\n"
        # HostFacts.kernel_modules, from the same section: /sys/module/NAME: loaded (or built
        # in with parameters); else modinfo looks in /lib/modules/$(uname -r) (and
        # modules.builtin) as modprobe would.
        f"for fmp_m in {modules}; do\n"
        '  if [ -d "/sys/module/$fmp_m" ]; then echo "kmod $fmp_m loaded"\n'
        '  elif ! command -v modinfo >/dev/null 2>&1; then echo "kmod $fmp_m unknown"\n'
        '  elif modinfo -n "$fmp_m" >/dev/null 2>&1; then echo "kmod $fmp_m available"\n'
        '  else echo "kmod $fmp_m missing"; fi\n'
        "done\n"
        "echo done"
    )


def _needs_tool(tool: str, body: str) -> str:
    """Say "X: command not found" (rc 127) ourselves when a $SUDO/$T prefix would hide it."""
    return (
        f"command -v {tool} >/dev/null 2>&1 || {{ echo '{tool}: command not found'; return 127; }}\n"
        f"{body}"
    )


def _small_file(path: str, *, unreadable: str | None = None, tool: str | None = None) -> str:
    """Print a small file with shell builtins, without a fork.

    ``tool``: what prints the same when the file is not there (an older kernel);
    else a missing file is said in one line (rc 1) and an unreadable one is left
    to ``unreadable`` (default ``cat PATH``), whose own error says why.
    """
    fast = f"if [ -r {path} ]; then fmp_cat {path}"
    if tool is not None:
        return f"{fast}\nelse {tool}; fi"
    return (
        f"{fast}\nelif [ -e {path} ]; then {unreadable or f'cat {path}'}\n"
        f"else echo '{path}: No such file or directory'; return 1; fi"
    )


# The clock goes first: hosts are discovered at the same moment, so their clocks
# are read as close together as possible for the skew check.
#
# Every probe runs in the script's own shell (no subshell per probe) and reads
# what it can with builtins: each fork+exec costs a host ~1 ms of CPU, and on a
# small VM or many hosts per core those add up to most of discovery's cost. The
# tool a fast path replaces still runs when the fast path cannot (an old
# kernel, a file that is not there), so the output and the error texts stay
# the tool's own. Bodies end with ``return``, never ``exit``, and name their
# variables ``fmp_*``.
PROBES: tuple[Probe, ...] = (
    # bash's $EPOCHREALTIME is the same clock as `date +%s.%N`, to the microsecond.
    Probe(
        "clock", 'if [ -n "${EPOCHREALTIME:-}" ]; then echo "$EPOCHREALTIME"; else date +%s.%N; fi'
    ),
    # gethostname(2) is the UTS nodename, which is what this file holds.
    Probe(
        "hostname",
        _small_file(
            "/proc/sys/kernel/hostname",
            tool="hostname 2>/dev/null || cat /proc/sys/kernel/hostname",
        ),
    ),
    Probe("fqdn", "$T hostname -f"),
    Probe(
        "os_release",
        _small_file("/etc/os-release", tool=_small_file("/usr/lib/os-release")),
    ),
    # uname(2)'s release and machine, as the UTS sysctls hold them (kernel.arch is from 2022).
    Probe("kernel", _small_file("/proc/sys/kernel/osrelease", tool="uname -r")),
    Probe("arch", _small_file("/proc/sys/kernel/arch", tool="uname -m")),
    # Large on big hosts (one block per CPU, one line per mount): cat beats a read loop.
    Probe("cpuinfo", "cat /proc/cpuinfo"),
    Probe("meminfo", "cat /proc/meminfo"),
    Probe("swaps", _small_file("/proc/swaps")),
    Probe(
        "lsblk",
        _needs_tool(
            "lsblk",
            "$T lsblk -J -b -O || $T lsblk -J -b -p -o "
            "NAME,KNAME,TYPE,SIZE,ROTA,RM,RO,TRAN,MODEL,SERIAL,WWN,FSTYPE,LABEL,UUID,PTTYPE,MOUNTPOINT",
        ),
    ),
    Probe("by_id", "ls -l /dev/disk/by-id/"),
    Probe(
        "vgs",
        _needs_tool(
            "vgs",
            "$T $SUDO vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,pv_name"
            " || $T $SUDO vgs --noheadings --units b --nosuffix --separator '|'"
            " -o vg_name,vg_size,vg_free,pv_name",
        ),
        needs_root=True,
    ),
    Probe("mounts", "cat /proc/self/mounts"),
    Probe("ip_addr", "ip -j addr 2>/dev/null || ip addr"),
    # A host without IPv6 fails the second command; the IPv4 route is still worth having.
    Probe(
        "route",
        _needs_tool("ip", "ip route show default; ip -6 route show default 2>/dev/null; true"),
    ),
    Probe("resolv", _small_file("/etc/resolv.conf")),
    Probe("resolv_upstream", _small_file("/run/systemd/resolve/resolv.conf"), any_rc=True),
    Probe("machine_id", _small_file("/etc/machine-id")),
    Probe(
        "product_uuid",
        _small_file(
            "/sys/class/dmi/id/product_uuid", unreadable="$SUDO cat /sys/class/dmi/id/product_uuid"
        ),
        needs_root=True,
    ),
    Probe(
        "time_services",
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n"
        "  echo units:\n"
        "  $T systemctl list-units --type=service --state=active --no-legend --plain"
        " 'chrony*' 'ntp*' 'openntpd*' 'systemd-timesyncd*'\n"
        "else\n"
        "  echo ps:\n"
        # Reads /proc directly: no procps needed, and no fork per process.
        '  for fmp_f in /proc/[0-9]*/comm; do read -r fmp_c <"$fmp_f" || continue\n'
        '    case $fmp_c in chronyd|ntpd|ntpsec|openntpd|systemd-timesyn) echo "$fmp_c";; esac\n'
        "  done 2>/dev/null\n"
        "fi",
    ),
    Probe(
        "timedatectl",
        # Without a running systemd, timedatectl only fails slowly over D-Bus.
        "[ -d /run/systemd/system ] || { echo 'timedatectl: systemd is not running'; return 1; }\n"
        "$T timedatectl show 2>/dev/null || $T timedatectl status",
    ),
    Probe("chronyc", _needs_tool("chronyc", "$T chronyc -n tracking")),
    Probe("ntpq", _needs_tool("ntpq", "$T ntpq -pn")),
    # A cgroup2 root holds cgroup.controllers; anything else is for stat to name.
    Probe(
        "cgroup",
        "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup2fs\n"
        "else stat -fc %T /sys/fs/cgroup/; fi",
    ),
    Probe(
        "systemd", "if [ -d /run/systemd/system ]; then echo booted=yes; else echo booted=no; fi"
    ),
    Probe(
        "ports",
        "if command -v ss >/dev/null 2>&1; then ss -Hltn 2>/dev/null || ss -ltn\n"
        "elif command -v netstat >/dev/null 2>&1; then netstat -ltn\n"
        "else echo 'ss: command not found'; return 127; fi",
    ),
    Probe(
        "ufw",
        _needs_tool(
            "ufw",
            # ufw's own files instead of `ufw status`: same facts, a fraction of the CPU.
            # ENABLED= lines as `grep '^ENABLED='` prints them; none, or no file: rc 1.
            "[ -r /etc/ufw/ufw.conf ] || { cat /etc/ufw/ufw.conf; return 1; }\n"
            "fmp_seen=; fmp_yes=\n"
            'while IFS= read -r fmp_l || [ -n "$fmp_l" ]; do\n'
            '  case $fmp_l in ENABLED=*) echo "$fmp_l"; fmp_seen=1\n'
            '    case $fmp_l in ENABLED=[Yy][Ee][Ss]*|ENABLED=\\"[Yy][Ee][Ss]*) fmp_yes=1;; esac;;\n'
            "  esac\n"
            "done </etc/ufw/ufw.conf\n"
            '[ -n "$fmp_seen" ] || return 1\n'
            '[ -n "$fmp_yes" ] || return 0\n'
            # The rule files are root's (0640): read them directly when we may, else via sudo.
            "if [ -r /etc/ufw/user.rules ] && [ -r /etc/ufw/user6.rules ]; then\n"
            "  for fmp_f in /etc/ufw/user.rules /etc/ufw/user6.rules; do\n"
            '    while IFS= read -r fmp_l || [ -n "$fmp_l" ]; do\n'
            '      case $fmp_l in "### tuple"*) printf \'%s\\n\' "$fmp_l";; esac\n'
            '    done <"$fmp_f"\n'
            "  done\n"
            "  return 0\n"
            "fi\n"
            "fmp_rules=$($T $SUDO cat /etc/ufw/user.rules /etc/ufw/user6.rules) || return 1\n"
            "printf '%s\\n' \"$fmp_rules\" | grep '^### tuple' || true",
        ),
        needs_root=True,
    ),
    Probe(
        "firewalld",
        _needs_tool(
            "firewall-cmd",
            'fmp_st=$($T firewall-cmd --state 2>&1); echo "state: $fmp_st"\n'
            'if [ "$fmp_st" = running ]; then\n'
            '  echo "ports: $($T $SUDO firewall-cmd --list-ports 2>&1)"\n'
            '  echo "services: $($T $SUDO firewall-cmd --list-services 2>&1)"\n'
            "fi",
        ),
        needs_root=True,
    ),
    Probe("nft", _needs_tool("nft", "$T $SUDO nft list ruleset"), needs_root=True),
    Probe("iptables", _needs_tool("iptables", "$T $SUDO iptables -S INPUT"), needs_root=True),
    Probe("virt", "systemd-detect-virt", any_rc=True),
    Probe("sudo", 'echo "$FMP_SUDO"; [ -z "$FMP_SUDO_MSG" ] || echo "$FMP_SUDO_MSG"'),
    Probe("installed", _installed_probe()),
)
PROBES_BY_NAME = {p.name: p for p in PROBES}

_PREAMBLE = f"""\
export LC_ALL=C LANG=C
# lvm2 warns about every inherited descriptor (ssh's pipes) on stderr, which we merge.
export LVM_SUPPRESS_FD_WARNINGS=1
# Non-login shells of normal users often lack the sbin dirs; snap and rke2 add their own.
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin:/var/lib/rancher/rke2/bin"
export PATH
T=""
if timeout {PROBE_TIMEOUT_S} true >/dev/null 2>&1; then T="timeout {PROBE_TIMEOUT_S}"; fi
SUDO=""
FMP_SUDO_MSG=""
fmp_uid=${{EUID:-}}
[ -n "$fmp_uid" ] || fmp_uid=$(id -u 2>/dev/null)
if [ "$fmp_uid" = 0 ]; then FMP_SUDO=root
elif ! command -v sudo >/dev/null 2>&1; then FMP_SUDO=absent
elif FMP_SUDO_MSG=$($T sudo -n true 2>&1); then FMP_SUDO=nopasswd; SUDO="sudo -n"
else FMP_SUDO=password; fi
# A small file, line by line, with builtins only.
fmp_cat() {{
  while IFS= read -r fmp_l || [ -n "$fmp_l" ]; do printf '%s\\n' "$fmp_l"; done <"$1"
}}
fmp_run() {{
  printf '@@FMP-BEGIN %s@@\\n' "$1"
  "fmp_p_$1" </dev/null 2>&1
  # The newline keeps the marker on its own line even when the output has no final one.
  printf '\\n@@FMP-END %s rc=%s@@\\n' "$1" "$?"
}}
"""


def _build_script() -> str:
    functions = "".join(f"fmp_p_{p.name}() {{\n{p.body}\n}}\n" for p in PROBES)
    calls = "".join(f"fmp_run {p.name}\n" for p in PROBES)
    return f"echo '{SCRIPT_MARKER}'\n{_PREAMBLE}{functions}{calls}echo '{DONE_MARKER}'\n"


DISCOVERY_SCRIPT = _build_script()

# ---------------------------------------------------------------- splitting


@dataclass(frozen=True)
class Section:
    name: str
    rc: int | None  # None: the output stops inside this section
    output: str


_OPEN_RE = re.compile(r"^@@FMP-BEGIN ([\w-]+)@@\n", re.MULTILINE)
_RC_RE = re.compile(r"(\d+)@@(?=\n|\Z)")


def _section_end(raw: str, name: str, start: int) -> tuple[int, int, int] | None:
    """The first ``\\n@@FMP-END <name> rc=N@@`` line at or after ``start``:
    (where the body stops, rc, where the END line stops), or None."""
    marker = f"\n@@FMP-END {name} rc="
    at = raw.find(marker, start)
    while at != -1:
        rc = _RC_RE.match(raw, at + len(marker))
        if rc is not None:
            return at, int(rc.group(1)), rc.end()
        at = raw.find(marker, at + 1)
    return None


def split_sections(raw: str) -> dict[str, Section]:
    """Every section of a raw discovery output, by name; a cut-off last one has rc None.

    A section runs from its BEGIN line to the first matching END line after it,
    found with str.find (one regex with a lazy body took twice as long).
    """
    raw = raw.replace("\r\n", "\n")
    sections: dict[str, Section] = {}
    end = 0
    pos = 0
    while (begin := _OPEN_RE.search(raw, pos)) is not None:
        name = begin.group(1)
        found = _section_end(raw, name, begin.end())
        if found is None:
            pos = begin.start() + 1  # no END for this one: a later BEGIN may have one
            continue
        body_end, rc, end = found
        sections[name] = Section(name, rc, raw[begin.end() : body_end])
        pos = end
    tail = _OPEN_RE.search(raw, end)
    if tail and tail.group(1) not in sections:
        sections[tail.group(1)] = Section(tail.group(1), None, raw[tail.end() :])
    return sections


def render_section(name: str, output: str, rc: int = 0) -> str:
    """One section in the script's format (for the ``_stderr``/``_error`` trailers and the lab)."""
    return f"@@FMP-BEGIN {name}@@\n{output}\n@@FMP-END {name} rc={rc}@@\n"


# ---------------------------------------------------------------- reasons

# bash/dash: "lsblk: command not found" / "lsblk: not found"; coreutils timeout:
# "timeout: failed to run command 'ntpq': No such file or directory".
_NOT_FOUND_RE = re.compile(r"([\w.+-]+): (?:command )?not found|failed to run command '([^']+)'")
_SHELL_PREFIX_RE = re.compile(r"^(?:ba|da)?sh: (?:line )?\d+: ")
_MAX_REASON = 200


_ERROR_WORDS_RE = re.compile(
    r"(?i)denied|not permitted|no such file|not found|cannot|can't|failed|error|required|refused"
)
_PERMISSION_RE = re.compile(r"(?i)denied|not permitted|must be root|need to be root|password")
NO_ROOT = "needs root, and sudo without a password is not available"
_NOISE_RE = re.compile(r"^(WARNING: Running as a non-root user|File descriptor \d+ .* leaked)")


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return _SHELL_PREFIX_RE.sub("", line.strip())[:_MAX_REASON]
    return ""


def _error_line(text: str) -> str:
    """The line that best says what went wrong: the first that reads like an error."""
    lines = [ln for ln in text.split("\n") if ln.strip() and not _NOISE_RE.match(ln.strip())]
    for line in lines:
        if _ERROR_WORDS_RE.search(line):
            return _first_line(line)
    return _first_line("\n".join(lines))


class _Reader:
    """Reads facts out of the sections, noting why each unknown one is unknown."""

    def __init__(self, sections: Mapping[str, Section], interrupted: str | None) -> None:
        self.sections = sections
        self.interrupted = interrupted
        self.unknown: dict[str, str] = {}
        sudo = sections.get("sudo")
        self.sudo_state = _first_line(sudo.output) if sudo and sudo.rc == 0 else "unknown"

    def failure(self, name: str, *, explain_root: bool = True) -> str | None:
        """Why section ``name`` gave nothing usable, or None when it ran fine."""
        section = self.sections.get(name)
        probe = PROBES_BY_NAME.get(name)
        if section is None or section.rc is None:
            if self.interrupted:
                return f"{name}: discovery did not get this far ({self.interrupted})"
            return f"{name}: not in the discovery output"
        if section.rc == 0 or (probe is not None and probe.any_rc):
            return None
        missing = _NOT_FOUND_RE.search(section.output)
        if section.rc == 127 or missing:
            tool = (missing.group(1) or missing.group(2)) if missing else name
            return f"{tool}: command not found"
        if section.rc == 124:
            return f"{name}: timed out after {PROBE_TIMEOUT_S}s"
        reason = _error_line(section.output) or f"{name}: exit status {section.rc}, no output"
        if explain_root and self.root_denied(name):
            reason += f" ({NO_ROOT})"
        return reason

    def root_denied(self, name: str) -> bool:
        """Did a probe that needs root fail for want of it?"""
        probe, section = PROBES_BY_NAME.get(name), self.sections.get(name)
        return (
            probe is not None
            and probe.needs_root
            and section is not None
            and self.sudo_state not in ("root", "nopasswd")
            and _PERMISSION_RE.search(section.output) is not None
        )

    def output(self, fact: str, name: str) -> str | None:
        """The section's output, or None with the reason recorded under ``fact``."""
        reason = self.failure(name)
        if reason is not None:
            self.unknown.setdefault(fact, reason)
            return None
        return self.sections[name].output

    def parse(self, fact: str, name: str, parser: Callable[[str], T | None]) -> T | None:
        text = self.output(fact, name)
        if text is None:
            return None
        value = self.quietly(name, parser, text)
        if value is None:
            shown = _first_line(text)
            why = f"unexpected output: {shown!r}" if shown else "no output"
            self.unknown.setdefault(fact, f"{name}: {why}")
        return value

    def quietly(self, name: str, parser: Callable[[str], T | None], text: str) -> T | None:
        """Parsers never raise; if one ever does, that is one unknown fact, not a lost host."""
        try:
            return parser(text)
        except Exception as exc:
            self.unknown.setdefault(f"{name}.parser", f"{name}: parser error: {exc!r}")
            return None


# ---------------------------------------------------------------- facts


def _dns(r: _Reader) -> tuple[str, ...] | None:
    servers = r.parse("dns_servers", "resolv", F.parse_resolv_conf)
    upstream_text = r.sections.get("resolv_upstream")
    if servers and all(s.startswith("127.0.0.53") for s in servers) and upstream_text:
        # systemd-resolved's stub: the servers it forwards to are what the pods need.
        upstream = r.quietly("resolv_upstream", F.parse_resolv_conf, upstream_text.output)
        if upstream:
            return upstream
    return servers


def _optional(r: _Reader, name: str, parser: Callable[[str], T | None]) -> T | None:
    """A source that may fail without making the fact unknown by itself."""
    section = r.sections.get(name)
    if section is None or r.failure(name) is not None:
        return None
    return r.quietly(name, parser, section.output)


def _time_sync(r: _Reader) -> TimeSync | None:
    result = F.combine_time_sync(
        _optional(r, "time_services", F.parse_time_services),
        _optional(r, "timedatectl", F.parse_timedatectl),
        _optional(r, "chronyc", F.parse_chronyc_tracking),
        _optional(r, "ntpq", F.parse_ntpq_peers),
    )
    if result is None:
        names = ("time_services", "timedatectl", "chronyc", "ntpq")
        r.unknown["time_sync"] = "; ".join(r.failure(n) or f"{n}: no answer" for n in names)
    return result


_FIREWALL_PARSERS: tuple[tuple[str, Callable[[str], Firewall | None]], ...] = (
    ("ufw", F.parse_ufw),
    ("firewalld", F.parse_firewalld),
    ("nft", F.parse_nft_ruleset),
    ("iptables", F.parse_iptables_input),
)


def _firewall(r: _Reader) -> Firewall | None:
    """Active if any tool says so; inactive only if every installed tool was read."""
    readings: list[Firewall] = []
    unreadable: list[str] = []
    for name, parser in _FIREWALL_PARSERS:
        reason = r.failure(name, explain_root=False)
        if reason is not None and not reason.startswith(f"{name}:"):
            reason = f"{name}: {reason}"
        if reason is not None and reason.endswith("command not found"):
            continue  # that firewall is not installed
        reading = _optional(r, name, parser)
        if reading is not None:
            readings.append(reading)
        elif reason is not None:
            unreadable.append(reason)
        else:
            shown = _first_line(r.sections[name].output)
            unreadable.append(f"{name}: unexpected output: {shown!r}")
    active = next((f for f in readings if f.active), None)
    if active is not None:
        return active
    if unreadable:
        root = any(r.root_denied(name) for name, _ in _FIREWALL_PARSERS)
        r.unknown["firewall"] = "; ".join(unreadable) + (f" ({NO_ROOT})" if root else "")
        return None
    return F.combine_firewall(readings) or Firewall(active=False)


def _sudo(r: _Reader) -> bool | None:
    value = r.parse("sudo_ok", "sudo", F.parse_sudo)
    section = r.sections.get("sudo")
    if value is None and r.sudo_state == "password" and section is not None:
        said = _first_line(section.output.partition("\n")[2])
        if not said or "password is required" in said:
            r.unknown["sudo_ok"] = (
                "sudo asks for a password and discovery runs without one; "
                "set ssh.sudo_password_env so the installer can use it"
            )
        else:  # e.g. "sorry, you must have a tty to run sudo" (requiretty)
            r.unknown["sudo_ok"] = f"sudo -n failed: {said}"
    return value


def _route(r: _Reader) -> F.DefaultRoute | None:
    route = r.parse("default_gateway", "route", F.parse_default_route)
    if route is None and r.failure("route") is None and not r.sections["route"].output.strip():
        r.unknown["default_gateway"] = "route: no default route"
    if route is not None and route.gateway is None:
        r.unknown["default_gateway"] = (
            f"route: the default route has no gateway (dev {route.interface})"
        )
    if route is None:
        r.unknown.setdefault("default_interface", r.unknown["default_gateway"])
    elif route.interface is None:
        r.unknown["default_interface"] = "route: the default route names no device"
    return route


def parse_discovery(address: str, raw: str) -> HostFacts:
    """Every fact of one host from its raw discovery output. Pure; never raises.

    ``unknown`` is keyed by HostFacts field name, plus ``disks.by_id`` (the
    disks are known but not their /dev/disk/by-id links), ``discovery`` (the
    output is not this script's at all) and ``<section>.parser`` (a parser bug).
    """
    sections = split_sections(raw)
    error = sections.get(ERROR_SECTION)
    r = _Reader(sections, _first_line(error.output) if error else None)
    if SCRIPT_MARKER not in raw and not sections:
        r.unknown["discovery"] = _first_line(raw) or "no discovery output"
    by_id = r.parse("disks.by_id", "by_id", F.parse_by_id)
    route = _route(r)
    return HostFacts(
        address=address,
        hostname=r.parse("hostname", "hostname", F.parse_hostname),
        fqdn=r.parse("fqdn", "fqdn", F.parse_hostname),
        os=r.parse("os", "os_release", F.parse_os_release),
        kernel=r.parse("kernel", "kernel", F.parse_single_token),
        arch=r.parse("arch", "arch", F.parse_single_token),
        cpu=r.parse("cpu", "cpuinfo", F.parse_cpuinfo),
        memory=r.parse("memory", "meminfo", F.parse_meminfo),
        swaps=r.parse("swaps", "swaps", F.parse_swaps),
        disks=r.parse("disks", "lsblk", lambda text: F.parse_lsblk(text, by_id)),
        volume_groups=r.parse("volume_groups", "vgs", F.parse_vgs),
        mounts=r.parse("mounts", "mounts", F.parse_mounts),
        nics=r.parse("nics", "ip_addr", F.parse_ip_addr),
        default_gateway=route.gateway if route else None,
        default_interface=route.interface if route else None,
        dns_servers=_dns(r),
        machine_id=r.parse("machine_id", "machine_id", F.parse_machine_id),
        product_uuid=r.parse("product_uuid", "product_uuid", F.parse_product_uuid),
        time_sync=_time_sync(r),
        clock_epoch=r.parse("clock_epoch", "clock", F.parse_epoch),
        cgroup_version=r.parse("cgroup_version", "cgroup", F.parse_cgroup_fs),
        systemd=r.parse("systemd", "systemd", F.parse_systemd),
        listening_ports=r.parse("listening_ports", "ports", F.parse_listening_ports),
        firewall=_firewall(r),
        virtualization=r.parse("virtualization", "virt", F.parse_virtualization),
        sudo_ok=_sudo(r),
        installed=r.parse("installed", "installed", F.parse_installed),
        kernel_modules=r.parse("kernel_modules", "installed", F.parse_kernel_modules),
        unknown=r.unknown,
    )


# ---------------------------------------------------------------- running it


@dataclass(frozen=True)
class DiscoveryResult:
    address: str
    raw: str  # what parse_discovery reads; --save-raw writes exactly this
    facts: HostFacts
    error: str | None = None  # the run failed part-way: facts hold what came before
    started_at: float = 0.0  # this machine's clock when the script was sent
    elapsed_s: float = 0.0


def raw_path(directory: Path, address: str) -> Path:
    """Where ``--save-raw DIR`` keeps a host's output: DIR/<address>.txt, made file-safe."""
    return directory / f"{re.sub(r'[^A-Za-z0-9._-]', '_', address)}.txt"


def _with_trailers(stdout: str, stderr: str, error: str | None) -> str:
    raw = stdout if not stdout or stdout.endswith("\n") else stdout + "\n"
    if stderr.strip():
        raw += render_section(STDERR_SECTION, stderr.rstrip("\n"))
    if error:
        raw += render_section(ERROR_SECTION, error, rc=1)
    return raw


async def discover_host(
    transport: Transport, address: str, timeout: float = DEFAULT_TIMEOUT_S
) -> DiscoveryResult:
    """Run the discovery script on one host. A dropped connection or a timeout
    does not raise: the facts read before it are kept, the rest are unknown."""
    lines: list[str] = []

    def keep(stream: str, line: str) -> None:
        if stream == "stdout":
            lines.append(line)

    started, clock = time.time(), time.monotonic()
    error: str | None = None
    try:
        result = await transport.run(DISCOVERY_SCRIPT, timeout=timeout, on_line=keep)
        stdout, stderr = result.stdout, result.stderr
        if DONE_MARKER not in stdout:
            last = _first_line(stderr.strip().rsplit("\n", 1)[-1])
            error = f"the discovery script stopped with exit status {result.exit_status}" + (
                f": {last}" if last else ""
            )
    except TransportError as exc:
        stdout, stderr = "\n".join(lines), ""
        error = f"{exc.kind.value}: {exc.detail}"
    raw = _with_trailers(stdout, stderr, error)
    return DiscoveryResult(
        address=address,
        raw=raw,
        facts=parse_discovery(address, raw),
        error=error,
        started_at=started,
        elapsed_s=time.monotonic() - clock,
    )


async def discover_all(
    transports: Mapping[str, Transport],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    save_raw: Path | None = None,
    on_result: Callable[[DiscoveryResult], None] | None = None,
) -> list[DiscoveryResult]:
    """Discover every host at once (address → its open transport), in the given order.

    ``save_raw``: write each host's raw output to ``save_raw/<address>.txt``.
    ``on_result`` is called as each host finishes, so a UI can fill rows in.
    """
    if save_raw is not None:
        save_raw.mkdir(parents=True, exist_ok=True)

    async def one(address: str, transport: Transport) -> DiscoveryResult:
        result = await discover_host(transport, address, timeout)
        if save_raw is not None:
            raw_path(save_raw, address).write_text(result.raw, encoding="utf-8")
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(a, t) for a, t in transports.items())))
