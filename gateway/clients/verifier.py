"""A small synchronous client for the Verifier service (CLI, demo, scripts): model verdicts
and decisions out, the project's errors (never ``grpc.RpcError``) on failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clients.tls import ChannelClient, TlsCredentials
from gateway.model import Verdict
from gateway.recognise import Decision
from gateway.wire import decision_from_pb, timestamp, verdict_from_pb

CLIENT_BATCH = 100


class GatewayClient(ChannelClient):
    """Verifies codes through a gateway, over TLS (``credentials``) or plaintext (None)."""

    def __init__(
        self, target: str, credentials: TlsCredentials | None = None, *, timeout: float = 10.0
    ) -> None:
        super().__init__(target, credentials)
        self._stub = pb_grpc.VerifierServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout

    def verify(self, code: str, destination: str = "") -> Verdict:
        with self.calls():
            response = self._stub.Verify(
                pb.VerifyRequest(code=code, destination=destination), timeout=self._timeout
            )
        return verdict_from_pb(response.verdict)

    def verify_many(self, codes: Sequence[str], destination: str = "") -> list[Verdict]:
        """One ``Verify`` for a single code, ``VerifyBatch`` calls of up to 100 otherwise."""
        if len(codes) == 1:
            return [self.verify(codes[0], destination)]
        out: list[Verdict] = []
        for start in range(0, len(codes), CLIENT_BATCH):
            with self.calls():
                response = self._stub.VerifyBatch(
                    pb.VerifyBatchRequest(
                        codes=codes[start : start + CLIENT_BATCH], destination=destination
                    ),
                    timeout=self._timeout,
                )
            out.extend(verdict_from_pb(v) for v in response.verdicts)
        return out

    def recognise(
        self, codes: Sequence[str], destination: str, at: datetime | None = None
    ) -> Decision:
        """The destination's decision on one traveller's codes (``Recognise``)."""
        request = pb.RecogniseRequest(codes=codes, destination=destination)
        if at is not None:
            request.at.CopyFrom(timestamp(at))
        with self.calls():
            response = self._stub.Recognise(request, timeout=self._timeout)
        return decision_from_pb(response.decision)

    def serving(self, service: str = "") -> bool:
        """True if the gateway's standard health check answers SERVING."""
        with self.calls():
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._timeout
            )
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
