"""Public keys: loading (PEM, DER SubjectPublicKeyInfo, JWK), admission (RSA 2048-4096 bits
with e = 65537 and no ROCA fingerprint, the curve the algorithm names, safe Ed25519 points, no
private members) and verification of signatures exactly as JWS and COSE carry them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.codecs import base64url
from gateway.codecs.algorithms import Algorithm
from gateway.crypto.ed25519 import check_ed25519_point
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import Reason

# Algorithms an issuer key may be registered for. RS256 is verified by this module (the
# Wycheproof vectors exercise it) but no supported code format uses it.
ADMISSIBLE = frozenset({Algorithm.ES256, Algorithm.ES384, Algorithm.EDDSA, Algorithm.PS256})

CURVES: dict[Algorithm, tuple[type[ec.EllipticCurve], int, hashes.HashAlgorithm]] = {
    Algorithm.ES256: (ec.SECP256R1, 32, hashes.SHA256()),
    Algorithm.ES384: (ec.SECP384R1, 48, hashes.SHA384()),
}
_JWK_CURVES = {"P-256": Algorithm.ES256, "P-384": Algorithm.ES384}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
# Immutable parameter objects, built once rather than at every verification.
_ECDSA = {alg: ec.ECDSA(digest) for alg, (_, _, digest) in CURVES.items()}
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

_PublicKeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


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
            if alg in CURVES:
                size = CURVES[alg][1]
                if len(signature) != 2 * size:
                    raise CodeRejected(
                        Reason.ERR_SIG_ENCODING, f"{alg.value} signature must be {2 * size} bytes"
                    )
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                assert isinstance(self._key, ec.EllipticCurvePublicKey)
                self._key.verify(encode_dss_signature(r, s), message, _ECDSA[alg])
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
                pad = PSS if alg is Algorithm.PS256 else _PKCS1
                self._key.verify(signature, message, pad, _SHA256)
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK with only its required members (RFC 7517, RFC 8037)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = CURVES[self.algorithm][1]
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


_EC_ALGORITHMS = {"secp256r1": Algorithm.ES256, "secp384r1": Algorithm.ES384}


def bind(key: object, algorithm: Algorithm | None) -> PublicKey:
    """Check that ``key`` is admissible for ``algorithm`` (inferred when unambiguous)."""
    algorithm = _admissible(key, algorithm)
    spki = key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(algorithm, spki, key)  # type: ignore[arg-type]


def _admissible(key: object, algorithm: Algorithm | None) -> Algorithm:
    """The algorithm ``key`` is admitted for (see :func:`bind`).

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` for an inadmissible key or pairing.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        inferred = _EC_ALGORITHMS.get(key.curve.name)
        if inferred is None:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"unsupported elliptic curve {key.curve.name}"
            )
        algorithm = algorithm or inferred
        if algorithm is not inferred:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"{key.curve.name} key cannot be {algorithm.value}"
            )
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = algorithm or Algorithm.EDDSA
        if algorithm is not Algorithm.EDDSA:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"Ed25519 key cannot be {algorithm.value}"
            )
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        check_ed25519_point(raw)
    elif isinstance(key, rsa.RSAPublicKey):
        if algorithm is None:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, "an RSA key needs an explicit algorithm (PS256)"
            )
        if algorithm not in (Algorithm.PS256, Algorithm.RS256):
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, f"RSA key cannot be {algorithm.value}")
        if not 2048 <= key.key_size <= 4096:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"RSA modulus of {key.key_size} bits (2048-4096)"
            )
        numbers = key.public_numbers()
        if numbers.e != 65537:
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "RSA public exponent must be 65537")
        if numbers.n % 2 == 0:
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "RSA modulus is even")
        if has_roca_fingerprint(numbers.n):
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "RSA modulus has the ROCA fingerprint")
    else:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, f"unsupported key type {type(key).__name__}"
        )
    return algorithm


def load_pem(data: str | bytes, algorithm: Algorithm | None = None) -> PublicKey:
    """Load a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo).

    Raises:
        ConfigurationInvalid: ``ERR_KEY_PRIVATE`` for private key PEM, ``ERR_KEY_WEAK`` for an
            unparseable or inadmissible key.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if b"PRIVATE KEY" in raw:
        raise ConfigurationInvalid(Reason.ERR_KEY_PRIVATE, "PEM contains a private key")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "not a PEM public key") from e
    return bind(key, algorithm)


def load_spki_der(
    data: bytes, algorithm: Algorithm | None = None, *, stored: bool = False
) -> PublicKey:
    """Load a DER SubjectPublicKeyInfo (as stored by the registry).

    ``stored``: ``data`` is the registry's own row, which :func:`bind` encoded when the key was
    admitted and which the registry's state digest vouches for byte for byte; it is kept as it
    is instead of being encoded again (a third of the cost of loading 100,000 keys). Every
    admissibility check runs all the same.
    """
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "not a DER public key") from e
    if stored:
        return PublicKey(_admissible(key, algorithm), data, key)  # type: ignore[arg-type]
    return bind(key, algorithm)


def load_jwk(jwk: Mapping[str, Any], algorithm: Algorithm | None = None) -> PublicKey:
    """Load a public JWK (RFC 7517/7518/8037).

    Members are decoded strictly (canonical base64url, exact coordinate lengths, minimal RSA
    integers). An ``alg`` member, if present, must agree with ``algorithm``.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_PRIVATE`` if any private member is present,
            ``ERR_KEY_WEAK`` for anything malformed or inadmissible.
    """
    if has_private_members(jwk):
        raise ConfigurationInvalid(Reason.ERR_KEY_PRIVATE, "JWK contains private key material")
    named = jwk.get("alg")
    if named is not None:
        named_alg = Algorithm.from_name(named) if isinstance(named, str) else None
        if named_alg is None:
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "JWK names an unsupported algorithm")
        if algorithm is not None and named_alg is not algorithm:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, "JWK alg disagrees with the requested algorithm"
            )
        algorithm = named_alg

    def member(name: str) -> bytes:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"JWK member {name!r} missing or not a string"
            )
        try:
            return base64url.decode(value)
        except CodeRejected as e:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"JWK member {name!r} is not base64url"
            ) from e

    kty = jwk.get("kty")
    key: object
    try:
        if kty == "EC":
            crv = jwk.get("crv")
            curve_alg = _JWK_CURVES.get(crv) if isinstance(crv, str) else None
            if curve_alg is None:
                raise ConfigurationInvalid(
                    Reason.ERR_KEY_WEAK, f"unsupported JWK curve {str(crv)[:16]!r}"
                )
            curve_type, size, _ = CURVES[curve_alg]
            x, y = member("x"), member("y")
            if len(x) != size or len(y) != size:
                raise ConfigurationInvalid(
                    Reason.ERR_KEY_WEAK, "JWK EC coordinates have the wrong length"
                )
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve_type()
            ).public_key()
        elif kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "unsupported OKP curve")
            x = member("x")
            if len(x) != 32:
                raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key must be 32 bytes")
            check_ed25519_point(x)
            key = ed25519.Ed25519PublicKey.from_public_bytes(x)
        elif kty == "RSA":
            n, e = member("n"), member("e")
            if not n or not e or n[0] == 0 or e[0] == 0:
                raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "JWK RSA integers must be minimal")
            key = rsa.RSAPublicNumbers(
                int.from_bytes(e, "big"), int.from_bytes(n, "big")
            ).public_key()
        else:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"unsupported JWK key type {str(kty)[:16]!r}"
            )
    except ValueError as e:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, "JWK does not describe a valid public key"
        ) from e
    return bind(key, algorithm)


def ecdsa_der_to_raw(signature: bytes, algorithm: Algorithm) -> bytes:
    """Convert a DER ECDSA signature to raw ``r || s``, accepting only exact DER.

    BER forms (long-form lengths, leading zeros, trailing bytes) are refused by re-encoding and
    comparing, and values too large for the curve's field size are refused.

    Raises:
        CodeRejected: ``ERR_SIG_ENCODING``.
    """
    if algorithm not in CURVES:
        raise ValueError(f"{algorithm.value} is not ECDSA")
    size = CURVES[algorithm][1]
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
