"""All seven regional issuers on loopback, verified through one gateway over gRPC."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.model import Colour, Reason, Status
from gateway.wire import verdict_from_pb
from regions import REGIONS, spec_of
from regions.common.runner import start_region
from regions.common.spec import Level
from tests.conftest import resident_id
from tests.integration.conftest import Hub, MutableClock, RegionHandle, declaration

pytestmark = pytest.mark.asyncio

WALLET: dict[Level, dict[str, object]] = {
    Level.GREEN: {},
    Level.YELLOW: {"symptoms": ["咳嗽"]},
    Level.RED: {"contact": True},
}
COLOURS = {Level.GREEN: Colour.GREEN, Level.YELLOW: Colour.YELLOW, Level.RED: Colour.RED}


async def test_every_region_code_of_every_colour_verifies_to_its_canonical_colour(hub: Hub):
    subjects = set()
    for name in REGIONS:
        spec = spec_of(name)
        for level, extra in WALLET.items():
            status, answer = await hub.regions[name].declare(declaration(**extra))
            assert (status, answer["state"]) == (201, spec.states[level]), (name, answer)
            verdict = await hub.verify(answer["code"])
            assert verdict.status is Status.VALID, (name, verdict.reason, verdict.detail)
            assert verdict.colour is COLOURS[level]
            assert verdict.code is not None
            assert (verdict.code.region, verdict.code.issuer) == (spec.code, spec.issuer)
            assert verdict.code.local_state == spec.states[level]
            subjects.add(verdict.code.subject)
    assert len(subjects) == 1  # one traveller, seven regions, three identity carriers


async def test_province_and_city_codes_for_one_person_link_to_one_subject(hub: Hub):
    """Zhejiang (online, masked + link hash) and Hangzhou (offline, full number) overlap."""
    hangzhou = await hub.verify(await hub.regions["hangzhou"].issue())
    zhejiang = await hub.verify(await hub.regions["zhejiang"].issue(contact=True))
    assert hangzhou.code
    assert zhejiang.code
    assert (hangzhou.colour, zhejiang.colour) == (Colour.GREEN, Colour.RED)
    assert hangzhou.code.subject == zhejiang.code.subject
    assert hangzhou.code.masked_identity == zhejiang.code.masked_identity


TRIP = [{"place": "温州市鹿城区", "from": "2000-01-01", "to": "2099-12-31"}]


@pytest.mark.parametrize("name", ["hangzhou", "zhejiang", "beijing", "hubei"])
async def test_pending_codes_become_final_after_the_back_end_review(
    hub: Hub, clock: MutableClock, name: str
):
    region, spec = hub.regions[name], spec_of(name)
    status, pending = await region.declare(declaration(trips=TRIP))
    assert (status, pending["pending"], pending["state"]) == (201, True, spec.states[Level.PENDING])
    verdict = await hub.verify(pending["code"])
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREY)
    # Before the review is due, the traveller still gets a pending code.
    _, still = await region.request("GET", f"/api/declarations/{pending['id']}")
    assert still["pending"] is True
    clock.advance(timedelta(seconds=3))
    _, final = await region.request("GET", f"/api/declarations/{pending['id']}")
    assert (final["pending"], final["state"]) == (False, spec.states[Level.GREEN])
    assert (await hub.verify(final["code"])).colour is Colour.GREEN


@pytest.mark.parametrize("name", ["shanghai", "guangdong", "macau"])
async def test_regions_without_a_pending_state_issue_no_code_until_the_review(
    hub: Hub, clock: MutableClock, name: str
):
    region = hub.regions[name]
    status, pending = await region.declare(declaration(trips=TRIP))
    assert (status, pending["pending"], pending["code"]) == (202, True, None)
    clock.advance(timedelta(seconds=3))
    status, final = await region.request("GET", f"/api/declarations/{pending['id']}")
    assert (status, final["pending"]) == (200, False)
    assert (await hub.verify(final["code"])).colour is Colour.GREEN


async def test_the_review_resolves_places_by_the_region_data(hub: Hub, clock: MutableClock):
    trip = [{"place": "上海市静安区", "from": "2000-01-01", "to": "2099-12-31"}]  # reviewed: high
    _, pending = await hub.regions["hubei"].declare(declaration(trips=trip))
    clock.advance(timedelta(seconds=3))
    _, final = await hub.regions["hubei"].request("GET", f"/api/declarations/{pending['id']}")
    assert final["state"] == "10"
    assert (await hub.verify(final["code"])).colour is Colour.RED


async def test_an_appeal_is_decided_by_an_operator_and_every_step_is_recorded(hub: Hub):
    region = hub.regions["beijing"]
    _, declared = await region.declare(declaration(contact=True))
    assert (await hub.verify(declared["code"])).colour is Colour.RED
    body = {"declaration_id": declared["id"], "reason": "I was not there"}
    status, filed = await region.request("POST", "/api/appeals", body)
    assert (status, filed["status"]) == (201, "open")
    appeal_id = filed["appeal_id"]
    # Only operators list and decide appeals.
    assert (await region.request("GET", "/api/appeals"))[0] == 401
    decision = {"decision": "accept", "reason": "contact list error", "level": "green"}
    path = f"/api/appeals/{appeal_id}/decision"
    assert (await region.request("POST", path, decision, token="wrong"))[0] == 401
    token = region.running.operator_token
    status, listed = await region.request("GET", "/api/appeals?status=open", token=token)
    assert [a["id"] for a in listed["appeals"]] == [appeal_id]
    status, decided = await region.request("POST", path, decision, token=token)
    assert (status, decided["status"], decided["decided_by"]) == (200, "accepted", "duty-officer")
    corrected = await hub.verify(decided["corrected"]["code"])
    assert (corrected.colour, corrected.code and corrected.code.local_state) == (
        Colour.GREEN,
        "未见异常",
    )
    # Deciding twice is refused; the traveller's next code stays corrected.
    assert (await region.request("POST", path, decision, token=token))[0] == 409
    _, current = await region.request("GET", f"/api/declarations/{declared['id']}")
    assert current["state"] == "未见异常"
    _, record = await region.request("GET", f"/api/appeals/{appeal_id}")
    assert [(e["actor"], e["action"]) for e in record["events"]] == [
        ("holder", "filed"),
        ("duty-officer", "accepted"),
        ("system", "corrected code issued"),
    ]
    assert all(e["at"] for e in record["events"])
    assert resident_id() not in str(record)


async def test_a_rejected_appeal_states_its_reason_and_changes_nothing(hub: Hub):
    region = hub.regions["guangdong"]
    _, declared = await region.declare(declaration(symptoms=["发热"]))
    _, filed = await region.request(
        "POST", "/api/appeals", {"declaration_id": declared["id"], "reason": "recovered"}
    )
    token = region.running.operator_token
    status, decided = await region.request(
        "POST",
        f"/api/appeals/{filed['appeal_id']}/decision",
        {"decision": "reject", "reason": "symptoms within 14 days"},
        token=token,
    )
    assert (status, decided["status"], decided["decision_reason"]) == (
        200,
        "rejected",
        "symptoms within 14 days",
    )
    assert "corrected" not in decided
    _, current = await region.request("GET", f"/api/declarations/{declared['id']}")
    assert current["state"] == "yellow"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"declaration_id": "nope", "reason": "x"}, 404),
        ({"declaration_id": "x"}, 400),
        ({"declaration_id": "x", "reason": "x" * 501}, 400),
        ({"declaration_id": "x", "reason": "x", "extra": 1}, 400),
    ],
    ids=["unknown-declaration", "no-reason", "long-reason", "unknown-field"],
)
async def test_malformed_appeals_are_refused(hub: Hub, body, status):
    assert (await hub.regions["macau"].request("POST", "/api/appeals", body))[0] == status


async def test_a_batch_mixes_online_and_offline_codes_in_order(hub: Hub):
    codes = [
        await hub.regions["zhejiang"].issue(),
        await hub.regions["shanghai"].issue(contact=True),
        await hub.regions["zhejiang"].issue(symptoms=["咳嗽"]),
        await hub.regions["macau"].issue(),
    ]
    response = await hub.stub.VerifyBatch(pb.VerifyBatchRequest(codes=codes))
    verdicts = [verdict_from_pb(v) for v in response.verdicts]
    assert [v.colour for v in verdicts] == [Colour.GREEN, Colour.RED, Colour.YELLOW, Colour.GREEN]
    assert [v.code and v.code.issuer for v in verdicts] == [
        "zhejiang",
        "shanghai",
        "zhejiang",
        "macau",
    ]


async def test_a_region_key_the_gateway_does_not_know_is_refused(
    hub: Hub, clock: MutableClock, tmp_path
):
    """Codes signed with a key that was never registered (a rotated, unannounced key)."""
    other = RegionHandle(await start_region("macau", state_dir=tmp_path / "other", clock=clock))
    try:
        verdict = await hub.verify(await other.issue())
        assert (verdict.status, verdict.reason) == (Status.REJECTED, Reason.ERR_KEY_UNKNOWN)
        assert (verdict.provenance.issuer, verdict.provenance.kid) == ("macau", None)
    finally:
        await other.running.stop()
