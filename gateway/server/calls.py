"""Every admitted call the server answers, watched in one place: their count and duration for
the metrics, and the optional access log.

:class:`WatchCalls` is a server interceptor, the second one: :class:`gateway.server.admission.
AdmitOrRefuse` comes first and refuses calls beyond the bounds before anything else runs (it
reports those refusals to the same observer, :meth:`CallObserver.call_rejected`). WatchCalls
sees every admitted call whole, whatever the interceptors after it do, and wraps each method's
handler once. It is only installed when metrics or the access log are asked for, so that a
gateway without them pays nothing for it.

The access log (``--access-log``) is one line per call on the ``huren.access`` logger: the
method, the gRPC status and the duration. Never the request, the peer's address or metadata.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from gateway.server.malformed import HANDLER_MAKERS, WrappingInterceptor

access_log = logging.getLogger("huren.access")


class CallObserver(Protocol):
    """Where the metrics of calls go (see :class:`gateway.server.metrics.PrometheusObserver`)."""

    def call_finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None: ...

    def call_rejected(self, method: str) -> None: ...

    def in_flight(self, count: int) -> None: ...


class _Quiet:
    def call_finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        pass

    def call_rejected(self, method: str) -> None:
        pass

    def in_flight(self, count: int) -> None:
        pass


def method_label(method: str) -> str:
    """``/huren.v1.VerifierService/Verify`` -> ``VerifierService/Verify`` (a fixed set: only
    methods with a handler are ever labelled)."""
    service, _, name = method.rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


class WatchCalls(WrappingInterceptor):
    """See the module docstring. ``observer`` receives every call's outcome."""

    def __init__(
        self,
        observer: CallObserver | None = None,
        *,
        access: bool = False,
    ) -> None:
        self.observer: CallObserver = observer or _Quiet()
        self.access = access
        self.count = 0
        super().__init__()

    def _enter(self) -> None:
        self.count += 1
        self.observer.in_flight(self.count)

    def _leave(
        self,
        name: str,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        error: BaseException | None,
    ) -> None:
        self.count -= 1
        seconds = time.perf_counter() - started
        code = _code(context, error)
        self.observer.in_flight(self.count)
        self.observer.call_finished(method, code, seconds)
        if self.access:
            access_log.info(
                "%s %s %.2f ms",
                name,
                code.name,
                seconds * 1000,
                extra={"event": "access", "rpc": name, "code": code.name, "ms": seconds * 1000},
            )

    def wrap(
        self, name: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        behaviour: Any = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        method = method_label(name)
        wrapped: Callable[..., Any]
        if inspect.isasyncgenfunction(behaviour):

            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                self._enter()
                started, error = time.perf_counter(), None
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as e:
                    error = e
                    raise
                finally:
                    self._leave(name, method, context, started, error)

        elif inspect.iscoroutinefunction(behaviour):

            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                self._enter()
                started, error = time.perf_counter(), None
                try:
                    return await behaviour(request, context)
                except BaseException as e:
                    error = e
                    raise
                finally:
                    self._leave(name, method, context, started, error)

        else:
            return handler  # plain functions and generators: none is served (see malformed.py)
        make = HANDLER_MAKERS[(handler.request_streaming, handler.response_streaming)]
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
) -> grpc.StatusCode:
    """The status a call ended with: what the servicer set or aborted with, else OK, or
    CANCELLED / UNKNOWN for a call that ended by an exception without one."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
