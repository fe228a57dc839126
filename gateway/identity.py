"""Identity: masking for verifiers and pseudonymous subject references for linking codes.

Raw identity numbers exist only transiently, inside one verification, and are never stored,
logged or returned. What leaves the gateway is:

- a **masked identity** (``330*************2X``): enough for a checkpoint to compare with the card
  in front of it, not enough to recover the number;
- a **subject reference** ``s1.<base64url>``: HMAC-SHA-256 under the gateway's secret subject key
  over the scheme and the normalised number, truncated to 128 bits. The same person gets the
  same reference from every region; without the key the reference cannot be tested against
  guessed numbers (an unkeyed hash of an 18-digit number with a known structure could).

Replicas that must agree on references share the subject key; rotating it unlinks all earlier
references (see docs/identity.md).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import operator
import re
from dataclasses import dataclass, field
from datetime import date

from gateway.codecs import base64url
from gateway.model import PROVINCE_PREFIXES, SubjectRef

SUBJECT_KEY_BYTES = 32


class IdentityScheme(enum.Enum):
    CN_RESIDENT_ID = "cn-resident-id"
    """An 18-character PRC resident identity number (GB 11643), carried in full in the payload."""


@dataclass(frozen=True, slots=True)
class IdentityClaim:
    """An identity read from a verified payload. ``repr`` never shows the value."""

    scheme: IdentityScheme
    value: str = field(repr=False)


_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def is_cn_resident_id(text: str) -> bool:
    """True for a well-formed GB 11643 number: province prefix, real birth date, check digit."""
    if not _RESIDENT_ID.fullmatch(text) or text[:2] not in PROVINCE_PREFIXES:
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    if born.year < 1900:
        return False
    return resident_id_check_char(text[:17]) == text[17]


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for 17 leading digits (used by issuers and tests)."""
    total = sum(map(operator.mul, map(int, first17), _WEIGHTS))
    return _CHECK[total % 11]


def mask(claim: IdentityClaim) -> str:
    """Keep the first 3 and last 2 characters; mask the rest (birth date included)."""
    value = claim.value
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


class SubjectKeys:
    """Derives subject references and code references under the gateway's secret key."""

    __slots__ = ("_code", "_subject")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SUBJECT_KEY_BYTES:
            raise ValueError(f"subject key must be at least {SUBJECT_KEY_BYTES} bytes")
        # Two independent keys, so that code references and subject references never collide.
        self._subject = hmac.digest(secret, b"huren/subject/v1", hashlib.sha256)
        self._code = hmac.digest(secret, b"huren/code/v1", hashlib.sha256)

    def __repr__(self) -> str:
        return "SubjectKeys(<secret>)"

    def subject(self, claim: IdentityClaim) -> SubjectRef:
        message = claim.scheme.value.encode("ascii") + b"\x00" + claim.value.encode("utf-8")
        digest = hmac.digest(self._subject, message, hashlib.sha256)[:16]
        return SubjectRef("s1." + base64url.encode(digest))

    def code_ref(self, signed_content: bytes) -> str:
        """A short keyed digest of a code's signed content, for logs and provenance.

        Keyed on the signed content, not the signature or text: a malleated ECDSA signature
        (``s -> n - s``) of the same content gets the same reference (threats.md, pitfall 3).
        """
        return "c1." + base64url.encode(
            hmac.digest(self._code, signed_content, hashlib.sha256)[:12]
        )
