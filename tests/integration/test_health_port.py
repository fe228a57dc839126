"""The plaintext health port (``huren serve --health-listen``, gateway/server/probe.py): what a
Kubernetes gRPC probe, which cannot speak TLS, reads; and nothing else is served there."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.server.probe import LIVENESS, HealthPort
from tests.integration.cli import running
from tests.integration.conftest import running_hub
from tests.integration.test_replica import in_step, replica_dir, running_replica, until

pytestmark = pytest.mark.asyncio
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status(address: str, service: str = "") -> int:
    """The health status a plaintext probe reads at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return int(answer.status)


async def test_the_probe_reads_the_replicas_own_health_and_nothing_else(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        state = replica_dir(hub, tmp_path)
        # A replica whose hub cannot be reached: no trust list, so not ready.
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
            async with running_replica(hub, state, clock, target=nowhere) as lonely:
                probe = HealthPort(lonely.server.health, "127.0.0.1:0")
                address = f"127.0.0.1:{await probe.start()}"
                try:
                    assert await status(address) == NOT_SERVING
                    assert await status(address, "huren.v1.VerifierService") == NOT_SERVING
                    # Alive all the same: a liveness probe must not restart it for that.
                    assert await status(address, LIVENESS) == SERVING
                finally:
                    await probe.stop()

        async with running_replica(hub, state, clock) as replica:
            probe = HealthPort(replica.server.health, "127.0.0.1:0")
            address = f"127.0.0.1:{await probe.start()}"
            try:
                await until(lambda: in_step(replica, hub), "the replica takes the hub's list")
                assert await status(address) == SERVING
                assert await status(address, "huren.v1.VerifierService") == SERVING
                # Codes are not verified in plaintext: the port serves health alone.
                async with grpc.aio.insecure_channel(address) as channel:
                    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Verify(pb.VerifyRequest(code=code), timeout=5)
                    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
                    with pytest.raises(grpc.aio.AioRpcError) as unknown:
                        await health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5
                        )
                    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
            finally:
                await probe.stop()


async def test_huren_serve_health_listen(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    options = (
        *("serve", "--init", "--insecure", "--state-dir", str(tmp_path / "state")),
        *("--listen", "127.0.0.1:0", "--health-listen", f"127.0.0.1:{port}"),
    )
    with running(*options) as line:
        assert "listening on" in line

        async def serving() -> bool:
            try:
                return bool(await status(f"127.0.0.1:{port}") == SERVING)
            except grpc.aio.AioRpcError:
                return False  # not bound yet

        await until(serving, "the hub's health port answers SERVING")
        assert await status(f"127.0.0.1:{port}", "huren.v1.VerifierService") == SERVING
        assert await status(f"127.0.0.1:{port}", LIVENESS) == SERVING
    with pytest.raises(grpc.aio.AioRpcError):  # stopped with the gateway
        await asyncio.wait_for(status(f"127.0.0.1:{port}"), 10)
