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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

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
    BASE45_ZLIB = "base45-zlib"
    DELIMITED = "delimited"
    URL = "url"


class PayloadFormat(enum.Enum):
    JSON = "json"
    CBOR = "cbor"
    DELIMITED = "delimited"


# The compact JWS shape: base64url of a JSON object that begins with '{"'.
JWS_SHAPE: Final = "eyJ"


@dataclass(frozen=True, slots=True)
class EnvelopeSpec:
    """How a code is wrapped and encoded, and so how the gateway recognises it by its start.

    Issuers whose codes start alike (the same route) must share the whole spec, so that a code can
    be decoded before its issuer is known. Online codes are routed by each issuer's own URL prefix.
    """

    format: EnvelopeFormat
    text: TextForm
    payload: PayloadFormat
    prefix: str = ""
    delimiter: str = ""
    fields: tuple[str, ...] = ()
    kid_field: str = ""

    @property
    def route(self) -> str:
        """The text codes of this envelope start with (online issuers have their own)."""
        return self.prefix if self.prefix else JWS_SHAPE


_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_SEGMENT = re.compile(rf"(?P<name>{_NAME})|(?P<int>-?[0-9]+)|\"(?P<quoted>[^\"\\]*)\"")

Segment = str | int


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


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
        if len(segments) > 8:
            raise ValueError(f"field path {text!r}: more than 8 segments")
        return cls(text, tuple(segments))

    def get(self, document: Any) -> Any:
        """The value at this path, or :data:`MISSING`. Never raises on any decoded payload."""
        current = document
        for segment in self.segments:
            if isinstance(current, dict):
                if segment not in current:
                    return MISSING
                current = current[segment]
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
    ISO8601 = "iso8601"
    """RFC 3339 date-time with a mandatory offset, such as ``2022-04-01T10:00:00+08:00``."""
    LOCAL = "local"
    """Local wall-clock text in a named time zone, written as ``pattern`` says."""


@dataclass(frozen=True, slots=True)
class TimeField:
    path: FieldPath
    format: TimeFormat
    pattern: str = ""
    """For ``local``: ``YYYY``, ``MM``, ``DD``, ``HH``, ``mm``, ``ss`` and literal separators."""
    zone: ZoneInfo | None = None


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
    state: StateField
    identity: IdentityField
    states: Mapping[str, Colour]
    """Local state -> colour, in the profile's order (least to most severe)."""
    validity: Validity
    source_sha256: str

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"


SEVERITY: Final = {Colour.GREEN: 0, Colour.YELLOW: 1, Colour.RED: 2}
"""Severity of the colours that have one. GREY (no usable colour) is outside this order."""
