"""Secrets: generated once per cluster, kept in a 0600 file, masked everywhere else.

A profile declares the secrets it needs (``secrets:`` in profile.yaml, see
``installer.profile.SecretSpec``); ``ensure_secrets`` generates the missing ones
with the ``secrets`` module and keeps the existing ones, so a second plan of the
same cluster renders the same files and the same input hashes.

The secrets file (``<state dir>/secrets.yaml``, mode 0600) has two sections:
``generated`` (by this module) and ``captured`` (secret values the runner read
from task output, e.g. a kubeadm join token). ``redactor_for`` builds the
``installer.redact.Redactor`` that masks every secret value as ``****``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets as pysecrets
import string
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.errors import OperatorError
from installer.profile import SecretSpec
from installer.redact import Redactor

SECRETS_FILE = "secrets.yaml"
FILE_MODE = 0o600

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


@dataclass
class SecretStore:
    """The content of the secrets file."""

    generated: dict[str, str] = field(default_factory=dict)
    captured: dict[str, str] = field(default_factory=dict)

    def values(self) -> list[str]:
        return [*self.generated.values(), *self.captured.values()]


def secrets_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / SECRETS_FILE


# --------------------------------------------------------------------------- generation


def value_names(spec: SecretSpec) -> list[str]:
    """The names a spec stores: ``name``, or ``name.crt`` + ``name.key`` for a CA."""
    return [f"{spec.name}.crt", f"{spec.name}.key"] if spec.kind == "ca" else [spec.name]


def public_names(specs: Iterable[SecretSpec]) -> set[str]:
    """Stored values that are not secret (a CA certificate): never masked."""
    return {f"{s.name}.crt" for s in specs if s.kind == "ca"}


def generate_secret(spec: SecretSpec) -> dict[str, str]:
    """Fresh values for one spec, keyed by ``value_names(spec)``."""
    if spec.kind == "password":
        return {spec.name: "".join(pysecrets.choice(_ALNUM) for _ in range(spec.length))}
    if spec.kind == "token":
        return {spec.name: pysecrets.token_urlsafe(spec.bytes)}
    if spec.kind == "hex":
        return {spec.name: pysecrets.token_hex(spec.bytes)}
    if spec.kind == "bootstrap_token":
        # kubeadm's format: [a-z0-9]{6}.[a-z0-9]{16}
        left = "".join(pysecrets.choice(_LOWER_ALNUM) for _ in range(6))
        right = "".join(pysecrets.choice(_LOWER_ALNUM) for _ in range(16))
        return {spec.name: f"{left}.{right}"}
    crt, key = make_ca(spec.subject or spec.name, spec.validity_days)
    return {f"{spec.name}.crt": crt, f"{spec.name}.key": key}


def make_ca(common_name: str, validity_days: int = 3650) -> tuple[str, str]:
    """A self-signed CA like the ones kubeadm makes: RSA 2048, PKCS#1 key. (crt, key) as PEM."""
    # asyncssh (a dependency) already requires cryptography.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return crt_pem, key_pem


def ensure_secrets(
    specs: Iterable[SecretSpec], existing: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Every spec's values: the existing ones kept, the missing ones generated.

    Returns (values, names generated now). A CA is regenerated whole if either
    half is missing: a certificate without its key is useless.
    """
    values = dict(existing or {})
    made: list[str] = []
    for spec in specs:
        names = value_names(spec)
        if all(values.get(n) for n in names):
            continue
        values.update(generate_secret(spec))
        made += names
    return values, made


def template_secrets(specs: Iterable[SecretSpec], values: Mapping[str, str]) -> dict[str, Any]:
    """The ``secrets`` template variable: ``secrets.NAME`` or ``secrets.NAME.crt/.key``."""
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.kind == "ca":
            out[spec.name] = {
                "crt": values[f"{spec.name}.crt"],
                "key": values[f"{spec.name}.key"],
            }
        else:
            out[spec.name] = values[spec.name]
    return out


def missing_secrets(specs: Iterable[SecretSpec], values: Mapping[str, str]) -> list[str]:
    return [n for s in specs for n in value_names(s) if not values.get(n)]


# --------------------------------------------------------------------------- redaction


def secret_values(specs: Iterable[SecretSpec], values: Mapping[str, str]) -> list[str]:
    """The values to mask: every stored value but a CA's public certificate."""
    public = public_names(specs)
    return [v for n, v in values.items() if n not in public]


def redactor_for(
    specs: Iterable[SecretSpec],
    values: Mapping[str, str],
    extra: Iterable[str] = (),
) -> Redactor:
    """A Redactor masking the profile's secret values (and ``extra``, e.g. captured ones)."""
    redactor = Redactor()
    for v in secret_values(specs, values):
        redactor.add(v)
    for v in extra:
        redactor.add(v)
    return redactor


# --------------------------------------------------------------------------- the file

_HEADER = (
    "# fmp-install secrets for one cluster. Mode 0600: never share, never commit.\n"
    "# 'generated' comes from the profile's secrets; 'captured' from task output.\n"
)


class _BlockDumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def load_secrets(path: Path | str) -> SecretStore:
    """Read a secrets file; a missing file is an empty store."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SecretStore()
    except OSError as exc:
        raise OperatorError(f"cannot read the secrets file {p}: {exc.strerror}") from None
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise OperatorError(
            f"the secrets file {p} is readable by others (mode {mode:04o})",
            hint=f"chmod 600 {p}",
        )
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise OperatorError(f"the secrets file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise OperatorError(f"the secrets file {p} should hold a mapping")
    store = SecretStore()
    for section, target in (("generated", store.generated), ("captured", store.captured)):
        part = data.get(section) or {}
        if not isinstance(part, dict):
            raise OperatorError(f"the secrets file {p}: '{section}' should be a mapping")
        target.update({str(k): str(v) for k, v in part.items()})
    return store


def save_secrets(path: Path | str, store: SecretStore) -> None:
    """Write the secrets file atomically, created with mode 0600 (never wider, even briefly)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = yaml.dump(
        {"generated": dict(sorted(store.generated.items())), "captured": store.captured},
        Dumper=_BlockDumper,
        sort_keys=False,
        default_flow_style=False,
    )
    fd, tmp = tempfile.mkstemp(prefix=".secrets-", dir=p.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_HEADER + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(p, FILE_MODE)


def cluster_secrets(
    state_dir: Path | str, specs: Iterable[SecretSpec], *, save: bool = True
) -> tuple[dict[str, str], SecretStore, Redactor]:
    """A cluster's secret values (missing ones generated, and saved unless ``save``
    is False), its secrets file, and the redactor that masks them all."""
    path = secrets_path(state_dir)
    store = load_secrets(path)
    specs = list(specs)
    values, made = ensure_secrets(specs, store.generated)
    store.generated = values
    if made and save:
        save_secrets(path, store)
    return values, store, redactor_for(specs, values, extra=store.captured.values())
