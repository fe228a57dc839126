"""The frozen objects a translation profile compiles into (see docs/profiles.md).

A profile is data: it says how a region's codes are wrapped (envelope), where each fact lives in
the signed payload (field paths), how local states map to canonical colours, how times are
written and how long a code stays valid. It is validated once, when loaded; verification only
reads these objects.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import Colour, ProfileId


class EnvelopeFormat(enum.Enum):
    JWS = "jws"
    """Compact JWS (RFC 7515)."""
    COSE = "cose"
    """COSE_Sign1 (RFC 9052)."""
    DELIMITED = "delimited"
    """Delimited text fields followed by a detached signature over everything before it."""
    ONLINE = "online"
    """An opaque token in a URL; the issuer's verification API answers with a signed JWS."""


class TextForm(enum.Enum):
    COMPACT = "compact"
    NUMERIC = "numeric"
    """``prefix`` then two decimal digits per character of a compact JWS (``ord(c) - 45``),
    as SMART Health Cards QR codes carry it."""
    BASE45_ZLIB = "base45-zlib"
    DELIMITED = "delimited"
    URL = "url"


class KeyIdRule(enum.Enum):
    """How an issuer's key ids relate to its keys (checked when a key is registered)."""

    ANY = "any"
    """Any key id the issuer chooses."""
    JWK_THUMBPRINT = "jwk-thumbprint"
    """The RFC 7638 SHA-256 thumbprint of the key (SMART Health Cards)."""
    X509_SHA256_8 = "x509-sha256-8"
    """The first 8 bytes of the SHA-256 of the signer's X.509 certificate, in standard base64
    (EU DCC); the key must be registered from its certificate."""


class PayloadFormat(enum.Enum):
    JSON = "json"
    CBOR = "cbor"
    DELIMITED = "delimited"


# The compact JWS shape: base64url of a JSON object that begins with '{"'.
JWS_SHAPE: Final = "eyJ"


@dataclass(frozen=True, slots=True)
class EnvelopeSpec:
    """How a code is wrapped and encoded, and so how the gateway recognises it by its start.

    Issuers whose codes start alike (the same route) must share the whole spec but
    :attr:`algorithms` (:meth:`decodes_like`), so that a code can be decoded before its issuer is
    known. Online codes are routed by each issuer's own URL prefix.
    """

    format: EnvelopeFormat
    text: TextForm
    payload: PayloadFormat
    prefix: str = ""
    delimiter: str = ""
    fields: tuple[str, ...] = ()
    kid_field: str = ""
    compression: str = ""
    """``"DEF"``: the JWS header must say ``zip: DEF`` and the payload is raw DEFLATE."""
    date_tags: bool = False
    """CBOR payloads only: accept tags 0 (date/time text) and 1 (epoch) on values (EU DCC)."""
    key_id: KeyIdRule = KeyIdRule.ANY
    algorithms: tuple[Algorithm, ...] = ()
    """The signature algorithms this format allows (EU DCC: ES256 and PS256); empty for every
    algorithm the gateway admits. The registry refuses other keys for issuers of the profile, and
    verification refuses codes from such keys all the same."""

    def admits(self, algorithm: Algorithm) -> bool:
        return not self.algorithms or algorithm in self.algorithms

    def decodes_like(self, other: EnvelopeSpec) -> bool:
        """Whether codes of both specs decode alike: every field but :attr:`algorithms`, which
        restricts each issuer's own keys (step 6 checks it per key), not how a code is read."""
        return replace(self, algorithms=()) == replace(other, algorithms=())

    @property
    def route(self) -> str:
        """The text codes of this envelope start with (online issuers have their own)."""
        return self.prefix if self.prefix else JWS_SHAPE


_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_SEGMENT = re.compile(rf"(?P<name>{_NAME})|(?P<int>-?[0-9]+)|\"(?P<quoted>[^\"\\]*)\"")
PATH_SEGMENT: Final = re.sub(r"\?P<[a-z]+>", "?:", _SEGMENT.pattern)
"""One segment of a field path (a name, an integer, or a quoted key), without named groups."""

Segment = str | int


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
MAX_PATH_SEGMENTS: Final = 12


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A path into a decoded payload, such as ``hc``, ``-260.1.v.0.dn`` or ``meta."0"``.

    Segments are separated by dots. A bare name selects a text map key; an integer selects an
    integer map key (CBOR) or a list index; a double-quoted segment selects a text key verbatim
    (for keys that look like numbers or contain other characters). Boolean map keys never occur:
    the strict decoders refuse them.
    """

    text: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Raises ValueError with a message naming the position of the first problem."""
        if not text:
            raise ValueError("empty field path")
        segments: list[Segment] = []
        pos = 0
        while True:
            m = _SEGMENT.match(text, pos)
            if m is None:
                raise ValueError(f"field path {text!r}: cannot read a segment at position {pos}")
            if m.group("int") is not None:
                segments.append(int(m.group("int")))
            else:
                segments.append(m.group("name") or m.group("quoted") or "")
            pos = m.end()
            if pos == len(text):
                break
            if text[pos] != ".":
                raise ValueError(f"field path {text!r}: expected '.' at position {pos}")
            pos += 1
        if len(segments) > MAX_PATH_SEGMENTS:
            raise ValueError(f"field path {text!r}: more than {MAX_PATH_SEGMENTS} segments")
        return cls(text, tuple(segments))

    def get(self, document: Any) -> Any:
        """The value at this path, or :data:`MISSING`. Never raises on any decoded payload."""
        current = document
        for segment in self.segments:
            if isinstance(current, dict):
                current = current.get(segment, MISSING)
                if current is MISSING:
                    return MISSING
            elif isinstance(current, list) and isinstance(segment, int):
                if not 0 <= segment < len(current):
                    return MISSING
                current = current[segment]
            else:
                return MISSING
        return current


class TimeFormat(enum.Enum):
    UNIX_S = "unix-s"
    UNIX_MS = "unix-ms"
    NUMERIC_DATE = "numeric-date"
    """RFC 7519 NumericDate: seconds since the epoch, an integer or a finite fraction (JWT)."""
    ISO8601 = "iso8601"
    """RFC 3339 date-time with a mandatory offset, such as ``2022-04-01T10:00:00+08:00``."""
    DATE = "date"
    """A calendar date ``YYYY-MM-DD``, read as its first instant in UTC (EU DCC dates)."""
    LOCAL = "local"
    """Local wall-clock text in a named time zone, written as ``pattern`` says."""


@dataclass(frozen=True, slots=True)
class TimeField:
    path: FieldPath
    format: TimeFormat
    pattern: str = ""
    """For ``local``: the pattern letters ``YYYY MM DD HH mm`` (``ss`` optional), quoted literals
    and separators (see :func:`gateway.profiles.times.compile_pattern`)."""
    zone: ZoneInfo | None = None
    optional: bool = False
    """Expiry only: a code may leave it out (the profile's other expiry sources then apply)."""


class StateType(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class StateField:
    path: FieldPath
    type: StateType = StateType.TEXT


@dataclass(frozen=True, slots=True)
class IdentityField:
    scheme: IdentityScheme
    path: FieldPath | None = None
    """The number (``cn-resident-id``) or the sealed pseudonym (``pseudonym``)."""
    masked: FieldPath | None = None
    link: FieldPath | None = None
    family: FieldPath | None = None
    """``name-dob``: the family name, the given name and the date of birth."""
    given: FieldPath | None = None
    birth: FieldPath | None = None


class Test(enum.Enum):
    """What a colour rule's condition checks at its path (see docs/profiles.md)."""

    EQUALS = "equals"
    IN = "in"
    PRESENT = "present"
    WITHIN = "within"
    OLDER_THAN = "older_than"
    AT_LEAST = "at_least"
    AT_LEAST_PATH = "at_least_path"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on the value at ``path``. A missing or ill-typed value never satisfies it."""

    path: FieldPath
    test: Test
    value: Any = None
    """``equals``: text or integer; ``in``: a tuple of them; ``present``: a bool;
    ``within``/``older_than``: a timedelta; ``at_least``: an integer."""
    format: TimeFormat | None = None
    other: FieldPath | None = None
    """``at_least_path``: the value must be at least the integer at this path."""
    where: tuple[Condition, ...] = ()
    """``count``: the conditions each element of the list must meet (paths inside it)."""
    time: TimeField | None = field(init=False, repr=False, compare=False, default=None)
    """``within``/``older_than``: how the value at ``path`` is read (derived once)."""

    def __post_init__(self) -> None:
        if self.format is not None:
            object.__setattr__(self, "time", TimeField(self.path, self.format))


@dataclass(frozen=True, slots=True)
class ColourRule:
    name: str
    """Becomes the code's local state when this rule decides."""
    colour: Colour
    when: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ColourRules:
    """For formats without colours (EU DCC, SMART Health Cards): the first rule whose conditions
    all hold gives the colour; if none does, ``otherwise`` (never GREEN)."""

    rules: tuple[ColourRule, ...]
    otherwise: Colour
    otherwise_name: str


@dataclass(frozen=True, slots=True)
class Degrade:
    """A verified ``source`` colour reads as the more severe ``target`` once ``after`` has passed
    since issue (Hubei: a green older than 3 days reads as yellow)."""

    source: Colour
    target: Colour
    after: timedelta


@dataclass(frozen=True, slots=True)
class Validity:
    max: timedelta | None = None
    """The longest validity a code may claim (``expires_at - issued_at``)."""
    duration: timedelta | None = None
    """Expiry is the issue time plus this."""
    end_of_day: ZoneInfo | None = None
    """Expiry is midnight after the issue time, in this zone."""
    degrade: tuple[Degrade, ...] = ()
    inclusive_expiry: bool = False
    """A code is still valid at the instant of its expiry (EU DCC: ``iat <= now <= exp``);
    by default it is not (RFC 7519: now must be before ``exp``)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated translation profile. Build with :func:`gateway.profiles.load_profile`."""

    id: ProfileId
    version: int
    description: str
    envelope: EnvelopeSpec
    issuer: FieldPath | None
    issued_at: TimeField
    expires_at: TimeField | None
    state: StateField | None
    identity: IdentityField
    states: Mapping[str, Colour]
    """Local state -> colour, in the profile's order (least to most severe)."""
    validity: Validity
    source_sha256: str
    """SHA-256 of the exact text the profile was loaded from."""
    canonical_sha256: str
    """SHA-256 of the TOML data the text holds, key for key and in its order: two texts that
    differ only in comments, spacing, quoting, escapes or table layout (``[a.b]`` or an inline
    table) have the same one. The registry treats them as the same content."""
    rules: ColourRules | None = None
    """Colours from conditions, for formats without colours (instead of ``state``/``states``)."""
    kinds: Mapping[str, FieldPath] = field(default_factory=dict)
    """Kinds of certificate, each present when its path is (EU DCC: test, vaccination,
    recovery); a key restricted to some kinds may sign only those."""
    revocation_id: FieldPath | None = None
    """Where a code carries the id its issuer revokes it by (SMART Health Cards ``vc.rid``)."""
    not_before: TimeField | None = None
    """The instant a code becomes valid, when it says one (CWT ``nbf``); before it the code is
    not yet valid."""
    issuer_region: FieldPath | None = None
    """Where the payload names its issuer's region (EU DCC: CWT ``iss``, the country): it must
    equal the signing issuer's registered region exactly, and a code without it is refused."""
    destination: FieldPath | None = None
    """Where the payload names the region the code was made for (a transfer attestation's
    destination): required, and a region code, in every code of the profile."""
    notes: Mapping[str, str] = field(default_factory=dict)
    """Local state -> what the region says it means, for the states that have a note: one line
    for people, carried in a VALID verdict's detail when a code has that state."""

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"


SEVERITY: Final = {Colour.GREEN: 0, Colour.YELLOW: 1, Colour.RED: 2}
"""Severity of the colours that have one. GREY (no usable colour) is outside this order."""
