"""Properties of every region's translation, on codes minted exactly as the regions mint them.

- issue -> verify -> canonical preserves the colour, the subject reference and the times;
- a local state the profile does not list never becomes GREEN;
- changing any character of any region's code never yields GREEN;
- expiry and degradation happen exactly at their boundary instants.

(Severity monotonicity is checked for every profile in test_profiles.py.)
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.identity import mask_number, resident_id_check_char
from gateway.model import Colour, Reason, Status
from gateway.profiles import load_profile
from regions import REGIONS, spec_of
from regions.common.spec import Level
from tests.regionworld import build_world

_FOLDER = Path(tempfile.mkdtemp(prefix="huren-regions-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
WORLD = build_world(_FOLDER)
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
COLOUR = {
    Level.GREEN: Colour.GREEN,
    Level.YELLOW: Colour.YELLOW,
    Level.RED: Colour.RED,
    Level.PENDING: Colour.GREY,
}
PROFILE_STATES = {name: set(load_profile(spec_of(name).profile_text()).states) for name in REGIONS}


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """Well-formed resident id numbers from across the country."""
    prefix = draw(st.sampled_from(["110105", "310115", "330106", "420106", "440106", "510104"]))
    born = draw(
        st.dates(min_value=datetime(1930, 1, 1).date(), max_value=datetime(2020, 12, 31).date())
    )
    sequence = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{prefix}{born:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


LEVELS = st.sampled_from(list(Level))
AGES = st.integers(min_value=0, max_value=240)  # seconds between issue and verification


@given(name=st.sampled_from(REGIONS), number=numbers(), level=LEVELS, age=AGES)
def test_issue_verify_round_trip_preserves_colour_subject_and_times(name, number, level, age):
    spec = spec_of(name)
    assume(level in spec.states)
    issued = WORLD.issue_level(name, number, level, T0)
    verdict = WORLD.verify(issued.code, T0 + timedelta(seconds=age))
    assert verdict.status is Status.VALID, (name, verdict.reason, verdict.detail)
    assert verdict.colour is COLOUR[level]
    code = verdict.code
    assert code is not None
    keys = WORLD.identities
    assert code.subject == keys.subject(keys.from_number(number))
    assert code.masked_identity == mask_number(number)
    assert (code.issued_at, code.expires_at) == (issued.issued_at, issued.expires_at)
    assert (code.region, code.issuer, code.local_state) == (spec.code, spec.issuer, issued.state)
    assert number not in repr(verdict)


@given(
    name=st.sampled_from(REGIONS),
    state=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=16
    ),
)
def test_a_local_state_the_profile_does_not_list_never_becomes_green(name, state):
    assume(state not in PROFILE_STATES[name])
    try:
        issued = WORLD.issue(name, "330106199003071228", state, T0)
    except ValueError:
        return  # the region's own encoder cannot even write it (Shanghai's delimited text)
    verdict = WORLD.verify(issued.code, T0 + timedelta(seconds=1))
    assert verdict.colour is not Colour.GREEN
    assert verdict.status is not Status.VALID
    assert verdict.reason in {Reason.ERR_COLOUR_UNKNOWN, Reason.ERR_ENCODING, Reason.ERR_ENVELOPE}


GREEN_CODES = {
    name: WORLD.issue_level(name, "330106199003071228", Level.GREEN, T0).code for name in REGIONS
}


@given(name=st.sampled_from(REGIONS), data=st.data())
def test_changing_any_character_of_any_region_code_never_yields_green(name, data):
    code = GREEN_CODES[name]
    index = data.draw(st.integers(min_value=0, max_value=len(code) - 1), label="index")
    replacement = data.draw(st.characters(min_codepoint=0x20, max_codepoint=0x7E), label="char")
    assume(replacement != code[index])
    verdict = WORLD.verify(
        code[:index] + replacement + code[index + 1 :], T0 + timedelta(seconds=1)
    )
    assert verdict.colour is not Colour.GREEN
    assert verdict.status is not Status.VALID
    assert verdict.reason is not Reason.ERR_INTERNAL


def test_the_unmodified_green_codes_are_green():
    """Guards the mutation property against passing vacuously."""
    for code in GREEN_CODES.values():
        assert WORLD.verify(code, T0 + timedelta(seconds=1)).colour is Colour.GREEN


@pytest.mark.parametrize("name", REGIONS)
def test_a_code_expires_exactly_at_its_expiry(name):
    issued = WORLD.issue_level(name, "330106199003071228", Level.RED, T0)
    before = WORLD.verify(issued.code, issued.expires_at - timedelta(seconds=1))
    at = WORLD.verify(issued.code, issued.expires_at)
    assert (before.status, before.colour) == (Status.VALID, Colour.RED)
    assert (at.status, at.reason, at.colour) == (Status.REJECTED, Reason.ERR_EXPIRED, Colour.GREY)


def test_beijing_codes_expire_at_midnight_in_beijing():
    late = datetime(2026, 11, 23, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing
    issued = WORLD.issue_level("beijing", "330106199003071228", Level.GREEN, late)
    assert issued.expires_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert WORLD.verify(issued.code, late).colour is Colour.GREEN
    assert WORLD.verify(issued.code, issued.expires_at).reason is Reason.ERR_EXPIRED


def test_hubei_green_reads_as_yellow_from_exactly_three_days():
    issued = WORLD.issue_level("hubei", "330106199003071228", Level.GREEN, T0)
    boundary = T0 + timedelta(days=3)
    before = WORLD.verify(issued.code, boundary - timedelta(seconds=1))
    after = WORLD.verify(issued.code, boundary)
    assert before.colour is Colour.GREEN
    assert (after.status, after.colour) == (Status.VALID, Colour.YELLOW)
    assert "reads as YELLOW" in after.detail
    yellow = WORLD.issue_level("hubei", "330106199003071228", Level.YELLOW, T0)
    assert WORLD.verify(yellow.code, T0 + timedelta(days=6)).colour is Colour.YELLOW


def test_macau_codes_live_at_most_six_hours():
    issued = WORLD.issue_level("macau", "330106199003071228", Level.GREEN, T0)
    assert WORLD.verify(issued.code, T0 + timedelta(hours=5, minutes=59)).colour is Colour.GREEN
    assert WORLD.verify(issued.code, T0 + timedelta(hours=6)).reason is Reason.ERR_EXPIRED


def test_an_unknown_zhejiang_token_is_rejected_and_an_expired_one_expires():
    verdict = WORLD.verify("http://zhejiang.test/hc/v1/AAAAAAAAAAAAAAAAAAAAAA", T0)
    assert (verdict.status, verdict.reason) == (Status.REJECTED, Reason.ERR_TOKEN_UNKNOWN)
    issued = WORLD.issue_level("zhejiang", "330106199003071228", Level.GREEN, T0)
    assert WORLD.verify(issued.code, T0 + timedelta(minutes=5)).reason is Reason.ERR_EXPIRED
    malformed = WORLD.verify("http://zhejiang.test/hc/v1/short", T0)
    assert malformed.reason is Reason.ERR_ENVELOPE
