"""The ``huren.v1.Registry`` service over grpc.aio: identify the caller, convert, delegate.

The caller of a mutation is the operator whose client certificate (verified by mutual TLS) names
them and whose public key the registry pins; decisions are made by the store and the pure
authority rules. Every store call runs on the :class:`StoreWorker` thread, so a registry waiting
for SQLite never stalls verification on the event loop. A change whose caller's deadline passes
before it commits is rolled back. After a successful change the new snapshot is published to the
verification service at once (live trust).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.clock import Clock
from gateway.crypto import pki
from gateway.errors import (
    ConfigurationInvalid,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    RequestInvalid,
)
from gateway.keyfiles import read_revocation_list
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode, parse_region_code
from gateway.policy import DEFAULT_NATIONAL, NATIONAL
from gateway.registry import Issuer, OnlineEndpoint, TrustHolder, TrustSnapshot
from gateway.registry.admission import KeyOffer, admit
from gateway.registry.audit import AuditEntry
from gateway.registry.authority import Action, Actor, Role
from gateway.server.convert import from_timestamp, timestamp
from gateway.server.status import abort_for
from gateway.storage.sqlite import Change, PolicySource, ProfileSource, RegistryStore
from gateway.trustlist import TrustListSigner

Context = grpc.aio.ServicerContext[object, object]
MAX_AUDIT_PAGE = 1000
T = TypeVar("T")


class StoreWorker:
    """Runs every call on the registry store on one thread, in arrival order.

    SQLite may wait (for another process's write lock, up to the busy timeout, or for fsync);
    doing that on the event loop would stall every verification. One thread keeps the store's
    single connection used by one caller at a time.
    """

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huren-registry")

    async def run(self, work: Callable[[RegistryStore], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, self.store)

    def close(self) -> None:
        """Wait for the call in progress, if any, and stop the thread."""
        self._pool.shutdown(wait=True)


def _digest(request: Message) -> str:
    """What identifies a request's content for idempotence: its deterministic serialisation,
    without proofs of possession (ECDSA and RSA-PSS signatures are randomised, so a client that
    retries re-signs; each proof is verified on every call and bound to the request id)."""
    content = type(request)()
    content.CopyFrom(request)
    if isinstance(content, pb.RegisterIssuerRequest):
        for key in content.keys:
            key.ClearField("proof")
    elif isinstance(content, pb.AddKeyRequest):
        content.key.ClearField("proof")
    return hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()


def _when(value: Timestamp) -> datetime | None:
    return from_timestamp(value) if value.seconds or value.nanos else None


class RegistryServicer(pb_grpc.RegistryServicer):
    def __init__(
        self,
        worker: StoreWorker,
        holder: TrustHolder,
        signer: TrustListSigner,
        clock: Clock,
        *,
        mutations: bool,
    ) -> None:
        self._worker = worker
        self._holder = holder
        self._signer = signer
        self._clock = clock
        self._mutations = mutations

    # ------------------------------------------------------------------ who is calling

    async def _mutate(
        self, context: Context, run: Callable[[RegistryStore, Actor], Change]
    ) -> pb.RegistryChange:
        try:
            if not self._mutations:
                raise NotPermitted(
                    "changes are disabled: the gateway runs without TLS (--insecure)"
                )
            certificate = _client_certificate(context)
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining

            def abandoned() -> bool:
                # The caller has given up: do not commit what it will never hear about.
                return deadline is not None and time.monotonic() >= deadline

            def work(store: RegistryStore) -> tuple[Change, TrustSnapshot]:
                actor = _identify(store, certificate)
                with store.abandoned_if(abandoned):
                    change = run(store, actor)
                return change, store.snapshot

            change, snapshot = await self._worker.run(work)
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        if snapshot.version > self._holder.current.version:
            self._holder.replace(snapshot)
        return pb.RegistryChange(trust_version=change.trust_version, audit=_audit(change.audit))

    # ------------------------------------------------------------------ mutations

    async def RegisterIssuer(
        self, request: pb.RegisterIssuerRequest, context: Context
    ) -> pb.RegistryChange:
        def run(store: RegistryStore, actor: Actor) -> Change:
            issuer_id, digest = IssuerId(request.issuer_id), _digest(request)
            try:
                profile = ProfileSource.parse(request.profile_toml)
                now = self._clock()
                keys = [admit(issuer_id, _offer(k), request.request_id, now) for k in request.keys]
            except ConfigurationInvalid as error:
                return store.refuse(
                    error,
                    Action.REGISTER_ISSUER,
                    issuer_id,
                    issuer_id,
                    RegionCode(request.region),
                    actor=actor,
                    request_id=request.request_id,
                    digest=digest,
                )
            online = None
            if request.HasField("online"):
                o = request.online
                online = OnlineEndpoint(o.code_prefix, o.verify_url, o.client_id, o.client_secret)
            issuer = Issuer(
                issuer_id,
                RegionCode(request.region),
                request.name,
                ProfileId(profile.profile.id),
                profile.profile.version,
                online=online,
                pseudonym_key=request.pseudonym_key or None,
                code_name=request.code_name or None,
            )
            return store.register_issuer(
                issuer, profile, keys, actor=actor, request_id=request.request_id, digest=digest
            )

        return await self._mutate(context, run)

    async def AddKey(self, request: pb.AddKeyRequest, context: Context) -> pb.RegistryChange:
        def run(store: RegistryStore, actor: Actor) -> Change:
            issuer, digest = IssuerId(request.issuer_id), _digest(request)
            try:
                key = admit(issuer, _offer(request.key), request.request_id, self._clock())
            except ConfigurationInvalid as error:
                return store.refuse(
                    error,
                    Action.ADD_KEY,
                    f"{issuer}/{request.key.kid}",
                    issuer,
                    actor=actor,
                    request_id=request.request_id,
                    digest=digest,
                )
            return store.add_key(key, actor=actor, request_id=request.request_id, digest=digest)

        return await self._mutate(context, run)

    async def RetireKey(self, request: pb.RetireKeyRequest, context: Context) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda store, actor: store.retire_key(
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
            lambda store, actor: store.revoke_key(
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
        def run(store: RegistryStore, actor: Actor) -> Change:
            issuer, digest = IssuerId(request.issuer_id), _digest(request)
            try:
                profile = ProfileSource.parse(request.profile_toml)
            except ConfigurationInvalid as error:
                return store.refuse(
                    error,
                    Action.UPDATE_PROFILE,
                    issuer,
                    issuer,
                    actor=actor,
                    request_id=request.request_id,
                    digest=digest,
                )
            return store.update_profile(
                issuer, profile, actor=actor, request_id=request.request_id, digest=digest
            )

        return await self._mutate(context, run)

    async def CreateRegion(
        self, request: pb.CreateRegionRequest, context: Context
    ) -> pb.RegistryChange:
        return await self._mutate(
            context,
            lambda store, actor: store.create_region(
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
            lambda store, actor: store.create_operator(
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
            lambda store, actor: store.remove_operator(
                request.name, actor=actor, request_id=request.request_id, digest=_digest(request)
            ),
        )

    async def SetRevocations(
        self, request: pb.SetRevocationsRequest, context: Context
    ) -> pb.RegistryChange:
        def run(store: RegistryStore, actor: Actor) -> Change:
            issuer, kid, digest = IssuerId(request.issuer_id), KeyId(request.kid), _digest(request)
            try:
                listed, revocations = read_revocation_list(request.revocation_list)
                if listed != kid:
                    raise ConfigurationInvalid(
                        Reason.ERR_IDENTIFIER, f"the list is for key {listed[:64]!r}, not this one"
                    )
            except ConfigurationInvalid as error:
                return store.refuse(
                    error,
                    Action.SET_REVOCATIONS,
                    f"{issuer}/{kid}",
                    issuer,
                    actor=actor,
                    request_id=request.request_id,
                    digest=digest,
                )
            return store.set_revocations(
                issuer, kid, revocations, actor=actor, request_id=request.request_id, digest=digest
            )

        return await self._mutate(context, run)

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Context) -> pb.RegistryChange:
        def run(store: RegistryStore, actor: Actor) -> Change:
            digest = _digest(request)
            try:
                policy = PolicySource.parse(request.policy_toml)
            except ConfigurationInvalid as error:
                # Authorised against what it claims; if not even that can be read, against the
                # caller's own region (the hub administrator's: national).
                claimed = _claimed_destination(request.policy_toml) or actor.region or NATIONAL
                return store.refuse_policy(
                    error,
                    claimed,
                    actor=actor,
                    request_id=request.request_id,
                    digest=digest,
                )
            return store.set_policy(
                policy, actor=actor, request_id=request.request_id, digest=digest
            )

        return await self._mutate(context, run)

    # ------------------------------------------------------------------ reading

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.PolicyRecord:
        snapshot = self._holder.current
        asked = request.destination
        try:
            if asked == NATIONAL:
                policy = snapshot.policies.get(NATIONAL) or DEFAULT_NATIONAL
            else:
                try:
                    region = parse_region_code(asked)
                except ValueError as e:
                    raise RequestInvalid(f"destination: {e}") from e
                policy = snapshot.policy_for(region)
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        filed = policy.key if policy is not DEFAULT_NATIONAL else "built-in"
        history = await self._worker.run(lambda store: store.policy_history(policy.key))
        return pb.PolicyRecord(
            destination=asked,
            applies_from=filed,
            policy_id=policy.id,
            policy_version=policy.version,
            flags=policy.flags(),
            versions=[
                pb.PolicyVersion(version=v, policy_id=i, sha256=sha, policy_toml=text)
                for v, i, sha, text in history
                if policy is not DEFAULT_NATIONAL and v <= policy.version
            ],
        )

    async def ListIssuers(
        self, request: pb.ListIssuersRequest, context: Context
    ) -> pb.ListIssuersResponse:
        snapshot = self._holder.current
        wanted = [
            issuer.id
            for issuer in sorted(snapshot.issuers.values(), key=lambda i: i.id)
            if not request.region or issuer.region == request.region
        ]
        issuers = await self._worker.run(
            lambda store: [_record(snapshot, store, issuer) for issuer in wanted]
        )
        return pb.ListIssuersResponse(issuers=issuers, trust_version=snapshot.version)

    async def GetIssuer(self, request: pb.GetIssuerRequest, context: Context) -> pb.IssuerRecord:
        snapshot = self._holder.current
        issuer = IssuerId(request.issuer_id)
        if issuer not in snapshot.issuers:
            await abort_for(
                context, NotFound(f"issuer {request.issuer_id[:64]!r} is not registered")
            )
        return await self._worker.run(lambda store: _record(snapshot, store, issuer))

    async def GetTrustList(self, request: pb.GetTrustListRequest, context: Context) -> pb.TrustList:
        snapshot = self._holder.current
        sources, policies = await self._worker.run(
            lambda store: (store.profile_sources(), store.policy_sources())
        )
        text = self._signer.signed(snapshot, self._clock(), sources, policies)
        return pb.TrustList(jws=text, version=snapshot.version)

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        try:
            certificate = _client_certificate(context)
            limit = request.limit or MAX_AUDIT_PAGE
            if limit > MAX_AUDIT_PAGE:
                raise RequestInvalid(f"at most {MAX_AUDIT_PAGE} entries per call")

            def work(store: RegistryStore) -> list[AuditEntry]:
                _identify(store, certificate)
                return list(store.audit_entries(after=request.after, limit=limit))

            entries = await self._worker.run(work)
        except Exception as error:
            await abort_for(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return pb.ListAuditResponse(entries=[_audit(e) for e in entries])


def _claimed_destination(source: str) -> str | None:
    """The destination a policy that failed to load says it is for, if that much can be read
    (to authorise before refusing): a region code, ``national``, or None."""
    try:
        meta = tomllib.loads(source).get("policy", {})
    except (tomllib.TOMLDecodeError, UnicodeError):
        return None
    value = meta.get("destination") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _client_certificate(context: Context) -> bytes:
    """The client certificate mutual TLS verified for this call.

    Raises:
        NotAuthenticated: without one (the verification port never asks for it).
    """
    certificates = list(context.auth_context().get("x509_pem_cert") or [])
    if not certificates:
        raise NotAuthenticated("this call needs an operator's client certificate (mTLS port)")
    return bytes(certificates[0])


def _identify(store: RegistryStore, certificate: bytes) -> Actor:
    """The registered operator a verified client certificate names.

    Raises:
        NotAuthenticated: unless the certificate's key is pinned for an active operator whose
            name and region the certificate repeats.
    """
    try:
        peer = pki.peer_identity(certificate)
    except ValueError as e:
        raise NotAuthenticated(f"client certificate: {e}") from e
    record = store.operator_by_pin(peer.spki_sha256)
    if record is None or not record.active:
        raise NotAuthenticated("the certificate's key is not a registered operator's")
    if (record.name, record.region) != (peer.name, peer.region):
        raise NotAuthenticated("the certificate does not match the operator registered")
    role = Role.ADMIN if record.region is None else Role.OPERATOR
    return Actor(role, record.name, record.region)


def _record(snapshot: TrustSnapshot, store: RegistryStore, issuer_id: IssuerId) -> pb.IssuerRecord:
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
            usage=sorted(key.usage or ()),
            restricted=key.usage is not None,
            certificate_sha256=key.certificate_sha256.hex() if key.certificate_sha256 else "",
            revoked_ids=len(listed.ids) if (listed := snapshot.revocations.get(k)) else 0,
            revocation_counter=listed.counter if listed else 0,
        )
        for k, key in sorted(snapshot.keys.items())
        if k[0] == issuer_id
    ]
    profiles = [
        pb.ProfileVersion(version=version, sha256=sha, profile_toml=source)
        for version, sha, source in store.profile_history(issuer.profile_id)
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
        code_name=issuer.code_name or "",
    )


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
