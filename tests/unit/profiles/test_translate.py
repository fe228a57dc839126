"""Translation semantics at their boundaries: times, expiry sources, degradation, carriers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.codecs import base64url
from gateway.errors import CodeRejected
from gateway.model import Colour, IssuerId, Reason
from gateway.profiles import Profile, load_profile
from gateway.profiles import translate as translate_with_times
from gateway.profiles.model import FieldPath, TimeField, TimeFormat
from gateway.profiles.times import end_of_local_day, parse_time
from gateway.profiles.translate import (
    FullNumber,
    MaskedLink,
    SealedPseudonym,
    Translated,
    read_times,
)
from tests.conftest import resident_id
from tests.unit.profiles.test_loader import BASE, DELIMITED

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def translate(
    profile: Profile, claims: dict[str, Any], issuer: IssuerId, now: datetime
) -> Translated:
    """Times first, then the rest, as the verify pipeline does."""
    return translate_with_times(profile, claims, issuer, now, read_times(profile, claims))


def _iso(value: str) -> datetime:
    return parse_time(value, TimeField(FieldPath.parse("t"), TimeFormat.ISO8601), "t")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00+08:00", T0),
        ("2026-11-23T02:00:00Z", T0),
        ("2026-11-23T02:00:00.5Z", T0 + timedelta(milliseconds=500)),
        ("2026-11-22T21:00:00-05:00", T0),
    ],
    ids=["plus-eight", "zulu", "fraction", "minus-five"],
)
def test_iso8601_times_need_an_offset_and_are_exact(text, expected):
    assert _iso(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T10:00:00",  # no offset: ambiguous
        "2026-11-23 10:00:00+08:00",
        "2026-11-23T10:00+08:00",
        "2026-13-01T00:00:00Z",
        "2026-11-23T10:00:00+24:00",
        "1999-12-31T23:59:59Z",
        "２０２６-11-23T10:00:00Z",
        "2026-11-23T10:00:00+08:00 ",
    ],
    ids=[
        "naive",
        "space",
        "no-seconds",
        "month-13",
        "offset-24",
        "before-2000",
        "fullwidth",
        "trailing",
    ],
)
def test_malformed_iso8601_times_are_claims_errors(text):
    with pytest.raises(CodeRejected) as refused:
        _iso(text)
    assert refused.value.reason is Reason.ERR_CLAIMS


def test_local_times_use_their_zone_and_refuse_times_that_do_not_exist():
    spec = TimeField(FieldPath.parse("t"), TimeFormat.LOCAL, "YYYYMMDDHHmmss", SHANGHAI)
    assert parse_time("20261123100000", spec, "t") == T0
    new_york = TimeField(
        FieldPath.parse("t"), TimeFormat.LOCAL, "YYYY-MM-DD HH:mm:ss", ZoneInfo("America/New_York")
    )
    assert parse_time("2021-03-14 01:59:59", new_york, "t") == datetime(
        2021, 3, 14, 6, 59, 59, tzinfo=UTC
    )
    with pytest.raises(CodeRejected, match="local"):
        parse_time("2021-03-14 02:30:00", new_york, "t")  # skipped by daylight saving time
    for bad in ("2026112310000", "20261123100000Z", 20261123100000, "2026-11-23 10:00:00"):
        with pytest.raises(CodeRejected):
            parse_time(bad, spec, "t")


@pytest.mark.parametrize(
    ("issued_local", "expires_local"),
    [
        ("2026-11-23T00:00:00", "2026-11-24T00:00:00"),
        ("2026-11-23T10:00:00", "2026-11-24T00:00:00"),
        ("2026-11-23T23:59:59", "2026-11-24T00:00:00"),
    ],
    ids=["at-midnight", "morning", "last-second"],
)
def test_end_of_local_day_is_the_next_midnight_in_the_zone(issued_local, expires_local):
    issued = datetime.fromisoformat(issued_local).replace(tzinfo=SHANGHAI)
    expires = datetime.fromisoformat(expires_local).replace(tzinfo=SHANGHAI)
    assert end_of_local_day(issued, SHANGHAI) == expires


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "sample",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
        "st": "ok",
        "idn": resident_id(),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_translation_reads_every_fact():
    profile = load_profile(BASE)
    result = translate(profile, _claims(st="watch"), IssuerId("sample"), T0)
    assert (result.colour, result.local_state) == (Colour.YELLOW, "watch")
    assert (result.issued_at, result.expires_at) == (T0, T0 + timedelta(hours=1))
    assert result.identity == FullNumber(resident_id())
    assert result.degraded_from is None


def test_the_earliest_expiry_source_wins():
    profile = load_profile(BASE.replace('max = "24h"', 'max = "24h"\nduration = "30m"'))
    result = translate(profile, _claims(exp=int(T0.timestamp()) + 7200), IssuerId("sample"), T0)
    assert result.expires_at == T0 + timedelta(minutes=30)
    shorter = translate(profile, _claims(exp=int(T0.timestamp()) + 60), IssuerId("sample"), T0)
    assert shorter.expires_at == T0 + timedelta(seconds=60)


DEGRADING = BASE + '[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\nafter = "3d"\n'


@pytest.mark.parametrize(
    ("age", "colour", "degraded"),
    [
        (timedelta(days=3) - timedelta(seconds=1), Colour.GREEN, None),
        (timedelta(days=3), Colour.YELLOW, Colour.GREEN),
        (timedelta(days=5), Colour.YELLOW, Colour.GREEN),
    ],
    ids=["just-before", "at-the-boundary", "after"],
)
def test_age_based_degradation_applies_from_its_boundary_instant(age, colour, degraded):
    profile = load_profile(DEGRADING.replace('max = "24h"', 'max = "7d"'))
    claims = _claims(exp=int(T0.timestamp()) + 7 * 86400)
    result = translate(profile, claims, IssuerId("sample"), T0 + age)
    assert (result.colour, result.degraded_from) == (colour, degraded)


def test_degradation_never_touches_other_colours():
    profile = load_profile(DEGRADING.replace('max = "24h"', 'max = "7d"'))
    claims = _claims(st="stop", exp=int(T0.timestamp()) + 7 * 86400)
    result = translate(profile, claims, IssuerId("sample"), T0 + timedelta(days=6))
    assert result.colour is Colour.RED


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (_claims(iss="other"), Reason.ERR_ISSUER_MISMATCH),
        (_claims(st="unknown"), Reason.ERR_COLOUR_UNKNOWN),
        (_claims(st=0), Reason.ERR_SCHEMA),
        (_claims(st=None), Reason.ERR_SCHEMA),
        (_claims(iat=True), Reason.ERR_CLAIMS),
        (_claims(exp=str(int(T0.timestamp()) + 60)), Reason.ERR_CLAIMS),
        (_claims(exp=int(T0.timestamp())), Reason.ERR_CLAIMS),
        (_claims(exp=int(T0.timestamp()) + 86401), Reason.ERR_CLAIMS),
        (_claims(idn="330106199003071220"), Reason.ERR_SCHEMA),
    ],
    ids=[
        "other-issuer",
        "unlisted-state",
        "number-state",
        "no-state",
        "bool-time",
        "text-time",
        "expiry-at-issue",
        "over-max",
        "bad-number",
    ],
)
def test_translation_refusals_have_reasons(claims, reason):
    with pytest.raises(CodeRejected) as refused:
        translate(load_profile(BASE), claims, IssuerId("sample"), T0)
    assert refused.value.reason is reason


def test_integer_states_match_integers_only():
    profile = load_profile(
        BASE.replace('state = "st"', 'state = { path = "st", type = "integer" }')
        .replace('"ok" = "GREEN"', '"0" = "GREEN"')
        .replace('"wait" = { colour = "GREY", note = "pending" }', '"-1" = "GREY"')
        .replace('"watch" = "YELLOW"', '"1" = "YELLOW"')
        .replace('"stop" = "RED"', '"2" = "RED"')
    )
    assert translate(profile, _claims(st=1), IssuerId("sample"), T0).colour is Colour.YELLOW
    assert translate(profile, _claims(st=-1), IssuerId("sample"), T0).colour is Colour.GREY
    for wrong in ("1", True, 1.0, 3):
        with pytest.raises(CodeRejected):
            translate(profile, _claims(st=wrong), IssuerId("sample"), T0)


def test_masked_link_and_pseudonym_carriers_are_read_and_checked():
    linked = load_profile(
        BASE.replace(
            'identity = { scheme = "cn-resident-id", path = "idn" }',
            'identity = { scheme = "masked-link", masked = "id.m", link = "id.h" }',
        )
    )
    link = bytes(range(32))
    good = _claims(id={"m": "3301**********1228", "h": base64url.encode(link)})
    result = translate(linked, good, IssuerId("sample"), T0)
    assert result.identity == MaskedLink("330*************28", link)
    for bad in (
        {"m": "33************1228", "h": base64url.encode(link)},
        {"m": "3301**********1228", "h": base64url.encode(link[:31])},
        {"m": "3301**********1228", "h": "not base64!"},
        {"m": "3301**********1228"},
    ):
        with pytest.raises(CodeRejected) as refused:
            translate(linked, _claims(id=bad), IssuerId("sample"), T0)
        assert refused.value.reason is Reason.ERR_SCHEMA
    sealed = load_profile(
        BASE.replace(
            'identity = { scheme = "cn-resident-id", path = "idn" }',
            'identity = { scheme = "pseudonym", path = "p" }',
        )
    )
    result = translate(sealed, _claims(p=b"x" * 34), IssuerId("sample"), T0)
    assert result.identity == SealedPseudonym(b"x" * 34)
    with pytest.raises(CodeRejected):
        translate(sealed, _claims(p=b"short"), IssuerId("sample"), T0)


def test_delimited_profiles_read_text_fields():
    profile = load_profile(DELIMITED)
    fields = {"iss": "text", "kid": "k", "st": "0", "t": "20261123100000", "idn": resident_id()}
    result = translate(profile, fields, IssuerId("text"), T0)
    assert (result.issued_at, result.expires_at) == (T0, T0 + timedelta(minutes=30))
    assert result.colour is Colour.GREEN
