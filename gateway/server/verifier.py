"""The ``huren.v1.VerifierService`` service over grpc.aio: a thin adapter around
VerificationService."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import grpc

from gateway import wire
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.errors import RequestInvalid
from gateway.metrics import NO_OBSERVER, Observer
from gateway.model import Status, Verdict
from gateway.server.status import abort_for
from gateway.service import VerificationService

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_STREAM_ID_CHARS = 128
# Verify a batch in slices so that one large batch cannot hold the event loop for long.


class RejectionLog:
    """Logs non-VALID verdicts by reason and code reference (never the code), at most
    ``per_second`` lines a second; the rest are counted and reported with the next line."""

    def __init__(self, per_second: int = 20) -> None:
        self._per_second = per_second
        self._window = 0
        self._count = 0
        self._dropped = 0

    def record(self, verdict: Verdict) -> None:
        if verdict.status is Status.VALID:
            return
        window = int(time.monotonic())
        if window != self._window:
            self._window, self._count = window, 0
        if self._count >= self._per_second:
            self._dropped += 1
            return
        self._count += 1
        dropped, self._dropped = self._dropped, 0
        p = verdict.provenance
        log.info(
            "verdict %s %s issuer=%s kid=%s code_ref=%s%s",
            verdict.status.value,
            verdict.reason.value,
            p.issuer or "-",
            p.kid or "-",
            p.code_ref or "-",
            f" (+{dropped} not logged)" if dropped else "",
        )


class VerifierServicer(pb_grpc.VerifierServiceServicer):
    def __init__(self, service: VerificationService, observer: Observer = NO_OBSERVER) -> None:
        self._service = service
        self._observer = observer
        self._rejections = RejectionLog()

    def _verified(self, verdict: Verdict) -> Verdict:
        self._observer.verdicts((verdict,))
        self._rejections.record(verdict)
        return verdict

    def _all_verified(self, verdicts: Sequence[Verdict]) -> Sequence[Verdict]:
        self._observer.verdicts(verdicts)  # counted together: one increment per kind
        for verdict in verdicts:
            self._rejections.record(verdict)
        return verdicts

    async def Verify(
        self, request: pb.VerifyRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.VerifyResponse:
        verdict = await _answer(
            context, lambda: self._service.verify_async(request.code, request.destination)
        )
        return pb.VerifyResponse(verdict=wire.verdict(self._verified(verdict)))

    async def VerifyBatch(
        self, request: pb.VerifyBatchRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.VerifyBatchResponse:
        # The whole request (size, destination) is validated before any code is verified.
        verdicts = await _answer(
            context, lambda: self._service.verify_batch_async(request.codes, request.destination)
        )
        return pb.VerifyBatchResponse(
            verdicts=[wire.verdict(v) for v in self._all_verified(verdicts)]
        )

    async def VerifyStream(
        self,
        request_iterator: AsyncIterator[pb.VerifyStreamRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[pb.VerifyStreamResponse]:
        async for request in request_iterator:
            if len(request.id) > MAX_STREAM_ID_CHARS:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"id longer than {MAX_STREAM_ID_CHARS} characters",
                )
            verdict = await _answer(
                context,
                lambda r=request: self._service.verify_async(r.code, r.destination),  # type: ignore[misc]
            )
            yield pb.VerifyStreamResponse(
                id=request.id, verdict=wire.verdict(self._verified(verdict))
            )

    async def Recognise(
        self, request: pb.RecogniseRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RecogniseResponse:
        decision = await _answer(
            context,
            lambda: self._service.recognise_async(
                request.codes, request.destination, _instant(request)
            ),
        )
        self._all_verified([assessment.verdict for assessment in decision.assessments])
        return pb.RecogniseResponse(decision=wire.decision(decision))

    async def Attest(
        self, request: pb.AttestRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AttestResponse:
        outcome = await _answer(
            context, lambda: self._service.attest_async(request.codes, request.destination)
        )
        for assessment in outcome.decision.assessments:
            self._rejections.record(assessment.verdict)
        return wire.attest_response(outcome)


def _instant(request: pb.RecogniseRequest) -> datetime | None:
    """The request's instant of presentation, if it has one.

    Raises:
        RequestInvalid: for a timestamp outside any calendar (the service checks the window).
    """
    if not request.HasField("at"):
        return None
    try:
        return wire.from_timestamp(request.at, strict=True)
    except (ValueError, OverflowError) as e:
        raise RequestInvalid(f"at: {e}") from e


async def _answer(
    context: grpc.aio.ServicerContext[object, object], compute: Callable[[], Awaitable[_T]]
) -> _T:
    """Await ``compute()``; map any error to the call's status through :func:`status_for`."""
    try:
        return await compute()
    except Exception as error:
        await abort_for(context, error)
        raise AssertionError("unreachable: abort raises") from None
