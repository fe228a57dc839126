"""Private keys: signing, for the simulated regional issuers, proofs of possession and the
hub's own signed documents (never the verify path)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.codecs.algorithms import Algorithm
from gateway.crypto.keys import CURVES, PSS, PublicKey, bind
from gateway.errors import ConfigurationInvalid
from gateway.model import Reason


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A signing key, used by the simulated regional issuers (never by the verify path)."""

    algorithm: Algorithm
    _key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = field(
        repr=False
    )
    deterministic: bool = False
    """ECDSA nonces derived from the key and message (RFC 6979) rather than random, so one
    message always gets one signature: for test vectors."""

    @classmethod
    def generate(cls, algorithm: Algorithm) -> PrivateKey:
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        if algorithm in CURVES:
            key = ec.generate_private_key(CURVES[algorithm][0]())
        elif algorithm is Algorithm.EDDSA:
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(algorithm, key)

    @classmethod
    def from_secret(cls, algorithm: Algorithm, secret: bytes) -> PrivateKey:
        """A fixed key from its raw secret, for test vectors (never for a real issuer): the
        32-byte seed of an Ed25519 key (RFC 8032), or the big-endian private scalar of an
        ES256 or ES384 key, as many bytes as the curve's order. Its ECDSA signatures are
        deterministic (RFC 6979), as Ed25519's always are.

        Raises:
            ValueError: for another algorithm, a secret of the wrong length, or a scalar
                outside 1 .. n - 1.
        """
        if algorithm is Algorithm.EDDSA:
            if len(secret) != 32:
                raise ValueError("an Ed25519 seed is 32 bytes")
            return cls(algorithm, ed25519.Ed25519PrivateKey.from_private_bytes(secret))
        if algorithm not in CURVES:
            raise ValueError(f"no fixed {algorithm.value} keys")
        curve, size, _ = CURVES[algorithm]
        if len(secret) != size:
            raise ValueError(f"an {algorithm.value} private scalar is {size} bytes")
        scalar = int.from_bytes(secret, "big")
        return cls(algorithm, ec.derive_private_key(scalar, curve()), deterministic=True)

    @classmethod
    def from_pem(cls, data: bytes, algorithm: Algorithm) -> PrivateKey:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        ):
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "unsupported private key type")
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
        return bind(self._key.public_key(), self.algorithm)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; ECDSA signatures are returned as raw ``r || s``."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            _, size, digest = CURVES[self.algorithm]
            ecdsa = ec.ECDSA(digest, deterministic_signing=self.deterministic)
            r, s = decode_dss_signature(key.sign(message, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        pad = PSS if self.algorithm is Algorithm.PS256 else padding.PKCS1v15()
        return key.sign(message, pad, hashes.SHA256())
