"""The secrets a verifier replica verifies with, which the signed trust list never carries.

The hub hands them, over mutual TLS, only to a pinned replica (docs/scaling.md). Pure: no I/O.

- :func:`bundle` (the hub): the identity secrets (subject and link keys) and, for each issuer
  that is not retired, its pseudonym key and its online endpoint with the client credential.
- :func:`check` (the replica): what arrived is within bounds and well formed, or refused whole.
- :func:`merge` (the replica): a trust list's snapshot with the secrets of its issuers put back.
  A secret is used only for an issuer the list holds, and an online credential only where the
  list's code prefix is the same and only at the verify URL the list signs (the secrets' URL
  must be that one, or the issuer's online codes are UNVERIFIABLE): a secret never makes the
  replica trust, or send codes anywhere, the signed list does not say.

``version`` is the hub's trust version when the secrets were read, and ``digest`` their content:
a replica fetches again when it takes a list of a higher version (every change of an issuer's
secrets, and every pin change, moves the trust version), and compares digests to know whether
anything changed.

- :func:`outlived` (the replica): secrets the hub has not vouched for within their maximum age
  (:data:`MAX_AGE` by default) are dropped, so that a replica whose fetches fail for good (a CA
  rotated without the replica, a refusal that only shows as a failed handshake) does not go on
  with them forever.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from gateway.crypto import check_pseudonym_key
from gateway.errors import ConfigurationInvalid
from gateway.identity import SECRET_BYTES, IdentityKeys
from gateway.model import IssuerId, Reason
from gateway.registry import Issuer, OnlineEndpoint
from gateway.registry.model import ISSUER_ID, check_online_endpoint
from gateway.registry.snapshot import TrustSnapshot
from gateway.tomltable import format_duration

MAX_SECRET_ISSUERS = 10_000
"""Issuers with secrets in one answer (the trust list's bound on issuers)."""
MAX_IDENTITY_KEY_BYTES = 64
MAX_SECRETS_BYTES = 8 * 1024 * 1024
"""The largest answer a replica reads (gRPC refuses a larger one before it is read): 10,000
issuers with every field at its bound fit in under 8 MiB."""
MAX_AGE = timedelta(minutes=15)
"""How long a replica keeps secrets its hub has not vouched for again (by default): the hub's
default ``--trust-fresh-for``, the longest a replica judges on a trust list without its hub.
Fetches come every 60 s while the hub answers, so this is 15 missed fetches: an outage of the
hub shorter than the one that makes its list stale never drops them."""
MIN_MAX_AGE = timedelta(minutes=3)
"""The shortest maximum age: above twice the longest gap between two answered fetches while the
hub answers (the 60 s between fetches, a fetch's 10 s timeout, the 5 s longest backoff), so that
one lost answer never drops the secrets."""
MAX_MAX_AGE = timedelta(hours=24)
"""The longest maximum age (as the stale grace of a hub's own registry)."""


@dataclass(frozen=True, slots=True)
class IssuerSecrets:
    issuer_id: IssuerId
    pseudonym_key: bytes | None = field(default=None, repr=False)
    online: OnlineEndpoint | None = None


@dataclass(frozen=True, slots=True)
class ReplicaSecrets:
    """What the hub hands a replica. ``repr`` shows no secret."""

    version: int
    subject_key: bytes = field(repr=False)
    link_key: bytes = field(repr=False)
    issuers: Mapping[IssuerId, IssuerSecrets] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the content (not the version): equal digests, equal secrets."""
        content = [
            self.subject_key.hex(),
            self.link_key.hex(),
            [
                [
                    s.issuer_id,
                    s.pseudonym_key.hex() if s.pseudonym_key is not None else None,
                    [
                        s.online.code_prefix,
                        s.online.verify_url,
                        s.online.client_id,
                        s.online.client_secret.hex(),
                    ]
                    if s.online is not None
                    else None,
                ]
                for _, s in sorted(self.issuers.items())
            ],
        ]
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(b"huren-replica-secrets-v1\n" + text.encode()).hexdigest()

    def identities(self) -> IdentityKeys:
        return IdentityKeys(self.subject_key, self.link_key)


def bundle(snapshot: TrustSnapshot, subject_key: bytes, link_key: bytes) -> ReplicaSecrets:
    """The secrets of the registry state ``snapshot``, for a replica (hub side)."""
    issuers = {
        issuer.id: IssuerSecrets(issuer.id, issuer.pseudonym_key, issuer.online)
        for issuer in snapshot.issuers.values()
        if issuer.id not in snapshot.retired
        and (issuer.pseudonym_key is not None or issuer.online is not None)
    }
    return ReplicaSecrets(snapshot.version, subject_key, link_key, MappingProxyType(issuers))


def _refuse(message: str) -> ConfigurationInvalid:
    return ConfigurationInvalid(Reason.ERR_SCHEMA, f"replica secrets refused: {message}")


def check(secrets: ReplicaSecrets) -> ReplicaSecrets:
    """``secrets`` if every part is within bounds and well formed.

    Raises:
        ConfigurationInvalid: naming the first problem (nothing of the answer is used then).
    """
    for name, key in (("subject key", secrets.subject_key), ("link key", secrets.link_key)):
        if not SECRET_BYTES <= len(key) <= MAX_IDENTITY_KEY_BYTES:
            raise _refuse(f"the {name} must be {SECRET_BYTES} to {MAX_IDENTITY_KEY_BYTES} bytes")
    if len(secrets.issuers) > MAX_SECRET_ISSUERS:
        raise _refuse(f"more than {MAX_SECRET_ISSUERS} issuers")
    for issuer_id, entry in secrets.issuers.items():
        if issuer_id != entry.issuer_id or not ISSUER_ID.fullmatch(issuer_id):
            raise _refuse(f"a malformed issuer id {issuer_id[:64]!r}")
        pseudonym = entry.pseudonym_key
        if pseudonym is not None:
            try:
                check_pseudonym_key(pseudonym)  # as the registry checks it
            except ConfigurationInvalid as e:
                raise _refuse(f"issuer {issuer_id}'s pseudonym key: {e}") from e
        if entry.online is not None:
            try:
                check_online_endpoint(entry.online)  # as the registry checks it
            except ConfigurationInvalid as e:
                raise _refuse(f"issuer {issuer_id}'s online endpoint: {e}") from e
    return secrets


def outlived(confirmed_at: datetime, now: datetime, max_age: timedelta) -> str | None:
    """Why secrets the hub last vouched for (an answered fetch) at ``confirmed_at`` must be
    dropped at ``now``: past ``max_age`` without an answer; None while within it. A clock set
    back keeps them (the age counts from the last answer, never from the future)."""
    if now - confirmed_at < max_age:
        return None
    return (
        f"the hub has answered no fetch since {confirmed_at.isoformat()}, "
        f"more than their maximum age ({format_duration(max_age)}) ago"
    )


def merge(snapshot: TrustSnapshot, secrets: ReplicaSecrets | None) -> TrustSnapshot:
    """``snapshot`` (from a signed trust list) with its issuers' secrets put back.

    An issuer takes its pseudonym key only if the list holds it, and its online credential only
    if the list says it is online with the same code prefix and verify URL; everything else of
    the issuer (the URL included) is the list's. Without secrets, the snapshot as it is.
    """
    if secrets is None or not secrets.issuers:
        return snapshot
    merged: dict[IssuerId, Issuer] = {}
    for issuer_id, issuer in snapshot.issuers.items():
        entry = secrets.issuers.get(issuer_id)
        if entry is None:
            merged[issuer_id] = issuer
            continue
        merged[issuer_id] = dataclasses.replace(
            issuer,
            online=_credential(snapshot.version, issuer, entry.online),
            pseudonym_key=entry.pseudonym_key,
        )
    return dataclasses.replace(snapshot, issuers=MappingProxyType(merged))


def _credential(
    version: int, issuer: Issuer, secret: OnlineEndpoint | None
) -> OnlineEndpoint | None:
    """The list's online endpoint of ``issuer`` (its code prefix and verify URL, signed) with the
    client credential of ``secret``. The credential is presented only at the URL it was issued
    for: if the secrets name another URL than the signed list, the endpoint is unusable (the
    credential is not sent to the list's URL, nor codes to the secrets' URL)."""
    online = issuer.online
    if online is None or secret is None or secret.code_prefix != online.code_prefix:
        return online
    if online.unusable:
        return online
    if secret.verify_url != online.verify_url:
        return dataclasses.replace(
            online,
            unusable=f"the replica secrets name another verify URL for online issuer {issuer.id} "
            f"than the signed trust list (version {version}): its codes are sent nowhere until "
            "they agree",
        )
    return dataclasses.replace(
        online, client_id=secret.client_id, client_secret=secret.client_secret
    )
