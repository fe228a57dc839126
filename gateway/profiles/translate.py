"""Apply a profile to a verified payload: the canonical facts, or a rejection with its reason.

Runs only after the signature verified, over the payload decoded from the exact bytes that were
signed. Every value is type-checked (``true`` is not a number, ``"1700000000"`` is not a time) and
an unlisted local state is ``ERR_COLOUR_UNKNOWN``: there is no default colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.codecs import strictcbor, strictjson
from gateway.errors import CodeRejected
from gateway.identity import IdentityClaim, IdentityScheme, is_cn_resident_id
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, Reason
from gateway.profiles.model import MISSING, FieldPath, PayloadFormat, Profile, TimeField, TimeFormat

# Times outside [2000-01-01, 2100-01-01) are refused as malformed (ms-for-s mix-ups land here).
_EARLIEST = 946_684_800
_LATEST = 4_102_444_800


@dataclass(frozen=True, slots=True)
class Translated:
    """A payload's facts in canonical form; ``identity`` holds a raw number only in memory."""

    colour: Colour
    local_state: str
    issued_at: datetime
    expires_at: datetime
    identity: IdentityClaim


def decode_payload(payload: bytes, fmt: PayloadFormat, limits: Limits) -> Mapping[Any, Any]:
    """Strictly decode a payload into a map (before or after verification: it is pure).

    Raises:
        CodeRejected: the strict decoder's reasons, or ``ERR_SCHEMA`` if it is not a map.
    """
    if fmt is PayloadFormat.JSON:
        value = strictjson.loads(
            payload, max_bytes=limits.max_payload_bytes, max_depth=limits.max_depth
        )
    else:
        if len(payload) > limits.max_payload_bytes:
            raise CodeRejected(Reason.ERR_TOO_LARGE, "payload over the size limit")
        value = strictcbor.loads(payload, max_depth=limits.max_depth)
    if not isinstance(value, dict):
        raise CodeRejected(Reason.ERR_SCHEMA, "payload is not a map")
    return value


def translate(profile: Profile, claims: Mapping[Any, Any], issuer: IssuerId) -> Translated:
    """Translate verified ``claims`` with ``profile`` for the issuer whose key verified them.

    Raises:
        CodeRejected: ``ERR_ISSUER_MISMATCH`` if the payload names another issuer;
            ``ERR_SCHEMA`` for a missing or ill-typed field; ``ERR_CLAIMS`` for malformed or
            inconsistent times; ``ERR_COLOUR_UNKNOWN`` for a local state the profile does not list.
    """
    if profile.issuer is not None and _field(claims, profile.issuer, "issuer") != issuer:
        raise CodeRejected(Reason.ERR_ISSUER_MISMATCH, "payload names a different issuer")
    issued_at = _time(claims, profile.issued_at, "issued-at")
    expires_at = _time(claims, profile.expires_at, "expiry")
    if expires_at <= issued_at:
        raise CodeRejected(Reason.ERR_CLAIMS, "expiry is not after the issue time")
    if profile.max_validity is not None and expires_at - issued_at > profile.max_validity:
        raise CodeRejected(
            Reason.ERR_CLAIMS, "code claims a longer validity than its region allows"
        )
    state = _field(claims, profile.state, "state")
    if not isinstance(state, str):
        raise CodeRejected(Reason.ERR_SCHEMA, f"state field {profile.state.text!r} is not text")
    colour = profile.states.get(state)
    if colour is None:
        raise CodeRejected(
            Reason.ERR_COLOUR_UNKNOWN, f"local state not listed in profile {profile.label}"
        )
    identity = _identity(claims, profile)
    return Translated(colour, state, issued_at, expires_at, identity)


def _field(claims: Mapping[Any, Any], path: FieldPath, what: str) -> Any:
    value = path.get(claims)
    if value is MISSING:
        raise CodeRejected(Reason.ERR_SCHEMA, f"{what} field {path.text!r} is missing")
    return value


def _time(claims: Mapping[Any, Any], spec: TimeField, what: str) -> datetime:
    value = _field(claims, spec.path, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodeRejected(Reason.ERR_CLAIMS, f"{what} is not an integer {spec.format.value} time")
    seconds = value if spec.format is TimeFormat.UNIX_S else value / 1000
    if not _EARLIEST <= seconds < _LATEST:
        raise CodeRejected(Reason.ERR_CLAIMS, f"{what} is outside 2000-2099")
    return datetime.fromtimestamp(seconds, UTC)


def _identity(claims: Mapping[Any, Any], profile: Profile) -> IdentityClaim:
    spec = profile.identity
    value = _field(claims, spec.path, "identity")
    if spec.scheme is IdentityScheme.CN_RESIDENT_ID and (
        not isinstance(value, str) or not is_cn_resident_id(value)
    ):
        raise CodeRejected(Reason.ERR_SCHEMA, "identity is not a valid resident id number")
    return IdentityClaim(spec.scheme, value)
