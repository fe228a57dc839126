"""Request messages that do not decode, sent as hand-made bytes on a raw channel: every method of
every service the gateway serves answers INVALID_ARGUMENT with a message that names no Python
class, logs no traceback, and the gateway keeps serving."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from gateway._generated.huren.v1 import registry_pb2, verifier_pb2
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.model import Reason
from gateway.server.app import GatewayServer, open_gateway
from gateway.wire import verdict_from_pb
from tests.integration.conftest import GATEWAY_LIMITS, new_state

pytestmark = pytest.mark.asyncio

TRUNCATED = b"\x0a\x05ab"  # field 1, length 5, but only 2 bytes follow
BAD_UTF8 = b"\x0a\x02\xff\xfe"  # field 1 (a string in these requests), invalid UTF-8

METHODS = [
    method
    for file, service in [
        (verifier_pb2, "VerifierService"),
        (registry_pb2, "RegistryService"),
        (health_pb2, "Health"),
        (reflection_pb2, "ServerReflection"),
    ]
    for method in file.DESCRIPTOR.services_by_name[service].methods
]


def _first_field_is_text(method: MethodDescriptor) -> bool:
    field = method.input_type.fields_by_number.get(1)
    return field is not None and field.type == field.TYPE_STRING


CASES = [pytest.param(m, TRUNCATED, id=f"{m.name}-truncated") for m in METHODS] + [
    pytest.param(m, BAD_UTF8, id=f"{m.name}-bad-utf8") for m in METHODS if _first_field_is_text(m)
]


@pytest_asyncio.fixture
async def channel(tmp_path: Path, clock) -> AsyncIterator[grpc.aio.Channel]:
    """A gateway with an empty registry (plaintext: the handling is the same on every port)."""
    gateway = open_gateway(new_state(tmp_path / "gateway").directory, GATEWAY_LIMITS, clock)
    server = GatewayServer(gateway, "127.0.0.1:0")
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
            yield opened
    finally:
        await server.stop(0)
        gateway.hub.close()


async def _send(channel: grpc.aio.Channel, method: MethodDescriptor, raw: bytes) -> None:
    """Send ``raw`` as the request (the only one of a stream) and read the whole answer."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
        async for _ in call(iter([raw])):
            pass
    elif method.server_streaming:
        async for _ in channel.unary_stream(path, None, None)(raw):
            pass
    else:
        await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(raw)


@pytest.mark.parametrize(("method", "raw"), CASES)
async def test_a_request_that_does_not_decode_is_an_invalid_argument(channel, caplog, method, raw):
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.aio.AioRpcError) as failed:
        await _send(channel, method, raw)
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    message = failed.value.details() or ""
    assert message.startswith("malformed request")
    for leak in ("class", "<", "DecodeError", "google.protobuf", "Unexpected"):
        assert leak not in message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The gateway goes on serving, on the same connection.
    stub = channel.unary_unary(
        "/huren.v1.VerifierService/Verify",
        request_serializer=pb.VerifyRequest.SerializeToString,
        response_deserializer=pb.VerifyResponse.FromString,
    )
    answer = await stub(pb.VerifyRequest(code="HC1:x"))
    assert verdict_from_pb(answer.verdict).reason is Reason.ERR_FORMAT_UNKNOWN


async def test_a_well_formed_stream_is_still_answered(channel):
    """The guard decodes streamed requests as before: a stream of valid messages is answered."""
    call = channel.stream_stream(
        "/huren.v1.VerifierService/VerifyStream",
        request_serializer=pb.VerifyStreamRequest.SerializeToString,
        response_deserializer=pb.VerifyStreamResponse.FromString,
    )
    requests = [pb.VerifyStreamRequest(id=str(i), code="HC1:x") for i in range(3)]
    answers = [answer async for answer in call(iter(requests))]
    assert [a.id for a in answers] == ["0", "1", "2"]
