"""Opening one SSH connection: credentials, host key decision, jump hosts.

``open_link(target)`` returns a logged-in ``Link`` or raises a classified
``TransportError``. The host key is checked against the target's known_hosts
entries only (see ``ssh_hostkeys``); an unknown key is refused inside the
handshake and decided on outside it, where the operator may be asked (the
callback may be a coroutine: a wizard dialog). After an accepted key is
written, the login is repeated trusting exactly that key.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from installer import ssh_hostkeys as hostkeys
from installer.ssh_errors import (
    AuthSummary,
    connect_failed,
    host_key_changed,
    host_key_refused,
    host_key_type_gone,
    host_key_unknown,
    tunnel_failed,
    via_jump,
)
from installer.ssh_target import SshTarget
from installer.transport import TransportError

log = logging.getLogger("installer.ssh")

# on_unknown_host_key(host label, "SHA256:...") -> accept? May be a coroutine (a wizard dialog).
HostKeyCallback = Callable[[str, str], bool | Awaitable[bool]]

KEEPALIVE_INTERVAL = 15.0
CLOSE_WAIT = 5.0


class LoginClient(asyncssh.SSHClient):
    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None
        self.lost = False

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Reached only for a key known_hosts does not trust. Refuse it here and
        # decide outside the handshake (unknown or changed, ask the operator).
        self.presented = key
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


@dataclass
class Link:
    conn: asyncssh.SSHClientConnection
    client: LoginClient
    via: Link | None = None

    @property
    def lost(self) -> bool:
        return self.client.lost or self.conn.is_closed() or (self.via is not None and self.via.lost)

    def close(self) -> None:
        self.conn.close()
        if self.via is not None:
            self.via.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.wait_closed(), CLOSE_WAIT)
        if self.via is not None:
            await self.via.wait_closed()


@dataclass
class Credentials:
    keys: list[asyncssh.SSHKeyPair]
    agent: asyncssh.SSHAgentClient | None
    auth: AuthSummary

    async def aclose(self) -> None:
        if self.agent is not None:
            self.agent.close()
            with contextlib.suppress(Exception):
                await self.agent.wait_closed()


async def credentials(target: SshTarget) -> Credentials:
    """Agent keys first, then identity files, as OpenSSH orders them."""
    auth = AuthSummary(agent_path=target.agent_path, password=target.password is not None)
    keys: list[asyncssh.SSHKeyPair] = []
    agent = None
    if target.agent_path:
        agent = asyncssh.SSHAgentClient(target.agent_path)
        try:
            keys.extend(await agent.get_keys())
            auth.agent_keys = len(keys)
        except ValueError:
            agent.close()
            agent = None
    for path in target.identity_files:
        try:
            keys.extend(asyncssh.load_keypairs([str(path)]))
            auth.identity_files.append(path)
        except FileNotFoundError:
            auth.notes.append(f"{path} not found")
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            if "passphrase" in str(exc).lower():
                auth.notes.append(
                    f"{path} is encrypted: load it into the agent with 'ssh-add {path}'"
                )
            else:
                auth.notes.append(f"{path} is not a readable private key")
        except OSError as exc:
            auth.notes.append(f"{path}: {exc.strerror}")
    return Credentials(keys, agent, auth)


async def handshake(
    target: SshTarget, on_unknown: HostKeyCallback | None, via: Link | None, *, may_accept: bool
) -> Link:
    known = hostkeys.lookup(target.known_hosts, target.address, target.port)
    creds = await credentials(target)
    client = LoginClient()
    try:
        conn = await asyncssh.connect(
            target.address,
            target.port,
            tunnel=via.conn if via is not None else (),
            config=None,  # ~/.ssh/config was applied by target_for(); nothing implicit here
            known_hosts=known.for_asyncssh(),
            client_factory=lambda: client,
            username=target.user,
            client_keys=creds.keys or None,
            agent_path=None,  # our own agent client above supplied the agent's keys
            password=target.password,
            gss_auth=False,
            gss_kex=False,
            host_based_auth=False,
            x509_trusted_certs=None,
            agent_forwarding=False,
            connect_timeout=target.connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=4,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        reason = exc.reason
    except asyncssh.ChannelOpenError as exc:
        if via is None:
            raise connect_failed(target, exc, creds.auth) from None
        raise tunnel_failed(target, exc.code, exc.reason) from None
    except asyncssh.KeyExchangeFailed as exc:
        if known.trusted and "host key" in exc.reason.lower():
            raise host_key_type_gone(target, known, exc.reason) from None
        raise connect_failed(target, exc, creds.auth) from None
    except (OSError, asyncssh.Error) as exc:
        raise connect_failed(target, exc, creds.auth) from None
    else:
        log.debug("connected to %s", target.display)
        return Link(conn, client, via)
    finally:
        await creds.aclose()

    presented = client.presented
    if presented is None:
        raise host_key_refused(target, known, reason)
    if known.trusted:
        raise host_key_changed(target, known, presented)
    accepted = target.accept_new_host_keys and may_accept
    if may_accept and not accepted and on_unknown is not None:
        answer = on_unknown(target.label, hostkeys.fingerprint(presented))
        if inspect.isawaitable(answer):
            answer = await answer
        accepted = answer is True
    if not accepted:
        raise host_key_unknown(target, presented)
    line = hostkeys.append(target.known_hosts, target.address, target.port, presented)
    log.info(
        "%s: accepted new %s host key %s, added to %s:%d",
        target.display,
        hostkeys.key_type(presented),
        hostkeys.fingerprint(presented),
        target.known_hosts,
        line,
    )
    # Log in again, now trusting exactly the key just written (and nothing else).
    return await handshake(target, None, via, may_accept=False)


async def open_link(target: SshTarget, on_unknown: HostKeyCallback | None) -> Link:
    via = None
    if target.jump is not None:
        try:
            via = await open_link(target.jump, on_unknown)
        except TransportError as exc:
            raise via_jump(target, exc) from None
    try:
        return await handshake(target, on_unknown, via, may_accept=True)
    except BaseException:
        if via is not None:
            via.close()
        raise
