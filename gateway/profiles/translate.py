"""Apply a profile to a verified payload: the canonical facts, or a rejection with its reason.

Runs only after the signature verified, over the payload decoded from the exact bytes that were
signed. Every value is type-checked (``true`` is not a number, ``"1700000000"`` is not a Unix
time) and an unlisted local state is ``ERR_COLOUR_UNKNOWN``: there is no default colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.codecs import base64url, strictcbor, strictjson
from gateway.errors import CodeRejected
from gateway.identity import LINK_BYTES, IdentityScheme, is_cn_resident_id, normalise_masked
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, Reason
from gateway.profiles.model import MISSING, FieldPath, PayloadFormat, Profile, StateType
from gateway.profiles.times import end_of_local_day, parse_time


@dataclass(frozen=True, slots=True)
class FullNumber:
    number: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MaskedLink:
    masked: str = field(repr=False)
    link: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SealedPseudonym:
    sealed: bytes = field(repr=False)


IdentityCarrier = FullNumber | MaskedLink | SealedPseudonym


@dataclass(frozen=True, slots=True)
class Translated:
    """A payload's facts in canonical form. ``identity`` is still as the region carried it."""

    colour: Colour
    local_state: str
    issued_at: datetime
    expires_at: datetime
    identity: IdentityCarrier
    degraded_from: Colour | None = None


def decode_payload(payload: bytes, fmt: PayloadFormat, limits: Limits) -> Mapping[Any, Any]:
    """Strictly decode a JSON or CBOR payload into a map (pure: before or after verification).

    Raises:
        CodeRejected: the strict decoder's reasons, or ``ERR_SCHEMA`` if it is not a map.
    """
    if fmt is PayloadFormat.JSON:
        value = strictjson.loads(
            payload, max_bytes=limits.max_payload_bytes, max_depth=limits.max_depth
        )
    elif fmt is PayloadFormat.CBOR:
        if len(payload) > limits.max_payload_bytes:
            raise CodeRejected(Reason.ERR_TOO_LARGE, "payload over the size limit")
        value = strictcbor.loads(payload, max_depth=limits.max_depth)
    else:  # pragma: no cover - delimited payloads are decoded with their envelope
        raise ValueError("delimited payloads are decoded by the envelope")
    if not isinstance(value, dict):
        raise CodeRejected(Reason.ERR_SCHEMA, "payload is not a map")
    return value


def translate(
    profile: Profile, claims: Mapping[Any, Any], issuer: IssuerId, now: datetime
) -> Translated:
    """Translate verified ``claims`` with ``profile`` for the issuer whose key verified them.

    ``now`` matters only for age-based degradation (``validity.degrade``).

    Raises:
        CodeRejected: ``ERR_ISSUER_MISMATCH`` if the payload names another issuer;
            ``ERR_SCHEMA`` for a missing or ill-typed field; ``ERR_CLAIMS`` for malformed or
            inconsistent times; ``ERR_COLOUR_UNKNOWN`` for a local state the profile does not list.
    """
    if profile.issuer is not None and _field(claims, profile.issuer, "issuer") != issuer:
        raise CodeRejected(Reason.ERR_ISSUER_MISMATCH, "payload names a different issuer")
    issued_at = parse_time(
        _field(claims, profile.issued_at.path, "issued-at"), profile.issued_at, "issued-at"
    )
    expires_at = _expiry(profile, claims, issued_at)
    local_state = _state(profile, claims)
    colour = profile.states.get(local_state)
    if colour is None:
        raise CodeRejected(
            Reason.ERR_COLOUR_UNKNOWN, f"local state not listed in profile {profile.label}"
        )
    degraded_from = None
    for rule in profile.validity.degrade:
        if colour is rule.source and now - issued_at >= rule.after:
            degraded_from, colour = colour, rule.target
            break
    return Translated(
        colour, local_state, issued_at, expires_at, _identity(claims, profile), degraded_from
    )


def _field(claims: Mapping[Any, Any], path: FieldPath, what: str) -> Any:
    value = path.get(claims)
    if value is MISSING:
        raise CodeRejected(Reason.ERR_SCHEMA, f"{what} field {path.text!r} is missing")
    return value


def _expiry(profile: Profile, claims: Mapping[Any, Any], issued_at: datetime) -> datetime:
    """The earliest of every expiry source the profile declares (at least one exists)."""
    candidates = []
    if profile.expires_at is not None:
        claimed = parse_time(
            _field(claims, profile.expires_at.path, "expiry"), profile.expires_at, "expiry"
        )
        if claimed <= issued_at:
            raise CodeRejected(Reason.ERR_CLAIMS, "expiry is not after the issue time")
        maximum = profile.validity.max
        if maximum is not None and claimed - issued_at > maximum:
            raise CodeRejected(
                Reason.ERR_CLAIMS, "code claims a longer validity than its region allows"
            )
        candidates.append(claimed)
    if profile.validity.duration is not None:
        candidates.append(issued_at + profile.validity.duration)
    if profile.validity.end_of_day is not None:
        candidates.append(end_of_local_day(issued_at, profile.validity.end_of_day))
    return min(candidates)


def _state(profile: Profile, claims: Mapping[Any, Any]) -> str:
    value = _field(claims, profile.state.path, "state")
    if profile.state.type is StateType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodeRejected(Reason.ERR_SCHEMA, "state field is not an integer")
        return str(value)
    if not isinstance(value, str):
        raise CodeRejected(
            Reason.ERR_SCHEMA, f"state field {profile.state.path.text!r} is not text"
        )
    return value


def _bytes(value: Any, what: str, low: int, high: int) -> bytes:
    """Bytes carried as a CBOR byte string or as base64url text (JSON, delimited)."""
    if isinstance(value, str):
        try:
            value = base64url.decode(value)
        except CodeRejected as e:
            raise CodeRejected(Reason.ERR_SCHEMA, f"{what} is not base64url") from e
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise CodeRejected(Reason.ERR_SCHEMA, f"{what} is malformed")
    return value


def _identity(claims: Mapping[Any, Any], profile: Profile) -> IdentityCarrier:
    spec = profile.identity
    if spec.scheme is IdentityScheme.CN_RESIDENT_ID:
        assert spec.path is not None
        number = _field(claims, spec.path, "identity")
        if not isinstance(number, str) or not is_cn_resident_id(number):
            raise CodeRejected(Reason.ERR_SCHEMA, "identity is not a valid resident id number")
        return FullNumber(number)
    if spec.scheme is IdentityScheme.MASKED_LINK:
        assert spec.masked is not None
        assert spec.link is not None
        masked = _field(claims, spec.masked, "masked identity")
        uniform = normalise_masked(masked) if isinstance(masked, str) else None
        if uniform is None:
            raise CodeRejected(Reason.ERR_SCHEMA, "masked identity is malformed")
        link = _bytes(
            _field(claims, spec.link, "identity link"), "identity link", LINK_BYTES, LINK_BYTES
        )
        return MaskedLink(uniform, link)
    assert spec.path is not None
    return SealedPseudonym(_bytes(_field(claims, spec.path, "pseudonym"), "pseudonym", 17, 128))
