"""Errors to gRPC status codes, in exactly one place.

A rejected code is not an error: it is a normal response carrying a verdict. Status codes are
for the call itself; anything unmapped is ``INTERNAL`` with a fixed message (the exception is
logged by type and location only).
"""

from __future__ import annotations

import logging

import grpc

from gateway.errors import ConfigurationInvalid, RequestInvalid, StorageUnavailable

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failed call answers with."""
    if isinstance(error, RequestInvalid):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, ConfigurationInvalid):
        return grpc.StatusCode.INVALID_ARGUMENT, f"{error.reason.value}: {error}"
    if isinstance(error, StorageUnavailable):
        return grpc.StatusCode.UNAVAILABLE, "registry unavailable; retry later"
    log.error("unmapped %s in a gRPC handler", type(error).__name__)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
