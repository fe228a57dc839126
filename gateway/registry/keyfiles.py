"""Reading issuer keys from the files operators have: JWKS, JWK, PEM public key, X.509.

Pure parsing of bytes already read (fetching a URL or a file is the caller's business). Every key
goes through :mod:`gateway.crypto`'s admission checks; anything else is refused with a reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from gateway import crypto
from gateway.codecs import strictjson
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import IssuerId, KeyId, Reason
from gateway.registry.model import IssuerKey, Revocations

MAX_KEY_FILE_BYTES = 256 * 1024
MAX_KEYS_PER_FILE = 64


# EU DCC signer certificates: extended key usages that restrict which kinds of certificate a
# key may sign (hcert specification; the second, longer form is common in the official test
# data). A certificate without the extension (or with an empty one) may sign every kind; one
# whose extension lists other usages only may sign none (as the official test data expects).
HCERT_KEY_USAGE = {
    f"1.3.6.1.4.1.{arc}1847.2021.1.{n}": kind
    for arc in ("", "0.")
    for n, kind in ((1, "test"), (2, "vaccination"), (3, "recovery"))
}


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: KeyId
    public_key: crypto.PublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None
    usage: frozenset[str] | None = None
    certificate_sha256: bytes | None = None

    def of(self, issuer: IssuerId) -> IssuerKey:
        """This key as a key of ``issuer``, with its validity, usage and certificate."""
        return IssuerKey(
            issuer,
            self.kid,
            self.public_key,
            self.not_before,
            self.not_after,
            usage=self.usage,
            certificate_sha256=self.certificate_sha256,
        )


def certificate_kid(certificate_sha256: bytes) -> KeyId:
    """The EU DCC key id of a signer certificate: the first 8 bytes of its SHA-256, base64."""
    return KeyId(crypto.certificate_kid(certificate_sha256))


def key_usage(extended_key_usages: frozenset[str]) -> frozenset[str] | None:
    """The kinds a signer certificate may sign, or None if it does not restrict them."""
    if not extended_key_usages:
        return None
    return frozenset(HCERT_KEY_USAGE[o] for o in extended_key_usages if o in HCERT_KEY_USAGE)


def read_keys(
    data: bytes, *, kid: str | None = None, algorithm: crypto.Algorithm | None = None
) -> list[KeyEntry]:
    """Parse a key file.

    JWKS files carry their key ids (``kid``); a single JWK without one takes ``kid``; a PEM
    public key needs ``kid``; an X.509 certificate without one gets the EU DCC key id of the
    certificate. A certificate's validity window becomes the key's, and its EU DCC extended key
    usages the kinds the key may sign. A JWK with an ``x5c`` chain must hold the same key as the
    chain's first certificate.

    Raises:
        ConfigurationInvalid: for unreadable files, missing or duplicate key ids, private key
            material, or inadmissible keys.
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "key file is too large")
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return _json_keys(stripped, algorithm, kid)
    if b"-----BEGIN PUBLIC KEY-----" in stripped or b"PRIVATE KEY" in stripped:
        if kid is None:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "a PEM public key needs a key id (--kid)"
            )
        return [KeyEntry(KeyId(kid), crypto.load_pem(stripped, algorithm))]
    return [_certificate_entry(crypto.load_certificate(stripped, algorithm), kid)]


def read_certificate(data: bytes, *, algorithm: crypto.Algorithm | None = None) -> KeyEntry:
    """Exactly one X.509 certificate (PEM or DER) and nothing else: not a JWK with an ``x5c``
    chain, not a public key. Its key id is the EU DCC key id of the certificate; its validity
    window and EU DCC extended key usages come with it.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` for anything else or an inadmissible key.
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "certificate file is too large")
    return _certificate_entry(crypto.load_certificate(data.lstrip(), algorithm), None)


def _certificate_entry(certificate: crypto.Certificate, kid: str | None) -> KeyEntry:
    return KeyEntry(
        KeyId(kid) if kid is not None else certificate_kid(certificate.sha256),
        certificate.public_key,
        certificate.not_before,
        certificate.not_after,
        key_usage(certificate.extended_key_usages),
        certificate.sha256,
    )


def _json_keys(
    data: bytes, algorithm: crypto.Algorithm | None, default_kid: str | None
) -> list[KeyEntry]:
    try:
        document = strictjson.loads(data, max_bytes=MAX_KEY_FILE_BYTES, max_depth=6)
    except CodeRejected as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, f"key file is not JSON: {e.detail}") from e
    if not isinstance(document, dict):
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "key file is not a JSON object")
    if "keys" not in document and "kid" not in document and default_kid is not None:
        document = {**document, "kid": default_kid}
    jwks: list[Any] = document.get("keys", [document])
    if not isinstance(jwks, list) or not jwks or len(jwks) > MAX_KEYS_PER_FILE:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, f"a JWKS holds 1 to {MAX_KEYS_PER_FILE} keys"
        )
    out: list[KeyEntry] = []
    seen: set[str] = set()
    for jwk in jwks:
        if not isinstance(jwk, dict):
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "a JWKS entry is not an object")
        if crypto.has_private_members(jwk):  # first: the reason that matters most
            raise ConfigurationInvalid(Reason.ERR_KEY_PRIVATE, "JWK contains private key material")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "every JWK needs a kid")
        if kid in seen:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"duplicate kid {kid[:64]!r}")
        seen.add(kid)
        # Absent is fine; present must be right (RFC 7517: "use" a string, "key_ops" an array).
        use, ops = jwk.get("use", "sig"), jwk.get("key_ops", ["verify"])
        if use != "sig":
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, f"JWK {kid[:64]!r} is not for signing")
        if not isinstance(ops, list) or "verify" not in ops:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"JWK {kid[:64]!r} key_ops do not allow verify"
            )
        public_key = crypto.load_jwk(jwk, algorithm)
        out.append(_with_chain(KeyEntry(KeyId(kid), public_key), jwk.get("x5c"), algorithm))
    return out


def _with_chain(entry: KeyEntry, x5c: Any, algorithm: crypto.Algorithm | None) -> KeyEntry:
    """A JWK's ``x5c`` (RFC 7517 section 4.7): the first certificate must hold the JWK's key.

    The registered JWK is the trust anchor; the chain is not validated against a trust
    framework, so its validity dates do not bound the key (docs/conformance.md)."""
    if x5c is None:
        return entry
    if not isinstance(x5c, list) or not 0 < len(x5c) <= 8 or not isinstance(x5c[0], str):
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "JWK x5c must list 1 to 8 certificates")
    try:
        der = base64.b64decode(x5c[0], validate=True)
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "JWK x5c is not base64") from e
    leaf = crypto.load_certificate(der, algorithm or entry.public_key.algorithm)
    if leaf.public_key != entry.public_key:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, "JWK x5c's first certificate holds another key"
        )
    return KeyEntry(entry.kid, entry.public_key, certificate_sha256=leaf.sha256)


MAX_REVOKED_IDS = 100_000


def read_revocation_list(data: bytes) -> tuple[KeyId, Revocations]:
    """A SMART Health Cards revocation list (``/.well-known/crl/<kid>.json``, method ``rid``):
    the key it is for, and its entries: ``rid``, or ``rid.<unix seconds>`` revoking only the
    codes issued before that instant.

    Raises:
        ConfigurationInvalid: ``ERR_IDENTIFIER`` for anything else.
    """

    def refuse(message: str) -> ConfigurationInvalid:
        return ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"revocation list: {message}")

    if len(data) > 16 * MAX_KEY_FILE_BYTES:
        raise refuse("too large")
    try:
        crl = strictjson.loads(data, max_bytes=16 * MAX_KEY_FILE_BYTES, max_depth=4)
    except CodeRejected as e:
        raise refuse(f"not JSON ({e.detail})") from e
    if not isinstance(crl, dict) or crl.get("method") != "rid":
        raise refuse("only method 'rid' is read")
    kid, counter, rids = crl.get("kid"), crl.get("ctr"), crl.get("rids")
    if not isinstance(kid, str) or not 0 < len(kid) <= 128:
        raise refuse("kid missing or malformed")
    if isinstance(counter, bool) or not isinstance(counter, int) or counter < 0:
        raise refuse("ctr must be a non-negative integer")
    if not isinstance(rids, list) or len(rids) > MAX_REVOKED_IDS:
        raise refuse(f"rids must list at most {MAX_REVOKED_IDS} ids")
    ids: dict[str, datetime | None] = {}
    for entry in rids:
        if not isinstance(entry, str) or not 0 < len(entry) <= 96:
            raise refuse("a revoked id must be short text")
        rid, _, stamp = entry.partition(".")
        if not rid or (stamp and not (stamp.isascii() and stamp.isdigit())):
            raise refuse(f"malformed revoked id {entry[:40]!r}")
        ids[rid] = datetime.fromtimestamp(int(stamp), UTC) if stamp else None
    return KeyId(kid), Revocations(counter, MappingProxyType(ids))
