"""A failed gRPC call, as the project's errors (:mod:`gateway.errors`): clients never let a
``grpc.RpcError`` out, so nothing past them needs to know gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from gateway.errors import CallFailed, CallRefused, HurenError
from gateway.model import Reason

REASON_KEY = "huren-reason"
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
        reason = None
        if isinstance(error, grpc.Call):
            for key, value in error.trailing_metadata() or ():
                if key == REASON_KEY and isinstance(value, str) and value in Reason.__members__:
                    reason = Reason[value]
        return CallRefused(code.name, details, reason)
    return CallFailed(code.name, details)


@contextmanager
def calls() -> Iterator[None]:
    """Calls in this block raise the project's errors instead of ``grpc.RpcError``."""
    try:
        yield
    except grpc.RpcError as e:
        raise translate(e) from e
