"""The gateway over gRPC with the real Hangzhou issuer: what a checkpoint sees."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway._generated.huren.v1 import verdict_pb2 as vpb
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clients import TlsCredentials
from gateway.errors import RegistryDamaged
from gateway.model import Colour, Reason, Status
from gateway.server.app import GatewayServer, TlsFiles, open_gateway
from gateway.server.certificates import ServerCertificates
from gateway.storage.files import StateFiles
from gateway.wire import verdict_from_pb
from tests.conftest import REPO, resident_id
from tests.integration.conftest import GATEWAY_LIMITS, Hub, MutableClock

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("body", "state", "colour"),
    [
        ({}, "绿码", Colour.GREEN),
        ({"symptoms": ["发热"]}, "黄码", Colour.YELLOW),
        (
            {"trips": [{"place": "310104", "from": "2000-01-01", "to": "2099-12-31"}]},
            "黄码",
            Colour.YELLOW,
        ),
        ({"contact": True}, "红码", Colour.RED),
        (
            {"trips": [{"place": "上海市浦东新区", "from": "2000-01-01", "to": "2099-12-31"}]},
            "红码",
            Colour.RED,
        ),
        (
            {"trips": [{"place": "温州市鹿城区", "from": "2000-01-01", "to": "2099-12-31"}]},
            "灰码",
            Colour.GREY,
        ),
    ],
    ids=["green", "yellow-symptoms", "yellow-medium-area", "red-contact", "red-high-area", "grey"],
)
async def test_a_hangzhou_code_is_verified_to_its_canonical_colour(hub: Hub, body, state, colour):
    code = await hub.regions["hangzhou"].issue(**body)
    verdict = await hub.verify(code)
    assert verdict.status is Status.VALID, verdict.detail
    assert verdict.colour is colour
    assert verdict.code is not None
    assert verdict.code.local_state == state
    assert (verdict.code.region, verdict.code.issuer) == ("330100", "hangzhou")
    assert verdict.provenance.kid == hub.regions["hangzhou"].kid
    assert verdict.code.masked_identity == resident_id()[:3] + "*" * 13 + resident_id()[-2:]
    trust = hub.service.trust.current
    assert verdict.provenance.trust_version == trust.version


async def test_the_same_traveller_has_one_subject_across_codes(hub):
    green = await hub.verify(await hub.regions["hangzhou"].issue())
    red = await hub.verify(await hub.regions["hangzhou"].issue(contact=True))
    other = await hub.verify(await hub.regions["hangzhou"].issue(id_number=resident_id(seq="999")))
    assert green.code
    assert red.code
    assert other.code
    assert green.code.subject == red.code.subject != other.code.subject


async def test_a_code_expires_when_the_clock_passes_its_expiry(hub: Hub, clock: MutableClock):
    code = await hub.regions["hangzhou"].issue()
    assert (await hub.verify(code)).colour is Colour.GREEN
    clock.advance(timedelta(hours=24))
    verdict = await hub.verify(code)
    assert verdict.reason is Reason.ERR_EXPIRED
    assert verdict.colour is Colour.GREY


async def test_batch_keeps_order_shares_duplicates_and_mixes_outcomes(hub):
    green = await hub.regions["hangzhou"].issue()
    red = await hub.regions["hangzhou"].issue(contact=True)
    codes = [green, "garbage", red, green, ""]
    response = await hub.stub.VerifyBatch(pb.VerifyBatchRequest(codes=codes))
    verdicts = [verdict_from_pb(v) for v in response.verdicts]
    assert [v.colour for v in verdicts] == [
        Colour.GREEN,
        Colour.GREY,
        Colour.RED,
        Colour.GREEN,
        Colour.GREY,
    ]
    assert [v.reason for v in verdicts] == [
        Reason.OK,
        Reason.ERR_FORMAT_UNKNOWN,
        Reason.OK,
        Reason.OK,
        Reason.ERR_EMPTY,
    ]
    assert verdicts[0] == verdicts[3]
    assert len({v.verified_at for v in verdicts}) == 1  # one instant for the whole batch


@pytest.mark.parametrize(
    ("size", "destination"),
    [(0, ""), (GATEWAY_LIMITS.max_batch + 1, ""), (1, "33010"), (1, "ＢＪ")],
    ids=["empty", "over-limit", "short-destination", "fullwidth-destination"],
)
async def test_malformed_batches_are_invalid_arguments(hub, size, destination):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await hub.stub.VerifyBatch(
            pb.VerifyBatchRequest(codes=["x"] * size, destination=destination)
        )
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_destination_is_validated_and_recorded(hub):
    code = await hub.regions["hangzhou"].issue()
    verdict = await hub.verify(code, destination="110000")
    assert verdict.provenance.destination == "110000"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await hub.verify(code, destination="beijing")
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_answers_in_order_and_echoes_ids(hub):
    green = await hub.regions["hangzhou"].issue()
    yellow = await hub.regions["hangzhou"].issue(symptoms=["咳嗽"])
    requests = [
        pb.VerifyStreamRequest(id="a", code=green),
        pb.VerifyStreamRequest(id="b", code="HC1:nope"),
        pb.VerifyStreamRequest(id="c", code=yellow),
    ]
    call = hub.stub.VerifyStream(iter(requests))
    answers = [(r.id, r.verdict.colour, r.verdict.reason) async for r in call]
    assert answers == [
        ("a", vpb.COLOUR_GREEN, vpb.REASON_OK),
        ("b", vpb.COLOUR_GREY, vpb.REASON_ERR_FORMAT_UNKNOWN),
        ("c", vpb.COLOUR_YELLOW, vpb.REASON_OK),
    ]


async def test_stream_refuses_an_overlong_id(hub):
    call = hub.stub.VerifyStream(iter([pb.VerifyStreamRequest(id="x" * 129, code="x")]))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for _ in call:
            pass
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_an_oversized_message_is_refused_before_parsing(hub):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await hub.stub.Verify(pb.VerifyRequest(code="x" * (GATEWAY_LIMITS.max_message_bytes + 1)))
    assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # The server is still there afterwards.
    assert (await hub.verify("x")).reason is Reason.ERR_FORMAT_UNKNOWN


async def test_an_oversized_code_inside_the_message_limit_is_a_verdict(hub):
    verdict = await hub.verify("eyJ" + "A" * 10_000)
    assert verdict.reason is Reason.ERR_TOO_LARGE


async def test_health_and_reflection_are_served(hub):
    health = health_pb2_grpc.HealthStub(hub.channel)
    for service in ("", "huren.v1.VerifierService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(hub.channel)
    call = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = set()
    async for response in call:
        names = {s.name for s in response.list_services_response.service}
        break
    assert {"huren.v1.VerifierService", "grpc.health.v1.Health"} <= names


V1_REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


async def _reflect(
    channel: grpc.aio.Channel, path: str, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    call = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return [answer async for answer in call(iter(requests))]


async def test_reflection_v1_and_v1alpha_describe_the_same_services(hub: Hub) -> None:
    """grpcurl and buf curl ask reflection v1 first; older clients ask v1alpha. Both answer,
    list the same services, and describe the API from the same files."""
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    symbol = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="huren.v1.RegistryService"
    )
    itself = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"
    )
    v1 = await _reflect(hub.channel, V1_REFLECTION, listing, symbol, itself)
    alpha = await _reflect(
        hub.channel,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        listing,
        symbol,
    )
    services = {s.name for s in v1[0].list_services_response.service}
    assert services == {s.name for s in alpha[0].list_services_response.service}
    assert services == {
        "huren.v1.VerifierService",
        "huren.v1.RegistryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert v1[1].file_descriptor_response == alpha[1].file_descriptor_response
    registry = descriptor_pb2.FileDescriptorProto.FromString(
        v1[1].file_descriptor_response.file_descriptor_proto[0]
    )
    assert (registry.name, registry.package) == ("huren/v1/registry.proto", "huren.v1")
    described = descriptor_pb2.FileDescriptorProto.FromString(
        v1[2].file_descriptor_response.file_descriptor_proto[0]
    )
    assert described.package == "grpc.reflection.v1"
    (service,) = described.service
    (method,) = service.method
    assert (method.input_type, method.output_type) == (
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )


def _buf() -> Path:
    """buf from .tools (``make tools``; ``make test`` installs it for buf lint)."""
    buf = REPO / ".tools" / "node_modules" / ".bin" / "buf"
    assert buf.is_file(), "buf is not installed: run `make tools`"
    return buf


async def test_buf_curl_calls_the_gateway_by_reflection_and_reads_its_error_details(
    hub: Hub,
) -> None:
    """An off-the-shelf gRPC client with no copy of our protos: it lists the methods over
    reflection v1, verifies a code (JSON in, the verdict's enum names out), and reads a
    refusal's google.rpc.ErrorInfo."""
    base = f"https://{hub.address}"
    common = ["curl", "--protocol", "grpc", "--cacert", str(hub.pki / "ca.pem")]
    common += ["--reflect-protocol", "grpc-v1"]

    def buf(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_buf()), *common, *args], capture_output=True, text=True, timeout=60
        )

    listed = await asyncio.to_thread(buf, "--list-methods", base)
    assert listed.returncode == 0, listed.stderr
    assert "huren.v1.VerifierService/Verify" in listed.stdout.split()
    assert "huren.v1.RegistryService/GetIssuer" in listed.stdout.split()

    code = await hub.regions["hangzhou"].issue()
    verified = await asyncio.to_thread(
        buf, "-d", json.dumps({"code": code}), f"{base}/huren.v1.VerifierService/Verify"
    )
    assert verified.returncode == 0, verified.stderr
    verdict = json.loads(verified.stdout)["verdict"]
    assert (verdict["status"], verdict["colour"]) == ("STATUS_VALID", "COLOUR_GREEN")

    missing = await asyncio.to_thread(
        buf, "-d", '{"issuer_id": "nowhere"}', f"{base}/huren.v1.RegistryService/GetIssuer"
    )
    assert missing.returncode != 0
    error = json.loads(missing.stderr)
    assert error["code"] == "not_found"
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.ErrorInfo"
    # buf resolves detail types only from the services' own files; any client library that
    # knows google.rpc.ErrorInfo decodes the value.
    info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(detail["value"] + "=="))
    assert (info.domain, info.reason, dict(info.metadata)) == (
        "huren.v1",
        "NOT_FOUND",
        {"status": "NOT_FOUND"},
    )


async def test_a_restarted_gateway_serves_the_same_registry(hub: Hub, clock):
    """A second gateway process on the same state files: same issuers, same subject key."""
    code = await hub.regions["hangzhou"].issue()
    gateway = open_gateway(hub.files.directory, GATEWAY_LIMITS, clock)
    server = GatewayServer(
        gateway, "127.0.0.1:0", certificates=ServerCertificates(TlsFiles(hub.pki))
    )
    port = await server.start()
    try:
        credentials = TlsCredentials.from_pki(hub.pki).channel()
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            stub = verifier_pb2_grpc.VerifierServiceStub(channel)
            response = await stub.Verify(pb.VerifyRequest(code=code))
        first = await hub.verify(code)
        second = verdict_from_pb(response.verdict)
        assert second.colour is Colour.GREEN
        assert first.code
        assert second.code
        assert first.code.subject == second.code.subject  # same subject key on disk
        assert first.provenance.trust_version == second.provenance.trust_version
    finally:
        await server.stop(0)
        gateway.hub.close()


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        pytest.param(
            "UPDATE audit SET detail = 'forged' WHERE seq = 3",
            "the audit chain is broken at entry 3",
            id="an-entry-edited",
        ),
        pytest.param(
            "DELETE FROM audit WHERE seq > 5", "removed from the end", id="entries-removed"
        ),
        pytest.param(
            "UPDATE issuers SET name = 'impostor' WHERE id = 'hangzhou'",
            "changed outside it",
            id="a-table-changed-outside-the-registry",
        ),
    ],
)
async def test_a_tampered_registry_is_not_served_from(hub: Hub, clock, tamper, problem):
    """A second gateway on a copy of the state files whose registry was changed behind the
    registry's back refuses to start (nothing is verified from it), and says why; the
    untouched copy starts."""
    copy = hub.files.directory.parent / "copy"
    shutil.copytree(hub.files.directory, copy)
    files = StateFiles(copy)
    gateway = open_gateway(files.directory, GATEWAY_LIMITS, clock)  # an untouched copy opens
    gateway.hub.close()
    with sqlite3.connect(files.database) as db:
        db.execute(tamper)
    with pytest.raises(RegistryDamaged) as refused:
        open_gateway(files.directory, GATEWAY_LIMITS, clock)
    assert problem in str(refused.value)
    assert "refusing to serve" in str(refused.value)


async def test_a_clock_set_back_judges_no_code_until_it_has_caught_up(hub: Hub, clock) -> None:
    """Once the gateway has seen an instant, a clock reading earlier than it by more than the
    leeway (set back by mistake, or to bring expired codes back) makes every code UNVERIFIABLE
    ERR_CLOCK_UNTRUSTED, in single calls, batches and decisions alike; within the leeway, or
    once the clock has caught up, codes are judged again."""
    start = clock()
    code = await hub.regions["hangzhou"].issue()
    assert (await hub.verify(code)).colour is Colour.GREEN
    clock.advance(timedelta(hours=2))
    later = await hub.verify(code)  # the gateway has now seen start + 2 h
    clock.now = start + timedelta(minutes=10)
    verdict = await hub.verify(code)
    assert (verdict.status, verdict.reason, verdict.colour) == (
        Status.UNVERIFIABLE,
        Reason.ERR_CLOCK_UNTRUSTED,
        Colour.GREY,
    )
    assert "already passed" in verdict.detail
    batch = await hub.stub.VerifyBatch(pb.VerifyBatchRequest(codes=[code, "garbage"]))
    assert {verdict_from_pb(v).reason for v in batch.verdicts} == {Reason.ERR_CLOCK_UNTRUSTED}
    clock.now = start + timedelta(hours=2) - GATEWAY_LIMITS.leeway  # within the leeway
    assert (await hub.verify(code)).reason is later.reason
    clock.now = start + timedelta(hours=3)
    assert (await hub.verify(code)).reason is not Reason.ERR_CLOCK_UNTRUSTED


async def test_a_restarted_gateway_does_not_trust_a_clock_before_the_last_registry_change(
    hub: Hub, clock
) -> None:
    """The registry's last change is an instant known to have passed: a gateway started with a
    clock before it judges nothing."""
    code = await hub.regions["hangzhou"].issue()
    last_change = clock()
    clock.now = last_change - timedelta(hours=1)
    gateway = open_gateway(hub.files.directory, GATEWAY_LIMITS, clock)
    try:
        verdict = gateway.service.verify(code)
        assert verdict.reason is Reason.ERR_CLOCK_UNTRUSTED
    finally:
        gateway.hub.close()
