"""Reading issuer keys from the files operators have: JWKS, JWK, PEM public key, X.509.

Pure parsing of bytes already read (fetching a URL or a file is the caller's business). Every key
goes through :mod:`gateway.crypto`'s admission checks; anything else is refused with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import crypto
from gateway.codecs import strictjson
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import KeyId, Reason

MAX_KEY_FILE_BYTES = 256 * 1024
MAX_KEYS_PER_FILE = 64


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: KeyId
    public_key: crypto.PublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None


def read_keys(
    data: bytes, *, kid: str | None = None, algorithm: crypto.Algorithm | None = None
) -> list[KeyEntry]:
    """Parse a key file.

    JWKS files carry their key ids (``kid``); a single JWK without one takes ``kid``; for PEM
    and X.509 files ``kid`` must be given. An X.509 certificate's validity window becomes the key's.

    Raises:
        ConfigurationInvalid: for unreadable files, missing or duplicate key ids, private key
            material, or inadmissible keys.
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "key file is too large")
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return _json_keys(stripped, algorithm, kid)
    if kid is None:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "a PEM or X.509 key needs a key id")
    if b"-----BEGIN PUBLIC KEY-----" in stripped or b"PRIVATE KEY" in stripped:
        return [KeyEntry(KeyId(kid), crypto.load_pem(stripped, algorithm))]
    certificate = crypto.load_certificate(stripped, algorithm)
    return [
        KeyEntry(KeyId(kid), certificate.public_key, certificate.not_before, certificate.not_after)
    ]


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
        use = jwk.get("use")
        if use is not None and use != "sig":
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, f"JWK {kid[:64]!r} is not for signing")
        out.append(KeyEntry(KeyId(kid), crypto.load_jwk(jwk, algorithm)))
    return out
