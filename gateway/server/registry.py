"""The ``huren.v1.RegistryService`` service over grpc.aio: convert, hand to the Registrar,
convert back.

Nothing is decided here. A change request becomes a command (:mod:`gateway.wire`), the caller's
verified client certificate a :class:`~gateway.registry.registrar.Credential`, and the
:class:`~gateway.registry.registrar.Registrar` does the rest on the :class:`StoreWorker` thread,
so a registry waiting for SQLite never stalls verification on the event loop. A change whose
caller's deadline passes before it commits is rolled back. After a change the new snapshot is
published to the verification service at once (live trust). Reading calls answer from the
current snapshot. Refused authentications are counted and logged by the :class:`SecurityLog`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import grpc

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.crypto.pki import certificate_pin
from gateway.errors import NotAuthenticated, NotPermitted, RequestInvalid, Unavailable
from gateway.hub import Hub
from gateway.registry import TrustHolder, TrustSnapshot
from gateway.registry.audit import AuditEntry
from gateway.registry.authority import (
    Actor,
    Role,
    may_fetch_secrets,
    may_read_as_admin,
    may_read_audit,
)
from gateway.registry.registrar import Change, Credential
from gateway.registry.views import (
    TrustListView,
    issuer_view,
    issuer_views,
    policy_view,
    replica_views,
)
from gateway.replica_secrets import bundle
from gateway.server.feed import TrustListFeed
from gateway.server.status import abort_for
from gateway.trustlist import Signed

Context = grpc.aio.ServicerContext[object, object]
MAX_AUDIT_PAGE = 1000
T = TypeVar("T")
log = logging.getLogger(__name__)
secrets_log = logging.getLogger("huren.secrets")
"""One line per answer of ``GetReplicaSecrets``: who, which version and digest, never a
secret (logged whatever ``--log-level``: see :func:`gateway.logs.configure`)."""


class StoreWorker:
    """Runs every call on the hub's registry on one thread, in arrival order.

    SQLite may wait (for another process's write lock, up to the busy timeout, or for fsync);
    doing that on the event loop would stall every verification. One thread keeps the store's
    single connection used by one caller at a time.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huren-registry")

    async def run(self, work: Callable[[Hub], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, self.hub)

    def close(self) -> None:
        """Wait for the call in progress, if any, and stop the thread."""
        self._pool.shutdown(wait=True)


class SecurityLog:
    """Counts refused authentications by kind and logs them, at most one line per kind every
    ``interval`` seconds (with the count since the last line). Lines name no person: at most
    the first hex digits of a certificate key's SHA-256."""

    def __init__(self, interval: float = 60.0, monotonic: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self._monotonic = monotonic
        self._logged: dict[str, tuple[float, int]] = {}

    def refused(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        now = self._monotonic()
        last, count = self._logged.get(kind, (float("-inf"), 0))
        if now - last >= self.interval:
            since = self.counts[kind] - count
            log.warning(
                "security: refused %s: %s (%d since the last such line)", kind, detail, since
            )
            self._logged[kind] = (now, self.counts[kind])


@dataclass(frozen=True, slots=True)
class Anonymous:
    """How a call that needs a client certificate refuses one without: the error it raises,
    and what the security log counts."""

    error: type[NotAuthenticated] | type[NotPermitted]
    message: str
    kind: str
    detail: str


OPERATOR_CALL = Anonymous(
    NotAuthenticated,
    "this call needs an operator's client certificate (mTLS port)",
    "call without a client certificate",
    "on the verification port",
)
SECRETS_CALL = Anonymous(
    NotPermitted,
    "the replica secrets go only to a pinned replica's certificate, on the hub's mutual-TLS "
    "registry port",
    "replica secrets asked without a certificate",
    "anonymous",
)


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(
        self,
        worker: StoreWorker,
        holder: TrustHolder,
        *,
        mutations: bool,
        security: SecurityLog | None = None,
        feed: TrustListFeed | None = None,
    ) -> None:
        self._worker = worker
        self._holder = holder
        self._feed = feed or TrustListFeed()
        self._mutations = mutations
        self.security = security or SecurityLog()

    # ------------------------------------------------------------------ who is calling

    def _credential(self, context: Context, anonymous: Anonymous = OPERATOR_CALL) -> Credential:
        """The client certificate mutual TLS verified for this call.

        Raises:
            NotAuthenticated: without one (the verification port never asks for it), or what
                ``anonymous`` raises.
        """
        certificates = list(context.auth_context().get("x509_pem_cert") or [])
        if not certificates:
            self.security.refused(anonymous.kind, anonymous.detail)
            raise anonymous.error(anonymous.message)
        return Credential(bytes(certificates[0]))

    def _unknown(self, error: NotAuthenticated, credential: Credential) -> None:
        try:
            key = certificate_pin(credential.certificate_pem)[:16]
        except ValueError:
            key = "unreadable"
        self.security.refused("client certificate", f"key {key}...: {error}")

    async def _submit(self, context: Context, request: wire.RegistryRequest) -> pb.RegistryChange:
        try:
            if not self._mutations:
                raise NotPermitted(
                    "changes are disabled: the gateway runs without TLS (--insecure)"
                )
            credential = self._credential(context)
            command = wire.command(request)
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining

            def abandoned() -> bool:
                # The caller has given up: do not commit what it will never hear about.
                return deadline is not None and time.monotonic() >= deadline

            def work(hub: Hub) -> tuple[Change | Exception, TrustSnapshot | None]:
                outcome: Change | Exception
                try:
                    outcome = hub.registrar.submit(
                        credential, request.request_id, command, abandoned=abandoned
                    )
                except Exception as error:  # answered below, after publishing what changed
                    outcome = error
                state = hub.store.state
                moved = state.version > self._holder.current.version
                return outcome, state.snapshot() if moved else None

            outcome, snapshot = await self._worker.run(work)
            if snapshot is not None and snapshot.version > self._holder.current.version:
                self._holder.replace(snapshot)
            if isinstance(outcome, NotAuthenticated):
                self._unknown(outcome, credential)
            if isinstance(outcome, Exception):
                raise outcome
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return wire.change(outcome)

    # ------------------------------------------------------------------ changes

    async def RegisterIssuer(
        self, request: pb.RegisterIssuerRequest, context: Context
    ) -> pb.RegisterIssuerResponse:
        return pb.RegisterIssuerResponse(change=await self._submit(context, request))

    async def AddKey(self, request: pb.AddKeyRequest, context: Context) -> pb.AddKeyResponse:
        return pb.AddKeyResponse(change=await self._submit(context, request))

    async def RetireKey(
        self, request: pb.RetireKeyRequest, context: Context
    ) -> pb.RetireKeyResponse:
        return pb.RetireKeyResponse(change=await self._submit(context, request))

    async def RevokeKey(
        self, request: pb.RevokeKeyRequest, context: Context
    ) -> pb.RevokeKeyResponse:
        return pb.RevokeKeyResponse(change=await self._submit(context, request))

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Context
    ) -> pb.UpdateProfileResponse:
        return pb.UpdateProfileResponse(change=await self._submit(context, request))

    async def SetRevocations(
        self, request: pb.SetRevocationsRequest, context: Context
    ) -> pb.SetRevocationsResponse:
        return pb.SetRevocationsResponse(change=await self._submit(context, request))

    async def CreateRegion(
        self, request: pb.CreateRegionRequest, context: Context
    ) -> pb.CreateRegionResponse:
        return pb.CreateRegionResponse(change=await self._submit(context, request))

    async def CreateOperator(
        self, request: pb.CreateOperatorRequest, context: Context
    ) -> pb.CreateOperatorResponse:
        return pb.CreateOperatorResponse(change=await self._submit(context, request))

    async def RemoveOperator(
        self, request: pb.RemoveOperatorRequest, context: Context
    ) -> pb.RemoveOperatorResponse:
        return pb.RemoveOperatorResponse(change=await self._submit(context, request))

    async def ReserveName(
        self, request: pb.ReserveNameRequest, context: Context
    ) -> pb.ReserveNameResponse:
        return pb.ReserveNameResponse(change=await self._submit(context, request))

    async def RetireIssuer(
        self, request: pb.RetireIssuerRequest, context: Context
    ) -> pb.RetireIssuerResponse:
        return pb.RetireIssuerResponse(change=await self._submit(context, request))

    async def SetPolicy(
        self, request: pb.SetPolicyRequest, context: Context
    ) -> pb.SetPolicyResponse:
        return pb.SetPolicyResponse(change=await self._submit(context, request))

    async def AddReplica(
        self, request: pb.AddReplicaRequest, context: Context
    ) -> pb.AddReplicaResponse:
        return pb.AddReplicaResponse(change=await self._submit(context, request))

    async def RemoveReplica(
        self, request: pb.RemoveReplicaRequest, context: Context
    ) -> pb.RemoveReplicaResponse:
        return pb.RemoveReplicaResponse(change=await self._submit(context, request))

    # ------------------------------------------------------------------ reading

    async def GetPolicy(
        self, request: pb.GetPolicyRequest, context: Context
    ) -> pb.GetPolicyResponse:
        try:
            view = policy_view(self._holder.current, request.destination)
            return pb.GetPolicyResponse(policy=wire.policy(view))
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None

    async def ListIssuers(
        self, request: pb.ListIssuersRequest, context: Context
    ) -> pb.ListIssuersResponse:
        snapshot = self._holder.current
        return pb.ListIssuersResponse(
            issuers=[wire.issuer(v) for v in issuer_views(snapshot, request.region)],
            trust_version=snapshot.version,
        )

    async def GetIssuer(
        self, request: pb.GetIssuerRequest, context: Context
    ) -> pb.GetIssuerResponse:
        try:
            view = issuer_view(self._holder.current, request.issuer_id)
            return pb.GetIssuerResponse(issuer=wire.issuer(view))
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None

    async def GetTrustList(
        self, request: pb.GetTrustListRequest, context: Context
    ) -> pb.GetTrustListResponse:
        snapshot = self._holder.current

        def sign(hub: Hub) -> Signed | None:
            return hub.signer.published(snapshot, hub.registrar.clock())

        signed = await self._worker.run(sign)
        if signed is None:  # over the limit from the start: nothing to publish (fail closed)
            await abort_for(context, Unavailable("no trust list within the size limit was signed"))
            raise AssertionError("unreachable: abort raises")
        return wire.trust_list(TrustListView(signed.jws, signed.version))

    async def WatchTrustList(
        self, request: pb.WatchTrustListRequest, context: Context
    ) -> AsyncIterator[pb.WatchTrustListResponse]:
        sent: str | None = None
        while True:  # until the caller or the server ends the call
            view = await self._feed.next(sent)
            sent = view.jws
            if view.version >= request.known_version:
                yield wire.watched_trust_list(view)

    async def GetReplicaSecrets(
        self, request: pb.GetReplicaSecretsRequest, context: Context
    ) -> pb.GetReplicaSecretsResponse:
        """To a pinned replica only (the authority decides), from the snapshot the hub serves;
        each answer logged (who, when, version, digest), never what it carries."""
        try:
            snapshot = self._holder.current
            actor, secrets = await self._read_as(
                context,
                may_fetch_secrets,
                "replica secrets asked by a non-replica",
                lambda hub: bundle(snapshot, *hub.identity_secrets),
                anonymous=SECRETS_CALL,
            )
            answer = wire.replica_secrets(secrets, request.known_digest)
            secrets_log.info(
                "replica secrets: %s to %s (trust version %d, digest %s, %d issuers)",
                "unchanged" if answer.unchanged else "sent",
                actor.label,
                secrets.version,
                secrets.digest[:16],
                len(secrets.issuers),
            )
            assert actor.role is Role.REPLICA
            return answer
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        try:
            credential = self._credential(context)
            limit = request.limit or MAX_AUDIT_PAGE
            if limit > MAX_AUDIT_PAGE:
                raise RequestInvalid(f"at most {MAX_AUDIT_PAGE} entries per call")

            def work(hub: Hub) -> list[AuditEntry]:
                hub.store.refresh()
                why = may_read_audit(hub.registrar.identify(credential))
                if why is not None:
                    raise NotPermitted(why)
                return list(hub.store.audit_entries(after=request.after, limit=limit))

            try:
                entries = await self._worker.run(work)
            except NotAuthenticated as e:
                self._unknown(e, credential)
                raise
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return pb.ListAuditResponse(entries=[wire.audit_entry(e) for e in entries])

    # ------------------------------------------------------------------ the hub administrator's

    async def _read_as(
        self,
        context: Context,
        may: Callable[[Actor], str | None],
        refused: str,
        read: Callable[[Hub], T],
        *,
        anonymous: Anonymous = OPERATOR_CALL,
    ) -> tuple[Actor, T]:
        """The caller and ``read`` on the registry thread, if the authority's ``may`` lets the
        caller (``read`` runs only then: others learn nothing of what it would read). Reads are
        not changes: they are not in the audit log (as ``ListAudit``); a denied one is counted
        by the security log as ``refused``.

        Raises:
            NotAuthenticated: without a certificate (or what ``anonymous`` raises), or for a
                certificate the registry does not know.
            NotPermitted: for a caller ``may`` refuses, with its reason.
        """
        credential = self._credential(context, anonymous)

        def work(hub: Hub) -> tuple[Actor, str | None, T | None]:
            hub.store.refresh()  # a pin removed by another process counts at once
            actor = hub.registrar.identify(credential)
            why = may(actor)
            return actor, why, None if why is not None else read(hub)

        try:
            actor, why, answer = await self._worker.run(work)
        except NotAuthenticated as e:
            self._unknown(e, credential)
            raise
        if why is not None:
            self.security.refused(refused, actor.label)
            raise NotPermitted(why)
        assert answer is not None
        return actor, answer

    async def _read_as_admin(self, context: Context, what: str, read: Callable[[Hub], T]) -> T:
        """``read`` for the hub administrator alone (see :meth:`_read_as`)."""
        _, answer = await self._read_as(
            context,
            lambda actor: may_read_as_admin(actor, what),
            f"{what} asked by a non-administrator",
            read,
        )
        return answer

    async def ListReplicas(
        self, request: pb.ListReplicasRequest, context: Context
    ) -> pb.ListReplicasResponse:
        try:
            views = await self._read_as_admin(
                context, "the replicas", lambda hub: replica_views(hub.store.state.snapshot())
            )
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return pb.ListReplicasResponse(replicas=[wire.replica(v) for v in views])

    async def ListAttestations(
        self, request: pb.ListAttestationsRequest, context: Context
    ) -> pb.ListAttestationsResponse:
        try:
            page = await self._read_as_admin(
                context,
                "the issuance log",
                # The request is read once the caller may ask: others learn nothing of it.
                lambda hub: hub.attestations().log.page(wire.issuance_query(request)),
            )
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return wire.issuance_page(page)
