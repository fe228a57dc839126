"""Composition root: state files, TLS, limits, clock -> a running grpc.aio server.

One server, two listeners when TLS is on (the default):

- the **verification** address (TLS, server authentication only): the Verifier service, the
  Registry's reading calls, health and reflection — for checkpoints and verifier apps;
- the **registry** address (mutual TLS: a client certificate signed by the operators' CA is
  required at the handshake): the same services, where the Registry's changes are allowed for
  registered operators.

With ``insecure`` there is one plaintext listener and every Registry change is refused.
The registry file is polled every second, so changes made by another process (a replica, or
offline administration) reach the verification snapshot without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway._generated.huren.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from gateway.clock import Clock, system_clock
from gateway.crypto import Algorithm
from gateway.errors import ConfigurationInvalid, StorageUnavailable
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import Reason
from gateway.online_client import OnlineClient
from gateway.registry import TrustHolder
from gateway.server.malformed import RefuseMalformedRequests
from gateway.server.registry import RegistryServicer, StoreWorker
from gateway.server.verifier import VerifierServicer
from gateway.service import OnlineAsker, VerificationService
from gateway.storage.secrets import (
    load_or_create_private_key,
    load_or_create_secret,
    replace_atomically,
)
from gateway.storage.sqlite import RegistryStore
from gateway.trustlist import TrustListSigner

log = logging.getLogger(__name__)

VERIFIER_SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name
REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name
REFRESH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StateFiles:
    """Where a gateway keeps its state."""

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

    @property
    def trust_list_key(self) -> Path:
        return self.directory / "trustlist-key.pem"

    @property
    def trust_list_public(self) -> Path:
        """The trust-list key's public JWK, to hand to whoever verifies trust lists offline."""
        return self.directory / "trustlist-key.jwk"

    def ensure(self) -> StateFiles:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The gateway's certificate and key, and the CA that signs operators' certificates
    (as ``huren pki init`` lays them out)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def certificate(self) -> Path:
        return self.directory / "gateway.pem"

    @property
    def key(self) -> Path:
        return self.directory / "gateway.key"

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA, certificate, key).

        Raises:
            ConfigurationInvalid: if a file is missing.
        """
        try:
            return self.ca.read_bytes(), self.certificate.read_bytes(), self.key.read_bytes()
        except OSError as e:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"TLS files missing in {self.directory} ({e.strerror}); create them with "
                "`huren pki init`, or run with --insecure",
            ) from e


def open_identities(files: StateFiles) -> IdentityKeys:
    """The gateway's identity keys, created on first use."""
    files.ensure()
    return IdentityKeys(
        load_or_create_secret(files.subject_key), load_or_create_secret(files.link_key)
    )


@dataclass
class Gateway:
    service: VerificationService
    store: RegistryStore
    signer: TrustListSigner


def open_gateway(
    files: StateFiles,
    limits: Limits,
    clock: Clock = system_clock,
    online: OnlineAsker | None = None,
) -> Gateway:
    """Open the registry, the identity keys and the trust-list key, and build the services.

    Without ``online`` a default :class:`OnlineClient` asks online issuers.

    Raises:
        StorageUnavailable: when the registry file is damaged or its audit chain is broken
            (edited, truncated, or changed outside the registry): nothing is served from a
            registry that cannot show it is the one its operators built.
    """
    identities = open_identities(files)
    store = RegistryStore(files.database, clock=clock)
    problem = store.startup_problem()
    if problem is not None:
        store.close()
        raise StorageUnavailable(
            f"refusing to serve from {files.database}: {problem}. `huren audit verify` shows "
            "the chain; restore the registry from a backup"
        )
    signer = TrustListSigner(load_or_create_private_key(files.trust_list_key, Algorithm.ES256))
    public = (json.dumps(signer.public_jwk(), indent=2) + "\n").encode()
    if not files.trust_list_public.exists() or files.trust_list_public.read_bytes() != public:
        replace_atomically(files.trust_list_public, public)
    service = VerificationService(
        TrustHolder(store.snapshot),
        limits,
        identities,
        clock,
        online or OnlineClient(),
        clock_floor=store.last_change_at(),
    )
    return Gateway(service, store, signer)


def open_service(
    files: StateFiles,
    limits: Limits,
    clock: Clock = system_clock,
    online: OnlineAsker | None = None,
) -> tuple[VerificationService, RegistryStore]:
    gateway = open_gateway(files, limits, clock, online)
    return gateway.service, gateway.store


class GatewayServer:
    """A grpc.aio server with the Verifier, Registry, health and reflection services."""

    def __init__(
        self,
        gateway: Gateway,
        listen: str,
        *,
        registry_listen: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.gateway = gateway
        service = gateway.service
        limits = service.limits
        self.listen = listen
        self.registry_listen = registry_listen
        self.tls = tls
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.worker = StoreWorker(gateway.store)
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
            interceptors=(RefuseMalformedRequests(),),  # undecodable requests: INVALID_ARGUMENT
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(VerifierServicer(service), self.server)
        registry_pb2_grpc.add_RegistryServicer_to_server(
            RegistryServicer(
                self.worker,
                service.trust,
                gateway.signer,
                gateway.store.clock,
                mutations=tls is not None,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                VERIFIER_SERVICE,
                REGISTRY_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.port = 0
        self.registry_port = 0
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start; returns the verification port (useful with port 0)."""
        if self.tls is None:
            self.port = self.server.add_insecure_port(self.listen)
        else:
            ca, certificate, key = self.tls.read()
            server_only = grpc.ssl_server_credentials([(key, certificate)])
            self.port = self.server.add_secure_port(self.listen, server_only)
            if self.registry_listen is not None:
                mutual = grpc.ssl_server_credentials(
                    [(key, certificate)], root_certificates=ca, require_client_auth=True
                )
                self.registry_port = self.server.add_secure_port(self.registry_listen, mutual)
                if self.registry_port == 0:
                    raise OSError(f"cannot listen on {self.registry_listen}")
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        await self.server.start()
        for name in ("", VERIFIER_SERVICE, REGISTRY_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._refresher = asyncio.create_task(self._refresh())
        return self.port

    async def _refresh(self) -> None:
        """Pick up changes other processes wrote to the registry file."""
        holder = self.gateway.service.trust
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                snapshot = await self.worker.run(lambda store: store.refresh())
                if snapshot is not None and snapshot.version > holder.current.version:
                    holder.replace(snapshot)
            except Exception as error:  # keep serving the last good snapshot
                log.error("registry refresh failed: %s", type(error).__name__)

    async def stop(self, grace: float = 2.0) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.gateway.service.close()
        await asyncio.get_running_loop().run_in_executor(None, self.worker.close)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
