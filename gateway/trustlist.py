"""The signed trust list: every issuer, key and profile, with a monotonically increasing version.

A compact JWS (ES256, ``typ: huren-trust-list+jwt``) by the gateway's trust-list key over JSON:

``{"version", "issued_at", "fresh_until", "issuers": [{"id", "region", "name", "profile": {"id",
"version", "sha256"}, "online_code_prefix"?, "online_verify_url"?, "code_name"?, "pseudonymous",
"keys": [{"kid", "alg", "spki", "status", "status_since"?, "not_before"?, "not_after"?, "usage"?,
"certificate_sha256"?, "revocations"?: {"counter", "ids"}}]}], "profiles": [{"id", "version",
"sha256", "source"}], "policies": [{"destination", "id", "version", "sha256", "flags",
"source"}]}``; a retired issuer also has ``"retired": {"at", "reason"}`` (its codes verify nothing).

``version`` is the registry's trust version: it changes with the content and only ever grows.
``issued_at`` orders the lists of one version: the hub signs its list again, with the same content
and version, each time a third of its freshness window has passed (a heartbeat), so a list is
newer than another if its ``(version, issued_at)`` pair is greater. ``fresh_until`` is when a
verifier stops judging codes on it (``issued_at`` plus the hub's ``--trust-fresh-for``): a
replica holding a list past it answers every code UNVERIFIABLE ``ERR_TRUST_STALE``
(docs/scaling.md).

An online issuer's entry names both where its codes start (``online_code_prefix``) and where a
verifier sends them (``online_verify_url``): a URL decides where codes go, so it is signed here;
only the client credential to present there travels apart, to pinned replicas (docs/scaling.md).
Credentials (online client secrets, pseudonym keys) are never in it. Verifier apps and gateway
replicas verify it offline with the key the gateway publishes (``trustlist-key.jwk`` in its state
directory): ``huren trustlist verify``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.codecs import jws, strictjson
from gateway.crypto import Algorithm, PrivateKey, PublicKey
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.limits import Limits
from gateway.model import Reason
from gateway.registry import IssuerKey, TrustSnapshot

TYPE = "huren-trust-list+jwt"
MAX_TRUST_LIST_BYTES = 4 * 1024 * 1024
DEFAULT_FRESH_FOR = timedelta(minutes=15)
"""How long a signed trust list may be judged on (``huren serve --trust-fresh-for``)."""
MIN_FRESH_FOR = timedelta(seconds=1)
MAX_FRESH_FOR = timedelta(days=7)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def document(snapshot: TrustSnapshot, issued_at: datetime, fresh_until: datetime) -> dict[str, Any]:
    """The trust list's content: the snapshot's issuers, keys, profiles and policies, with the
    exact text of each profile and current policy version, to be judged on until
    ``fresh_until``."""
    issuers = []
    # Each issuer's keys in key id order, grouped in one pass (not one pass per issuer: with
    # 1,000 issuers and 100,000 keys that took 80 s).
    keys_of: dict[str, list[IssuerKey]] = {}
    for (owner, _), key in sorted(snapshot.keys.items()):
        keys_of.setdefault(owner, []).append(key)
    for issuer in sorted(snapshot.issuers.values(), key=lambda i: i.id):
        profile = snapshot.profile_of(issuer)
        keys = []
        for key in keys_of.get(issuer.id, ()):
            entry: dict[str, Any] = {
                "kid": key.kid,
                "alg": key.public_key.algorithm.value,
                "spki": base64.b64encode(key.public_key.spki_der).decode("ascii"),
                "status": key.status.value,
            }
            for name, value in (
                ("status_since", key.status_since),
                ("not_before", key.not_before),
                ("not_after", key.not_after),
            ):
                if value is not None:
                    entry[name] = _iso(value)
            if key.usage is not None:
                entry["usage"] = sorted(key.usage)
            if key.certificate_sha256 is not None:
                entry["certificate_sha256"] = key.certificate_sha256.hex()
            revoked = snapshot.revocations.get((issuer.id, key.kid))
            if revoked is not None:
                entry["revocations"] = {
                    "counter": revoked.counter,
                    "ids": {rid: _iso(before) for rid, before in sorted(revoked.ids.items())},
                }
            keys.append(entry)
        record: dict[str, Any] = {
            "id": issuer.id,
            "region": issuer.region,
            "name": issuer.name,
            "profile": {
                "id": profile.id,
                "version": profile.version,
                "sha256": profile.source_sha256,
            },
            "pseudonymous": issuer.pseudonym_key is not None,
            "keys": keys,
        }
        if issuer.online is not None:
            record["online_code_prefix"] = issuer.online.code_prefix
            record["online_verify_url"] = issuer.online.verify_url
        if issuer.code_name is not None:
            record["code_name"] = issuer.code_name
        retired = snapshot.retired.get(issuer.id)
        if retired is not None:
            record["retired"] = {"at": _iso(retired.at), "reason": retired.reason}
        issuers.append(record)
    return {
        "version": snapshot.version,
        "issued_at": _iso(issued_at),
        "fresh_until": _iso(fresh_until),
        "issuers": issuers,
        "profiles": [
            {
                "id": p.id,
                "version": p.version,
                "sha256": p.source_sha256,
                "source": snapshot.profile_sources[key],
            }
            for key, p in sorted(snapshot.profiles.items())
        ],
        "policies": [
            {
                "destination": key,
                "id": p.id,
                "version": p.version,
                "sha256": p.source_sha256,
                "flags": p.flags(),
                "source": snapshot.policy_versions[key][-1].text,
            }
            for key, p in sorted(snapshot.policies.items())
        ],
    }


def sign(content: Mapping[str, Any], key: PrivateKey, typ: str = TYPE) -> str:
    """A signed document of type ``typ`` (compact JWS by ``key``, identified by its
    thumbprint)."""
    kid = key.public_key().thumbprint()
    header = {"alg": key.algorithm.value, "kid": kid, "typ": typ}
    return jws.sign(header, strictjson.dumps(dict(content)), key)


def verify(text: str, key: PublicKey, typ: str = TYPE) -> dict[str, Any]:
    """The content of ``text``, if it is a document of type ``typ`` signed with ``key``.

    Raises:
        ConfigurationInvalid: ``ERR_HEADER`` for another type, ``ERR_KEY_UNKNOWN`` for another
            key, ``ERR_SIGNATURE``, or ``ERR_SCHEMA`` for malformed content (a JSON object with
            an integer ``version`` for trust lists).
    """
    limits = Limits(max_code_chars=MAX_TRUST_LIST_BYTES, max_payload_bytes=MAX_TRUST_LIST_BYTES)
    what = "trust list" if typ == TYPE else "signed document"
    try:
        token = jws.parse(text.strip(), limits)
        if token.header.get("typ") != typ:
            raise CodeRejected(Reason.ERR_HEADER, f"not a {typ} document")
        if token.kid != key.thumbprint() or token.algorithm is not key.algorithm:
            raise CodeRejected(Reason.ERR_KEY_UNKNOWN, "signed with another key")
        if not key.verify(token.signing_input, token.signature):
            raise CodeRejected(Reason.ERR_SIGNATURE, "the signature does not verify")
        content = strictjson.loads(token.payload, max_bytes=MAX_TRUST_LIST_BYTES, max_depth=8)
    except CodeRejected as e:
        raise ConfigurationInvalid(e.reason, f"{what} refused: {e.detail}") from e
    if not isinstance(content, dict) or (
        typ == TYPE and not isinstance(content.get("version"), int)
    ):
        raise ConfigurationInvalid(Reason.ERR_SCHEMA, f"{what} refused: malformed content")
    return content


@dataclass(frozen=True, slots=True)
class Signed:
    """One signed trust list, as the hub published it."""

    jws: str
    version: int
    issued_at: datetime
    fresh_until: datetime


class TrustListSigner:
    """Signs the trust list of each version once, and again (a heartbeat) when a third of its
    freshness window has passed, so that a verifier holding the latest list is never within
    two thirds of a window of its ``fresh_until`` while the hub is up."""

    def __init__(self, key: PrivateKey, fresh_for: timedelta = DEFAULT_FRESH_FOR) -> None:
        if key.algorithm is not Algorithm.ES256:
            raise ValueError("the trust-list key is ES256")
        if not MIN_FRESH_FOR <= fresh_for <= MAX_FRESH_FOR:
            raise ValueError(f"a trust list is fresh for {MIN_FRESH_FOR} to {MAX_FRESH_FOR}")
        self.key = key
        self.fresh_for = fresh_for
        self._cached: Signed | None = None
        self._lock = threading.Lock()

    def due(self, version: int, now: datetime) -> bool:
        """True if the list to publish at ``now`` is not the last one signed (a new version,
        or time for a heartbeat)."""
        cached = self._cached
        return (
            cached is None
            or cached.version != version
            or now >= cached.issued_at + self.fresh_for / 3
        )

    def sign_current(self, snapshot: TrustSnapshot, now: datetime) -> Signed:
        """The list to publish for ``snapshot`` at ``now`` (signed again only when due)."""
        with self._lock:
            if self.due(snapshot.version, now):
                fresh_until = now + self.fresh_for
                text = sign(document(snapshot, now, fresh_until), self.key)
                self._cached = Signed(text, snapshot.version, now, fresh_until)
            assert self._cached is not None
            return self._cached

    def signed(self, snapshot: TrustSnapshot, now: datetime) -> str:
        return self.sign_current(snapshot, now).jws

    def public_jwk(self) -> dict[str, str]:
        public = self.key.public_key()
        return {**public.jwk(), "kid": public.thumbprint(), "alg": "ES256", "use": "sig"}
