"""The model's invariants, and that it and the protobuf API say the same thing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import wire as convert
from gateway._generated.huren.v1 import decision_pb2 as dpb
from gateway._generated.huren.v1 import verdict_pb2 as pb
from gateway.model import (
    CanonicalCode,
    Colour,
    Provenance,
    Reason,
    RegionCode,
    Status,
    Verdict,
    format_span,
    region_contains,
    region_prefix,
)
from gateway.policy import DEFAULT_NATIONAL
from gateway.recognise import DecisionReason, DecisionStatus, Role, recognise
from tests.conftest import NOW, make_world


def test_a_failed_verdict_cannot_carry_a_code_or_a_colour():
    world = make_world()
    from gateway.verify import verify_code

    valid = verify_code(
        world.code(),
        trust=world.snapshot,
        now=NOW,
        limits=world.limits,
        identities=world.identities,
    )
    assert valid.code is not None
    with pytest.raises(ValueError, match="exactly when"):
        Verdict(Status.REJECTED, Reason.ERR_SIGNATURE, "x", Provenance(), NOW, valid.code)
    with pytest.raises(ValueError, match="does not imply"):
        Verdict(Status.VALID, Reason.ERR_SIGNATURE, "x", Provenance(), NOW, valid.code)
    with pytest.raises(ValueError, match="exactly when"):
        Verdict(Status.VALID, Reason.OK, "x", Provenance(), NOW)
    failed = Verdict.failed(Reason.ERR_SIGNATURE, "x", Provenance(), NOW)
    assert failed.colour is Colour.GREY


def test_temporary_reasons_are_unverifiable_and_the_rest_rejected():
    assert Reason.ERR_TRUST_STALE.status is Status.UNVERIFIABLE
    assert Reason.ERR_CLOCK_UNTRUSTED.status is Status.UNVERIFIABLE
    assert Reason.ERR_INTERNAL.status is Status.REJECTED
    assert Reason.OK.status is Status.VALID


@pytest.mark.parametrize(
    ("model_enum", "proto_enum", "prefix"),
    [
        (Status, pb.Status, "STATUS_"),
        (Colour, pb.Colour, "COLOUR_"),
        (Reason, pb.Reason, "REASON_"),
        (DecisionStatus, dpb.DecisionStatus, "DECISION_STATUS_"),
        (DecisionReason, dpb.DecisionReason, "DECISION_REASON_"),
        (Role, dpb.CodeRole, "CODE_ROLE_"),
    ],
    ids=["status", "colour", "reason", "decision-status", "decision-reason", "code-role"],
)
def test_model_and_proto_enums_have_the_same_members(model_enum, proto_enum, prefix):
    proto_names = {n.removeprefix(prefix) for n in proto_enum.DESCRIPTOR.values_by_name}
    proto_names -= {"UNSPECIFIED"}
    assert proto_names == {m.name for m in model_enum}


def test_verdicts_survive_the_round_trip_through_protobuf():
    world = make_world()
    from gateway.verify import verify_code

    for code in (world.code(), world.code(iss="nobody"), ""):
        verdict = verify_code(
            code, trust=world.snapshot, now=NOW, limits=world.limits, identities=world.identities
        )
        message = convert.verdict(verdict)
        wire = pb.Verdict.FromString(message.SerializeToString())
        assert convert.verdict_from_pb(wire) == verdict


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_INSTANTS = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_PROVENANCE = st.builds(
    Provenance,
    region=st.none() | _TEXT.filter(bool),
    issuer=st.none() | _TEXT.filter(bool),
    kid=st.none() | _TEXT.filter(bool),
    profile_id=st.none() | _TEXT.filter(bool),
    profile_version=st.none() | st.integers(1, 2**31),
    trust_version=st.integers(0, 2**31),
    code_ref=st.none() | _TEXT.filter(bool),
    destination=st.none() | _TEXT.filter(bool),
)
_CODES = st.builds(
    CanonicalCode,
    colour=st.sampled_from(Colour),
    region=_TEXT,
    issuer=_TEXT,
    issued_at=_INSTANTS,
    expires_at=_INSTANTS,
    local_state=_TEXT,
    masked_identity=_TEXT,
    subject=_TEXT,
)


@given(
    st.one_of(
        st.builds(Verdict.valid, _CODES, _PROVENANCE, _INSTANTS, _TEXT),
        st.builds(
            Verdict.failed,
            st.sampled_from([r for r in Reason if r is not Reason.OK]),
            _TEXT,
            _PROVENANCE,
            _INSTANTS,
        ),
    )
)
def test_any_verdict_survives_the_round_trip_through_protobuf(verdict: Verdict) -> None:
    """Every field, to the microsecond; absent provenance stays absent."""
    message = pb.Verdict.FromString(convert.verdict(verdict).SerializeToString())
    assert convert.verdict_from_pb(message) == verdict


def test_an_inconsistent_verdict_from_the_wire_is_refused():
    message = pb.Verdict(
        status=pb.STATUS_REJECTED, colour=pb.COLOUR_GREEN, reason=pb.REASON_ERR_SIGNATURE
    )
    with pytest.raises(ValueError, match="colour"):
        convert.verdict_from_pb(message)


def test_decisions_survive_the_round_trip_through_protobuf():
    world = make_world()
    from gateway.verify import verify_code

    verdicts = [
        verify_code(
            code, trust=world.snapshot, now=NOW, limits=world.limits, identities=world.identities
        )
        for code in (world.code(), "not a code")
    ]
    decision = recognise(verdicts, DEFAULT_NATIONAL, RegionCode("310000"), NOW, trust_version=3)
    assert convert.decision_from_pb(convert.decision(decision)) == decision
    refused = convert.decision(decision)
    refused.status = dpb.DECISION_STATUS_UNSPECIFIED
    with pytest.raises(ValueError, match="unknown status"):
        convert.decision_from_pb(refused)


@pytest.mark.parametrize(
    ("outer", "inner", "contains"),
    [
        ("330000", "330100", True),
        ("330000", "330106", True),
        ("330100", "330106", True),
        ("330100", "330000", False),
        ("330100", "331000", False),
        ("110000", "110105", True),
        ("330000", "330000", True),
        ("330000", "340000", False),
    ],
)
def test_region_containment_follows_the_code_hierarchy(outer, inner, contains):
    assert region_contains(RegionCode(outer), RegionCode(inner)) is contains


def test_region_prefixes_and_spans():
    assert [region_prefix(RegionCode(c)) for c in ("330000", "330100", "330106")] == [
        "33",
        "3301",
        "330106",
    ]
    from datetime import timedelta

    spans = [timedelta(days=180), timedelta(hours=72), timedelta(hours=6), timedelta(minutes=1810)]
    assert [format_span(d) for d in spans] == ["180d", "72h", "6h", "30h10m"]
    assert format_span(timedelta(minutes=30)) == "30m"
    assert format_span(timedelta(seconds=45)) == "45s"
