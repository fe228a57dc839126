"""The ``huren.v1.Registry`` service over grpc.aio: identify the caller, convert, delegate.

The caller of a mutation is the operator whose client certificate (verified by mutual TLS) names
them and whose public key the registry pins; decisions are made by the store and the pure
authority rules. After a successful change the new snapshot is published to the verification
service at once (live trust).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.clock import Clock
from gateway.crypto import pki
from gateway.errors import NotAuthenticated, NotFound, NotPermitted, RequestInvalid
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.registry import Issuer, OnlineEndpoint, TrustHolder
from gateway.registry.admission import KeyOffer, admit
from gateway.registry.audit import AuditEntry
from gateway.registry.authority import Actor, Role
from gateway.server.convert import from_timestamp, timestamp
from gateway.server.status import abort_for
from gateway.storage.sqlite import Change, ProfileSource, RegistryStore
from gateway.trustlist import TrustListSigner

Context = grpc.aio.ServicerContext[object, object]
MAX_AUDIT_PAGE = 1000


def _digest(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def _when(value: Timestamp) -> datetime | None:
    return from_timestamp(value) if value.seconds or value.nanos else None


class RegistryServicer(pb_grpc.RegistryServicer):
    def __init__(
        self,
        store: RegistryStore,
        holder: TrustHolder,
        signer: TrustListSigner,
        clock: Clock,
        *,
        mutations: bool,
    ) -> None:
        self._store = store
        self._holder = holder
        self._signer = signer
        self._clock = clock
        self._mutations = mutations

    # ------------------------------------------------------------------ who is calling

    def _actor(self, context: Context) -> Actor:
        """The registered operator the call's client certificate names.

        Raises:
            NotAuthenticated: without a client certificate, or one the registry does not pin.
        """
        certificates = list(context.auth_context().get("x509_pem_cert") or [])
        if not certificates:
            raise NotAuthenticated("this call needs an operator's client certificate (mTLS port)")
        try:
            peer = pki.peer_identity(certificates[0])
        except ValueError as e:
            raise NotAuthenticated(f"client certificate: {e}") from e
        record = self._store.operator_by_pin(peer.spki_sha256)
        if record is None or not record.active:
            raise NotAuthenticated("the certificate's key is not a registered operator's")
        if (record.name, record.region) != (peer.name, peer.region):
            raise NotAuthenticated("the certificate does not match the operator registered")
        role = Role.ADMIN if record.region is None else Role.OPERATOR
        return Actor(role, record.name, record.region)

    async def _mutate(self, context: Context, run: Callable[[Actor], Change]) -> pb.RegistryChange:
        try:
            if not self._mutations:
                raise NotPermitted(
                    "changes are disabled: the gateway runs without TLS (--insecure)"
                )
            actor = self._actor(context)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                # The caller has given up: do not commit something it will never hear about.
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed")
            change = run(actor)  # synchronous: no await between the check and the commit
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        self._publish()
        return pb.RegistryChange(trust_version=change.trust_version, audit=_audit(change.audit))

    def _publish(self) -> None:
        snapshot = self._store.snapshot
        if snapshot.version > self._holder.current.version:
            self._holder.replace(snapshot)

    # ------------------------------------------------------------------ mutations

    async def RegisterIssuer(
        self, request: pb.RegisterIssuerRequest, context: Context
    ) -> pb.RegistryChange:
        def run(actor: Actor) -> Change:
            profile = ProfileSource.parse(request.profile_toml)
            online = None
            if request.HasField("online"):
                o = request.online
                online = OnlineEndpoint(o.code_prefix, o.verify_url, o.client_id, o.client_secret)
            issuer = Issuer(
                IssuerId(request.issuer_id),
                RegionCode(request.region),
                request.name,
                ProfileId(profile.profile.id),
                profile.profile.version,
                online=online,
                pseudonym_key=request.pseudonym_key or None,
            )
            now = self._clock()
            keys = [admit(issuer.id, _offer(k), request.request_id, now) for k in request.keys]
            return self._store.register_issuer(
                issuer,
                profile,
                keys,
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            )

        return await self._mutate(context, run)

    async def AddKey(self, request: pb.AddKeyRequest, context: Context) -> pb.RegistryChange:
        def run(actor: Actor) -> Change:
            issuer = IssuerId(request.issuer_id)
            key = admit(issuer, _offer(request.key), request.request_id, self._clock())
            return self._store.add_key(
                key, actor=actor, request_id=request.request_id, digest=_digest(request)
            )

        return await self._mutate(context, run)

    async def RetireKey(self, request: pb.RetireKeyRequest, context: Context) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.retire_key(
                IssuerId(request.issuer_id),
                KeyId(request.kid),
                _when(request.retire_at),
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            ),
        )

    async def RevokeKey(self, request: pb.RevokeKeyRequest, context: Context) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.revoke_key(
                IssuerId(request.issuer_id),
                KeyId(request.kid),
                request.reason,
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            ),
        )

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Context
    ) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.update_profile(
                IssuerId(request.issuer_id),
                ProfileSource.parse(request.profile_toml),
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            ),
        )

    async def CreateRegion(
        self, request: pb.CreateRegionRequest, context: Context
    ) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.create_region(
                request.region,
                request.name,
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            ),
        )

    async def CreateOperator(
        self, request: pb.CreateOperatorRequest, context: Context
    ) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.create_operator(
                request.name,
                request.region or None,
                request.certificate_pem,
                actor=actor,
                request_id=request.request_id,
                digest=_digest(request),
            ),
        )

    async def RemoveOperator(
        self, request: pb.RemoveOperatorRequest, context: Context
    ) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda actor: self._store.remove_operator(
                request.name, actor=actor, request_id=request.request_id, digest=_digest(request)
            ),
        )

    # ------------------------------------------------------------------ reading

    async def ListIssuers(
        self, request: pb.ListIssuersRequest, context: Context
    ) -> pb.ListIssuersResponse:
        snapshot = self._holder.current
        issuers = [
            self._record(issuer.id)
            for issuer in sorted(snapshot.issuers.values(), key=lambda i: i.id)
            if not request.region or issuer.region == request.region
        ]
        return pb.ListIssuersResponse(issuers=issuers, trust_version=snapshot.version)

    async def GetIssuer(self, request: pb.GetIssuerRequest, context: Context) -> pb.IssuerRecord:
        if IssuerId(request.issuer_id) not in self._holder.current.issuers:
            await abort_for(
                context, NotFound(f"issuer {request.issuer_id[:64]!r} is not registered")
            )
        return self._record(IssuerId(request.issuer_id))

    def _record(self, issuer_id: IssuerId) -> pb.IssuerRecord:
        snapshot = self._holder.current
        issuer = snapshot.issuers[issuer_id]
        keys = [
            pb.KeyRecord(
                kid=key.kid,
                algorithm=key.public_key.algorithm.value,
                status=key.status.value,
                status_since=timestamp(key.status_since) if key.status_since else None,
                not_before=timestamp(key.not_before) if key.not_before else None,
                not_after=timestamp(key.not_after) if key.not_after else None,
                spki_sha256=hashlib.sha256(key.public_key.spki_der).hexdigest(),
            )
            for (owner, _), key in sorted(snapshot.keys.items())
            if owner == issuer_id
        ]
        profiles = [
            pb.ProfileVersion(version=version, sha256=sha, profile_toml=source)
            for version, sha, source in self._store.profile_history(issuer.profile_id)
            if version <= issuer.profile_version
        ]
        return pb.IssuerRecord(
            issuer_id=issuer.id,
            region=issuer.region,
            name=issuer.name,
            profile_id=issuer.profile_id,
            profile_version=issuer.profile_version,
            keys=keys,
            profiles=profiles,
            online_code_prefix=issuer.online.code_prefix if issuer.online else "",
            pseudonymous=issuer.pseudonym_key is not None,
        )

    async def GetTrustList(self, request: pb.GetTrustListRequest, context: Context) -> pb.TrustList:
        snapshot = self._holder.current
        text = self._signer.signed(snapshot, self._clock(), self._store.profile_sources())
        return pb.TrustList(jws=text, version=snapshot.version)

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        try:
            self._actor(context)
            limit = request.limit or MAX_AUDIT_PAGE
            if limit > MAX_AUDIT_PAGE:
                raise RequestInvalid(f"at most {MAX_AUDIT_PAGE} entries per call")
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        entries = self._store.audit_entries(after=request.after, limit=limit)
        return pb.ListAuditResponse(entries=[_audit(e) for e in entries])


def _offer(key: pb.KeySubmission) -> KeyOffer:
    return KeyOffer(
        kid=key.kid,
        key=key.key,
        proof=key.proof,
        algorithm=key.algorithm,
        not_before=_when(key.not_before),
        not_after=_when(key.not_after),
    )


def _audit(entry: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(
        seq=entry.seq,
        at=timestamp(entry.at),
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        outcome=entry.outcome,
        detail=entry.detail,
        state_digest=entry.state_digest,
        previous_hash=entry.previous_hash,
        entry_hash=entry.entry_hash,
    )
