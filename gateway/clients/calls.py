"""A failed gRPC call, as the project's errors (:mod:`gateway.errors`): clients never let a
``grpc.RpcError`` out, so nothing past them needs to know gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Connection:
    """Where a client connects and how: ``plaintext``, ``tls`` (server authenticated) or
    ``mutual`` (with a client certificate); it lets a failed connection be explained."""

    target: str
    mode: str


def translate(error: grpc.RpcError, connection: Connection | None = None) -> HurenError:
    """The project's error for a failed call: :class:`CallRefused` when the request was refused
    (with the reason code the gateway sent), :class:`CallFailed` otherwise; a connection that
    failed before any call (a refused TLS handshake, nothing listening) is explained in words
    instead of gRPC's."""
    # A synchronous call's error is a grpc.Call; an asyncio call's (AioRpcError) has the same
    # two methods without the type.
    answered = isinstance(error, grpc.Call | grpc.aio.AioRpcError)
    code = error.code() if answered else grpc.StatusCode.UNKNOWN
    details = (error.details() if answered else None) or str(code)
    if code in _REFUSED:
        return CallRefused(code.name, details, _reason(error))
    if code is grpc.StatusCode.UNAVAILABLE and connection is not None:
        explained = _connection_failure(details, connection)
        if explained is not None:
            return CallFailed(code.name, explained)
    return CallFailed(code.name, details)


def _connection_failure(details: str, connection: Connection) -> str | None:
    """What a failure to connect means, from gRPC's message (its wording is the only signal:
    a TLS alert does not reach the application)."""
    at, mode = connection.target, connection.mode
    if "Connection refused" in details:
        return f"nothing is listening at {at} (is the gateway running, on this port?)"
    if "WRONG_VERSION_NUMBER" in details:
        return f"{at} does not speak TLS (a gateway started with --insecure?): use --insecure"
    if "certificate signature failure" in details or "CERTIFICATE_VERIFY_FAILED" in details:
        return (
            f"the certificate {at} presented does not verify with the CA given (--ca or "
            "--pki): another CA signed it"
        )
    if "Peer name" in details and "not in peer certificate" in details:
        return (
            f"the certificate {at} presented is not for that host name: connect with a name "
            "it lists (`huren pki init --host NAME`)"
        )
    if "Socket closed" in details or "Connection reset" in details:
        if mode == "mutual":
            return (
                f"{at} closed the connection during the TLS handshake: it does not accept this "
                "client certificate (issued by a CA it does not trust for operators, or "
                "expired), or it is not a gateway's registry port"
            )
        if mode == "tls":
            return (
                f"{at} closed the connection during the TLS handshake: it asks for a client "
                "certificate (the registry port? give --as NAME, or --cert and --key)"
            )
        return f"{at} closed the connection: it expects TLS (give --ca or --pki, not --insecure)"
    return None


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
def calls(connection: Connection | None = None) -> Iterator[None]:
    """Calls in this block raise the project's errors instead of ``grpc.RpcError``."""
    try:
        yield
    except grpc.RpcError as e:
        raise translate(e, connection) from e
