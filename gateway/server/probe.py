"""A plaintext port that serves only the standard gRPC health service, for an orchestrator's
probes (``huren serve --health-listen``).

Kubernetes' native gRPC probes dial in plaintext and cannot complete a TLS handshake (TLS for
them is an alpha feature, off by default), while the gateway's verification port serves TLS. This
port answers ``grpc.health.v1.Health`` from the very servicer the verification port uses, so a
probe reads exactly what a checkpoint's client would (NOT_SERVING until a replica holds a fresh
trust list, for instance). Nothing else is served on it: no verification, no registry, no
reflection, so it carries no code and no personal data, only the serving status of a service
name. Calls are bounded like the gateway's own (a few in flight, small messages).

Besides the gateway's names (``""``, ``huren.v1.VerifierService`` and on a hub
``huren.v1.RegistryService``), the servicer then answers :data:`LIVENESS`: SERVING from the start
until the gateway shuts down, whatever its trust. It is for a liveness probe: a replica whose list
went stale is not ready (its verifier is NOT_SERVING), but restarting it would not help.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.server.app import bind_port

LIVENESS = "liveness"
"""The health service name that is SERVING as long as the process answers at all."""
MAX_MESSAGE_BYTES = 4096
"""A health request names a service: a few hundred bytes at most."""
MAX_CONCURRENT_CALLS = 16
"""Probes come from the node's agent, one or two at a time."""


class HealthPort:
    """The health service of ``servicer`` on its own plaintext address."""

    def __init__(self, servicer: health.aio.HealthServicer, listen: str) -> None:  # type: ignore[name-defined]
        self.listen = listen
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_metadata_size", 4096),
                ("grpc.so_reuseport", 0),
                ("grpc.server_handshake_timeout_ms", 5000),
            ],
            maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
        )
        health_pb2_grpc.add_HealthServicer_to_server(servicer, self.server)
        self.servicer = servicer
        self.port = 0

    async def start(self) -> int:
        """Bind and start; returns the port (useful with port 0)."""
        self.port = bind_port(self.server.add_insecure_port, self.listen)
        await self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.server.start()
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        await self.server.stop(grace)
