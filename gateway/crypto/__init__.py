"""Signatures and keys: with :mod:`gateway.crypto.pki`, the only code importing pyca/cryptography.

Verification takes the signature exactly as carried by JWS and COSE (raw ``r || s`` for ECDSA,
64 bytes for Ed25519, modulus-sized for RSA) and never repairs it: a wrong length is
``ERR_SIG_ENCODING``, anything else that does not verify is simply invalid. The algorithm is a
property of the registered key, never of the code's header.

Keys are admitted only if they are safe (see :func:`check_admissible`): RSA 2048-4096 bits with
e = 65537, the curve the algorithm names, and Ed25519 points that are canonically encoded and not
of small order (cryptography accepts those, and the identity point verifies forged signatures).
"""

from gateway.codecs.algorithms import Algorithm
from gateway.crypto.certificates import Certificate, certificate_kid, load_certificate
from gateway.crypto.ed25519 import check_ed25519_point
from gateway.crypto.keys import (
    ADMISSIBLE,
    PublicKey,
    ecdsa_der_to_raw,
    has_private_members,
    has_roca_fingerprint,
    load_jwk,
    load_pem,
    load_spki_der,
)
from gateway.crypto.pseudonyms import (
    PSEUDONYM_KEY_BYTES,
    check_pseudonym_key,
    open_pseudonym,
    seal_pseudonym,
)
from gateway.crypto.signing import PrivateKey

__all__ = [
    "ADMISSIBLE",
    "PSEUDONYM_KEY_BYTES",
    "Algorithm",
    "Certificate",
    "PrivateKey",
    "PublicKey",
    "certificate_kid",
    "check_ed25519_point",
    "check_pseudonym_key",
    "ecdsa_der_to_raw",
    "has_private_members",
    "has_roca_fingerprint",
    "load_certificate",
    "load_jwk",
    "load_pem",
    "load_spki_der",
    "open_pseudonym",
    "seal_pseudonym",
]
