"""Admission at the edge: a call beyond the bound is refused at once, not queued.

grpc.aio's own ``maximum_concurrent_rpcs`` does not refuse anything: when the bound is reached
the server stops *asking* the transport for new calls, which then wait, unseen and unbounded, in
gRPC's core until a slot frees or the core cancels them (``CANCELLED``, no reason). Under three
times its capacity a gateway bounded that way answered its admitted calls after more than a
second (docs/performance.md).

:class:`AdmitOrRefuse` is the server's first interceptor instead: it runs as soon as a call is
matched, before its request is read, and counts the calls in flight on the server, unary calls
and streams apart (a replica's ``WatchTrustList`` stream lasts for hours and must not take a
verification's place). A call past its bound gets ``RESOURCE_EXHAUSTED`` with the gateway's
``ErrorInfo`` (reason ``RESOURCE_EXHAUSTED``, see :mod:`gateway.server.status`) without being
decoded or run; an admitted call holds its place until its handler has finished, or, should
grpc never run the handler (the client went away first), until grpc drops it.

The event loop takes calls up one at a time, so under a heavy overload calls also wait in
gRPC's core before this interceptor sees them; :func:`gateway.server.app.grpc_server` bounds
that queue too (``max_pending_calls``), past which the core ends new calls at once with
``CANCELLED`` and no ``ErrorInfo``. An admitted call thus waits behind at most
``max_concurrent_rpcs`` calls on the loop and ``max_pending_calls`` in the core. Refusing a call
here costs about as much as answering an empty RPC, so at three times the ``Verify`` capacity most
of the excess is shed by the core (measured in docs/performance.md). The front
(:mod:`gateway.server.front`, nginx) refuses that excess outside Python instead, with this
module's answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from gateway.errors import Overloaded
from gateway.server.calls import CallObserver, method_label
from gateway.server.malformed import HANDLER_MAKERS
from gateway.server.status import abort_for

if TYPE_CHECKING:
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]]


class _Slots:
    """A count of calls in flight under one bound."""

    __slots__ = ("bound", "held", "kind")

    def __init__(self, kind: str, bound: int) -> None:
        self.kind = kind
        self.bound = bound
        self.held = 0


class _Place:
    """One admitted call's place: given back exactly once, by the handler when it has
    finished or, if grpc never runs the handler, when grpc lets go of the call."""

    __slots__ = ("_slots",)

    def __init__(self, slots: _Slots) -> None:
        slots.held += 1
        self._slots: _Slots | None = slots

    def give_back(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.held -= 1

    def __del__(self) -> None:
        self.give_back()


def _holding(handler: _Handler, place: _Place) -> _Handler:
    """``handler`` whose behaviour gives ``place`` back when it has finished."""
    behaviour: Any = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    wrapped: Callable[..., Any]
    if inspect.isasyncgenfunction(behaviour):

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                async for response in behaviour(request, context):
                    yield response
            finally:
                place.give_back()

    elif inspect.iscoroutinefunction(behaviour):

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behaviour(request, context)
            finally:
                place.give_back()

    else:
        return handler  # not served (see malformed.guard); the place goes with the call
    make = HANDLER_MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _refusing(
    handler: _Handler, slots: _Slots, method: str, observer: CallObserver | None
) -> _Handler:
    """A handler that ends the call with ``RESOURCE_EXHAUSTED`` without decoding its request
    (and tells ``observer``, when there is one, that ``method`` was refused)."""
    error = Overloaded(
        f"the gateway is at its bound of {slots.bound} {slots.kind} in flight; retry later"
    )
    label = method_label(method)

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if observer is not None:
            observer.call_rejected(label)
        await abort_for(context, error)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if observer is not None:
            observer.call_rejected(label)
        await abort_for(context, error)
        yield  # pragma: no cover - abort raises; this makes a generator of it

    make = HANDLER_MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse_stream if handler.response_streaming else refuse,
        request_deserializer=None,
        response_serializer=handler.response_serializer,
    )


class AdmitOrRefuse(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Admits at most ``max_calls`` unary calls and ``max_streams`` streaming calls at once;
    refuses the others at once (see the module docstring), telling ``observer`` (the metrics)
    of each refusal when there is one."""

    def __init__(
        self, max_calls: int, max_streams: int, observer: CallObserver | None = None
    ) -> None:
        self.observer = observer
        self.calls = _Slots("calls", max_calls)
        self.streams = _Slots("streams", max_streams)
        self._refusals: dict[str, tuple[_Handler, _Handler]] = {}

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> _Handler:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
            return handler
        streamed = handler.request_streaming or handler.response_streaming
        slots = self.streams if streamed else self.calls
        if slots.held < slots.bound:
            return _holding(handler, _Place(slots))
        method = handler_call_details.method
        known = self._refusals.get(method)
        if known is None or known[0] is not handler:
            # Only methods with a handler are kept, so the map is as small as the services.
            known = self._refusals[method] = (
                handler,
                _refusing(handler, slots, method, self.observer),
            )
        return known[1]
