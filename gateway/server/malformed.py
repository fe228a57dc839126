"""A request message that does not parse is ``INVALID_ARGUMENT``, for every service served.

grpc.aio decodes a unary request before it calls the servicer method, outside anything the method
can catch, and answers a decoding failure (a ``string`` field with invalid UTF-8, truncated bytes)
with ``UNKNOWN: Unexpected <class 'google.protobuf.message.DecodeError'>: ...``, naming a Python
class, and a logged traceback. A streamed request is decoded when the servicer reads it, so the
failure escapes the servicer the same way.

:class:`RefuseMalformedRequests` is a server interceptor: it sees the handler of every method,
of every service on the server (Verifier, Registry, health, reflection, and any added later),
and wraps each once. A unary request reaches the wrapper undecoded and is decoded there; a
streamed one is decoded by a deserializer that marks its failure; the wrapper ends either with
``INVALID_ARGUMENT`` and a fixed message, mapped in :mod:`gateway.server.status` like every other
status. Plain generator handlers (none is served) are left as grpc.aio runs them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gateway.errors import RequestInvalid
from gateway.server.status import abort_for

MALFORMED = "malformed request: the message does not decode as this method's request"

_Deserializer = Callable[[bytes], Any]
HANDLER_MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class _Malformed(Exception):
    """A request message failed to decode (raised by :func:`_marking`)."""


def _marking(deserialize: _Deserializer | None) -> _Deserializer:
    """``deserialize`` (or no decoding) with any failure raised as :class:`_Malformed`."""

    def decode(raw: bytes) -> Any:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception as e:  # whatever the decoder raises, the bytes are the client's
            raise _Malformed from e

    return decode


async def _refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await abort_for(context, RequestInvalid(MALFORMED))


def guard(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` answering a request that does not decode with ``INVALID_ARGUMENT``."""
    behaviour: Any = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    decode = _marking(handler.request_deserializer)
    # Unary requests are decoded in the wrapper (grpc passes the raw bytes without a
    # deserializer); streamed ones as the servicer reads them, failing inside the wrapper.
    streamed = handler.request_streaming
    before: _Deserializer = (lambda request: request) if streamed else decode
    wrapped: Callable[..., Any]
    if inspect.isasyncgenfunction(behaviour):

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                async for response in behaviour(before(request), context):
                    yield response
            except _Malformed:
                await _refuse(context)

    elif inspect.iscoroutinefunction(behaviour) or not (streamed or handler.response_streaming):
        # A coroutine, or a plain function of one request to one response, which grpc.aio
        # would call on the event loop all the same (the server has no thread pool).

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                result = behaviour(before(request), context)
                return await result if inspect.isawaitable(result) else result
            except _Malformed:
                await _refuse(context)
                raise AssertionError("unreachable: abort raises") from None

    else:
        return handler  # plain generators: none is served; grpc.aio runs them as it always did
    make = HANDLER_MAKERS[(streamed, handler.response_streaming)]
    return make(
        wrapped,
        request_deserializer=decode if streamed else None,
        response_serializer=handler.response_serializer,
    )


class WrappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A server interceptor that wraps each method's handler once (:meth:`wrap`), and hands
    the same wrapped handler to every call of the method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            # Only methods with a handler are kept, so the map is as small as the services.
            known = self._wrapped[method] = (handler, self.wrap(method, handler))
        return known[1]


class RefuseMalformedRequests(WrappingInterceptor):
    """Wraps every method's handler with :func:`guard`, once per method."""

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return guard(handler)
