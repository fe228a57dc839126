"""转码: the hub's attestation, from the decision it rests on to the verdict every gateway reads.

The regions are the real ones (tests.regionworld); the attestation issuer is registered in the
same trust state with the shipped profile, exactly as ``huren registry attestation-key new``
registers it; the policies are loaded from text.
"""

from __future__ import annotations

import tempfile
from base64 import b64decode
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import transfer
from gateway.codecs import cose, strictcbor, textform
from gateway.crypto import Algorithm, PrivateKey
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, KeyId, ProfileId, RegionCode, Status, Verdict
from gateway.policy.loader import load_policy
from gateway.profiles import load_profile
from gateway.recognise import Decision, recognise
from gateway.registry import Issuer, IssuerKey, TrustState
from gateway.registry.model import Region
from gateway.transfer import Grant, Refusal, Refused
from gateway.verify import verify_code
from regions.common.spec import Level
from tests.conftest import NOW, resident_id
from tests.regionworld import build_world

MACAU_POLICY = """
[policy]
id = "macau"
version = 1
destination = "820000"
[trust]
regions = ["820000", "440000"]
[freshness]
max_age = "6h"
[transfer]
attest = true
max_validity = "24h"
accept = ["820000"]
"""
# Beijing trusts every region but no attestation; Shanghai accepts Macau's.
BEIJING_POLICY = """
[policy]
id = "beijing"
version = 1
destination = "110000"
"""
SHANGHAI_POLICY = """
[policy]
id = "shanghai"
version = 1
destination = "310000"
[transfer]
accept = ["820000"]
"""
WANG_FANG = resident_id("440106", "19900307", "122")
ZHANG_WEI = resident_id("440106", "19850101", "231")
KEY = PrivateKey.generate(Algorithm.ES256)
KID = transfer.key_id(KEY.public_key())

WORLD = build_world(Path(tempfile.mkdtemp(prefix="huren-transfer-")))
_state = TrustState(WORLD.trust)
_state.add_region(Region(transfer.REGION, transfer.REGION_NAME))
_state.add_profile(load_profile(transfer.profile_text()), transfer.profile_text())
_state.add_issuer(
    Issuer(
        transfer.ISSUER, transfer.REGION, transfer.ISSUER_NAME, ProfileId("huren-attestation"), 1
    )
)
_state.add_key(IssuerKey(transfer.ISSUER, KeyId(KID), KEY.public_key()))
for _text in (MACAU_POLICY, BEIJING_POLICY, SHANGHAI_POLICY):
    _state.set_policy(load_policy(_text), _text)
TRUST = _state.snapshot()
LIMITS = Limits()


def _verify(code: str, at=NOW) -> Verdict:
    return verify_code(code, trust=TRUST, now=at, limits=LIMITS, identities=WORLD.identities)


def _decide(codes: Sequence[str], destination: str, at=NOW) -> Decision:
    verdicts = [_verify(c, at) for c in codes]
    where = destination  # a region code, as the service parses it
    return recognise(verdicts, TRUST.policy_for(where), where, at)  # type: ignore[arg-type]


def _attest(codes: Sequence[str], destination: str = "820000", at=NOW) -> Grant | Refused:
    decision = _decide(codes, destination, at)
    verdicts = [a.verdict for a in decision.assessments]
    profiles = {
        v.code.issuer: TRUST.profile_of(TRUST.issuers[v.code.issuer])
        for v in verdicts
        if v.code is not None
    }
    return transfer.assess(decision, verdicts, TRUST.policy_for(destination), profiles, at)  # type: ignore[arg-type]


def _code(region: str, number: str, level: Level, at=NOW) -> str:
    return WORLD.issue_level(region, number, level, at).code


def test_a_green_guangdong_code_gives_an_attestation_macau_reads_as_green():
    blue = _code("guangdong", WANG_FANG, Level.GREEN, NOW - timedelta(hours=1))
    grant = _attest([blue])
    assert isinstance(grant, Grant)
    # Macau's policy: at most 6 h old, so 5 h from now; the code itself lives 24 h.
    assert grant.expires_at == NOW + timedelta(hours=5)
    assert grant.bound == "code 1's freshness here"
    assert grant.policy == "macau@1"
    text = transfer.seal(grant, KEY, KID)
    assert text.startswith("HR1:")
    verdict = _verify(text)
    assert verdict.status is Status.VALID, verdict.detail
    assert verdict.code is not None
    assert verdict.code.colour is Colour.GREEN
    assert verdict.code.destination == "820000"
    assert verdict.code.region == "100000"
    assert verdict.code.subject == _verify(blue).code.subject  # type: ignore[union-attr]
    assert verdict.code.masked_identity == "440*************" + WANG_FANG[-2:]
    at_macau = _decide([text], "820000")
    assert at_macau.colour is Colour.GREEN
    assert [s.rule for s in at_macau.steps if s.rule.startswith("transfer.")] == [
        "transfer.accepted"
    ]


def test_the_payload_holds_exactly_the_documented_members_and_no_identity_number():
    blue = _code("guangdong", WANG_FANG, Level.GREEN)
    grant = _attest([blue])
    assert isinstance(grant, Grant)
    message = cose.parse(textform.decode(transfer.seal(grant, KEY, KID), "HR1:", LIMITS), LIMITS)
    claims = strictcbor.loads(message.payload, max_depth=8)
    assert set(claims) == {"iss", "iat", "exp", "st", "dst", "sub", "pol", "src"}
    assert set(claims["sub"]) == {"m", "l"}
    assert claims["src"] == [_verify(blue).provenance.code_ref]
    assert WANG_FANG.encode() not in message.payload
    assert WANG_FANG[3:16].encode() not in message.payload


def test_a_red_code_gets_no_attestation_and_the_decision_s_reason():
    red = _code("guangdong", ZHANG_WEI, Level.RED)
    refused = _attest([red])
    assert isinstance(refused, Refused)
    assert refused.refusal is Refusal.NOT_GREEN
    assert "RED" in refused.detail


def test_a_destination_whose_policy_does_not_allow_transfer_gets_none():
    blue = _code("guangdong", WANG_FANG, Level.GREEN)
    refused = _attest([blue], "110000")
    assert isinstance(refused, Refused)
    assert refused.refusal is Refusal.TRANSFER_OFF


def test_an_attestation_counts_only_where_the_policy_accepts_its_destination():
    grant = _attest([_code("guangdong", WANG_FANG, Level.GREEN)])
    assert isinstance(grant, Grant)
    text = transfer.seal(grant, KEY, KID)
    beijing = _decide([text], "110000")  # trusts every region, accepts no attestation
    assert beijing.colour is Colour.GREY
    assert beijing.steps[1].rule == "transfer.not_accepted"
    assert _decide([text], "310000").colour is Colour.GREEN  # accepts attestations for Macau


def test_an_attestation_is_never_the_source_of_another():
    grant = _attest([_code("guangdong", WANG_FANG, Level.GREEN)])
    assert isinstance(grant, Grant)
    refused = _attest([transfer.seal(grant, KEY, KID)])
    assert isinstance(refused, Refused)
    assert refused.refusal is Refusal.SOURCE_IS_ATTESTATION


def test_an_expired_source_refuses_the_whole_request():
    old = _code("macau", WANG_FANG, Level.GREEN, NOW - timedelta(hours=7))
    blue = _code("guangdong", WANG_FANG, Level.GREEN)
    refused = _attest([blue, old])
    assert isinstance(refused, Refused)
    assert refused.refusal is Refusal.SOURCE_NOT_VALID


def test_a_code_that_leaves_too_little_time_gets_none():
    almost_stale = _code("guangdong", WANG_FANG, Level.GREEN, NOW - timedelta(hours=5, minutes=57))
    refused = _attest([almost_stale])
    assert isinstance(refused, Refused)
    assert refused.refusal is Refusal.EXPIRES_TOO_SOON


def test_an_attestation_signed_by_an_unregistered_key_is_refused():
    grant = _attest([_code("guangdong", WANG_FANG, Level.GREEN)])
    assert isinstance(grant, Grant)
    other = PrivateKey.generate(Algorithm.ES256)
    verdict = _verify(transfer.seal(grant, other, transfer.key_id(other.public_key())))
    assert verdict.status is Status.REJECTED
    assert verdict.reason.value == "ERR_KEY_UNKNOWN"


def test_the_attestation_profile_refuses_any_state_but_green():
    grant = _attest([_code("guangdong", WANG_FANG, Level.GREEN)])
    assert isinstance(grant, Grant)
    claims = {**transfer.claims(grant), "st": "RED"}
    forged = textform.encode("HR1:", cose.sign(strictcbor.dumps(claims), KEY, b64decode(KID)))
    verdict = _verify(forged)
    assert verdict.status is Status.REJECTED
    assert verdict.reason.value == "ERR_COLOUR_UNKNOWN"


# ------------------------------------------------------------------ properties

LEVELS = st.sampled_from([Level.GREEN, Level.GREEN, Level.YELLOW, Level.RED])
SOURCES = st.lists(
    st.tuples(st.sampled_from(["guangdong", "macau", "hubei"]), LEVELS, st.integers(0, 5 * 60)),
    min_size=1,
    max_size=3,
)
DESTINATIONS = st.sampled_from(["820000", "110000", "310000"])


def _sources(drawn: list[tuple[str, Level, int]]) -> list[str]:
    return [_code(r, WANG_FANG, level, NOW - timedelta(minutes=age)) for r, level, age in drawn]


@given(SOURCES, DESTINATIONS)
def test_an_attestation_is_issued_only_for_a_green_decision(drawn, destination):
    codes = _sources(drawn)
    outcome = _attest(codes, destination)
    if isinstance(outcome, Grant):
        assert _decide(codes, destination).colour is Colour.GREEN
        assert TRUST.policy_for(destination).transfer.attest


@given(SOURCES)
def test_an_attestation_never_outlives_a_source_code(drawn):
    codes = _sources(drawn)
    outcome = _attest(codes)
    if isinstance(outcome, Grant):
        for code in codes:
            source = _verify(code).code
            assert source is not None
            assert outcome.expires_at <= source.expires_at
        verdict = _verify(transfer.seal(outcome, KEY, KID))
        assert verdict.code is not None
        assert verdict.code.expires_at <= min(_verify(c).code.expires_at for c in codes)  # type: ignore[union-attr]


_BLUE = _code("guangdong", WANG_FANG, Level.GREEN)
_GRANT = _attest([_BLUE])
assert isinstance(_GRANT, Grant)
_ATTESTATION = transfer.seal(_GRANT, KEY, KID)


@given(st.data())
def test_any_change_to_an_attestation_is_rejected(data):
    text = _ATTESTATION
    index = data.draw(st.integers(4, len(text) - 1), label="index")
    replacement = data.draw(
        st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"), label="replacement"
    )
    changed = text[:index] + replacement + text[index + 1 :]
    if changed == text:
        return
    verdict = _verify(changed)
    assert verdict.status is not Status.VALID
    assert verdict.colour is not Colour.GREEN


@given(SOURCES, st.integers(0, 30 * 60))
def test_an_attestation_never_makes_a_decision_greener_than_its_sources(drawn, later):
    """At its own destination, at any later instant, under the same policy. (Elsewhere a policy
    that accepts another destination's attestations takes that destination's judgement: see
    docs/transfer.md.)"""
    codes = _sources(drawn)
    outcome = _attest(codes)
    if not isinstance(outcome, Grant):
        return
    text = transfer.seal(outcome, KEY, KID)
    at = NOW + timedelta(seconds=later * 20)  # up to 10 h later: past many expiries
    sources = _decide(codes, "820000", at)
    for presented in ([text], [text, *codes]):
        if _decide(presented, "820000", at).colour is Colour.GREEN:
            assert sources.colour is Colour.GREEN


def test_the_payload_names_its_issuer_exactly():
    assert IssuerId("huren-hub") == transfer.ISSUER


@pytest.mark.parametrize("bad", ["attest = 1", 'max_validity = "25h"', 'accept = ["*"]'])
def test_policy_transfer_settings_are_checked(bad):
    from gateway.policy.loader import PolicyError

    text = '[policy]\nid = "x"\nversion = 1\ndestination = "820000"\n[transfer]\nattest = true\n'
    if not bad.startswith("attest"):
        text += bad + "\n"
    else:
        text = text.replace("attest = true", bad)
    with pytest.raises(PolicyError, match="transfer"):
        load_policy(text)


AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@given(st.text(min_size=1, max_size=20).filter(lambda t: "@" not in t), st.integers(0, 2**63 - 1))
def test_a_policy_label_is_read_back_exactly(policy_id, version):
    issuance = transfer.Issuance(
        "ref", RegionCode("820000"), policy_id, version, ("src",), "kid", AT, AT
    )
    assert transfer.policy_label(issuance.policy) == (policy_id, version)


@pytest.mark.parametrize(
    "label", ["macau", "macau@", "@1", "macau@00", "macau@01", "macau@-1", "macau@１"]
)
def test_a_malformed_policy_label_is_refused(label):
    with pytest.raises(ValueError, match="not a policy label"):
        transfer.policy_label(label)
