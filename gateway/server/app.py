"""Composition root: registry file + secret + limits + clock -> a running grpc.aio server.

The server also serves the standard ``grpc.health.v1.Health`` service (overall status ``""``
and ``huren.v1.Verifier``) and server reflection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway._generated.huren.v1 import verifier_pb2, verifier_pb2_grpc
from gateway.clock import Clock, system_clock
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.online_client import OnlineClient
from gateway.registry import TrustHolder
from gateway.server.verifier import VerifierServicer
from gateway.service import OnlineAsker, VerificationService
from gateway.storage.secrets import load_or_create_secret
from gateway.storage.sqlite import RegistryStore

log = logging.getLogger(__name__)

VERIFIER_SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name


@dataclass(frozen=True, slots=True)
class StateFiles:
    """Where a gateway keeps its state: the registry database and the subject key."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "registry.db"

    @property
    def subject_key(self) -> Path:
        return self.directory / "subject.key"

    @property
    def link_key(self) -> Path:
        """The national linking key, shared with regions that carry masked-link identities."""
        return self.directory / "link.key"

    def ensure(self) -> StateFiles:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def open_identities(files: StateFiles) -> IdentityKeys:
    """The gateway's identity keys, created on first use."""
    files.ensure()
    return IdentityKeys(
        load_or_create_secret(files.subject_key), load_or_create_secret(files.link_key)
    )


def open_service(
    files: StateFiles,
    limits: Limits,
    clock: Clock = system_clock,
    online: OnlineAsker | None = None,
) -> tuple[VerificationService, RegistryStore]:
    """Open the registry and the identity keys, and build the verification service on them.

    Without ``online`` a default :class:`OnlineClient` asks online issuers.
    """
    identities = open_identities(files)
    store = RegistryStore(files.database)
    service = VerificationService(
        TrustHolder(store.snapshot), limits, identities, clock, online or OnlineClient()
    )
    return service, store


class GatewayServer:
    """A grpc.aio server with the Verifier, health and reflection services."""

    def __init__(self, service: VerificationService, listen: str) -> None:
        limits = service.limits
        self.service = service
        self.listen = listen
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", 4 * limits.max_message_bytes),
                ("grpc.max_metadata_size", 16 * 1024),
                ("grpc.max_connection_idle_ms", 5 * 60 * 1000),
                ("grpc.server_handshake_timeout_ms", 5000),
                # Never share a port with another process by accident; scale-out opts in.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(VerifierServicer(service), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                VERIFIER_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.port = 0

    async def start(self) -> int:
        """Bind and start; returns the bound port (useful with port 0)."""
        self.port = self.server.add_insecure_port(self.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        await self.server.start()
        for name in ("", VERIFIER_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.service.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()
