"""Identity: masking for verifiers and pseudonymous subject references that link codes.

Regions carry identity in three ways (:class:`IdentityScheme`):

- ``cn-resident-id``: the full 18-character number inside the signed payload;
- ``masked-link``: a masked number plus a **link hash**,
  ``HMAC-SHA-256(K_link, "cn-resident-id" || 0x00 || number)`` (:func:`link_hash`), keyed with
  the national linking key the hub gives to regions that must not carry the number;
- ``pseudonym``: the number encrypted deterministically (AES-SIV, RFC 5297) under a key the region
  shares with the hub, with the issuer's id as the one associated-data component, so the
  region's codes carry a stable pseudonym nobody else can read (:mod:`gateway.crypto.pseudonyms`).

All three converge on the same link value ``L``: the gateway computes ``L`` itself from a full or
decrypted number, or takes it from a masked-link code. What leaves the gateway is

- a **masked identity** (``330*************28``), the same shape whatever the region sent;
- a **subject reference** ``s1.<base64url>`` = ``HMAC-SHA-256(K_subject, L)[:16]`` under a key only
  the gateway holds, so verdicts never expose ``L`` itself.

Raw numbers exist only in memory during one verification: never stored, logged or returned. See
docs/identity.md for the trade-offs.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import operator
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from gateway.codecs import base64url
from gateway.model import PROVINCE_PREFIXES, SubjectRef

SECRET_BYTES = 32
LINK_BYTES = 32
# Separates an online code's text from any signed content in the code reference's HMAC (signed
# payloads are JSON or CBOR maps, or delimited text that starts with an upper-case prefix).
_ONLINE_CODE = b"huren/online-code\x00"


class IdentityScheme(enum.Enum):
    CN_RESIDENT_ID = "cn-resident-id"
    MASKED_LINK = "masked-link"
    PSEUDONYM = "pseudonym"
    NAME_DOB = "name-dob"
    """Name and date of birth (EU DCC, SMART Health Cards): no identity number exists."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An identity resolved from a verified payload: what the gateway shows and links by.

    ``masked`` is already in the gateway's uniform masked form; ``link`` is the link value ``L``
    (never shown: the subject reference is derived from it). ``repr`` shows neither.
    """

    masked: str = field(repr=False)
    link: bytes = field(repr=False)


_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_MASKED = re.compile(r"[0-9]{3}[0-9*]{13}[0-9X]{2}")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ZERO_OFFSET = ord("0") * sum(_WEIGHTS)


def is_cn_resident_id(text: str) -> bool:
    """True for a well-formed GB 11643 number: province prefix, real birth date, check digit."""
    return resident_id_problem(text) is None


def resident_id_problem(text: str) -> str | None:
    """What makes ``text`` not a well-formed GB 11643 number, or None if it is one.

    The answer never quotes the text (it may be a real person's number).
    """
    if not _RESIDENT_ID.fullmatch(text):
        return "it must be 18 characters: 17 digits, then a digit or an upper-case X"
    if text[:2] not in PROVINCE_PREFIXES:
        return "its first two digits are not a province code"
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return "characters 7 to 14 are not a real date of birth"
    if born.year < 1900:
        return "its date of birth is before 1900"
    if resident_id_check_char(text[:17]) != text[17]:
        return "its check character (the 18th) does not match the first 17 digits"
    return None


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for 17 leading digits (used by issuers and tests)."""
    if not (len(first17) == 17 and first17.isascii() and first17.isdigit()):
        raise ValueError("17 digits are needed")
    # Weighted over the ASCII codes: each digit is its code minus 48 ("0"), so the sum of the
    # digits' products is the codes' minus 48 times the sum of the weights.
    total = sum(map(operator.mul, first17.encode(), _WEIGHTS)) - _ZERO_OFFSET
    return _CHECK[total % 11]


def mask_number(number: str) -> str:
    """Keep the first 3 and last 2 characters; mask the rest (birth date included)."""
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def normalise_masked(text: str) -> str | None:
    """A region's masked number in the gateway's uniform form, or None if it is malformed or
    hides a character the uniform form shows (the first 3 and the last 2)."""
    if not _MASKED.fullmatch(text):
        return None
    return mask_number(text)


_LINK_PREFIX = IdentityScheme.CN_RESIDENT_ID.value.encode("ascii") + b"\x00"


def link_hash(link_key: bytes, number: str) -> bytes:
    """``L`` for a full number: what masked-link regions put in their codes, and what the
    gateway computes for full and pseudonymous numbers."""
    return hmac.digest(link_key, _LINK_PREFIX + number.encode(), hashlib.sha256)


class IdentityKeys:
    """The gateway's identity secrets: the national linking key and the subject key."""

    __slots__ = ("_code", "_link", "_subject")

    def __init__(self, subject_secret: bytes, link_key: bytes) -> None:
        if len(subject_secret) < SECRET_BYTES or len(link_key) < SECRET_BYTES:
            raise ValueError(f"identity keys must be at least {SECRET_BYTES} bytes")
        # Independent keys derived from the subject secret, so references never collide.
        self._subject = hmac.digest(subject_secret, b"huren/subject/v2", hashlib.sha256)
        self._code = hmac.digest(subject_secret, b"huren/code/v1", hashlib.sha256)
        self._link = link_key

    def __repr__(self) -> str:
        return "IdentityKeys(<secret>)"

    def from_number(self, number: str) -> Identity:
        """The identity of a full (or decrypted) resident id number."""
        return Identity(mask_number(number), link_hash(self._link, number))

    def from_name_dob(self, family: str, given: str, birth: str) -> Identity:
        """The identity of a person known by name and date of birth (EU DCC, SMART Health
        Cards). Names are compared after Unicode NFKC, case folding and collapsing spaces; the
        masked form shows initials and the year of birth."""
        names = [
            " ".join(unicodedata.normalize("NFKC", n).casefold().split()) for n in (family, given)
        ]
        # Each part length-prefixed: no split of the same characters between the family and
        # the given name (a NUL inside a name, say) can give another person's message.
        parts = [IdentityScheme.NAME_DOB.value, *names, birth]
        message = b"".join(
            len(encoded).to_bytes(4, "big") + encoded for encoded in (p.encode() for p in parts)
        )
        initials = " ".join(f"{n[0].upper()}***" for n in names if n) or "***"
        year = birth[:4] or "????"
        return Identity(f"{initials}, {year}", hmac.digest(self._link, message, hashlib.sha256))

    def subject(self, identity: Identity) -> SubjectRef:
        digest = hmac.digest(self._subject, identity.link, hashlib.sha256)[:16]
        return SubjectRef("s1." + base64url.encode(digest))

    def code_ref(self, signed_content: bytes) -> str:
        """A short keyed digest of a code's signed content, for logs and provenance.

        Keyed on the signed content, not the signature or text: a malleated ECDSA signature
        (``s -> n - s``) of the same content gets the same reference (threats.md, pitfall 3).
        """
        return "c1." + base64url.encode(
            hmac.digest(self._code, signed_content, hashlib.sha256)[:12]
        )

    def online_code_ref(self, code: str) -> str:
        """The reference of an online code: a keyed digest of the code's own text.

        An online code (a URL with an opaque token) holds no signed content; the issuer's
        answer does, but it echoes a fresh nonce every time, so its digest would give the same
        code a new reference at every verification. The text is the whole code and has one
        spelling (:func:`gateway.online.token_of` accepts no variants), so the same code always
        has the same reference and different tokens have different ones.
        """
        return self.code_ref(_ONLINE_CODE + code.encode("ascii"))
