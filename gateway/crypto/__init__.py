"""Signatures and keys: with :mod:`gateway.crypto.pki`, the only code importing pyca/cryptography.

Verification takes the signature exactly as carried by JWS and COSE (raw ``r || s`` for ECDSA,
64 bytes for Ed25519, modulus-sized for RSA) and never repairs it: a wrong length is
``ERR_SIG_ENCODING``, anything else that does not verify is simply invalid. The algorithm is a
property of the registered key, never of the code's header.

Keys are admitted only if they are safe (see :func:`check_admissible`): RSA 2048-4096 bits with
e = 65537, the curve the algorithm names, and Ed25519 points that are canonically encoded and not
of small order (cryptography accepts those, and the identity point verifies forged signatures).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gateway.codecs import base64url
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import Reason


class Algorithm(enum.Enum):
    """Signature algorithms, named as in JOSE (RFC 7518 / RFC 8037) with their COSE ids."""

    ES256 = "ES256"
    ES384 = "ES384"
    EDDSA = "EdDSA"
    PS256 = "PS256"
    RS256 = "RS256"

    @property
    def cose_id(self) -> int:
        return _COSE_IDS[self]

    @classmethod
    def from_cose(cls, value: int) -> Algorithm | None:
        return _FROM_COSE.get(value)

    @classmethod
    def from_name(cls, name: str) -> Algorithm | None:
        """The algorithm with this exact JOSE name (case-sensitive), or None."""
        return _FROM_NAME.get(name)


_COSE_IDS = {
    Algorithm.ES256: -7,
    Algorithm.ES384: -35,
    Algorithm.EDDSA: -8,
    Algorithm.PS256: -37,
    Algorithm.RS256: -257,
}
_FROM_COSE = {v: k for k, v in _COSE_IDS.items()}
_FROM_NAME = {a.value: a for a in Algorithm}

# Algorithms an issuer key may be registered for. RS256 is verified by this module (the
# Wycheproof vectors exercise it) but no supported code format uses it.
ADMISSIBLE = frozenset({Algorithm.ES256, Algorithm.ES384, Algorithm.EDDSA, Algorithm.PS256})

_CURVES: dict[Algorithm, tuple[type[ec.EllipticCurve], int, hashes.HashAlgorithm]] = {
    Algorithm.ES256: (ec.SECP256R1, 32, hashes.SHA256()),
    Algorithm.ES384: (ec.SECP384R1, 48, hashes.SHA384()),
}
_JWK_CURVES = {"P-256": Algorithm.ES256, "P-384": Algorithm.ES384}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

_PublicKeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def _refuse(reason: Reason, message: str) -> ConfigurationInvalid:
    return ConfigurationInvalid(reason, message)


@dataclass(frozen=True, eq=False)
class PublicKey:
    """An admitted public key bound to exactly one algorithm; built by the ``load_*`` functions."""

    algorithm: Algorithm
    spki_der: bytes
    _key: _PublicKeyTypes = field(repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.algorithm is other.algorithm and self.spki_der == other.spki_der

    def __hash__(self) -> int:
        return hash((self.algorithm, self.spki_der))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` over ``message`` verifies with this key and algorithm.

        Raises:
            CodeRejected: ``ERR_SIG_ENCODING`` when the signature is not the exact length the
                algorithm defines (no DER, no padding, no repair).
        """
        alg = self.algorithm
        try:
            if alg in _CURVES:
                _, size, digest = _CURVES[alg]
                if len(signature) != 2 * size:
                    raise CodeRejected(
                        Reason.ERR_SIG_ENCODING, f"{alg.value} signature must be {2 * size} bytes"
                    )
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                assert isinstance(self._key, ec.EllipticCurvePublicKey)
                self._key.verify(encode_dss_signature(r, s), message, ec.ECDSA(digest))
            elif alg is Algorithm.EDDSA:
                if len(signature) != 64:
                    raise CodeRejected(Reason.ERR_SIG_ENCODING, "EdDSA signature must be 64 bytes")
                assert isinstance(self._key, ed25519.Ed25519PublicKey)
                self._key.verify(signature, message)
            else:
                assert isinstance(self._key, rsa.RSAPublicKey)
                if len(signature) != (self._key.key_size + 7) // 8:
                    raise CodeRejected(
                        Reason.ERR_SIG_ENCODING,
                        f"{alg.value} signature must match the modulus size",
                    )
                pad = _PSS if alg is Algorithm.PS256 else padding.PKCS1v15()
                self._key.verify(signature, message, pad, hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK with only its required members (RFC 7517, RFC 8037)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = _CURVES[self.algorithm][1]
            numbers = key.public_numbers()
            crv = "P-256" if self.algorithm is Algorithm.ES256 else "P-384"
            return {
                "kty": "EC",
                "crv": crv,
                "x": base64url.encode(numbers.x.to_bytes(size, "big")),
                "y": base64url.encode(numbers.y.to_bytes(size, "big")),
            }
        if isinstance(key, ed25519.Ed25519PublicKey):
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": base64url.encode(raw)}
        rsa_numbers = key.public_numbers()
        return {
            "kty": "RSA",
            "n": base64url.encode(_int_bytes(rsa_numbers.n)),
            "e": base64url.encode(_int_bytes(rsa_numbers.e)),
        }

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256, base64url): a key id derived from the key itself."""
        canonical = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return base64url.encode(hashlib.sha256(canonical.encode("ascii")).digest())

    def pem(self) -> str:
        """SubjectPublicKeyInfo in PEM form."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def has_private_members(jwk: Mapping[str, Any]) -> bool:
    """True if a JWK carries any private or symmetric key member (RFC 7518 section 6)."""
    return not _PRIVATE_JWK_MEMBERS.isdisjoint(jwk)


# ROCA (CVE-2017-15361, Nemec et al., CCS 2017): moduli made by the affected library satisfy,
# for every small prime p below, "n mod p lies in the subgroup generated by 65537 mod p".
# A random modulus passes all of these tests with negligible probability.
_ROCA_PRIMES = (
    *(3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89),
    *(97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167),
)


def _subgroup(p: int) -> frozenset[int]:
    members, value = {1}, 65537 % p
    while value not in members:
        members.add(value)
        value = value * 65537 % p
    return frozenset(members)


_ROCA_SUBGROUPS = tuple((p, _subgroup(p)) for p in _ROCA_PRIMES)


def has_roca_fingerprint(n: int) -> bool:
    """True if the RSA modulus ``n`` has the ROCA fingerprint (CVE-2017-15361)."""
    return all(n % p in members for p, members in _ROCA_SUBGROUPS)


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _bind(key: object, algorithm: Algorithm | None) -> PublicKey:
    """Check that ``key`` is admissible for ``algorithm`` (inferred when unambiguous)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        inferred = {"secp256r1": Algorithm.ES256, "secp384r1": Algorithm.ES384}.get(key.curve.name)
        if inferred is None:
            raise _refuse(Reason.ERR_KEY_WEAK, f"unsupported elliptic curve {key.curve.name}")
        algorithm = algorithm or inferred
        if algorithm is not inferred:
            raise _refuse(Reason.ERR_KEY_WEAK, f"{key.curve.name} key cannot be {algorithm.value}")
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = algorithm or Algorithm.EDDSA
        if algorithm is not Algorithm.EDDSA:
            raise _refuse(Reason.ERR_KEY_WEAK, f"Ed25519 key cannot be {algorithm.value}")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        check_ed25519_point(raw)
    elif isinstance(key, rsa.RSAPublicKey):
        if algorithm is None:
            raise _refuse(Reason.ERR_KEY_WEAK, "an RSA key needs an explicit algorithm (PS256)")
        if algorithm not in (Algorithm.PS256, Algorithm.RS256):
            raise _refuse(Reason.ERR_KEY_WEAK, f"RSA key cannot be {algorithm.value}")
        if not 2048 <= key.key_size <= 4096:
            raise _refuse(Reason.ERR_KEY_WEAK, f"RSA modulus of {key.key_size} bits (2048-4096)")
        numbers = key.public_numbers()
        if numbers.e != 65537:
            raise _refuse(Reason.ERR_KEY_WEAK, "RSA public exponent must be 65537")
        if numbers.n % 2 == 0:
            raise _refuse(Reason.ERR_KEY_WEAK, "RSA modulus is even")
        if has_roca_fingerprint(numbers.n):
            raise _refuse(Reason.ERR_KEY_WEAK, "RSA modulus has the ROCA fingerprint")
    else:
        raise _refuse(Reason.ERR_KEY_WEAK, f"unsupported key type {type(key).__name__}")
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(algorithm, spki, key)


def load_pem(data: str | bytes, algorithm: Algorithm | None = None) -> PublicKey:
    """Load a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo).

    Raises:
        ConfigurationInvalid: ``ERR_KEY_PRIVATE`` for private key PEM, ``ERR_KEY_WEAK`` for an
            unparseable or inadmissible key.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if b"PRIVATE KEY" in raw:
        raise _refuse(Reason.ERR_KEY_PRIVATE, "PEM contains a private key")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _refuse(Reason.ERR_KEY_WEAK, "not a PEM public key") from e
    return _bind(key, algorithm)


def load_spki_der(data: bytes, algorithm: Algorithm | None = None) -> PublicKey:
    """Load a DER SubjectPublicKeyInfo (as stored by the registry)."""
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _refuse(Reason.ERR_KEY_WEAK, "not a DER public key") from e
    return _bind(key, algorithm)


def load_jwk(jwk: Mapping[str, Any], algorithm: Algorithm | None = None) -> PublicKey:
    """Load a public JWK (RFC 7517/7518/8037).

    Members are decoded strictly (canonical base64url, exact coordinate lengths, minimal RSA
    integers). An ``alg`` member, if present, must agree with ``algorithm``.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_PRIVATE`` if any private member is present,
            ``ERR_KEY_WEAK`` for anything malformed or inadmissible.
    """
    if has_private_members(jwk):
        raise _refuse(Reason.ERR_KEY_PRIVATE, "JWK contains private key material")
    named = jwk.get("alg")
    if named is not None:
        named_alg = Algorithm.from_name(named) if isinstance(named, str) else None
        if named_alg is None:
            raise _refuse(Reason.ERR_KEY_WEAK, "JWK names an unsupported algorithm")
        if algorithm is not None and named_alg is not algorithm:
            raise _refuse(Reason.ERR_KEY_WEAK, "JWK alg disagrees with the requested algorithm")
        algorithm = named_alg

    def member(name: str) -> bytes:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise _refuse(Reason.ERR_KEY_WEAK, f"JWK member {name!r} missing or not a string")
        try:
            return base64url.decode(value)
        except CodeRejected as e:
            raise _refuse(Reason.ERR_KEY_WEAK, f"JWK member {name!r} is not base64url") from e

    kty = jwk.get("kty")
    key: object
    try:
        if kty == "EC":
            crv = jwk.get("crv")
            curve_alg = _JWK_CURVES.get(crv) if isinstance(crv, str) else None
            if curve_alg is None:
                raise _refuse(Reason.ERR_KEY_WEAK, f"unsupported JWK curve {str(crv)[:16]!r}")
            curve_type, size, _ = _CURVES[curve_alg]
            x, y = member("x"), member("y")
            if len(x) != size or len(y) != size:
                raise _refuse(Reason.ERR_KEY_WEAK, "JWK EC coordinates have the wrong length")
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve_type()
            ).public_key()
        elif kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise _refuse(Reason.ERR_KEY_WEAK, "unsupported OKP curve")
            x = member("x")
            if len(x) != 32:
                raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key must be 32 bytes")
            check_ed25519_point(x)
            key = ed25519.Ed25519PublicKey.from_public_bytes(x)
        elif kty == "RSA":
            n, e = member("n"), member("e")
            if not n or not e or n[0] == 0 or e[0] == 0:
                raise _refuse(Reason.ERR_KEY_WEAK, "JWK RSA integers must be minimal")
            key = rsa.RSAPublicNumbers(
                int.from_bytes(e, "big"), int.from_bytes(n, "big")
            ).public_key()
        else:
            raise _refuse(Reason.ERR_KEY_WEAK, f"unsupported JWK key type {str(kty)[:16]!r}")
    except ValueError as e:
        raise _refuse(Reason.ERR_KEY_WEAK, "JWK does not describe a valid public key") from e
    return _bind(key, algorithm)


@dataclass(frozen=True)
class Certificate:
    """The facts the registry needs from an X.509 signer certificate."""

    der: bytes
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    subject: str
    extended_key_usages: frozenset[str]

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()


def certificate_kid(certificate_sha256: bytes) -> str:
    """The EU DCC key id of a signer certificate: the first 8 bytes of its SHA-256, base64."""
    return base64.b64encode(certificate_sha256[:8]).decode("ascii")


def load_certificate(data: bytes, algorithm: Algorithm | None = None) -> Certificate:
    """Load an X.509 certificate (PEM or DER) and admit its public key.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` for an unparseable certificate or inadmissible key.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _refuse(Reason.ERR_KEY_WEAK, "not a valid X.509 certificate") from e
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = frozenset(oid.dotted_string for oid in eku)
    except x509.ExtensionNotFound:
        usages = frozenset()
    except ValueError:
        # Some national signer certificates encode an extension in BER rather than DER (an
        # explicit cA=FALSE, an empty ExtendedKeyUsage); the library then refuses to read any
        # extension. The usages are read directly from the certificate's bytes instead.
        usages = _extended_key_usages(cert.public_bytes(serialization.Encoding.DER))
    return Certificate(
        der=cert.public_bytes(serialization.Encoding.DER),
        public_key=_bind(key, algorithm),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
        extended_key_usages=usages,
    )


def ecdsa_der_to_raw(signature: bytes, algorithm: Algorithm) -> bytes:
    """Convert a DER ECDSA signature to raw ``r || s``, accepting only exact DER.

    BER forms (long-form lengths, leading zeros, trailing bytes) are refused by re-encoding and
    comparing, and values too large for the curve's field size are refused.

    Raises:
        CodeRejected: ``ERR_SIG_ENCODING``.
    """
    if algorithm not in _CURVES:
        raise ValueError(f"{algorithm.value} is not ECDSA")
    size = _CURVES[algorithm][1]
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as e:
        raise CodeRejected(Reason.ERR_SIG_ENCODING, "not a DER ECDSA signature") from e
    if (
        encode_dss_signature(r, s) != signature
        or r.bit_length() > 8 * size
        or s.bit_length() > 8 * size
    ):
        raise CodeRejected(Reason.ERR_SIG_ENCODING, "not a DER ECDSA signature")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# ------------------------------------------------------------------ Ed25519 point admission
# RFC 8032 section 5.1.3 decoding, then a multiply-by-8 check (section 5.1.7 cofactor), in pure
# Python: it runs only at key registration, never on the verify path.

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def check_ed25519_point(encoded: bytes) -> None:
    """Refuse an Ed25519 public key that is non-canonical, not on the curve, or of small order.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK``.
    """
    if len(encoded) != 32:
        raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key must be 32 bytes")
    value = int.from_bytes(encoded, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= _P:
        raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key is not canonically encoded")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key is not a curve point")
    if x == 0 and sign:
        raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key is not canonically encoded")
    if x & 1 != sign:
        x = _P - x
    point = (x, y)
    for _ in range(3):
        point = _edwards_add(point, point)
    if point == (0, 1):
        raise _refuse(Reason.ERR_KEY_WEAK, "Ed25519 key is a small-order point")


def _edwards_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = (_D * x1 * x2 * y1 * y2) % _P
    x3 = ((x1 * y2 + x2 * y1) * pow(1 + t, -1, _P)) % _P
    y3 = ((y1 * y2 + x1 * x2) * pow(1 - t, -1, _P)) % _P
    return x3, y3


# ------------------------------------------------------------------ issuer side (regions)


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A signing key, used by the simulated regional issuers (never by the verify path)."""

    algorithm: Algorithm
    _key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = field(
        repr=False
    )

    @classmethod
    def generate(cls, algorithm: Algorithm) -> PrivateKey:
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        if algorithm in _CURVES:
            key = ec.generate_private_key(_CURVES[algorithm][0]())
        elif algorithm is Algorithm.EDDSA:
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(algorithm, key)

    @classmethod
    def from_pem(cls, data: bytes, algorithm: Algorithm) -> PrivateKey:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        ):
            raise _refuse(Reason.ERR_KEY_WEAK, "unsupported private key type")
        private = cls(algorithm, key)
        private.public_key()  # admission check: the key must suit the algorithm
        return private

    def pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_key(self) -> PublicKey:
        return _bind(self._key.public_key(), self.algorithm)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; ECDSA signatures are returned as raw ``r || s``."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            _, size, digest = _CURVES[self.algorithm]
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(digest)))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        pad = _PSS if self.algorithm is Algorithm.PS256 else padding.PKCS1v15()
        return key.sign(message, pad, hashes.SHA256())


# ------------------------------------------------------------------ pseudonyms (AES-SIV)
# A region that must not carry identity numbers in its codes carries them encrypted under a key
# it shares with the hub: deterministic authenticated encryption (RFC 5297), so one person has one
# stable pseudonym per region, readable only with the key, and tampering is detected.

PSEUDONYM_KEY_BYTES = 64  # AES-256-SIV


def check_pseudonym_key(key: bytes) -> None:
    """Raises ConfigurationInvalid(ERR_KEY_WEAK) unless ``key`` is a 512-bit AES-SIV key."""
    if len(key) != PSEUDONYM_KEY_BYTES:
        raise _refuse(Reason.ERR_KEY_WEAK, f"a pseudonym key is {PSEUDONYM_KEY_BYTES} bytes")


def open_pseudonym(key: bytes, sealed: bytes, context: bytes) -> bytes | None:
    """The plaintext of a pseudonym sealed for ``context``, or None if it does not authenticate."""
    try:
        return AESSIV(key).decrypt(sealed, [context])
    except (InvalidTag, ValueError):
        return None


def seal_pseudonym(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Seal ``plaintext`` for ``context`` (issuers)."""
    return AESSIV(key).encrypt(plaintext, [context])


_EKU_OID = bytes.fromhex("551d25")  # 2.5.29.37, id-ce-extKeyUsage


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """One DER/BER element at ``at``: (tag, start of content, end of content).

    Raises:
        ValueError: for a truncated or indefinite-length element.
    """
    tag = data[at]
    length = data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported length")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated element")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, at = [], start
    while at < end:
        element = _tlv(data, at)
        out.append(element)
        at = element[2]
    return out


def _oid(encoded: bytes) -> str:
    first = encoded[0]
    arcs, value = [min(first // 40, 2), first - 40 * min(first // 40, 2)], 0
    for byte in encoded[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _extended_key_usages(der: bytes) -> frozenset[str]:
    """The extended key usage OIDs of a certificate, read from its bytes (BER-tolerant).

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` if the certificate cannot be walked.
    """
    try:
        _, start, end = _tlv(der, 0)  # Certificate
        _, start, end = _tlv(der, start)  # tbsCertificate
        for tag, content, _ in _children(der, start, end):
            if tag != 0xA3:  # [3] extensions
                continue
            _, first, last = _tlv(der, content)
            for _, ext_start, ext_end in _children(der, first, last):
                parts = _children(der, ext_start, ext_end)
                if der[parts[0][1] : parts[0][2]] != _EKU_OID:
                    continue
                _, value_start, _ = parts[-1]  # OCTET STRING extnValue
                _, seq_start, seq_end = _tlv(der, value_start)
                return frozenset(
                    _oid(der[a:b]) for t, a, b in _children(der, seq_start, seq_end) if t == 0x06
                )
        return frozenset()
    except (IndexError, ValueError) as e:
        raise _refuse(Reason.ERR_KEY_WEAK, "certificate extensions are malformed") from e
