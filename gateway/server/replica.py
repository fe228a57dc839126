"""A verifier replica: the Verifier service on a signed trust list, with no registry.

Composition: a :class:`VerificationService` over a :class:`TrustHolder` that starts empty and
stale, fed by the hub's trust lists (:class:`~gateway.clients.hubfeed.HubFeed`). Each list is
offered to :meth:`ReplicaServer.offer`, which

1. verifies it with the pinned trust-list key and reads it (:func:`gateway.replica.read`);
2. refuses it unless it is newer than the held one (:func:`gateway.replica.successor`:
   rollbacks and replays are refused, and logged; the held list stays);
3. swaps the snapshot (one reference, with its ``fresh_until``), then
4. keeps the text on disk (``trustlist.jws`` in the state directory: temporary file, fsync,
   rename), from which the next start reads it again, verified as in step 1.

With a replica certificate (:class:`~gateway.clients.hubsecrets.HubSecrets`), the replica
secrets (identity keys, pseudonym keys, online credentials) come from the hub over mutual TLS and
are kept **in memory only**: fetched at start, again whenever a list of a higher trust version
than theirs is taken (and every ``SECRETS_CHECK_SECONDS``), retried with backoff while the hub
cannot be reached (the held ones stay: an outage is not a revocation). When the hub **refuses**
the certificate (its pin was removed), the replica drops them all at once: every code is
UNVERIFIABLE ``ERR_SECRET_UNAVAILABLE`` and health NOT_SERVING (fail closed), until a fetch is
answered again. It drops them the same way when no fetch has been answered for their maximum age
(``secrets_max_age``, :func:`gateway.replica_secrets.outlived`, looked at every
``HEALTH_SECONDS`` on the injected clock): a hub that cannot be reached for that long may have
stopped trusting the replica without being able to say so. Each list's snapshot is served with
its issuers' secrets merged (:func:`gateway.replica_secrets.merge`). The replica's certificate
and key, and the hub's CA, are re-read on change or SIGHUP like the server's TLS files
(:class:`~gateway.server.certificates.HubCertificates`); new ones make it fetch at once, with
them.

Health (the standard gRPC service, overall and ``huren.v1.VerifierService``) is SERVING only
while a verified list is held, the clock is before its ``fresh_until``, and the identity secrets
are held; it is looked at every ``HEALTH_SECONDS``. The Registry service is not served here
(UNIMPLEMENTED): changes, and the reading calls, belong to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
from datetime import datetime, timedelta
from pathlib import Path

from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway import replica, replica_secrets
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clients.hubfeed import HubFeed
from gateway.clients.hubsecrets import HubSecrets
from gateway.clock import Clock
from gateway.crypto import PublicKey
from gateway.errors import ConfigurationInvalid, NotPermitted, StorageUnavailable, Unavailable
from gateway.metrics import NO_OBSERVER, Observer, SecretsFailure
from gateway.model import IssuerId, Reason
from gateway.registry import TrustSnapshot
from gateway.server import reflection
from gateway.server.app import VERIFIER_SERVICE, bind_verification, grpc_server
from gateway.server.calls import WatchCalls
from gateway.server.certificates import HubCertificates, ServerCertificates
from gateway.server.verifier import VerifierServicer
from gateway.service import VerificationService
from gateway.storage.files import PRIVATE_FILE
from gateway.storage.secrets import replace_atomically
from gateway.trustlist import MAX_TRUST_LIST_CHARS

log = logging.getLogger(__name__)

HEALTH_SECONDS = 0.25
SECRETS_CHECK_SECONDS = 60.0
"""How often a replica asks its hub for the replica secrets when nothing made it ask sooner."""
SECRETS_BACKOFF = (0.25, 5.0)
"""A failed fetch is retried after 0.25 s doubling to 5 s, with full jitter."""
TRUST_LIST_FILE = "trustlist.jws"
"""The last good trust list, in the replica's state directory."""


def read_saved(path: Path, key: PublicKey) -> replica.TrustList | None:
    """The trust list saved at ``path``, verified again; None if there is none or it does not
    verify (logged: the replica then waits for the hub)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TRUST_LIST_CHARS + 1)
        if len(data) > MAX_TRUST_LIST_CHARS:
            raise ConfigurationInvalid(Reason.ERR_TOO_LARGE, f"{path} is too large")
        return replica.read(data.decode("ascii"), key)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ConfigurationInvalid) as error:
        log.error("the saved trust list %s is not used: %s", path, error)
        return None


class ReplicaServer:
    """A grpc.aio server with the Verifier, health and reflection services, following a hub."""

    def __init__(
        self,
        service: VerificationService,
        key: PublicKey,
        state_dir: Path,
        feed: HubFeed,
        listen: str,
        *,
        clock: Clock,
        certificates: ServerCertificates | None = None,
        observer: Observer = NO_OBSERVER,
        calls: WatchCalls | None = None,
        secrets: HubSecrets | None = None,
        share_port: bool = False,
        hub_certificates: HubCertificates | None = None,
        secrets_max_age: timedelta = replica_secrets.MAX_AGE,
    ) -> None:
        self.service = service
        self.secrets_source = secrets
        self.secrets: replica_secrets.ReplicaSecrets | None = None
        """The replica secrets held (memory only), if any."""
        self.secrets_max_age = secrets_max_age
        self._secrets_confirmed: datetime | None = None
        """When (the injected clock) the hub last answered a fetch of the secrets held."""
        self._unusable: dict[IssuerId, tuple[str, str, str | None]] = {}
        """The online issuers whose codes go unverified, and why (each logged once)."""
        self._secrets_due = asyncio.Event()
        self.hub_certificates = hub_certificates
        """The replica's own TLS files as the hub's client, re-read like the server's."""
        if hub_certificates is not None:  # a new replica certificate: fetch with it at once
            hub_certificates.changed.append(self._secrets_due.set)
        self.observer = observer
        self.key = key
        self.saved = state_dir / TRUST_LIST_FILE
        self.feed = feed
        self.listen = listen
        self.certificates = certificates
        """The server's TLS files, read and followed (None: plaintext)."""
        self._clock = clock
        self.held: replica.TrustList | None = None
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.server = grpc_server(service.limits, calls, share_port=share_port)
        verifier_pb2_grpc.add_VerifierServiceServicer_to_server(
            VerifierServicer(service, observer), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable(
            self.server,
            (VERIFIER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
        )
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: bool | None = None

    async def start(self) -> int:
        """Load the saved list, bind, start following the hub; returns the port."""
        saved = read_saved(self.saved, self.key)
        if saved is not None:
            self._hold(saved)
            # Served from now; confirmed when the hub signed it (not when it was saved).
            signed = (self._clock() - saved.issued_at).total_seconds()
            self.observer.trust_refreshed(saved.version, ago=signed)
            log.warning("serving the saved trust list, version %d", saved.version)
        self.port = bind_verification(self.server, self.listen, self.certificates)
        await self.server.start()
        await self.check_health()
        self._tasks = [
            asyncio.create_task(self._follow()),
            asyncio.create_task(self._watch_health()),
        ]
        for followed in (self.certificates, self.hub_certificates):
            if followed is not None:
                self._tasks.append(asyncio.create_task(followed.watch()))
        if self.secrets_source is not None:
            self.observer.replica_secrets(None)
            self._secrets_due.set()
            self._tasks.append(asyncio.create_task(self._follow_secrets()))
        return self.port

    def _hold(self, trust_list: replica.TrustList) -> None:
        snapshot = replica_secrets.merge(trust_list.snapshot, self.secrets)
        self._report_unusable(snapshot)
        self.service.trust.replace(snapshot, trust_list.fresh_until)
        self.held = trust_list
        if self.secrets is not None and trust_list.version > self.secrets.version:
            self._secrets_due.set()  # the change may have been one of an issuer's secrets

    def _report_unusable(self, snapshot: TrustSnapshot) -> None:
        """Log each online issuer whose codes the secrets held leave unverified (the signed list
        and the secrets disagree on where they go) once per change of what disagrees, not at
        each list or fetch that leaves it as it was; and when it agrees again."""
        if self.secrets is None:  # no credential at all: nothing to tell apart
            self._unusable = {}
            return
        unusable: dict[IssuerId, tuple[str, str, str | None]] = {}
        for issuer in snapshot.issuers.values():
            online = issuer.online
            if online is None or not online.unusable:
                continue
            entry = self.secrets.issuers.get(issuer.id)
            theirs = entry.online.verify_url if entry is not None and entry.online else None
            unusable[issuer.id] = (online.code_prefix, online.verify_url, theirs)
            if self._unusable.get(issuer.id) != unusable[issuer.id]:
                log.error("online codes not verified: %s", online.unusable)
        for issuer_id in self._unusable.keys() - unusable.keys():
            if issuer_id in snapshot.issuers:
                log.warning("online codes of issuer %s are verified again", issuer_id)
        self._unusable = unusable

    # ------------------------------------------------------------------ the replica secrets

    def _malformed(self, error: ConfigurationInvalid) -> Unavailable:
        """An answer whose secrets are not taken: counted, logged, and an outage to the caller
        (the held secrets stay)."""
        assert self.secrets_source is not None
        self.observer.secrets_fetch_failed(SecretsFailure.MALFORMED)
        log.error("replica secrets from %s not taken: %s", self.secrets_source.target, error)
        return Unavailable(str(error))

    async def fetch_secrets(self) -> None:
        """Ask the hub once and act on the answer (take, keep, or drop on a refusal).

        Raises:
            Unavailable: no answer (the held secrets stay).
        """
        assert self.secrets_source is not None
        held = self.secrets
        try:
            version, fetched = await self.secrets_source.fetch(held.digest if held else "")
        except NotPermitted as refusal:
            self.observer.secrets_fetch_failed(SecretsFailure.REFUSED)
            self._drop_secrets(f"the hub refused them: {refusal}")
            return
        except Unavailable:
            self.observer.secrets_fetch_failed(SecretsFailure.UNREACHABLE)
            raise
        except ConfigurationInvalid as error:  # an answer that cannot be read (wire)
            raise self._malformed(error) from error
        if fetched is None:  # unchanged: the same secrets, vouched for at a later version
            if held is None:
                raise self._malformed(
                    ConfigurationInvalid(
                        Reason.ERR_SCHEMA, "replica secrets refused: 'unchanged' but none held"
                    )
                )
            if self.secrets is not None:
                self.secrets = dataclasses.replace(held, version=version)
                self._secrets_confirmed = confirmed = self._clock()
                until = confirmed + self.secrets_max_age
                self.service.replace_identities(self.service.identities, until)
                self.observer.replica_secrets(version)
                return
            fetched = dataclasses.replace(held, version=version)  # dropped while it asked
        try:
            taken = replica_secrets.check(fetched)
        except ConfigurationInvalid as error:
            raise self._malformed(error) from error
        self.secrets = taken
        self._secrets_confirmed = confirmed = self._clock()
        self.service.replace_identities(taken.identities(), confirmed + self.secrets_max_age)
        self.observer.replica_secrets(taken.version)
        if self.held is not None:
            self._hold(self.held)
        log.warning(
            "replica secrets taken from %s: trust version %d, digest %s, %d issuers",
            self.secrets_source.target,
            taken.version,
            taken.digest[:16],
            len(taken.issuers),
        )
        await self.check_health()

    def _drop_secrets(self, why: str) -> None:
        if self.secrets is None and self.service.identities is None:
            log.error("no replica secrets held: %s", why)
            return
        self.secrets = None
        self._secrets_confirmed = None
        self.service.replace_identities(None)
        self.observer.replica_secrets(None)
        if self.held is not None:
            self._hold(self.held)
        log.error(
            "ALARM: the replica secrets are dropped, all of them (%s): every code is "
            "ERR_SECRET_UNAVAILABLE until the hub hands them again",
            why,
        )

    def _expire_secrets(self) -> None:
        """Drop the secrets held if the hub has not vouched for them within their maximum age."""
        confirmed = self._secrets_confirmed
        if self.secrets is None or confirmed is None:
            return
        why = replica_secrets.outlived(confirmed, self._clock(), self.secrets_max_age)
        if why is not None:
            self._drop_secrets(why)

    async def _follow_secrets(self) -> None:
        low, high = SECRETS_BACKOFF
        backoff = low
        while True:
            # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that comes as the
            # event is set (this loop sets it itself to retry), and the replica then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SECRETS_CHECK_SECONDS):
                    await self._secrets_due.wait()
            self._secrets_due.clear()
            try:
                await self.fetch_secrets()
                backoff = low
            except Unavailable as error:
                log.warning("replica secrets not fetched, retrying: %s", error)
                await asyncio.sleep(backoff * random.random())
                backoff = min(backoff * 2, high)
                self._secrets_due.set()
            except Exception as error:  # keep following; what is held stays
                self.observer.secrets_fetch_failed(SecretsFailure.ERROR)
                log.error("replica secrets not fetched: %s", type(error).__name__)
                self._secrets_due.set()
                await asyncio.sleep(high)
            await self.check_health()

    async def offer(self, text: str) -> bool:
        """Serve the list in ``text`` if it verifies and is newer (steps 1 to 4 of the module
        docstring); False, with the reason logged, if it is refused or already held."""
        try:
            # Step 1, off the event loop: at 100,000 keys it takes seconds (docs/performance.md),
            # during which the loop keeps answering (sharing the interpreter with it); a
            # heartbeat of the held content, a quarter of a second.
            loop = asyncio.get_running_loop()
            read = functools.partial(replica.read, text, self.key, self.held)
            candidate = await loop.run_in_executor(None, read)
            if not replica.successor(self.held, candidate):  # step 2
                return False
        except ConfigurationInvalid as error:
            log.error(
                "trust list from %s refused, keeping the held one: %s", self.feed.target, error
            )
            return False
        self._hold(candidate)  # step 3
        self.observer.trust_refreshed(candidate.version)
        await self.check_health()
        try:  # step 4
            await loop.run_in_executor(
                None, replace_atomically, self.saved, candidate.text.encode("ascii"), PRIVATE_FILE
            )
        except OSError as error:
            log.error("cannot save the trust list to %s: %s", self.saved, StorageUnavailable(error))
        return True

    async def _follow(self) -> None:
        def known() -> int:
            return self.held.version if self.held is not None else 0

        async for text in self.feed.lists(known):
            try:
                await self.offer(text)
            except Exception as error:  # keep following; the held list stays
                log.error("trust list not taken: %s", type(error).__name__)

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_SECONDS)
            await self.check_health()

    @property
    def fresh(self) -> bool:
        """True while a verified list is held and its ``fresh_until`` has not passed."""
        return self.held is not None and self._clock() < self.held.fresh_until

    async def check_health(self) -> None:
        self._expire_secrets()
        serving = self.fresh and self.service.identities is not None
        if serving == self._serving:
            return
        if not serving and self.held is not None and not self.fresh:
            log.error(
                "ALARM: the trust list (version %d) was fresh until %s: every code is "
                "ERR_TRUST_STALE until the hub is reached",
                self.held.version,
                self.held.fresh_until.isoformat(),
            )
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", VERIFIER_SERVICE):
            await self.health.set(name, status)
        self._serving = serving

    async def stop(self, grace: float = 2.0) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.service.close()
        if self.secrets_source is not None:
            await self.secrets_source.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()
