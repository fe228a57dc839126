"""Errors to gRPC status codes, in exactly one place.

A rejected code is not an error: it is a normal response carrying a verdict. Status codes are
for the call itself, by the branch of the error tree (:mod:`gateway.errors`): what was refused
says what to fix, what was unavailable says to retry or to wait for an administrator. Anything
unmapped is ``INTERNAL`` with a fixed message (the exception is logged by type only).
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

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
    Unavailable,
)
from gateway.model import Reason

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error"


REASON_KEY = "huren-reason"
DETAILS_KEY = "grpc-status-details-bin"
"""Where gRPC's rich error model carries a serialized google.rpc.Status."""
DOMAIN = "huren.v1"
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
    if isinstance(error, Unavailable):  # nothing to give now (a hub with no list within limits)
        return grpc.StatusCode.UNAVAILABLE, str(error), None
    log.error("unmapped %s in a gRPC handler", type(error).__name__)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, None


def refusal(error: BaseException) -> tuple[grpc.StatusCode, str, bytes, str]:
    """What a call failed by ``error`` ends with: the status code, the message, the serialized
    ``google.rpc.Status`` (the ``grpc-status-details-bin`` trailer) whose details hold a
    ``google.rpc.ErrorInfo`` (domain ``huren.v1``, reason the ``Reason`` value name without its
    ``REASON_`` prefix, ``ERR_KEY_WEAK``, or, where no reason applies, the status code's name),
    and that reason name (the ``huren-reason`` trailer). One place, so that a refusal written
    elsewhere (the front proxy's, :mod:`gateway.server.front`) is the same bytes as the server's."""
    code, message, reason = status_for(error)
    named = reason.value if reason is not None else code.name
    info = error_details_pb2.ErrorInfo(
        reason=named,
        domain=DOMAIN,
        metadata={"status": code.name, **({"reason_enum": f"REASON_{named}"} if reason else {})},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    packed = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return code, message, packed.SerializeToString(), named


async def abort_for(
    context: grpc.aio.ServicerContext[object, object], error: BaseException
) -> None:
    """End the call with the status :func:`status_for` gives and the details of
    :func:`refusal` as trailers."""
    code, message, details, named = refusal(error)
    await context.abort(
        code,
        message,
        trailing_metadata=((DETAILS_KEY, details), (REASON_KEY, named)),
    )
