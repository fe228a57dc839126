"""What a gRPC client sees when the gateway refuses a call."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.model import Reason
from gateway.server.status import DOMAIN, REASON_KEY


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The one ``google.rpc.ErrorInfo`` in the call's ``google.rpc.Status`` details."""
    status = rpc_status.from_call(cast(Any, error))
    assert status is not None, "no grpc-status-details-bin trailer"
    assert (status.code, status.message) == (error.code().value[0], error.details())
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    return infos[0]


async def refused(
    call: Awaitable[Any], code: grpc.StatusCode, reason: Reason | None = None
) -> grpc.aio.AioRpcError:
    """The gateway refuses the call with ``code``; its ErrorInfo (domain ``huren.v1``) names
    ``reason`` (if given; else a reason or the status code), and so do the message's start and
    the ``huren-reason`` trailer."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, (error.code(), error.details())
    info = error_info(error)
    assert (info.domain, info.metadata["status"]) == (DOMAIN, code.name)
    metadata: dict[str, Any] = dict(cast(Any, error.trailing_metadata()) or ())
    assert metadata.get(REASON_KEY) == info.reason
    if reason is None:
        assert info.reason == code.name or info.reason.startswith("ERR_"), info.reason
    else:
        assert info.reason == reason.value
        assert (error.details() or "").startswith(reason.value), error.details()
        assert info.metadata["reason_enum"] == f"REASON_{reason.value}"
    return error


async def unanswered(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """The call fails with ``code`` before the gateway's code answers it (a TLS handshake the
    server refuses, the client's own deadline): no ErrorInfo can come with it."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, (error.code(), error.details())
    assert rpc_status.from_call(cast(Any, error)) is None
    return error
