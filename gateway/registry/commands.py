"""The changes one can ask of the registry, as typed values: what every edge (gRPC, the host's
command line, the demo) builds from its input and hands to the :class:`Registrar`.

A command carries the request's content as it arrived (profile and policy text, key material,
certificates): parsing and admission happen in the Registrar, so every edge gets the same
checks and the same audit. :func:`command_digest` identifies a command's content for
idempotent retries; proofs of possession are left out of it (ECDSA and RSA-PSS signatures differ
each time they are made, and each proof is verified on every call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.registry.admission import KeyOffer, SignerCertificate
from gateway.registry.model import NameKind, OnlineEndpoint


@dataclass(frozen=True, slots=True)
class RegisterIssuer:
    issuer_id: str
    region: str
    name: str
    profile_toml: str
    keys: tuple[KeyOffer, ...] = ()
    online: OnlineEndpoint | None = None
    pseudonym_key: bytes | None = None
    code_name: str | None = None


@dataclass(frozen=True, slots=True)
class AddKey:
    issuer_id: str
    key: KeyOffer


@dataclass(frozen=True, slots=True)
class ImportCertificate:
    """A signer certificate from a trust list (EU DCC): no proof of possession, host only."""

    issuer_id: str
    certificate: bytes | SignerCertificate
    """As given, or as :func:`~gateway.registry.admission.read_signer_certificate` read it
    (not parsed again)."""


@dataclass(frozen=True, slots=True)
class ImportCertificates:
    """Several signer certificates of one issuer as one change (a country's list from a trust
    list): all are admitted, each as :class:`ImportCertificate` admits it, or none; one audit
    entry names them. Host only."""

    issuer_id: str
    certificates: tuple[bytes | SignerCertificate, ...]
    """Each as given, or as read already (see :class:`ImportCertificate`)."""


@dataclass(frozen=True, slots=True)
class RetireKey:
    issuer_id: str
    kid: str
    at: datetime | None = None
    """Codes issued after this are refused; None: now."""


@dataclass(frozen=True, slots=True)
class RevokeKey:
    issuer_id: str
    kid: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    issuer_id: str
    profile_toml: str


@dataclass(frozen=True, slots=True)
class SetRevocations:
    issuer_id: str
    kid: str
    revocation_list: bytes


@dataclass(frozen=True, slots=True)
class SetPolicy:
    policy_toml: str


@dataclass(frozen=True, slots=True)
class CreateRegion:
    region: str
    name: str


@dataclass(frozen=True, slots=True)
class CreateOperator:
    name: str
    region: str | None
    certificate_pem: bytes


@dataclass(frozen=True, slots=True)
class RemoveOperator:
    name: str


@dataclass(frozen=True, slots=True)
class AddReplica:
    """Pin a verifier replica's certificate key (it may then fetch the replica secrets)."""

    name: str
    certificate_pem: bytes


@dataclass(frozen=True, slots=True)
class RemoveReplica:
    name: str


@dataclass(frozen=True, slots=True)
class RetireIssuer:
    issuer_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReserveName:
    kind: NameKind
    name: str
    region: str


@dataclass(frozen=True, slots=True)
class Initialise:
    """Create the registry (the first audit entry of a new state directory)."""


@dataclass(frozen=True, slots=True)
class AcceptRollback:
    """Continue from a registry older than the last state recorded beside it."""

    recorded_seq: int
    recorded_version: int
    recorded_at: datetime


Command = (
    RegisterIssuer
    | AddKey
    | ImportCertificate
    | ImportCertificates
    | RetireKey
    | RevokeKey
    | UpdateProfile
    | SetRevocations
    | SetPolicy
    | CreateRegion
    | CreateOperator
    | RemoveOperator
    | AddReplica
    | RemoveReplica
    | RetireIssuer
    | ReserveName
    | Initialise
    | AcceptRollback
)


def command_digest(command: Command) -> str:
    """SHA-256 (hex) of a command's content, without proofs of possession."""
    content = {"command": type(command).__name__, **_plain(command)}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, SignerCertificate):  # the same request as its bytes
        return _plain(value.der)
    if isinstance(value, KeyOffer):
        return {k: _plain(v) for k, v in _fields(value).items() if k != "proof"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in _fields(value).items()}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, datetime):
        return {"time": value.isoformat()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, NameKind):
        return value.value
    return value


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
