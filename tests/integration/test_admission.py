"""A gateway flooded past its bounds answers every call correctly or refuses it at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clients import TlsCredentials
from gateway.limits import Limits
from gateway.model import Colour, Status
from gateway.server.app import GatewayServer, TlsFiles, open_gateway
from gateway.server.certificates import ServerCertificates
from gateway.server.status import DOMAIN, REASON_KEY
from gateway.wire import verdict_from_pb
from tests.integration.conftest import Hub, MutableClock
from tests.integration.rpc import error_info

pytestmark = pytest.mark.asyncio

BOUNDED = Limits(max_batch=40, max_concurrent_rpcs=2, max_concurrent_streams=1)
DEADLINE_S = 20.0


@dataclass
class Bounded:
    stub: verifier_pb2_grpc.VerifierServiceAsyncStub
    server: GatewayServer


@asynccontextmanager
async def bounded_gateway(hub: Hub, clock: MutableClock) -> AsyncIterator[Bounded]:
    """A second gateway on the hub's registry, with the tight bounds of ``BOUNDED``."""
    gateway = open_gateway(hub.files.directory, BOUNDED, clock)
    server = GatewayServer(
        gateway, "127.0.0.1:0", certificates=ServerCertificates(TlsFiles(hub.pki))
    )
    port = await server.start()
    credentials = TlsCredentials.from_pki(hub.pki).channel()
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            yield Bounded(verifier_pb2_grpc.VerifierServiceStub(channel), server)
    finally:
        await server.stop(0)
        gateway.hub.close()


def _tampered(code: str) -> str:
    """The code with the last character of its signature changed."""
    return code[:-1] + ("A" if code[-1] != "A" else "B")


def _forged_at(code: str, n: int) -> str:
    """The code with one character inside its signature changed (a different one for each
    ``n``): still canonical base64url, so only the signature check refuses it."""
    where = len(code) - 10 - n % 40
    return code[:where] + ("A" if code[where] != "A" else "B") + code[where + 1 :]


def assert_refused_as_overloaded(error: grpc.aio.AioRpcError) -> None:
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    info = error_info(error)
    assert (info.domain, info.reason) == (DOMAIN, "RESOURCE_EXHAUSTED")
    trailers: dict[str, Any] = dict(cast(Any, error.trailing_metadata()) or ())
    assert trailers[REASON_KEY] == "RESOURCE_EXHAUSTED"
    assert "retry later" in (error.details() or "")


async def test_a_flood_past_the_bound_is_answered_correctly_or_refused_never_queued(
    hub: Hub, clock: MutableClock
):
    region = hub.regions["hangzhou"]
    greens = [await region.issue() for _ in range(3)]
    red = await region.issue(contact=True)
    forged = [_tampered(c) for c in greens]
    # Distinct texts, so that a batch runs in slices and holds its place across them.
    # Forgeries cost a full verification each (their signatures are checked and fail), so every
    # batch holds its place for milliseconds across its slices, whatever the machine's speed.
    more = [_forged_at(greens[i % 3], i) for i in range(BOUNDED.max_batch - 7)]
    batch = [*greens, red, *forged, *more]
    expected = {code: await hub.verify(code) for code in batch}
    assert all(expected[c].colour is Colour.GREEN for c in greens)
    assert all(expected[c].status is not Status.VALID for c in forged)

    async with bounded_gateway(hub, clock) as bounded:
        stub = bounded.stub

        async def one(i: int) -> tuple[str, list[str]]:
            """("answered" | "refused", the codes asked)."""
            codes = batch if i % 3 == 0 else [batch[i % 8]]
            try:
                if len(codes) > 1:
                    response = await stub.VerifyBatch(
                        pb.VerifyBatchRequest(codes=codes), timeout=DEADLINE_S
                    )
                    verdicts = [verdict_from_pb(v) for v in response.verdicts]
                else:
                    single = await stub.Verify(pb.VerifyRequest(code=codes[0]), timeout=DEADLINE_S)
                    verdicts = [verdict_from_pb(single.verdict)]
            except grpc.aio.AioRpcError as error:
                assert_refused_as_overloaded(error)  # never a hang: no DEADLINE_EXCEEDED
                return "refused", codes
            for code, verdict in zip(codes, verdicts, strict=True):
                want = expected[code]
                assert (verdict.status, verdict.colour, verdict.reason) == (
                    want.status,
                    want.colour,
                    want.reason,
                ), code[:40]
                if code in forged or code in more:
                    assert verdict.colour is not Colour.GREEN
            return "answered", codes

        # Whether calls overlap past the bound depends on how the loop interleaves them; every
        # flood must be answered correctly or refused, and one of a few floods must be refused.
        kinds: list[str] = []
        for _ in range(5):
            outcomes = await asyncio.gather(*(one(i) for i in range(90)))
            kinds += [kind for kind, _ in outcomes]
            if "refused" in kinds:
                break
        assert "refused" in kinds, kinds
        assert "answered" in kinds, kinds
        # Every place was given back: the bound admits calls again once the flood is over.
        for _ in range(2 * BOUNDED.max_concurrent_rpcs + 1):
            response = await stub.Verify(pb.VerifyRequest(code=greens[0]), timeout=DEADLINE_S)
            assert verdict_from_pb(response.verdict).colour is Colour.GREEN


async def test_streams_have_their_own_bound_and_give_their_place_back(
    hub: Hub, clock: MutableClock
):
    green = await hub.regions["hangzhou"].issue()
    async with bounded_gateway(hub, clock) as bounded:
        stub = bounded.stub
        streams: Any = stub  # the stubs' types know only iterator-fed streams
        first = streams.VerifyStream(timeout=DEADLINE_S)
        await first.write(pb.VerifyStreamRequest(id="1", code=green))
        opened = await first.read()
        assert isinstance(opened, pb.VerifyStreamResponse)
        assert opened.id == "1"  # the stream is open and holds the one place

        second = streams.VerifyStream(timeout=DEADLINE_S)
        await second.write(pb.VerifyStreamRequest(id="2", code=green))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await second.read()
        assert_refused_as_overloaded(caught.value)

        # Unary calls are counted apart from streams.
        response = await stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
        assert verdict_from_pb(response.verdict).colour is Colour.GREEN

        await first.done_writing()
        assert await first.code() is grpc.StatusCode.OK
        third = streams.VerifyStream(timeout=DEADLINE_S)
        await third.write(pb.VerifyStreamRequest(id="3", code=green))
        reply = await third.read()
        assert isinstance(reply, pb.VerifyStreamResponse)
        assert reply.id == "3"
        assert verdict_from_pb(reply.verdict).colour is Colour.GREEN
        await third.done_writing()
