"""The frozen objects a translation profile compiles into (see docs/profiles.md).

A profile is data: it says how a region's codes are wrapped (envelope), where each fact lives in
the signed payload (field paths), how local states map to canonical colours, and how times are
written. It is validated once, when loaded; verification only reads these objects.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from gateway.identity import IdentityScheme
from gateway.model import Colour, ProfileId


class EnvelopeFormat(enum.Enum):
    JWS = "jws"
    COSE = "cose"


class TextForm(enum.Enum):
    COMPACT = "compact"
    """Compact JWS text as is."""
    BASE45_ZLIB = "base45-zlib"
    """``prefix`` + base45(zlib(COSE_Sign1)), as EU DCC ``HC1:``."""


class PayloadFormat(enum.Enum):
    JSON = "json"
    CBOR = "cbor"


class TimeFormat(enum.Enum):
    UNIX_S = "unix-s"
    UNIX_MS = "unix-ms"


# The compact JWS shape: base64url of a JSON object that begins with '{"'.
JWS_SHAPE: Final = "eyJ"


@dataclass(frozen=True, slots=True)
class EnvelopeSpec:
    """How a code is wrapped and encoded, and so how the gateway recognises it by its start.

    Profiles that share a ``route`` (the same prefix) must share the whole spec, so that a code
    can be decoded before its issuer is known.
    """

    format: EnvelopeFormat
    text: TextForm
    payload: PayloadFormat
    prefix: str

    @property
    def route(self) -> str:
        """The text a code of this envelope starts with."""
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
    (for keys that look like numbers or contain other characters).
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
                # bool keys never occur (the decoders refuse them), and 1 == True must not match.
                current = current[segment]
            elif isinstance(current, list) and isinstance(segment, int):
                if not 0 <= segment < len(current):
                    return MISSING
                current = current[segment]
            else:
                return MISSING
        return current


@dataclass(frozen=True, slots=True)
class TimeField:
    path: FieldPath
    format: TimeFormat


@dataclass(frozen=True, slots=True)
class IdentityField:
    path: FieldPath
    scheme: IdentityScheme


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated translation profile. Build with :func:`gateway.profiles.load_profile`."""

    id: ProfileId
    version: int
    description: str
    envelope: EnvelopeSpec
    issuer: FieldPath | None
    issued_at: TimeField
    expires_at: TimeField
    state: FieldPath
    identity: IdentityField
    states: Mapping[str, Colour]
    max_validity: timedelta | None
    source_sha256: str

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"
