"""An asyncio client for the Verifier service (the web edge, :mod:`gateway.web`): model
verdicts and decisions out, the project's errors (never ``grpc.RpcError``) on failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clients.calls import Connection, translate
from gateway.clients.tls import TlsCredentials
from gateway.errors import HurenError
from gateway.model import Verdict
from gateway.recognise import Decision
from gateway.transfer import AttestOutcome
from gateway.wire import attest_from_pb, decision_from_pb, timestamp, verdict_from_pb


class AsyncGatewayClient:
    """Verifies codes through a gateway over an asyncio channel: TLS with ``credentials``,
    plaintext without. Every call has a deadline of ``timeout`` seconds."""

    def __init__(
        self, target: str, credentials: TlsCredentials | None = None, *, timeout: float = 5.0
    ) -> None:
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target)
            mode = "plaintext"
        else:
            self._channel = grpc.aio.secure_channel(
                target, credentials.channel(), options=credentials.options()
            )
            mode = "tls"
        self.connection = Connection(target, mode)
        self._stub = pb_grpc.VerifierServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout

    async def verify(self, code: str, destination: str = "") -> Verdict:
        request = pb.VerifyRequest(code=code, destination=destination)
        try:
            response = await self._stub.Verify(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            raise translate(e, self.connection) from e
        return verdict_from_pb(response.verdict)

    async def recognise(
        self, codes: Sequence[str], destination: str, at: datetime | None = None
    ) -> Decision:
        request = pb.RecogniseRequest(codes=codes, destination=destination)
        if at is not None:
            request.at.CopyFrom(timestamp(at))
        try:
            response = await self._stub.Recognise(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            raise translate(e, self.connection) from e
        return decision_from_pb(response.decision)

    async def attest(self, codes: Sequence[str], destination: str) -> AttestOutcome:
        """转码: the hub's attestation for one traveller's codes at a destination (``Attest``)."""
        request = pb.AttestRequest(codes=codes, destination=destination)
        try:
            response = await self._stub.Attest(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            raise translate(e, self.connection) from e
        try:
            return attest_from_pb(response)
        except ValueError as e:
            raise HurenError(f"the gateway's attestation answer is inconsistent: {e}") from None

    async def serving(self) -> bool:
        try:
            response = await self._health.Check(
                health_pb2.HealthCheckRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as e:
            raise translate(e, self.connection) from e
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
