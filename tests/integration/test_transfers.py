"""转码 over real processes on loopback (docs/transfer.md, docs/web.md): the checkpoint edge's
``POST /api/attest``, the traveller page's relay (``/api/attestations``, ``/api/conversions``)
and every refusal of a region's ``POST /api/transfers`` that the demo does not show: a stale
trust list, the use limit, another traveller, a rolled-back list, and the attestation key's
rotation and revocation."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.model import Colour, Reason, Status
from regions.common.transfers import USE_LIMIT
from tests.conftest import resident_id
from tests.integration.transferworld import TransferWorld, transfer_world

pytestmark = pytest.mark.asyncio
WANG = resident_id("330106", "19900307", "122")
OTHER = resident_id("440106", "19850101", "031")


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[TransferWorld]:
    async with transfer_world(tmp_path) as started:
        yield started


async def _blue(world: TransferWorld, number: str = WANG) -> dict[str, Any]:
    return await world.declare("guangdong", id_number=number)


async def _convert(
    world: TransferWorld, attestation: str, number: str = WANG
) -> tuple[int, dict[str, Any]]:
    body = {"attestation": attestation, "id_number": number, "name": "王芳"}
    return await world.post(world.url("macau"), "/api/transfers", body)


# ------------------------------------------------------------- the checkpoint's JSON API


async def test_the_checkpoint_api_attests_a_green_code_and_says_why_not_for_a_red(world):
    blue = await _blue(world)
    status, answer = await world.post(
        world.checkpoint, "/api/attest", {"codes": [blue["code"]], "destination": "820000"}
    )
    assert status == 200
    assert answer["attestation"].startswith("HR1:")
    assert answer["refusal"] is None
    assert answer["decision"]["colour"] == "GREEN"
    assert answer["expiry_bound"]
    verdict = await world.hub.verify(answer["attestation"])
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)

    red = await world.declare("guangdong", id_number=OTHER, contact=True)
    status, answer = await world.post(
        world.checkpoint, "/api/attest", {"codes": [red["code"]], "destination": "820000"}
    )
    assert status == 200
    assert (answer["attestation"], answer["refusal"]) == (None, "NOT_GREEN")
    assert answer["decision"]["colour"] == "RED"
    assert answer["refusal_detail"]

    status, answer = await world.post(
        world.checkpoint, "/api/attest", {"codes": [blue["code"]], "destination": "440000"}
    )
    assert (status, answer["refusal"]) == (200, "TRANSFER_OFF")


@pytest.mark.parametrize(
    "body",
    [{"codes": [], "destination": "820000"}, {"codes": ["x"]}, {"codes": "x", "destination": "1"}],
)
async def test_the_checkpoint_api_refuses_a_bad_attest_request(world, body):
    status, answer = await world.post(world.checkpoint, "/api/attest", body)
    assert (status, answer["error"]["reason"]) == (400, "ERR_REQUEST")


# ------------------------------------------------------------- the traveller page's relay


async def test_guangdong_offers_macau_whose_policy_allows_transfer_and_macau_offers_nothing(world):
    status, body = await world.get(world.url("guangdong"), "/api/transfer-destinations")
    assert status == 200
    offered = json.loads(body)["destinations"]
    assert [d["destination"] for d in offered] == ["820000"]
    assert offered[0]["name"]["zh"] == "澳门健康码"
    assert offered[0]["green"]["pt"] == "Verde"
    _, body = await world.get(world.url("macau"), "/api/transfer-destinations")
    assert json.loads(body)["destinations"] == []  # Guangdong does not attest


async def test_the_page_relay_attests_then_macau_converts_and_both_qr_images_are_served(world):
    blue = await _blue(world)
    gd = world.url("guangdong")
    status, attested = await world.post(
        gd, "/api/attestations", {"code_id": blue["code_id"], "destination": "820000"}
    )
    assert status == 201, attested
    assert attested["attestation"].startswith("HR1:")
    assert attested["decision"]["colour"] == "GREEN"
    status, svg = await world.get(gd, f"/api/codes/{attested['attestation_id']}.svg")
    assert (status == 200 and svg.startswith(b"<?xml")) or b"<svg" in svg

    body = {
        "attestation": attested["attestation"],
        "destination": "820000",
        "id_number": WANG,
        "name": "王芳",
    }
    status, converted = await world.post(gd, "/api/conversions", body)
    assert status == 201, converted
    assert (converted["state"], converted["destination"]) == ("verde", "820000")
    assert converted["holder"] != WANG
    assert converted["holder"][0] == WANG[0]
    assert (converted["uses"], converted["uses_left"]) == (1, USE_LIMIT - 1)
    assert converted["green"]["zh"] == "绿码"
    assert converted["name"]["pt"]
    status, png = await world.get(gd, f"/api/codes/{converted['code_id']}.png")
    assert status == 200
    assert png.startswith(b"\x89PNG")


async def test_the_relay_refuses_clearly(world):
    gd = world.url("guangdong")
    red = await world.declare("guangdong", id_number=OTHER, contact=True)
    status, answer = await world.post(
        gd, "/api/attestations", {"code_id": red["code_id"], "destination": "820000"}
    )
    assert (status, answer["reason"]) == (422, "NOT_GREEN")
    assert answer["decision"]["colour"] == "RED"
    assert answer["error"]

    status, answer = await world.post(
        gd, "/api/attestations", {"code_id": "A" * 22, "destination": "820000"}
    )
    assert (status, answer["field"]) == (404, "code_id")

    blue = await _blue(world)
    status, answer = await world.post(
        gd, "/api/attestations", {"code_id": blue["code_id"], "destination": "110000"}
    )
    assert (status, answer["reason"]) == (422, "DESTINATION_NOT_OFFERED")

    attestation = await world.attestation(blue["code"])
    body = {"attestation": attestation, "destination": "820000", "id_number": OTHER}
    status, answer = await world.post(gd, "/api/conversions", body)
    assert (status, answer["reason"]) == (422, "IDENTITY_MISMATCH")  # Macau's own refusal

    world.peers("guangdong")["820000"] = "http://127.0.0.1:9"  # the destination does not answer
    body["id_number"] = WANG
    status, answer = await world.post(gd, "/api/conversions", body)
    assert (status, answer["reason"]) == (502, "DESTINATION_UNAVAILABLE")

    status, answer = await world.post(gd, "/api/conversions", {**body, "extra": 1})
    assert status == 400


# ------------------------------------------------------------- the region's own refusals


async def test_a_fourth_conversion_of_one_attestation_is_refused_as_a_replay(world):
    attestation = await world.attestation((await _blue(world))["code"])
    for use in range(1, USE_LIMIT + 1):
        status, answer = await _convert(world, attestation)
        assert status == 201, answer
        assert answer["attestation"]["uses_left"] == USE_LIMIT - use
    status, answer = await _convert(world, attestation)
    assert (status, answer["reason"]) == (409, "USE_LIMIT")
    world.clock.advance(timedelta(minutes=1))  # a new attestation a minute later has its own count
    fresh = await world.attestation((await _blue(world))["code"])
    assert (await _convert(world, fresh))[0] == 201


async def test_another_traveller_s_number_is_refused(world):
    attestation = await world.attestation((await _blue(world))["code"])
    status, answer = await _convert(world, attestation, OTHER)
    assert (status, answer["reason"]) == (422, "IDENTITY_MISMATCH")
    status, answer = await _convert(world, attestation, WANG[:-1] + "0")  # a bad check digit
    assert (status, answer["reason"]) == (400, "IDENTITY_MISMATCH")
    assert (await _convert(world, attestation))[0] == 201  # refusals used nothing up


async def test_a_stale_trust_list_refuses_every_conversion(world):
    attestation = await world.attestation((await _blue(world))["code"])
    held = world.trust("macau").held
    assert held is not None
    world.clock.advance(held.fresh_until - world.clock() + timedelta(seconds=1))
    status, answer = await _convert(world, attestation)
    assert (status, answer["reason"]) == (503, "TRUST_STALE")
    assert "fresh until" in answer["error"]


async def test_an_older_trust_list_never_replaces_a_newer_one(world):
    trust = world.trust("macau")
    assert trust.held is not None
    older, version = trust.held.text, trust.held.version
    kid = await world.new_key()  # a registry change: the hub publishes a newer list
    await world.synced()
    newer = trust.held
    assert newer is not None
    assert newer.version > version
    assert trust.offer(older) is False
    assert trust.held is newer
    assert kid in {k for (_, k) in newer.snapshot.keys}
    tampered = re.sub(r"\.([A-Za-z0-9_-])", lambda m: "." + "AB"[m[1] == "A"], older, count=1)
    assert trust.offer(tampered) is False
    assert trust.held is newer


async def test_a_rotated_key_keeps_old_attestations_until_its_revocation_stops_them(world):
    blue = await _blue(world)
    old = await world.attestation(blue["code"])
    assert (await world.hub.verify(old)).provenance.kid == world.kid
    new_kid = await world.new_key()
    await world.synced()
    newer = ""

    async def signed_by_new() -> bool:
        nonlocal newer
        newer = await world.attestation(blue["code"])
        return bool((await world.hub.verify(newer)).provenance.kid == new_kid)

    for _ in range(75):  # the gateway signs with the new key from its next refresh (about 1 s)
        if await signed_by_new():
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the gateway never signed with the rotated key")
    assert (await _convert(world, old))[0] == 201  # retired, not revoked: still good
    assert (await _convert(world, newer))[0] == 201

    world.revoke(world.kid)
    await world.synced()
    status, answer = await _convert(world, old)
    assert (status, answer["reason"]) == (422, Reason.ERR_KEY_REVOKED.value)
    assert (await _convert(world, newer))[0] == 201


async def test_the_relay_shows_no_green_the_destination_did_not_say(world):
    """A peer that answers 201 with anything but a GREEN code of sane length (a rogue or broken
    issuer) is not shown as the destination's green code."""
    from aiohttp import web

    answers: list[dict[str, Any]] = []

    async def rogue(request: web.Request) -> web.Response:
        return web.json_response(answers[-1], status=201)

    app = web.Application()
    app.router.add_post("/api/transfers", rogue)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        world.peers("guangdong")["820000"] = f"http://127.0.0.1:{port}"
        blue = await _blue(world)
        attestation = await world.attestation(blue["code"])
        body = {"attestation": attestation, "destination": "820000", "id_number": WANG}
        green = {
            "level": "green",
            "state": "verde",
            "code": "MO1:ABC",
            "expires_in": 3600,
            "holder": "3***8",
            "issued_at": "x",
            "expires_at": "y",
            "attestation": {"uses": 1, "uses_left": 2},
        }
        for bad in ({"level": "yellow", "state": "amarelo"}, {"code": "M" * 5000}):
            answers.append({**green, **bad})
            status, answer = await world.post(world.url("guangdong"), "/api/conversions", body)
            assert (status, answer["reason"]) == (502, "DESTINATION_UNAVAILABLE"), bad
        answers.append(green)
        status, answer = await world.post(world.url("guangdong"), "/api/conversions", body)
        assert status == 201, answer
    finally:
        await runner.cleanup()
