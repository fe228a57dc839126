"""Errors to gRPC status codes, in exactly one place.

A rejected code is not an error: it is a normal response carrying a verdict. Status codes are
for the call itself, by the branch of the error tree (:mod:`gateway.errors`): what was refused
says what to fix, what was unavailable says to retry or to wait for an administrator. Anything
unmapped is ``INTERNAL`` with a fixed message (the exception is logged by type only).
"""

from __future__ import annotations

import logging

import grpc

from gateway.errors import (
    Abandoned,
    ConfigurationInvalid,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    Overloaded,
    RegistryDamaged,
    RequestConflict,
    RequestInvalid,
    StorageUnavailable,
)
from gateway.model import Reason

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error"


REASON_KEY = "huren-reason"
_PRECONDITIONS = frozenset({Reason.ERR_VERSION, Reason.ERR_REVOKED_KID, Reason.ERR_ISSUER_RETIRED})
_REFUSED: dict[type[Exception], grpc.StatusCode] = {
    RequestInvalid: grpc.StatusCode.INVALID_ARGUMENT,
    NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    RequestConflict: grpc.StatusCode.ALREADY_EXISTS,
    NotFound: grpc.StatusCode.NOT_FOUND,
}
_UNAVAILABLE: dict[type[Exception], grpc.StatusCode] = {
    Abandoned: grpc.StatusCode.DEADLINE_EXCEEDED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RegistryDamaged: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str, Reason | None]:
    """The status code, message and reason code a failed call answers with."""
    if isinstance(error, ConfigurationInvalid):
        code = (
            grpc.StatusCode.FAILED_PRECONDITION
            if error.reason in _PRECONDITIONS
            else grpc.StatusCode.INVALID_ARGUMENT
        )
        return code, f"{error.reason.value}: {error}", error.reason
    for table in (_REFUSED, _UNAVAILABLE):
        for kind, code in table.items():
            if isinstance(error, kind):
                return code, str(error), None
    if isinstance(error, StorageUnavailable):
        return grpc.StatusCode.UNAVAILABLE, "registry unavailable; retry later", None
    log.error("unmapped %s in a gRPC handler", type(error).__name__)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, None


async def abort_for(
    context: grpc.aio.ServicerContext[object, object], error: BaseException
) -> None:
    """End the call with the status :func:`status_for` gives (and the reason as metadata)."""
    code, message, reason = status_for(error)
    if reason is not None:
        context.set_trailing_metadata(((REASON_KEY, reason.value),))
    await context.abort(code, message)
