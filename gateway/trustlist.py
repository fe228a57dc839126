"""The signed trust list: every issuer, key and profile, with a monotonically increasing version.

A compact JWS (ES256, ``typ: huren-trust-list+jwt``, ``zip: DEF``) by the gateway's trust-list
key over the raw DEFLATE (RFC 1951) of JSON, as SMART Health Cards compress theirs: the signature
covers the compressed bytes, and a verifier inflates them only after it verified the signature,
to at most :data:`MAX_TRUST_LIST_JSON_BYTES` (a decompression bomb is refused
``ERR_DECOMPRESSED_TOO_LARGE`` once that many bytes are out, never inflated whole). The JSON:

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

Sizes (docs/scaling.md, "Limits"): a verifier receives at most :data:`MAX_TRUST_LIST_CHARS` of
compact text and inflates at most :data:`MAX_TRUST_LIST_JSON_BYTES` of JSON. Compressed, an EU DCC
signer certificate key costs about 170 characters (467 uncompressed: its key and digests are
random, the rest repeats), so a list holds about 148,000 such keys. The hub publishes no list
over the limit (:class:`TrustListSigner`): it keeps the last list that fit, which its replicas
judge on until its ``fresh_until`` and then answer ``ERR_TRUST_STALE``.

A list without ``zip`` (the format before compression, as a replica may hold on disk from an
older version) is still accepted, within the same limits: it is signed by the same key, and
what it may say is checked as for a compressed one (rollback, freshness, content). Any other
``zip`` is refused ``ERR_HEADER``.

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

from gateway.codecs import compression, jws, strictjson
from gateway.crypto import Algorithm, PrivateKey, PublicKey
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.limits import Limits
from gateway.model import Reason
from gateway.registry import IssuerKey, TrustSnapshot

TYPE = "huren-trust-list+jwt"
DEFLATE = "DEF"
"""The JWS ``zip`` of a trust list: its payload is raw DEFLATE."""
MAX_TRUST_LIST_CHARS = 24 * 1024 * 1024
"""Longest trust-list text (compact JWS) a verifier receives, reads from disk or a hub signs for
publication: about 148,000 EU DCC signer certificate keys compressed (with the gRPC envelope,
:data:`MAX_TRUST_LIST_MESSAGE_BYTES`)."""
MAX_TRUST_LIST_JSON_BYTES = 64 * 1024 * 1024
"""Most JSON a trust list inflates to (at about 350 bytes per EU DCC key, 190,000 keys: the
compressed limit binds first); inflating stops past it."""
MAX_TRUST_LIST_MESSAGE_BYTES = MAX_TRUST_LIST_CHARS + 64 * 1024
"""A trust list in its gRPC answer: what a replica's channel receives and a hub's server sends."""
MAX_SIGNED_DOCUMENT_BYTES = 4 * 1024 * 1024
"""Longest other signed document (uncompressed, e.g. the hub's state record)."""
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


def dated_head(version: int, issued_at: datetime, fresh_until: datetime) -> bytes:
    """How a trust list's JSON starts: its version and the two instants a heartbeat changes,
    written as :func:`sign` writes the first members of :func:`document` (compact, in order),
    up to the comma before the content."""
    dated = {"version": version, "issued_at": _iso(issued_at), "fresh_until": _iso(fresh_until)}
    return strictjson.dumps(dated)[:-1] + b","


def sign(
    content: Mapping[str, Any], key: PrivateKey, typ: str = TYPE, *, deflate: bool | None = None
) -> str:
    """A signed document of type ``typ`` (compact JWS by ``key``, identified by its
    thumbprint). A trust list's payload is compressed (``zip: DEF``) unless ``deflate`` is
    False (the format before compression, for tests of what older versions signed); other
    documents are not."""
    kid = key.public_key().thumbprint()
    header = {"alg": key.algorithm.value, "kid": kid, "typ": typ}
    payload = strictjson.dumps(dict(content))
    if typ == TYPE if deflate is None else deflate:
        header["zip"] = DEFLATE
        payload = compression.deflate(payload, wbits=compression.RAW)
    return jws.sign(header, payload, key)


def verify(text: str, key: PublicKey, typ: str = TYPE) -> dict[str, Any]:
    """The content of ``text``, if it is a document of type ``typ`` signed with ``key``.

    Raises:
        ConfigurationInvalid: as :func:`verified_payload`, or ``ERR_SCHEMA`` for malformed
            content (a JSON object with an integer ``version`` for trust lists).
    """
    return loads_content(verified_payload(text, key, typ), typ)


def loads_content(payload: bytes, typ: str = TYPE) -> dict[str, Any]:
    """The JSON content of a verified ``payload`` (see :func:`verify`)."""
    what = "trust list" if typ == TYPE else "signed document"
    try:
        content = strictjson.loads(payload, max_bytes=MAX_TRUST_LIST_JSON_BYTES, max_depth=8)
    except CodeRejected as e:
        raise ConfigurationInvalid(e.reason, f"{what} refused: {e.detail}") from e
    if not isinstance(content, dict) or (
        typ == TYPE and not isinstance(content.get("version"), int)
    ):
        raise ConfigurationInvalid(Reason.ERR_SCHEMA, f"{what} refused: malformed content")
    return content


def verified_payload(text: str, key: PublicKey, typ: str = TYPE) -> bytes:
    """The payload of ``text`` (inflated), if it is a document of type ``typ`` signed with
    ``key``; its JSON is not read yet.

    Raises:
        ConfigurationInvalid: ``ERR_TOO_LARGE`` for a text over the limit, ``ERR_HEADER`` for
            another type or a ``zip`` other than ``DEF`` (on a trust list; none on another
            document), ``ERR_KEY_UNKNOWN`` for another key, ``ERR_SIGNATURE``,
            ``ERR_DECOMPRESS`` or ``ERR_DECOMPRESSED_TOO_LARGE`` for a payload that does not
            inflate within :data:`MAX_TRUST_LIST_JSON_BYTES`.
    """
    most = MAX_TRUST_LIST_CHARS if typ == TYPE else MAX_SIGNED_DOCUMENT_BYTES
    limits = Limits(max_code_chars=most, max_payload_bytes=most)
    what = "trust list" if typ == TYPE else "signed document"
    try:
        text = text.strip()
        if len(text) > most:
            raise CodeRejected(Reason.ERR_TOO_LARGE, f"over {most} characters")
        token = jws.parse(text, limits)
        if token.header.get("typ") != typ:
            raise CodeRejected(Reason.ERR_HEADER, f"not a {typ} document")
        zipped = token.header.get("zip")
        if zipped is not None and (typ != TYPE or zipped != DEFLATE):
            raise CodeRejected(Reason.ERR_HEADER, f"zip {zipped!r} not allowed")
        if token.kid != key.thumbprint() or token.algorithm is not key.algorithm:
            raise CodeRejected(Reason.ERR_KEY_UNKNOWN, "signed with another key")
        if not key.verify(token.signing_input, token.signature):
            raise CodeRejected(Reason.ERR_SIGNATURE, "the signature does not verify")
        # Inflated only once the signature verified: nobody else's bytes are inflated.
        if zipped is None:
            return token.payload
        return compression.inflate(
            token.payload, wbits=compression.RAW, max_bytes=MAX_TRUST_LIST_JSON_BYTES
        )
    except CodeRejected as e:
        raise ConfigurationInvalid(e.reason, f"{what} refused: {e.detail}") from e


@dataclass(frozen=True, slots=True)
class Signed:
    """One signed trust list, as the hub signed it."""

    jws: str
    version: int
    issued_at: datetime
    fresh_until: datetime
    fits: bool = True
    """False if it is over the size a verifier receives: never published."""


class TrustListSigner:
    """Signs the trust list of each version once, and again (a heartbeat) when a third of its
    freshness window has passed, so that a verifier holding the latest list is never within
    two thirds of a window of its ``fresh_until`` while the hub is up.

    A list over ``max_chars`` (:data:`MAX_TRUST_LIST_CHARS`) is signed (its size is reported)
    but never published: :meth:`published` stays the last list that fit, not renewed, so
    verifiers go stale at its ``fresh_until`` rather than judge on a list the hub no longer
    stands by."""

    def __init__(
        self,
        key: PrivateKey,
        fresh_for: timedelta = DEFAULT_FRESH_FOR,
        max_chars: int = MAX_TRUST_LIST_CHARS,
    ) -> None:
        if key.algorithm is not Algorithm.ES256:
            raise ValueError("the trust-list key is ES256")
        if not MIN_FRESH_FOR <= fresh_for <= MAX_FRESH_FOR:
            raise ValueError(f"a trust list is fresh for {MIN_FRESH_FOR} to {MAX_FRESH_FOR}")
        self.key = key
        self.fresh_for = fresh_for
        self.max_chars = max_chars
        """The longest list published (a verifier's limit; lower only to test)."""
        self._cached: Signed | None = None
        self._fitted: Signed | None = None
        self._body: tuple[int, bytes] | None = None
        """The raw DEFLATE of the current version's JSON after its dated head (see
        :meth:`_sign`)."""
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
        """The list signed for ``snapshot`` at ``now`` (signed again only when due), whether
        it fits or not (see :attr:`Signed.fits`)."""
        with self._lock:
            if self.due(snapshot.version, now):
                fresh_until = now + self.fresh_for
                text = self._sign(snapshot, now, fresh_until)
                fits = len(text) <= self.max_chars
                self._cached = Signed(text, snapshot.version, now, fresh_until, fits)
                if self._cached.fits:
                    self._fitted = self._cached
            assert self._cached is not None
            return self._cached

    def _sign(self, snapshot: TrustSnapshot, issued_at: datetime, fresh_until: datetime) -> str:
        """A list whose JSON is what :func:`sign` writes of :func:`document`, byte for byte,
        with the content compressed once per version: the JSON starts with a dated head
        (version and the two instants, all a heartbeat changes), and the rest, compressed apart
        once, is appended to the compressed head
        (:func:`~gateway.codecs.compression.deflate_head`). A heartbeat of 100,000 keys then
        costs the signature and the text's encoding (0.04 s), not seconds of JSON and DEFLATE."""
        head = dated_head(snapshot.version, issued_at, fresh_until)
        if self._body is None or self._body[0] != snapshot.version:
            whole = strictjson.dumps(document(snapshot, issued_at, fresh_until))
            if not whole.startswith(head):  # the document's first members, in this order
                raise AssertionError("a trust list's JSON must start with its dated head")
            body = compression.deflate(whole[len(head) :], wbits=compression.RAW)
            self._body = (snapshot.version, body)
        kid = self.key.public_key().thumbprint()
        header = {"alg": self.key.algorithm.value, "kid": kid, "typ": TYPE, "zip": DEFLATE}
        return jws.sign(header, compression.deflate_head(head) + self._body[1], self.key)

    def published(self, snapshot: TrustSnapshot, now: datetime) -> Signed | None:
        """The list to publish at ``now``: the current one if it fits, else the last that
        did (None if none ever did)."""
        self.sign_current(snapshot, now)
        return self._fitted

    def public_jwk(self) -> dict[str, str]:
        public = self.key.public_key()
        return {**public.jwk(), "kid": public.thumbprint(), "alg": "ES256", "use": "sig"}
