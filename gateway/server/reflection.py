"""Server reflection, in both of its published versions.

grpcurl, ``buf curl``, Postman and grpc-js's reflection client ask ``grpc.reflection.v1`` first and
fall back to ``v1alpha``; grpcio-reflection serves ``v1alpha`` only. The two protocols are the
same messages under two package names (the v1 proto was v1alpha renamed), so one servicer
answers both: the v1 method decodes and encodes with the v1alpha message classes, which read and
write the same bytes. The v1 file descriptor (``grpc/reflection/v1/reflection.proto``) is
derived from the v1alpha one by renaming its package, and added to the descriptor pool so that
reflection can describe itself under either name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE = reflection.SERVICE_NAME
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _rename(type_name: str) -> str:
    return type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.", 1)


def register_v1_descriptor(pool: descriptor_pool.DescriptorPool | None = None) -> None:
    """Add ``grpc/reflection/v1/reflection.proto`` to ``pool`` (the default pool), once."""
    pool = pool or descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_multiple_files = True
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = _rename(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type = _rename(method.input_type)
            method.output_type = _rename(method.output_type)
    pool.Add(proto)


def enable(server: grpc.aio.Server, services: Iterable[str]) -> None:
    """Serve reflection v1 and v1alpha on ``server``, listing ``services`` and both reflection
    services."""
    register_v1_descriptor()
    names = (*services, V1_SERVICE, V1ALPHA_SERVICE)
    servicer: Any = reflection.aio.ReflectionServicer(names)  # type: ignore[attr-defined]
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1ALPHA_SERVICE, {"ServerReflectionInfo": _handler(servicer)}
            ),
            grpc.method_handlers_generic_handler(
                V1_SERVICE, {"ServerReflectionInfo": _handler(servicer)}
            ),
        )
    )


def _handler(servicer: Any) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
