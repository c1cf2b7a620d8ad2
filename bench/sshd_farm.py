"""N real OpenSSH servers on loopback for the benchmarks, all stopped by PID.

Each host is one ``/usr/sbin/sshd -D`` started by ``tests/sshd.py``'s ``Sshd``
(its own ed25519 host key, config and authorized_keys in a private
directory). Host ``i`` (0-based) listens on ``127.0.0.{i + 2}`` and on
127.0.0.1, on one free port, so every host has an address of its own (the
answers file refuses duplicate addresses) and tools that key hosts by address
see N different machines. One client key (root, no passphrase) is authorized
everywhere, and one known_hosts file pins every host key, so every client
verifies host keys with no prompt and no trust-on-first-use.

By default every session gets ``SHLVL=1`` (sshd ``SetEnv``), which makes bash
skip ``~/.bashrc``: root's rc file on a build machine may run ``pyenv init``
and the like (0.4 s of wall and 0.16 s of CPU per SSH session here), which a
real host's root does not, and which would be charged to every tool once per
session. ``skip_bashrc=False`` keeps the machine's own rc files.

    with sshd_farm(20, workdir) as farm:
        farm.hosts  # [FarmHost(name="h01", address="127.0.0.2", port=...), ...]
        farm.client_key, farm.known_hosts

``sshd_farm`` stops every sshd it started (its connections first) on the way
out, whatever happened, including SIGTERM (turned into ``SystemExit``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sshd import Sshd, keygen  # noqa: E402

MAX_HOSTS = 250  # 127.0.0.2 .. 127.0.0.251
REQUIRED_TOOLS = ("sshd", "ssh-keygen")
# bash sources ~/.bashrc when its stdin is a socket (an sshd session) and it is a
# top-level shell. A login shell that inherits SHLVL=1 is level 2, so it does not.
SKIP_BASHRC = "SetEnv SHLVL=1\n"


@dataclass(frozen=True)
class FarmHost:
    name: str
    address: str
    port: int
    pid: int

    @property
    def known_hosts_pattern(self) -> str:
        return f"[{self.address}]:{self.port}"


@dataclass
class Farm:
    workdir: Path
    client_key: Path
    known_hosts: Path
    servers: list[Sshd]
    hosts: list[FarmHost]

    def kill_connections(self) -> int:
        """End every open session on every host (listeners keep running)."""
        return sum(s.kill_connections() for s in self.servers)


def _find_tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if found is None:
        raise SystemExit(f"{name} is not installed (apt-get install openssh-server openssh-client)")
    return found


def _wait_port(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1.0) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd does not answer on {address}:{port}") from None
            time.sleep(0.02)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sshd_farm(n: int, workdir: Path, *, skip_bashrc: bool = True) -> Iterator[Farm]:
    if not 1 <= n <= MAX_HOSTS:
        raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}")
    if os.geteuid() != 0:
        raise SystemExit("the sshd farm logs in as root: run the benchmark as root")
    for tool in REQUIRED_TOOLS:
        _find_tool(tool)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)  # sshd reads authorized_keys below it
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    servers: list[Sshd] = []
    try:
        client_key = keygen(workdir / "client_ed25519", comment="fmp-bench")
        public = client_key.with_suffix(".pub").read_text().strip()
        hosts: list[FarmHost] = []
        for i in range(n):
            address = f"127.0.0.{i + 2}"
            server = Sshd(
                workdir / f"h{i + 1:02d}",
                [public],
                # ListenAddress adds to the 127.0.0.1 one of tests/sshd.py (same port).
                extra_config=f"ListenAddress {address}\n" + (SKIP_BASHRC if skip_bashrc else ""),
            )
            servers.append(server)
            server.start()
            _wait_port(address, server.port)
            hosts.append(FarmHost(f"h{i + 1:02d}", address, server.port, server.pid))
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(
            "".join(
                f"{h.known_hosts_pattern} {s.host_public_key}\n"
                for h, s in zip(hosts, servers, strict=True)
            )
        )
        yield Farm(workdir, client_key, known_hosts, servers, hosts)
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    """Start a farm, print its hosts, wait for Ctrl-C (for poking at it by hand)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fmp-farm-") as tmp,
        sshd_farm(args.hosts, Path(tmp)) as farm,
    ):
        for h in farm.hosts:
            print(f"{h.name} root@{h.address} -p {h.port} (sshd pid {h.pid})")
        print(
            f"ssh -i {farm.client_key} -o UserKnownHostsFile={farm.known_hosts} "
            f"-o StrictHostKeyChecking=yes -p PORT root@ADDRESS"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
