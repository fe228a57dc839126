"""A small synchronous client for the Verifier service (CLI, demo, scripts): model verdicts
and decisions out, the project's errors (never ``grpc.RpcError``) on failure."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Self

from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clients.tls import ChannelClient, TlsCredentials
from gateway.errors import CallFailed
from gateway.model import Verdict
from gateway.recognise import Decision
from gateway.transfer import AttestOutcome
from gateway.wire import attest_from_pb, decision_from_pb, timestamp, verdict_from_pb

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

    def stream(self, destination: str = "") -> VerifyStream:
        """A ``VerifyStream`` call that answers each code as soon as it is given (a checkpoint's
        scanner); use it as a context manager."""
        return VerifyStream(self, destination)

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

    def attest(self, codes: Sequence[str], destination: str) -> AttestOutcome:
        """转码: the hub's attestation for one traveller's codes at a destination (``Attest``)."""
        request = pb.AttestRequest(codes=codes, destination=destination)
        with self.calls():
            response = self._stub.Attest(request, timeout=self._timeout)
        return attest_from_pb(response)

    def serving(self, service: str = "") -> bool:
        """True if the gateway's standard health check answers SERVING."""
        with self.calls():
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._timeout
            )
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class VerifyStream:
    """One ``VerifyStream`` call, driven a code at a time: :meth:`verify` sends a code and waits
    for its verdict (at most the client's timeout; then the call is cancelled). A call that
    failed is replaced by a new one for the next code, so one lost answer loses one code only."""

    def __init__(self, client: GatewayClient, destination: str) -> None:
        self._client, self._destination = client, destination
        self._open: tuple[queue.SimpleQueue[pb.VerifyStreamRequest | None], Any] | None = None
        self._sent = 0

    def verify(self, code: str) -> Verdict:
        """The verdict for ``code``.

        Raises:
            CallFailed | CallRefused: if the gateway did not answer it; the next code opens a
                new call.
        """
        client = self._client
        if self._open is None:
            requests: queue.SimpleQueue[pb.VerifyStreamRequest | None] = queue.SimpleQueue()
            self._open = requests, client._stub.VerifyStream(_until_none(requests))
        requests = self._open[0]
        call: Any = self._open[1]  # the call is also the iterator of its responses
        self._sent += 1
        sent = str(self._sent)
        late = threading.Event()

        def give_up() -> None:
            late.set()
            call.cancel()

        timer = threading.Timer(client._timeout, give_up)
        try:
            with client.calls():
                requests.put(
                    pb.VerifyStreamRequest(id=sent, code=code, destination=self._destination)
                )
                timer.start()
                response: pb.VerifyStreamResponse | None = next(call, None)
        except BaseException as e:
            self.close()
            if late.is_set():
                raise CallFailed(
                    "DEADLINE_EXCEEDED", f"no answer within {client._timeout:g} s"
                ) from e
            raise
        finally:
            timer.cancel()
        if response is None:
            self.close()
            raise CallFailed("UNAVAILABLE", "the gateway ended the stream before answering")
        if response.id != sent:  # the server answers in order: anything else is a broken call
            self.close()
            raise CallFailed("INTERNAL", f"answer {response.id!r} came for request {sent}")
        return verdict_from_pb(response.verdict)

    def close(self) -> None:
        """Ends the call (the next :meth:`verify` opens another)."""
        if self._open is not None:
            requests, call = self._open
            requests.put(None)
            call.cancel()
        self._open = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _until_none(
    requests: queue.SimpleQueue[pb.VerifyStreamRequest | None],
) -> Iterator[pb.VerifyStreamRequest]:
    """A stream's requests, as they are put, until None ends it."""
    while (request := requests.get()) is not None:
        yield request
