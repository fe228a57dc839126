"""An issuer written from docs/issuers.md alone, as a region that never saw huren's code would.

It imports only Python's standard library and pyca/cryptography (a test checks this): nothing
of ``gateway`` or ``regions``. Everything below cites the section of docs/issuers.md it follows.

It mints codes for the eighth region of the tests, Xiamen (350200), whose format none of the
seven simulated regions uses (``xiamen.toml``, next to this file): a numeric JWS (``xm:/``) over a
raw-DEFLATE JSON payload, signed with ES256, carrying a masked number and the link hash. Its
primitives are general enough to reproduce the document's test vectors too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

PROFILE = Path(__file__).with_name("xiamen.toml")
ISSUER_ID = "xiamen"
PREFIX = "xm:/"
STATES = {"GREEN": "绿", "YELLOW": "黄", "RED": "红"}
"""The region's own words for its colours (the profile's [states])."""

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    """base64url without padding ("Words")."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value: object) -> bytes:
    """The vectors' JSON: no whitespace, non-ASCII as UTF-8 (section 4)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(key: SigningKey, message: bytes) -> bytes:
    """Section 3: Ed25519 as is; ECDSA as r || s of fixed size, not DER (deterministic, RFC 6979,
    as the vectors are made)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    digest: hashes.HashAlgorithm = hashes.SHA256() if key.curve.key_size == 256 else hashes.SHA384()
    size = (key.curve.key_size + 7) // 8
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(digest, deterministic_signing=True)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def algorithm(key: SigningKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return "ES256" if key.curve.key_size == 256 else "ES384"


def raw_deflate(data: bytes) -> bytes:
    """RFC 1951 without a zlib header or checksum (section 5.1, step 1), at level 9."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def compact_jws(key: SigningKey, kid: str, payload: bytes, *, deflate: bool = False) -> str:
    """Section 5.1: the header {"alg", "kid"[, "zip"]} starting with '{"', the signing input
    base64url(H) "." base64url(P), then "." and the base64url signature."""
    header = {"alg": algorithm(key), "kid": kid}
    if deflate:
        header["zip"] = "DEF"
        payload = raw_deflate(payload)
    signing_input = b64url(compact_json(header)) + "." + b64url(payload)
    return signing_input + "." + b64url(sign(key, signing_input.encode("ascii")))


def numeric(prefix: str, jws: str) -> str:
    """Section 5.2: each character c of the JWS as the two digits of ord(c) - 45."""
    return prefix + "".join(f"{ord(c) - 45:02d}" for c in jws)


def read_link_key(path: Path) -> bytes:
    """Section 1: link.key holds 64 hex digits; the key is the 32 bytes they encode."""
    key = bytes.fromhex(path.read_text("ascii").strip())
    if len(key) != 32:
        raise ValueError("a linking key is 32 bytes")
    return key


def link_hash(link_key: bytes, number: str) -> bytes:
    """Section 7.3: HMAC-SHA-256(K_link, "cn-resident-id" || 0x00 || number)."""
    return hmac.digest(link_key, b"cn-resident-id\x00" + number.encode("ascii"), hashlib.sha256)


def seal(pseudonym_key: bytes, issuer_id: str, number: str) -> bytes:
    """Section 7.4: AES-SIV, associated data [issuer id], plaintext the number, no nonce."""
    return AESSIV(pseudonym_key).encrypt(number.encode("ascii"), [issuer_id.encode("ascii")])


def masked(number: str) -> str:
    """Section 7.3: at least the first 3 and the last 2 shown; Xiamen shows 6 and 4."""
    return number[:6] + "*" * 8 + number[-4:]


class Xiamen:
    """The Xiamen issuer: its signing key (P-256) and key id, and the hub's linking key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, kid: str, link_key: bytes) -> None:
        self.key, self.kid, self.link_key = key, kid, link_key

    @classmethod
    def create(cls, folder: Path, link_key: bytes, kid: str = "xm-2026-1") -> Xiamen:
        """A new key, written as the operator needs it: the private key (PEM, for the proof
        of possession) and the public key as a JWKS (section 1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (folder / "xiamen-signing-key.pem").write_bytes(pem)
        (folder / "xiamen-signing-key.pem").chmod(0o600)
        numbers = key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }
        (folder / "xiamen-jwks.json").write_text(json.dumps({"keys": [jwk]}))
        return cls(key, kid, link_key)

    def mint(self, number: str, colour: str, issued_at: datetime, hours: int = 24) -> str:
        """A code: times as Unix seconds (section 6), the region's word for the colour, the
        masked number and the link hash as base64url (section 7.3)."""
        issued = int(issued_at.timestamp())
        payload = {
            "iss": ISSUER_ID,
            "iat": issued,
            "exp": issued + hours * 3600,
            "st": STATES[colour],
            "holder": {"m": masked(number), "lh": b64url(link_hash(self.link_key, number))},
        }
        return numeric(PREFIX, compact_jws(self.key, self.kid, compact_json(payload), deflate=True))
