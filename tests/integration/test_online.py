"""Zhejiang's online verification when its API misbehaves: UNVERIFIABLE, never green, and no
other region is affected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.clients.online import OnlineClient
from gateway.model import Colour, Reason, Status
from gateway.online import CLIENT_HEADER, SIGNATURE_HEADER, request_body, request_signature
from gateway.server.metrics import PrometheusObserver
from gateway.wire import verdict_from_pb
from tests.faults import FaultyUpstream, random_token
from tests.integration.conftest import Hub, MutableClock, running_hub
from tests.integration.scrape import sample, scrape

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def faulty(tmp_path: Path, clock: MutableClock) -> AsyncIterator[tuple[Hub, FaultyUpstream]]:
    """Zhejiang and Beijing, with a fault-injecting proxy in front of Zhejiang's API."""
    proxy = FaultyUpstream(upstream="")
    await proxy.start()
    online = OnlineClient(timeout=0.5, breaker_failures=1000)
    async with running_hub(
        tmp_path,
        clock,
        names=("zhejiang", "beijing"),
        online=online,
        verify_urls={"zhejiang": proxy.url},
    ) as hub:
        proxy.upstream = hub.regions["zhejiang"].url + "/api/verify"
        yield hub, proxy
    await proxy.stop()


async def test_through_a_healthy_proxy_zhejiang_codes_verify(faulty):
    hub, proxy = faulty
    verdict = await hub.verify(await hub.regions["zhejiang"].issue())
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)
    assert proxy.calls == 1


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("refuse", "connection failed"),
        ("hang", "no answer within"),
        ("drip", "no answer within"),
        ("error", "HTTP 500"),
        ("garbage", "garbage"),
        ("binary", "not ASCII"),
        ("wrong-type", "not a signed answer"),
        ("huge", "too large"),
        ("forged", "did not authenticate"),
    ],
)
async def test_a_misbehaving_api_makes_codes_unverifiable_never_green(faulty, mode, detail):
    hub, proxy = faulty
    code = await hub.regions["zhejiang"].issue()
    proxy.mode = mode
    verdict = await hub.verify(code)
    assert (verdict.status, verdict.reason, verdict.colour) == (
        Status.UNVERIFIABLE,
        Reason.ERR_ISSUER_UNAVAILABLE,
        Colour.GREY,
    )
    assert detail in verdict.detail
    assert verdict.provenance.issuer == "zhejiang"
    proxy.mode = "pass"  # and it recovers at once
    assert (await hub.verify(code)).colour is Colour.GREEN


async def test_a_batch_asks_the_issuer_once_per_distinct_online_code(faulty):
    """Three copies of one online code in a batch cost the issuer one question, and all three
    get the answer."""
    hub, proxy = faulty
    code = await hub.regions["zhejiang"].issue()
    other = await hub.regions["zhejiang"].issue(contact=True)
    response = await hub.stub.VerifyBatch(pb.VerifyBatchRequest(codes=[code, other, code, code]))
    colours = [verdict_from_pb(v).colour for v in response.verdicts]
    assert colours == [Colour.GREEN, Colour.RED, Colour.GREEN, Colour.GREEN]
    assert proxy.calls == 2


async def test_a_replayed_answer_is_not_accepted(faulty):
    hub, proxy = faulty
    code = await hub.regions["zhejiang"].issue(contact=True)
    assert (await hub.verify(code)).colour is Colour.RED
    proxy.mode = "replay"
    verdict = await hub.verify(code)
    assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_ISSUER_UNAVAILABLE)
    assert "another question" in verdict.detail


async def test_when_the_api_is_down_other_regions_are_unaffected(faulty):
    hub, proxy = faulty
    zhejiang = await hub.regions["zhejiang"].issue()
    beijing = await hub.regions["beijing"].issue()
    proxy.mode = "hang"
    stuck = asyncio.create_task(hub.verify(zhejiang))
    await asyncio.sleep(0.05)  # the Zhejiang call is now waiting on its issuer
    verdict = await hub.verify(beijing)
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)
    assert not stuck.done()  # Beijing was answered while Zhejiang's issuer was still silent
    assert (await stuck).status is Status.UNVERIFIABLE
    await proxy.stop()  # and now the API is gone altogether
    assert (await hub.verify(zhejiang)).reason is Reason.ERR_ISSUER_UNAVAILABLE
    assert (await hub.verify(beijing)).colour is Colour.GREEN


@asynccontextmanager
async def _zhejiang_behind(
    mode: str, online: OnlineClient, tmp_path: Path, clock: MutableClock
) -> AsyncIterator[tuple[Hub, FaultyUpstream]]:
    """Zhejiang alone, its API reached through a proxy in ``mode``, asked by ``online``."""
    proxy = await FaultyUpstream(upstream="", mode=mode).start()
    try:
        async with running_hub(
            tmp_path, clock, names=("zhejiang",), online=online, verify_urls={"zhejiang": proxy.url}
        ) as hub:
            yield hub, proxy
    finally:
        await proxy.stop()


async def test_questions_queued_behind_a_hung_issuer_fail_within_the_same_budget(tmp_path, clock):
    """With one connection allowed per issuer and that issuer hanging, questions waiting for the
    connection do not each wait their turn and then their own timeout: the budget covers the
    wait, so only the first question ever reaches the issuer and all of them fail together.
    (A budget of 2 s: all four questions must reach the gateway before the first gives up,
    also on a loaded machine; with 0.5 s a late one once found the connection free again.)"""
    online = OnlineClient(timeout=2.0, per_issuer=1, breaker_failures=1000)
    async with _zhejiang_behind("hang", online, tmp_path, clock) as (hub, proxy):
        codes = [await hub.regions["zhejiang"].issue() for _ in range(4)]
        verdicts = await asyncio.gather(*(hub.verify(code) for code in codes))
        assert {(v.status, v.reason) for v in verdicts} == {
            (Status.UNVERIFIABLE, Reason.ERR_ISSUER_UNAVAILABLE)
        }
        assert all("no answer within 2 s" in v.detail for v in verdicts)
        assert proxy.calls == 1


async def test_after_repeated_failures_the_gateway_fails_fast(tmp_path, clock):
    online = OnlineClient(timeout=0.5, breaker_failures=2, breaker_open_seconds=60)
    async with _zhejiang_behind("error", online, tmp_path, clock) as (hub, proxy):
        code = await hub.regions["zhejiang"].issue()
        for _ in range(2):
            assert "HTTP 500" in (await hub.verify(code)).detail
        fast = await hub.verify(code)
        assert fast.status is Status.UNVERIFIABLE
        assert "failing fast" in fast.detail
        assert proxy.calls == 2  # the third question never reached the issuer


async def test_zhejiang_refuses_unauthenticated_and_stale_questions(hub: Hub, clock):
    url = hub.regions["zhejiang"].url + "/api/verify"
    client_file = hub.regions["zhejiang"].running.state_dir / "hub-client.json"
    import json

    client = json.loads(client_file.read_text())
    secret = bytes.fromhex(client["secret"])

    async def ask(body: bytes, signature: str, client_id: str = client["client_id"]) -> int:
        headers = {CLIENT_HEADER: client_id, SIGNATURE_HEADER: signature}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status

    fresh = request_body(random_token(), "nonce-1", clock.now)
    assert await ask(fresh, request_signature(secret, fresh)) == 200
    assert await ask(fresh, request_signature(b"x" * 32, fresh)) == 401
    assert await ask(fresh, request_signature(secret, fresh), client_id="someone") == 401
    stale = request_body(random_token(), "nonce-2", clock.now - timedelta(minutes=5))
    assert await ask(stale, request_signature(secret, stale)) == 401
    assert await ask(b"{}", request_signature(secret, b"{}")) == 400
    assert datetime.now(UTC) > clock.now - timedelta(days=1)  # the shared clock is real time


@pytest.mark.parametrize("status", [307, 308, 302])
async def test_a_redirect_is_never_followed(faulty, caplog, status):
    """An API that redirects the signed question elsewhere, to a server that would answer it
    genuinely (it forwards to Zhejiang itself): the gateway sends nothing there, not the question
    nor the hub's client credentials, and the code is UNVERIFIABLE. One log line says why, without
    the token."""
    hub, proxy = faulty
    elsewhere = await FaultyUpstream(upstream=hub.regions["zhejiang"].url + "/api/verify").start()
    try:
        code = await hub.regions["zhejiang"].issue()
        proxy.mode, proxy.redirect_to, proxy.redirect_status = "redirect", elsewhere.url, status
        with caplog.at_level(logging.WARNING, logger="gateway.clients.online"):
            verdict = await hub.verify(code)
        assert (verdict.status, verdict.reason, verdict.colour) == (
            Status.UNVERIFIABLE,
            Reason.ERR_ISSUER_UNAVAILABLE,
            Colour.GREY,
        )
        assert f"redirected the question (HTTP {status})" in verdict.detail
        assert "never followed" in verdict.detail
        assert elsewhere.calls == 0
        lines = [r.getMessage() for r in caplog.records if r.name == "gateway.clients.online"]
        assert len(lines) == 1
        assert "zhejiang" in lines[0]
        assert "redirect" in lines[0]
        assert code.rsplit("/", 1)[1] not in lines[0]
        # Where the redirect pointed would have answered: asked directly, the code is green.
        proxy.mode, proxy.upstream = "pass", elsewhere.url
        assert (await hub.verify(code)).colour is Colour.GREEN
        assert elsewhere.calls == 1
    finally:
        await elsewhere.stop()


async def test_an_online_code_has_the_same_reference_at_every_verification(faulty):
    """code_ref identifies a code in logs: the same Zhejiang code keeps its reference across
    verifications (each answer carries a fresh nonce), also when its issuer cannot answer, and
    another token of the same person and state has another reference."""
    hub, proxy = faulty
    code = await hub.regions["zhejiang"].issue()
    other = await hub.regions["zhejiang"].issue()
    first, again, different = [await hub.verify(c) for c in (code, code, other)]
    assert {v.colour for v in (first, again, different)} == {Colour.GREEN}
    assert first.provenance.code_ref is not None
    assert first.provenance.code_ref == again.provenance.code_ref
    assert different.provenance.code_ref not in (None, first.provenance.code_ref)
    proxy.mode = "error"
    unanswered = await hub.verify(code)
    assert unanswered.status is Status.UNVERIFIABLE
    assert unanswered.provenance.code_ref == first.provenance.code_ref


async def test_online_calls_failures_and_the_breaker_are_in_the_metrics(tmp_path, clock):
    """Scraped over HTTP: two failed questions open the breaker (2 failures), the third code
    fails fast and is counted so, and the breaker reads open."""
    metrics = PrometheusObserver(clock, "hub")
    online = OnlineClient(
        timeout=0.5, breaker_failures=2, breaker_open_seconds=60, observer=metrics
    )
    async with _zhejiang_behind("error", online, tmp_path, clock) as (hub, _):
        metrics.watch(hub.service, online.breakers)
        port = metrics.serve("127.0.0.1:0")
        try:
            code = await hub.regions["zhejiang"].issue()
            closed = await asyncio.to_thread(scrape, port)
            for _ in range(3):
                await hub.verify(code)
            figures = await asyncio.to_thread(scrape, port)
        finally:
            metrics.close()
    assert sample("huren_online_breaker_open", issuer="zhejiang") not in closed
    calls = {
        outcome: figures.get(sample("huren_online_calls_total", issuer="zhejiang", outcome=outcome))
        for outcome in ("answered", "failed", "fast_failed")
    }
    assert calls == {"answered": None, "failed": 2, "fast_failed": 1}
    assert figures[sample("huren_online_breaker_open", issuer="zhejiang")] == 1
