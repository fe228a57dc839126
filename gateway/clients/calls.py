"""A failed gRPC call, as the project's errors (:mod:`gateway.errors`): clients never let a
``grpc.RpcError`` out, so nothing past them needs to know gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.errors import CallFailed, CallRefused, HurenError
from gateway.model import Reason

REASON_KEY = "huren-reason"
DOMAIN = "huren.v1"
_REFUSED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def translate(error: grpc.RpcError) -> HurenError:
    """The project's error for a failed call: :class:`CallRefused` when the request was refused
    (with the reason code the gateway sent), :class:`CallFailed` otherwise."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(code)
    if code in _REFUSED:
        return CallRefused(code.name, details, _reason(error))
    return CallFailed(code.name, details)


def _reason(error: grpc.RpcError) -> Reason | None:
    """The reason code a refusal carries: from the google.rpc.ErrorInfo in its status details
    (what every gRPC client library reads), else from the ``huren-reason`` trailer."""
    if not isinstance(error, grpc.Call):
        return None
    named: str | None = None
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # details that do not match the call: not trusted
        status = None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == DOMAIN:
            named = info.reason
    if named is None:
        trailers = dict(error.trailing_metadata() or ())
        value = trailers.get(REASON_KEY)
        named = value if isinstance(value, str) else None
    return Reason[named] if named in Reason.__members__ else None


@contextmanager
def calls() -> Iterator[None]:
    """Calls in this block raise the project's errors instead of ``grpc.RpcError``."""
    try:
        yield
    except grpc.RpcError as e:
        raise translate(e) from e
