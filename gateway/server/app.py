"""Composition root: state files, TLS, limits, clock -> a running grpc.aio server.

One server, two listeners when TLS is on (the default):

- the **verification** address (TLS, server authentication only): the Verifier service, the
  Registry's reading calls, health and reflection — for checkpoints and verifier apps;
- the **registry** address (mutual TLS: a client certificate signed by the operators' CA is
  required at the handshake): the same services, where the Registry's changes are allowed for
  registered operators.

With ``insecure`` there is one plaintext listener and every Registry change is refused.

Every second the registry file is looked at: changes another process made (the host's
``huren registry`` commands) are read, **verified** and then served; a file that no longer
verifies is not served (the last good snapshot is kept, the Registry's health turns NOT_SERVING,
one alarm line is logged, and after ``limits.stale_grace`` every code is UNVERIFIABLE
``ERR_TRUST_STALE`` and the Verifier's health turns NOT_SERVING too). Every ten seconds the
clock's high-water mark is persisted and rate-limited denials are audited.

The signed trust list is published to ``WatchTrustList`` callers (verifier replicas) within
``PUBLISH_SECONDS`` of each change, and again whenever a third of its freshness window has
passed (a heartbeat), but only while the registry verifies: a hub whose registry stopped
verifying vouches for nothing, so its replicas turn stale at the last list's ``fresh_until``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from gateway.clients.online import OnlineClient
from gateway.clients.tls import read_tls_file
from gateway.clock import Clock, system_clock
from gateway.errors import RegistryDamaged, StorageUnavailable
from gateway.hub import Hub, open_hub
from gateway.limits import Limits
from gateway.metrics import NO_OBSERVER, Observer
from gateway.registry import TrustHolder
from gateway.registry.authority import Actor
from gateway.registry.registrar import RegistrarLimits
from gateway.registry.views import TrustListView
from gateway.server import reflection
from gateway.server.admission import AdmitOrRefuse
from gateway.server.calls import WatchCalls
from gateway.server.certificates import Reader, ServerCertificates, read_tls_files
from gateway.server.feed import TrustListFeed
from gateway.server.malformed import RefuseMalformedRequests
from gateway.server.registry import RegistryServicer, SecurityLog, StoreWorker
from gateway.server.verifier import VerifierServicer
from gateway.service import OnlineAsker, VerificationService
from gateway.trustlist import DEFAULT_FRESH_FOR, MAX_TRUST_LIST_MESSAGE_BYTES

log = logging.getLogger(__name__)

VERIFIER_SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name
REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
REFRESH_SECONDS = 1.0
PUBLISH_SECONDS = 0.2
"""How often the hub looks whether a new trust list is due (a change, or a heartbeat)."""
HOUSEKEEPING_EVERY = 10
"""Refresh rounds between persisting the clock mark and auditing rate-limited denials."""


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

    @property
    def paths(self) -> tuple[Path, ...]:
        return self.ca, self.certificate, self.key

    @property
    def name(self) -> str:
        return f"TLS certificate and key from {self.directory}"

    def read(self, read: Reader = read_tls_file) -> tuple[bytes, ...]:
        """(CA, certificate, key), each file read with ``read``, checked
        (:func:`~gateway.server.certificates.read_tls_files`).

        Raises:
            TlsFilesInvalid: naming a file that is missing or cannot be used.
        """
        hint = f"; create them with `huren pki init {self.directory}`, or run with --insecure"
        pair = (self.certificate, self.key)
        return read_tls_files(self.ca, pair, ca_hint=hint, hint=hint, read=read)


def bind_port(add: Callable[..., int], address: str, *credentials: grpc.ServerCredentials) -> int:
    """The port ``add`` bound ``address`` to.

    Raises:
        OSError: naming the address if it cannot be bound (grpcio raises RuntimeError for that
            in some versions and returns port 0 in others).
    """
    try:
        port = add(address, *credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(
            f"cannot listen on {address}: the port is in use, or the address is not one of this "
            "host's"
        )
    return port


def grpc_server(
    limits: Limits, calls: WatchCalls | None = None, *, share_port: bool = False
) -> grpc.aio.Server:
    """A grpc.aio server with the gateway's bounds (hub and replica alike); ``calls``, when
    given (metrics or the access log), watches every admitted call and hears of every refusal.
    With ``share_port`` (a worker of ``--workers N``) it binds with ``SO_REUSEPORT``, beside
    its sibling workers; otherwise a port in use is an error."""
    watching: tuple[WatchCalls, ...] = () if calls is None else (calls,)
    return grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            # A trust list (WatchTrustList, GetTrustList) may be larger than any request.
            (
                "grpc.max_send_message_length",
                max(4 * limits.max_message_bytes, MAX_TRUST_LIST_MESSAGE_BYTES),
            ),
            ("grpc.max_metadata_size", 16 * 1024),
            ("grpc.max_connection_idle_ms", 5 * 60 * 1000),
            ("grpc.server_handshake_timeout_ms", 5000),
            # Never share a port with another process by accident; workers opt in.
            ("grpc.so_reuseport", 1 if share_port else 0),
            # Calls that arrived but the event loop has not taken yet: past this many gRPC's
            # core ends new ones at once (CANCELLED) instead of letting the queue grow.
            ("grpc.server.max_pending_requests", limits.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", 2 * limits.max_pending_calls),
        ],
        # Not grpc's maximum_concurrent_rpcs: it queues the excess unseen instead of refusing.
        # Admission comes first, so that a refusal costs no decoding.
        interceptors=(
            AdmitOrRefuse(
                limits.max_concurrent_rpcs,
                limits.max_concurrent_streams,
                None if calls is None else calls.observer,
            ),
            *watching,
            RefuseMalformedRequests(),  # undecodable requests: INVALID_ARGUMENT
        ),
    )


def bind_verification(
    server: grpc.aio.Server, listen: str, certificates: ServerCertificates | None
) -> int:
    """Bind the verification address: server-authenticated TLS that follows the certificate
    files, or plaintext without ``certificates``."""
    if certificates is None:
        return bind_port(server.add_insecure_port, listen)
    return bind_port(server.add_secure_port, listen, certificates.credentials(mutual=False))


@dataclass
class Gateway:
    service: VerificationService
    hub: Hub


def open_gateway(
    state_dir: Path,
    limits: Limits,
    clock: Clock = system_clock,
    online: OnlineAsker | None = None,
    *,
    registrar: RegistrarLimits | None = None,
    accept_rollback: Actor | None = None,
    trust_fresh_for: timedelta = DEFAULT_FRESH_FOR,
    observer: Observer = NO_OBSERVER,
) -> Gateway:
    """Open the hub's state (see :func:`gateway.hub.open_hub`) and build the services.

    Without ``online`` a default :class:`OnlineClient` asks online issuers (reporting to
    ``observer``). The clock's
    high-water mark starts at the registry's last change or the mark the last run persisted,
    whichever is later.

    Raises:
        RegistryDamaged: when the registry does not verify (a damaged file, a broken audit chain,
            state changed outside the registry, an older copy than the state record): nothing is
            served from a registry that cannot show it is the one its operators built.
        StorageUnavailable: for a missing or unsafe state directory.
    """
    try:
        hub = open_hub(
            state_dir,
            clock=clock,
            limits=registrar,
            accept_rollback=accept_rollback,
            trust_fresh_for=trust_fresh_for,
        )
    except RegistryDamaged as e:
        raise RegistryDamaged(f"refusing to serve from {state_dir}: {e}") from e
    problem = hub.store.problem
    if problem is not None:
        hub.close()
        if problem.kind == "schema":
            raise RegistryDamaged(f"refusing to serve from {hub.files.database}: {problem}")
        fix = (
            "if you restored an older copy on purpose, `huren registry accept-rollback` (or "
            "`huren serve --accept-rollback`) continues from it, audited"
            if hub.store.rollback is not None
            else "restore the registry from a backup that `huren audit verify --db` accepts"
        )
        raise RegistryDamaged(
            f"refusing to serve from {hub.files.database}: {problem}. "
            f"`huren audit verify` shows the chain; {fix}"
        )
    marks = [m for m in (hub.store.last_change_at(), hub.files.read_clock_mark()) if m]
    service = VerificationService(
        TrustHolder(hub.store.state.snapshot()),
        limits,
        hub.identities,
        clock,
        online or OnlineClient(observer=observer),
        clock_floor=max(marks, default=None),
        attestations=hub.attestations(),
    )
    return Gateway(service, hub)


class GatewayServer:
    """A grpc.aio server with the Verifier, Registry, health and reflection services."""

    def __init__(
        self,
        gateway: Gateway,
        listen: str,
        *,
        registry_listen: str | None = None,
        certificates: ServerCertificates | None = None,
        observer: Observer = NO_OBSERVER,
        calls: WatchCalls | None = None,
    ) -> None:
        """``certificates``: the TLS files, read and followed (None: plaintext, and every
        Registry change refused)."""
        self.gateway = gateway
        self.observer = observer
        service = gateway.service
        limits = service.limits
        self.listen = listen
        self.registry_listen = registry_listen
        self.certificates = certificates
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.worker = StoreWorker(gateway.hub)
        self.security = SecurityLog()
        self.feed = TrustListFeed()
        self.server = grpc_server(limits, calls)
        verifier_pb2_grpc.add_VerifierServiceServicer_to_server(
            VerifierServicer(service, observer), self.server
        )
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(
            RegistryServicer(
                self.worker,
                service.trust,
                mutations=certificates is not None,
                security=self.security,
                feed=self.feed,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable(
            self.server,
            (
                VERIFIER_SERVICE,
                REGISTRY_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            ),
        )
        self.port = 0
        self.registry_port = 0
        self._refresher: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._alarmed = False
        self._oversized: int | None = None
        """The version whose list was too large to publish, once logged."""
        self._persisted: datetime | None = None

    async def start(self) -> int:
        """Bind and start; returns the verification port (useful with port 0)."""
        self.port = bind_verification(self.server, self.listen, self.certificates)
        if self.certificates is not None and self.registry_listen is not None:
            mutual = self.certificates.credentials(mutual=True)
            self.registry_port = bind_port(
                self.server.add_secure_port, self.registry_listen, mutual
            )
        await self.server.start()
        for name in ("", VERIFIER_SERVICE, REGISTRY_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        # The first trust list is signed in the background: verification does not wait for it
        # (at 100,000 keys signing it takes most of a second); watchers wait for it.
        self.observer.trust_refreshed(self.gateway.service.trust.current.version)
        self._refresher = asyncio.create_task(self._refresh())
        self._publisher = asyncio.create_task(self._publish())
        if self.certificates is not None:
            self._watcher = asyncio.create_task(self.certificates.watch())
        return self.port

    async def _publish(self) -> None:
        while True:
            try:
                await self.publish_once()
            except Exception as error:  # the next round tries again
                log.error("trust list publication failed: %s", type(error).__name__)
            await asyncio.sleep(PUBLISH_SECONDS)

    async def publish_once(self) -> None:
        """Publish the signed trust list if a new one is due (see the module docstring)."""
        holder = self.gateway.service.trust
        if holder.unverified is not None:
            return
        snapshot = holder.current
        now = self.gateway.hub.registrar.clock()
        if self.feed.latest is not None and not self.gateway.hub.signer.due(snapshot.version, now):
            return
        signed = await self.worker.run(lambda hub: hub.signer.sign_current(snapshot, now))
        self.observer.trust_list_signed(len(signed.jws), published=signed.fits)
        if signed.fits:
            self.feed.publish(TrustListView(signed.jws, signed.version))
        elif self._oversized != signed.version:  # once per version: fail closed, loudly
            self._oversized = signed.version
            last = self.feed.latest
            log.error(
                "ALARM: the trust list of version %d is %d characters, over the %d a replica "
                "receives: it is not published. Replicas keep %s, not renewed, and answer every "
                "code ERR_TRUST_STALE once it is no longer fresh. Remove keys or issuers "
                "(docs/scaling.md, Limits)",
                signed.version,
                len(signed.jws),
                self.gateway.hub.signer.max_chars,
                "no list" if last is None else f"the list of version {last.version}",
            )

    async def _refresh(self) -> None:
        """Pick up, verify and serve what other processes wrote; keep house."""
        rounds = 0
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            rounds += 1
            try:
                await self.refresh_once()
                if rounds % HOUSEKEEPING_EVERY == 0:
                    await self.keep_house()
            except Exception as error:  # keep serving the last good snapshot
                log.error("registry refresh failed: %s", type(error).__name__)

    async def refresh_once(self) -> None:
        """One look at the registry file (see the module docstring)."""
        holder = self.gateway.service.trust

        def look(hub: Hub) -> tuple[str | None, object | None]:
            hub.store.refresh()
            problem = hub.store.problem
            state = hub.store.state
            if problem is None and state.version > holder.current.version:
                return None, state.snapshot()
            return (str(problem) if problem is not None else None), None

        try:
            problem, snapshot = await self.worker.run(look)
        except (StorageUnavailable, RegistryDamaged) as error:  # unreadable: not verified
            problem, snapshot = str(error), None
        now = self.gateway.hub.registrar.clock()
        if problem is None:
            if snapshot is not None:
                holder.replace(snapshot)  # type: ignore[arg-type]
            elif holder.unverified is not None:
                holder.verified()
            self.observer.trust_refreshed(holder.current.version)
            if self._alarmed:
                log.warning(
                    "the registry verifies again; serving trust version %d", holder.current.version
                )
                self._alarmed = False
            await self._set_health(registry=True, verifier=True)
            return
        holder.unverifiable(now, problem)
        since = holder.unverified[0] if holder.unverified else now
        stale = now - since > self.gateway.service.limits.stale_grace
        if not self._alarmed:
            log.error(
                "ALARM: the registry does not verify: %s. Changes are refused; codes are judged "
                "on the last good trust (version %d) until %s, then answered ERR_TRUST_STALE",
                problem,
                holder.current.version,
                (since + self.gateway.service.limits.stale_grace).isoformat(),
            )
            self._alarmed = True
        await self._set_health(registry=False, verifier=not stale)

    async def _set_health(self, *, registry: bool, verifier: bool) -> None:
        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        await self.health.set(REGISTRY_SERVICE, serving if registry else not_serving)
        for name in ("", VERIFIER_SERVICE):
            await self.health.set(name, serving if verifier else not_serving)

    async def keep_house(self, *, stopping: bool = False) -> None:
        """Persist the clock's high-water mark, and audit rate-limited denials (those quiet for
        a minute; all of them when ``stopping``)."""
        mark = self.gateway.service.high_water

        def work(hub: Hub) -> None:
            if mark is not None and mark != self._persisted:
                hub.files.write_clock_mark(mark)
                self._persisted = mark
            if hub.store.problem is None:
                hub.registrar.flush(quiet_seconds=0 if stopping else 60)

        await self.worker.run(work)

    async def stop(self, grace: float = 2.0) -> None:
        for task in (self._refresher, self._publisher, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(Exception):  # the last mark and counts, if the file allows
            await self.keep_house(stopping=True)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.gateway.service.close()
        await asyncio.get_running_loop().run_in_executor(None, self.worker.close)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
