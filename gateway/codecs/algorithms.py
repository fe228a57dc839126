"""Signature algorithms as codes name them: JOSE names (RFC 7518, RFC 8037) and COSE ids
(RFC 9053). Wire vocabulary only: what each algorithm *does* is :mod:`gateway.crypto`'s, which
implements them; the codecs need nothing from it.
"""

from __future__ import annotations

import enum
from typing import Protocol


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


class Signer(Protocol):
    """What signs a JWS or COSE message (an issuer's :class:`gateway.crypto.PrivateKey`)."""

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, message: bytes) -> bytes:
        """The signature over ``message`` as JWS and COSE carry it (ECDSA as raw ``r || s``)."""
        ...
