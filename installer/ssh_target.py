"""Where and how to log in to one host: answers.yaml + ~/.ssh/config + secrets from env.

Precedence, per setting: an explicit value in answers.yaml (host override, then
the top-level ``ssh`` block), then ``~/.ssh/config`` (``Host`` aliases,
``HostName``, ``User``, ``Port``, ``IdentityFile``, ``ProxyJump``), then
OpenSSH's defaults. Passwords come from the environment variables that
answers.yaml NAMES (or from a prompt in the wizard); they live only in memory
and never appear in a repr.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from asyncssh.config import ConfigParseError, SSHClientConfig

from installer.answers import Answers, Host
from installer.errors import OperatorError

# Asked with a prompt text such as "SSH password for fmpadmin@10.0.0.5"; None = no answer.
PasswordPrompt = Callable[[str], str | None]

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_ecdsa_sk", "id_ed25519_sk", "id_rsa")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
_HOP_RE = re.compile(
    r"^(?:ssh://)?(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$"
)


@dataclass(frozen=True)
class SshTarget:
    """Everything needed to open one SSH connection. Secrets are kept out of repr."""

    label: str  # how the operator knows the host (answers name or address)
    address: str  # what we connect to (after ~/.ssh/config HostName)
    port: int = 22
    user: str = "root"
    identity_files: tuple[Path, ...] = ()
    password: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)
    jump: SshTarget | None = None
    known_hosts: Path = field(default_factory=lambda: Path(DEFAULT_KNOWN_HOSTS).expanduser())
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    agent_path: str | None = None

    @property
    def endpoint(self) -> str:
        """``user@address:port``: safe to show, never secret."""
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def display(self) -> str:
        if self.label in (self.address, f"{self.address}:{self.port}"):
            return self.endpoint
        return f"{self.label} ({self.endpoint})"


@dataclass(frozen=True)
class _ConfigHost:
    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    identity_agent: str | None = None


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def _expand(path: str, environ: Mapping[str, str]) -> Path:
    if path == "~" or path.startswith("~/"):
        return _home(environ) / path[2:]
    return Path(path).expanduser()


def _local_user(environ: Mapping[str, str]) -> str:
    for name in ("USER", "LOGNAME"):
        if environ.get(name):
            return environ[name]
    return getpass.getuser()


def read_ssh_config(path: Path, alias: str, local_user: str) -> _ConfigHost:
    """The settings ``path`` gives host ``alias`` (as OpenSSH would evaluate them)."""
    if not path.is_file():
        return _ConfigHost()
    try:
        cfg = SSHClientConfig.load(None, [path], False, False, False, local_user, (), alias, ())
    except ConfigParseError as exc:
        raise OperatorError(
            f"cannot read SSH client config: {exc}",
            hint=f"fix the line in {path} (or move the file aside)",
        ) from None
    port = cfg.get("Port")
    files = cfg.get("IdentityFile") or []
    jump = cfg.get("ProxyJump")
    agent = cfg.get("IdentityAgent")
    return _ConfigHost(
        hostname=_str_or_none(cfg.get("Hostname")),
        user=_str_or_none(cfg.get("User")),
        port=int(port) if isinstance(port, int) else None,
        identity_files=tuple(str(f) for f in files) if isinstance(files, list) else (),
        proxy_jump=None if not isinstance(jump, str) or jump.lower() == "none" else jump,
        identity_agent=_str_or_none(agent),
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _secret(
    env_name: str | None,
    environ: Mapping[str, str],
    prompt_password: PasswordPrompt | None,
    what: str,
    where: str,
    host_label: str,
) -> str | None:
    if env_name is None:
        return None
    value = environ.get(env_name)
    if value:
        return value
    if prompt_password is not None:
        answer = prompt_password(f"{what} for {where}")
        if answer:
            return answer
    raise OperatorError(
        f"{host_label}: answers.yaml takes the {what} from the environment "
        f"variable {env_name}, but it is not set",
        hint=f"export {env_name}=... before running fmp-install (or remove the *_env key)",
    )


def _identities(
    explicit: str | None, configured: tuple[str, ...], environ: Mapping[str, str]
) -> tuple[Path, ...]:
    if explicit:
        return (_expand(explicit, environ),)
    if configured:
        return tuple(_expand(p, environ) for p in configured)
    ssh_dir = _home(environ) / ".ssh"
    return tuple(ssh_dir / name for name in DEFAULT_IDENTITIES if (ssh_dir / name).is_file())


def parse_hop(spec: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` -> (user, host, port)."""
    m = _HOP_RE.match(spec.strip())
    if not m:
        raise OperatorError(
            f"jump host '{spec}' is not of the form user@host:port",
            hint="fix ssh.jump_host in answers.yaml or ProxyJump in ~/.ssh/config",
        )
    port = m.group("port")
    return m.group("user"), m.group("host").strip("[]"), int(port) if port else None


def _jump_chain(
    spec: str,
    *,
    base: SshTarget,
    config_path: Path,
    environ: Mapping[str, str],
    local_user: str,
) -> SshTarget:
    """``a,b`` means: reach a, then b through a, then the host through b."""
    previous: SshTarget | None = None
    for hop in spec.split(","):
        user, alias, port = parse_hop(hop)
        cfg = read_ssh_config(config_path, alias, local_user)
        address = cfg.hostname or alias
        # A jump host gets keys and the agent, never the target's passwords:
        # a password typed for one host is not sent to another.
        previous = SshTarget(
            label=f"jump host {alias}",
            address=address,
            port=port or cfg.port or 22,
            user=user or cfg.user or base.user,
            # The hop's own IdentityFile if ~/.ssh/config has one, else the host's keys.
            identity_files=tuple(_expand(p, environ) for p in cfg.identity_files)
            or base.identity_files,
            jump=previous,
            known_hosts=base.known_hosts,
            accept_new_host_keys=base.accept_new_host_keys,
            connect_timeout=base.connect_timeout,
            agent_path=base.agent_path,
        )
    assert previous is not None
    return previous


def target_for(
    answers: Answers,
    host: Host | str,
    environ: Mapping[str, str],
    prompt_password: PasswordPrompt | None = None,
    *,
    ssh_config: Path | None = None,
) -> SshTarget:
    """The effective SSH target of one host of ``answers``.

    ``environ`` supplies HOME, USER, SSH_AUTH_SOCK and the password variables;
    ``ssh_config`` defaults to ``$HOME/.ssh/config``. Raises ``OperatorError``
    when a named password variable is unset and no prompt gives one.
    """
    if isinstance(host, str):
        found = answers.host(host)
        if found is None:
            raise OperatorError(f"no host '{host}' in answers.yaml")
        host = found
    settings = answers.ssh_for(host)
    local_user = _local_user(environ)
    config_path = ssh_config or _home(environ) / ".ssh" / "config"
    cfg = read_ssh_config(config_path, host.address, local_user)

    address = cfg.hostname or host.address
    user = settings.user or cfg.user or local_user
    port = settings.port or cfg.port or 22
    agent = cfg.identity_agent if cfg.identity_agent is not None else environ.get("SSH_AUTH_SOCK")
    if agent is not None and agent.lower() == "none":
        agent = None
    where = f"{user}@{address}"
    password = _secret(
        settings.password_env, environ, prompt_password, "SSH password", where, host.label
    )
    sudo_password = _secret(
        settings.sudo_password_env, environ, prompt_password, "sudo password", where, host.label
    )
    base = SshTarget(
        label=host.label,
        address=address,
        port=port,
        user=user,
        identity_files=_identities(settings.identity_file, cfg.identity_files, environ),
        password=password,
        # sudo asks for the login user's own password: without a separate one, the
        # SSH password (for this same account on this same host) is the answer.
        sudo_password=sudo_password if sudo_password is not None else password,
        known_hosts=_expand(settings.known_hosts or DEFAULT_KNOWN_HOSTS, environ),
        accept_new_host_keys=bool(settings.accept_new_host_keys),
        connect_timeout=settings.connect_timeout,
        agent_path=_expand(agent, environ).as_posix() if agent else None,
    )
    jump_spec = settings.jump_host or cfg.proxy_jump
    if not jump_spec:
        return base
    jump = _jump_chain(
        jump_spec, base=base, config_path=config_path, environ=environ, local_user=local_user
    )
    return replace(base, jump=jump)
