"""Apply a profile to a verified payload: the canonical facts, or a rejection with its reason.

Runs only after the signature verified, over the payload decoded from the exact bytes that were
signed. Every value is type-checked (``true`` is not a number, ``"1700000000"`` is not a Unix
time) and an unlisted local state is ``ERR_COLOUR_UNKNOWN``: there is no default colour. For
formats without colours the profile's colour rules decide; a rule whose value is missing or
ill-typed does not hold, and what no rule vouches for gets the ``otherwise`` colour (never GREEN).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.codecs import base64url, strictcbor, strictjson
from gateway.errors import CodeRejected
from gateway.identity import LINK_BYTES, IdentityScheme, is_cn_resident_id, normalise_masked
from gateway.limits import Limits
from gateway.model import Colour, Reason, RegionCode, parse_region_code
from gateway.profiles.model import (
    MISSING,
    Condition,
    FieldPath,
    PayloadFormat,
    Profile,
    StateType,
    Test,
    TimeField,
)
from gateway.profiles.times import end_of_local_day, parse_time

MAX_NAME_CHARS = 128
# A date of birth as EU DCC writes it: a full date, a year and month, a year, or nothing known;
# some early issuers appended a midnight time, which is dropped.
_BIRTH = re.compile(r"([0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?)?(?:T00:00:00(?:\.0+)?Z?)?")


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


@dataclass(frozen=True, slots=True)
class NameDob:
    family: str = field(repr=False)
    given: str = field(repr=False)
    birth: str = field(repr=False)


IdentityCarrier = FullNumber | MaskedLink | SealedPseudonym | NameDob


@dataclass(frozen=True, slots=True)
class Times:
    issued_at: datetime
    expires_at: datetime
    not_before: datetime | None = None
    """When the code says it becomes valid (CWT ``nbf``), if the profile reads it and it does."""


@dataclass(frozen=True, slots=True)
class Translated:
    """A payload's facts in canonical form. ``identity`` is still as the region carried it."""

    colour: Colour
    local_state: str
    issued_at: datetime
    expires_at: datetime
    identity: IdentityCarrier
    degraded_from: Colour | None = None
    note: str | None = None
    """The profile's note on the local state, if it has one."""
    destination: RegionCode | None = None
    """The region the code was made for, where the profile reads one (``claims.destination``)."""


def decode_payload(
    payload: bytes, fmt: PayloadFormat, limits: Limits, *, date_tags: bool = False
) -> Mapping[Any, Any]:
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
        value = strictcbor.loads(payload, max_depth=limits.max_depth, date_tags=date_tags)
    else:  # pragma: no cover - delimited payloads are decoded with their envelope
        raise ValueError("delimited payloads are decoded by the envelope")
    if not isinstance(value, dict):
        raise CodeRejected(Reason.ERR_SCHEMA, "payload is not a map")
    return value


def read_times(profile: Profile, claims: Mapping[Any, Any]) -> Times:
    """The code's issue and expiry instants (read before anything else is translated, so that
    time checks come first).

    Raises:
        CodeRejected: ``ERR_SCHEMA`` for a missing field; ``ERR_CLAIMS`` for malformed or
            inconsistent times.
    """
    issued_at = parse_time(
        _field(claims, profile.issued_at.path, "issued-at"), profile.issued_at, "issued-at"
    )
    expires_at = _expiry(profile, claims, issued_at)
    not_before = _time(claims, profile.not_before, "not-before")
    if not_before is not None and not_before >= expires_at:
        raise CodeRejected(Reason.ERR_CLAIMS, "the code is never valid: nbf is not before expiry")
    return Times(issued_at, expires_at, not_before)


def translate(
    profile: Profile, claims: Mapping[Any, Any], issuer: str, now: datetime, times: Times
) -> Translated:
    """Translate verified ``claims`` with ``profile`` for the issuer whose key verified them;
    ``issuer`` is what that issuer's codes call it.

    ``now`` matters for age-based degradation (``validity.degrade``) and colour rules.

    Raises:
        CodeRejected: ``ERR_ISSUER_MISMATCH`` if the payload names another issuer;
            ``ERR_SCHEMA`` for a missing or ill-typed field; ``ERR_COLOUR_UNKNOWN`` for a local
            state the profile does not list.
    """
    if profile.issuer is not None and _field(claims, profile.issuer, "issuer") != issuer:
        raise CodeRejected(Reason.ERR_ISSUER_MISMATCH, "payload names a different issuer")
    issued_at, expires_at = times.issued_at, times.expires_at
    if profile.rules is not None:
        colour, local_state = _by_rules(profile, claims, now)
    else:
        local_state = _state(profile, claims)
        listed = profile.states.get(local_state)
        if listed is None:
            raise CodeRejected(
                Reason.ERR_COLOUR_UNKNOWN, f"local state not listed in profile {profile.label}"
            )
        colour = listed
    degraded_from = None
    for rule in profile.validity.degrade:
        if colour is rule.source and now - issued_at >= rule.after:
            degraded_from, colour = colour, rule.target
            break
    return Translated(
        colour,
        local_state,
        issued_at,
        expires_at,
        _identity(claims, profile),
        degraded_from,
        profile.notes.get(local_state),
        _destination(claims, profile),
    )


def _destination(claims: Mapping[Any, Any], profile: Profile) -> RegionCode | None:
    """The region a code was made for, where the profile reads one: required then (fail
    closed), and a region code (``ERR_SCHEMA`` otherwise)."""
    if profile.destination is None:
        return None
    value = _field(claims, profile.destination, "destination")
    try:
        if not isinstance(value, str):
            raise ValueError("not text")
        return parse_region_code(value)
    except ValueError as e:
        raise CodeRejected(Reason.ERR_SCHEMA, "the code's destination is not a region code") from e


def check_issuer_region(profile: Profile, claims: Mapping[Any, Any], region: str) -> None:
    """Where the profile reads the issuer's region from the payload (``claims.issuer_region``;
    EU DCC: CWT ``iss``), it must be ``region``, the signing issuer's registered region.

    Compared exactly: no case folding, trimming or Unicode normalisation (threats.md G37).

    Raises:
        CodeRejected: ``ERR_SCHEMA`` if the field is missing or not text (a profile that reads
            it requires it: fail closed); ``ERR_ISSUER_MISMATCH`` if it names another region.
    """
    if profile.issuer_region is None:
        return
    value = _field(claims, profile.issuer_region, "issuer region")
    if not isinstance(value, str):
        raise CodeRejected(Reason.ERR_SCHEMA, "the code's issuer region is not text")
    if value != region:
        raise CodeRejected(
            Reason.ERR_ISSUER_MISMATCH,
            f"the code names another issuer region than its signer's ({region})",
        )


def _field(claims: Mapping[Any, Any], path: FieldPath, what: str) -> Any:
    value = path.get(claims)
    if value is MISSING:
        raise CodeRejected(Reason.ERR_SCHEMA, f"{what} field {path.text!r} is missing")
    return value


def _time(claims: Mapping[Any, Any], spec: TimeField | None, what: str) -> datetime | None:
    """The time at ``spec``; None when the profile reads none, or it is optional and absent."""
    if spec is None:
        return None
    value = spec.path.get(claims)
    if value is MISSING:
        if spec.optional:
            return None
        raise CodeRejected(Reason.ERR_SCHEMA, f"{what} field {spec.path.text!r} is missing")
    return parse_time(value, spec, what)


def _expiry(profile: Profile, claims: Mapping[Any, Any], issued_at: datetime) -> datetime:
    """The earliest of every expiry source the profile declares (at least one exists)."""
    candidates = []
    claimed = _time(claims, profile.expires_at, "expiry")
    if claimed is not None:
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
    assert profile.state is not None  # a profile has states or colour rules
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
    if spec.scheme is IdentityScheme.NAME_DOB:
        return _name_dob(claims, profile)
    assert spec.path is not None
    return SealedPseudonym(_bytes(_field(claims, spec.path, "pseudonym"), "pseudonym", 17, 128))


def _name_dob(claims: Mapping[Any, Any], profile: Profile) -> NameDob:
    spec = profile.identity
    assert spec.family is not None
    assert spec.given is not None
    assert spec.birth is not None
    family = _field(claims, spec.family, "family name")
    given = spec.given.get(claims)
    birth = _field(claims, spec.birth, "date of birth")
    if not isinstance(family, str) or not 0 < len(family) <= MAX_NAME_CHARS:
        raise CodeRejected(Reason.ERR_SCHEMA, "family name is missing or malformed")
    if given is MISSING:
        given = ""
    if not isinstance(given, str) or len(given) > MAX_NAME_CHARS:
        raise CodeRejected(Reason.ERR_SCHEMA, "given name is malformed")
    m = _BIRTH.fullmatch(birth) if isinstance(birth, str) else None
    if m is None:
        raise CodeRejected(Reason.ERR_SCHEMA, "date of birth is malformed")
    return NameDob(family, given, m.group(1) or "")


def kinds_of(profile: Profile, claims: Mapping[Any, Any]) -> frozenset[str]:
    """The kinds of certificate a payload holds (those of ``claims.kinds`` whose path has a
    non-empty value)."""
    return frozenset(name for name, path in profile.kinds.items() if _present(path.get(claims)))


def revocation_id(profile: Profile, claims: Mapping[Any, Any]) -> str | None:
    """The id the issuer revokes this code by, if the profile reads one and the code has it.

    Raises:
        CodeRejected: ``ERR_SCHEMA`` if it is there but not short text.
    """
    if profile.revocation_id is None:
        return None
    value = profile.revocation_id.get(claims)
    if value is MISSING:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise CodeRejected(Reason.ERR_SCHEMA, "revocation id is malformed")
    return value


def _present(value: Any) -> bool:
    """Not missing, not null, and not empty text, list or map (the decoders build exactly these
    types; any other value, ``0`` and ``false`` included, is present)."""
    if value is MISSING or value is None:
        return False
    return type(value) not in _EMPTIABLE or len(value) > 0


_EMPTIABLE = frozenset({str, list, dict})


def _by_rules(profile: Profile, claims: Mapping[Any, Any], now: datetime) -> tuple[Colour, str]:
    rules = profile.rules
    assert rules is not None
    for rule in rules.rules:
        if all(_holds(c, claims, now) for c in rule.when):
            return rule.colour, rule.name
    return rules.otherwise, rules.otherwise_name


def _holds(condition: Condition, document: Any, now: datetime) -> bool:
    """Whether ``condition`` holds in ``document``; never raises on any decoded payload."""
    value = condition.path.get(document)
    test = condition.test
    if test is Test.PRESENT:
        return _present(value) is condition.value
    if value is MISSING:
        return False
    if test is Test.EQUALS:
        return _same(value, condition.value)
    if test is Test.IN:
        return any(_same(value, v) for v in condition.value)
    if test in (Test.WITHIN, Test.OLDER_THAN):
        assert condition.time is not None
        try:
            instant = parse_time(value, condition.time, "condition")
        except CodeRejected:
            return False
        age, limit = now - instant, condition.value
        assert isinstance(limit, timedelta)
        if test is Test.WITHIN:
            return timedelta(0) <= age <= limit
        return age >= limit
    if test is Test.AT_LEAST:
        return _integer(value) and bool(value >= condition.value)
    if test is Test.AT_LEAST_PATH:
        assert condition.other is not None
        other = condition.other.get(document)
        return _integer(value) and _integer(other) and bool(value >= other)
    # count
    if not isinstance(value, list):
        return False
    matching = sum(1 for item in value if all(_holds(c, item, now) for c in condition.where))
    return bool(matching >= condition.value)


def _same(value: Any, expected: str | int) -> bool:
    return type(value) is type(expected) and value == expected


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
