"""The typed, immutable model shared by every layer of the gateway.

Everything past the parsing boundary works with these frozen dataclasses; protobuf messages exist
only at the transport edge (``gateway.server``). A :class:`Verdict` cannot be GREEN unless it is
VALID: the effective colour is derived, never stored separately (fail closed by construction).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NewType

RegionCode = NewType("RegionCode", str)
"""A GB/T 2260 administrative division code such as ``330100`` (Hangzhou)."""
IssuerId = NewType("IssuerId", str)
KeyId = NewType("KeyId", str)
ProfileId = NewType("ProfileId", str)
SubjectRef = NewType("SubjectRef", str)
"""Pseudonymous subject reference, derived by the gateway with a secret key."""

_REGION_CODE = re.compile(r"^[1-8][0-9]{5}$")
NATIONAL_REGION = RegionCode("100000")
"""GB/T 2260's code for the whole country (全国): the pseudo-region of the hub's own issuer of
transfer attestations (docs/transfer.md). It contains no other region, and no region contains it."""
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
# GB/T 2260 province-level prefixes (the first two digits of every valid code).
PROVINCE_PREFIXES = frozenset(
    {
        *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36"),
        *("37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62"),
        *("63", "64", "65", "71", "81", "82"),
    }
)


def parse_region_code(text: str) -> RegionCode:
    """Return ``text`` as a :data:`RegionCode`: a GB/T 2260 code for a region of China, or an
    ISO 3166-1 alpha-2 country code for an issuer abroad (EU DCC countries, ``US`` for SMART
    Health Cards issuers).

    Raises:
        ValueError: unless ``text`` is six ASCII digits with a known province prefix, or two
            upper-case ASCII letters other than ``CN`` (China's regions have their own codes).
    """
    if _COUNTRY_CODE.fullmatch(text) and text != "CN":
        return RegionCode(text)
    if text == NATIONAL_REGION:
        return NATIONAL_REGION
    if not _REGION_CODE.fullmatch(text) or text[:2] not in PROVINCE_PREFIXES:
        raise ValueError(f"not a GB/T 2260 region code or ISO 3166 country code: {text[:16]!r}")
    return RegionCode(text)


def region_prefix(code: RegionCode) -> str:
    """The digits that matter: a province (``330000``) is ``33``, a city (``330100``) ``3301``,
    a county (``330106``) all six."""
    stripped: str = code
    while stripped.endswith("00") and len(stripped) > 2:
        stripped = stripped[:-2]
    return stripped


def region_contains(outer: RegionCode, inner: RegionCode) -> bool:
    """True if ``inner`` is ``outer`` or lies within it (Hangzhou 330100 within Zhejiang
    330000; a Beijing district within Beijing 110000)."""
    return inner.startswith(region_prefix(outer))


def format_span(delta: timedelta) -> str:
    """A duration for people: ``6h``, ``3d``, ``30m``, ``30h12m`` (whole minutes above an hour)."""
    seconds = int(delta.total_seconds())
    if seconds >= 4 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h" if rest < 60 else f"{hours}h{rest // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class Status(enum.Enum):
    """Whether a code could be trusted."""

    VALID = "VALID"
    REJECTED = "REJECTED"
    UNVERIFIABLE = "UNVERIFIABLE"


class Colour(enum.Enum):
    """The canonical colour. GREY means no usable colour (pending, or not VALID)."""

    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"
    GREY = "GREY"


class Reason(enum.Enum):
    """The project's one reason enum. ``OK`` only ever accompanies a VALID verdict."""

    OK = "OK"
    ERR_EMPTY = "ERR_EMPTY"
    ERR_FORMAT_UNKNOWN = "ERR_FORMAT_UNKNOWN"
    ERR_FORMAT_UNSUPPORTED = "ERR_FORMAT_UNSUPPORTED"
    ERR_TOO_LARGE = "ERR_TOO_LARGE"
    ERR_ENCODING = "ERR_ENCODING"
    ERR_TRAILING_DATA = "ERR_TRAILING_DATA"
    ERR_CHUNKS = "ERR_CHUNKS"
    ERR_BASE45 = "ERR_BASE45"
    ERR_BASE64 = "ERR_BASE64"
    ERR_NUMERIC = "ERR_NUMERIC"
    ERR_JWS_FORMAT = "ERR_JWS_FORMAT"
    ERR_UTF8 = "ERR_UTF8"
    ERR_DECOMPRESS = "ERR_DECOMPRESS"
    ERR_DECOMPRESSED_TOO_LARGE = "ERR_DECOMPRESSED_TOO_LARGE"
    ERR_COSE_STRUCTURE = "ERR_COSE_STRUCTURE"
    ERR_CBOR = "ERR_CBOR"
    ERR_CBOR_TAG = "ERR_CBOR_TAG"
    ERR_DUPLICATE_KEY = "ERR_DUPLICATE_KEY"
    ERR_NONCANONICAL = "ERR_NONCANONICAL"
    ERR_TOO_DEEP = "ERR_TOO_DEEP"
    ERR_HEADER = "ERR_HEADER"
    ERR_ALG_NOT_ALLOWED = "ERR_ALG_NOT_ALLOWED"
    ERR_SIG_ENCODING = "ERR_SIG_ENCODING"
    ERR_SIGNATURE = "ERR_SIGNATURE"
    ERR_KEY_UNKNOWN = "ERR_KEY_UNKNOWN"
    ERR_KEY_REVOKED = "ERR_KEY_REVOKED"
    ERR_KEY_NOT_VALID = "ERR_KEY_NOT_VALID"
    ERR_KEY_USAGE = "ERR_KEY_USAGE"
    ERR_ISSUER_UNKNOWN = "ERR_ISSUER_UNKNOWN"
    ERR_ISSUER_MISMATCH = "ERR_ISSUER_MISMATCH"
    ERR_CLAIMS = "ERR_CLAIMS"
    ERR_SCHEMA = "ERR_SCHEMA"
    ERR_EXPIRED = "ERR_EXPIRED"
    ERR_NOT_YET_VALID = "ERR_NOT_YET_VALID"
    ERR_TOO_OLD = "ERR_TOO_OLD"
    ERR_REVOKED = "ERR_REVOKED"
    ERR_COLOUR_UNKNOWN = "ERR_COLOUR_UNKNOWN"
    ERR_TRUST_STALE = "ERR_TRUST_STALE"
    ERR_CLOCK_UNTRUSTED = "ERR_CLOCK_UNTRUSTED"
    ERR_INTERNAL = "ERR_INTERNAL"
    # Registration reasons: why an issuer, key or profile was refused (never in a verdict).
    ERR_KEY_WEAK = "ERR_KEY_WEAK"
    ERR_KEY_PRIVATE = "ERR_KEY_PRIVATE"
    ERR_POP = "ERR_POP"
    ERR_IDENTIFIER = "ERR_IDENTIFIER"
    ERR_VERSION = "ERR_VERSION"
    ERR_REVOKED_KID = "ERR_REVOKED_KID"
    ERR_PROFILE = "ERR_PROFILE"
    # Added with the regional formats (appended: numbers in the proto are stable).
    ERR_ISSUER_UNAVAILABLE = "ERR_ISSUER_UNAVAILABLE"
    ERR_TOKEN_UNKNOWN = "ERR_TOKEN_UNKNOWN"
    ERR_ENVELOPE = "ERR_ENVELOPE"
    # Added with mutual recognition: a precedence policy was refused (never in a verdict).
    ERR_POLICY = "ERR_POLICY"
    # Added with the Registrar: the hub administrator retired the code's issuer (a verdict), or
    # a change was asked of a retired issuer (a registration refusal).
    ERR_ISSUER_RETIRED = "ERR_ISSUER_RETIRED"
    # Added with verifier replicas: a secret the code needs (an issuer's pseudonym key, an
    # online issuer's client credentials) is not on this gateway (a replica's trust list has none).
    ERR_SECRET_UNAVAILABLE = "ERR_SECRET_UNAVAILABLE"

    @property
    def status(self) -> Status:
        """The verdict status this reason implies: temporary failures are UNVERIFIABLE."""
        if self is Reason.OK:
            return Status.VALID
        if self in _TEMPORARY:
            return Status.UNVERIFIABLE
        return Status.REJECTED


_TEMPORARY = frozenset(
    {
        Reason.ERR_TRUST_STALE,
        Reason.ERR_CLOCK_UNTRUSTED,
        Reason.ERR_ISSUER_UNAVAILABLE,
        Reason.ERR_SECRET_UNAVAILABLE,
    }
)


@dataclass(frozen=True, slots=True)
class CanonicalCode:
    """A region's code after verification and translation into the one canonical shape."""

    colour: Colour
    region: RegionCode
    issuer: IssuerId
    issued_at: datetime
    expires_at: datetime
    local_state: str
    masked_identity: str
    subject: SubjectRef
    destination: RegionCode | None = None
    """The region the code was made for, where its profile reads one (``claims.destination``:
    a transfer attestation names the destination whose policy decided it); None otherwise."""
    link: bytes = field(default=b"", repr=False, compare=False)
    """The identity link value ``L`` the subject reference is derived from (docs/identity.md),
    in this process only: never converted to a message, shown or logged. The hub binds a
    transfer attestation to the traveller with it (docs/transfer.md); empty where unknown."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """What produced a verdict, as far as it got: enough to explain and audit it.

    Every field is filled from trusted data (the registry) or from verified content; fields the
    pipeline did not reach stay empty.
    """

    region: RegionCode | None = None
    issuer: IssuerId | None = None
    kid: KeyId | None = None
    profile_id: ProfileId | None = None
    profile_version: int | None = None
    trust_version: int | None = None
    code_ref: str | None = None
    destination: RegionCode | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gateway's answer for one code.

    Invariants (checked on construction): a VALID verdict has reason ``OK`` and a canonical code;
    any other verdict has no code, so its effective :attr:`colour` is GREY.
    """

    status: Status
    reason: Reason
    detail: str
    provenance: Provenance
    verified_at: datetime
    code: CanonicalCode | None = None

    def __post_init__(self) -> None:
        if self.reason.status is not self.status:
            raise ValueError(
                f"reason {self.reason.value} does not imply status {self.status.value}"
            )
        if (self.status is Status.VALID) != (self.code is not None):
            raise ValueError("a canonical code is present exactly when the verdict is VALID")

    @property
    def colour(self) -> Colour:
        """The effective colour: the code's colour when VALID, GREY otherwise."""
        return self.code.colour if self.code is not None else Colour.GREY

    @classmethod
    def valid(
        cls,
        code: CanonicalCode,
        provenance: Provenance,
        verified_at: datetime,
        detail: str = "verified",
    ) -> Verdict:
        return cls(Status.VALID, Reason.OK, detail, provenance, verified_at, code)

    @classmethod
    def failed(
        cls, reason: Reason, detail: str, provenance: Provenance, verified_at: datetime
    ) -> Verdict:
        """A non-VALID verdict; its status follows from the reason."""
        return cls(reason.status, reason, detail, provenance, verified_at)
