"""Model <-> protobuf, in one place: the only module besides the gRPC edges (``gateway.server``
and ``gateway.clients``) that imports the generated code. Enum values map by name (``VALID`` <->
``STATUS_VALID``).

Verifier: verdicts and decisions, both ways. Registry: each request message to the
:mod:`~gateway.registry.commands` command it carries and back, changes and audit entries, and the
reading calls' views (:mod:`gateway.registry.views`), both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway._generated.huren.v1 import decision_pb2 as dpb
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import verdict_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2 as vpb
from gateway.errors import ConfigurationInvalid, RequestInvalid
from gateway.model import (
    CanonicalCode,
    Colour,
    IssuerId,
    KeyId,
    ProfileId,
    Provenance,
    Reason,
    RegionCode,
    Status,
    SubjectRef,
    Verdict,
    parse_region_code,
)
from gateway.recognise import Assessment, Decision, DecisionReason, DecisionStatus, Role, Step
from gateway.registry import OnlineEndpoint
from gateway.registry.admission import KeyOffer
from gateway.registry.audit import AuditEntry
from gateway.registry.commands import (
    AddKey,
    AddReplica,
    Command,
    CreateOperator,
    CreateRegion,
    RegisterIssuer,
    RemoveOperator,
    RemoveReplica,
    ReserveName,
    RetireIssuer,
    RetireKey,
    RevokeKey,
    SetPolicy,
    SetRevocations,
    UpdateProfile,
)
from gateway.registry.model import KeyStatus, NameKind
from gateway.registry.registrar import Change, Outcome
from gateway.registry.views import (
    IssuerView,
    KeyView,
    PolicyVersionView,
    PolicyView,
    ProfileVersionView,
    ReplicaView,
    TrustListView,
)
from gateway.replica_secrets import IssuerSecrets, ReplicaSecrets
from gateway.transfer import (
    DEFAULT_LOG_PAGE,
    MAX_LOG_PAGE,
    AttestOutcome,
    Issuance,
    IssuancePage,
    IssuanceQuery,
    Refusal,
    Refused,
)

STATUS = {s: pb.Status.Value(f"STATUS_{s.name}") for s in Status}
COLOUR = {c: pb.Colour.Value(f"COLOUR_{c.name}") for c in Colour}
REASON = {r: pb.Reason.Value(f"REASON_{r.name}") for r in Reason}
STATUS_FROM = {v: k for k, v in STATUS.items()}
COLOUR_FROM = {v: k for k, v in COLOUR.items()}
REASON_FROM = {v: k for k, v in REASON.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECONDS = int((datetime(1, 1, 2, tzinfo=UTC) - _EPOCH).total_seconds())
_MAX_SECONDS = int((datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH).total_seconds())


def timestamp(value: datetime) -> Timestamp:
    """Exact conversion (no float rounding) of an aware datetime."""
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def from_timestamp(value: Timestamp, *, strict: bool = False) -> datetime:
    """A protobuf Timestamp as an aware datetime.

    Raises:
        ValueError: with ``strict``, for nanos outside [0, 10^9) or a time outside years
            1-9999 (OverflowError may also come from the arithmetic).
    """
    if strict and not 0 <= value.nanos < 1_000_000_000:
        raise ValueError("nanos must be from 0 to 999,999,999")
    if strict and not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS:
        raise ValueError("the time is outside years 1 to 9999")
    return _EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def verdict(value: Verdict) -> pb.Verdict:
    # Filled in place: building each sub-message and copying it in costs twice as much, and
    # every verdict the gateway gives passes here.
    message = pb.Verdict(
        status=STATUS[value.status],
        colour=COLOUR[value.colour],
        reason=REASON[value.reason],
        detail=value.detail,
    )
    source, target = value.provenance, message.provenance
    if source.region:
        target.region = source.region
    if source.issuer:
        target.issuer = source.issuer
    if source.kid:
        target.kid = source.kid
    if source.profile_id:
        target.profile_id = source.profile_id
    if source.profile_version:
        target.profile_version = source.profile_version
    if source.trust_version:
        target.trust_version = source.trust_version
    if source.code_ref:
        target.code_ref = source.code_ref
    if source.destination:
        target.destination = source.destination
    _set_time(message.verified_at, value.verified_at)
    code = value.code
    if code is not None:
        out = message.code
        out.colour = COLOUR[code.colour]
        out.region = code.region
        out.issuer = code.issuer
        _set_time(out.issued_at, code.issued_at)
        _set_time(out.expires_at, code.expires_at)
        out.local_state = code.local_state
        out.masked_identity = code.masked_identity
        out.subject = code.subject
        if code.destination:
            out.destination = code.destination
    return message


def _set_time(target: Timestamp, value: datetime) -> None:
    delta = value - _EPOCH
    target.seconds = delta.days * 86400 + delta.seconds
    target.nanos = delta.microseconds * 1000


def verdict_from_pb(message: pb.Verdict) -> Verdict:
    """A verdict received from a gateway (clients). Raises ValueError if it is inconsistent."""
    p = message.provenance
    code = None
    if message.HasField("code"):
        c = message.code
        code = CanonicalCode(
            colour=COLOUR_FROM[c.colour],
            region=RegionCode(c.region),
            issuer=IssuerId(c.issuer),
            issued_at=from_timestamp(c.issued_at),
            expires_at=from_timestamp(c.expires_at),
            local_state=c.local_state,
            masked_identity=c.masked_identity,
            subject=SubjectRef(c.subject),
            destination=RegionCode(c.destination) if c.destination else None,
        )
    try:
        status, reason = STATUS_FROM[message.status], REASON_FROM[message.reason]
    except KeyError as e:
        raise ValueError("verdict with an unknown status or reason") from e
    verdict = Verdict(
        status=status,
        reason=reason,
        detail=message.detail,
        provenance=Provenance(
            region=RegionCode(p.region) if p.region else None,
            issuer=IssuerId(p.issuer) if p.issuer else None,
            kid=KeyId(p.kid) if p.kid else None,
            profile_id=ProfileId(p.profile_id) if p.profile_id else None,
            profile_version=p.profile_version or None,
            trust_version=p.trust_version,
            code_ref=p.code_ref or None,
            destination=RegionCode(p.destination) if p.destination else None,
        ),
        verified_at=from_timestamp(message.verified_at),
        code=code,
    )
    if COLOUR[verdict.colour] != message.colour:
        raise ValueError("verdict colour disagrees with its status and code")
    return verdict


def decision(value: Decision) -> dpb.Decision:
    return dpb.Decision(
        status=dpb.DecisionStatus.Value(f"DECISION_STATUS_{value.status.value}"),
        reason=dpb.DecisionReason.Value(f"DECISION_REASON_{value.reason.value}"),
        colour=_colour(value.colour),
        deciding=list(value.deciding),
        codes=[
            dpb.CodeAssessment(
                index=a.index,
                verdict=verdict(a.verdict),
                role=dpb.CodeRole.Value(f"CODE_ROLE_{a.role.value}"),
                counted_as=_colour(a.counted_as),
            )
            for a in value.assessments
        ],
        steps=[
            dpb.DecisionStep(rule=s.rule, text=s.text, codes=list(s.codes)) for s in value.steps
        ],
        policy_id=value.policy_id,
        policy_version=value.policy_version,
        destination=value.destination,
        trust_version=value.trust_version or 0,
        decided_at=timestamp(value.decided_at),
        subject=value.subject or "",
        code_stacking=value.code_stacking,
    )


def _colour(value: Colour | None) -> pb.Colour.ValueType:
    return pb.COLOUR_UNSPECIFIED if value is None else COLOUR[value]


def decision_from_pb(message: dpb.Decision) -> Decision:
    """A decision received from a gateway (clients). Raises ValueError if it is inconsistent."""
    try:
        status = DecisionStatus[dpb.DecisionStatus.Name(message.status)[16:]]
        reason = DecisionReason[dpb.DecisionReason.Name(message.reason)[16:]]
        roles = [Role[dpb.CodeRole.Name(a.role)[10:]] for a in message.codes]
    except (KeyError, ValueError) as e:
        raise ValueError("decision with an unknown status, reason or role") from e
    return Decision(
        status=status,
        reason=reason,
        colour=COLOUR_FROM.get(message.colour),
        deciding=tuple(message.deciding),
        assessments=tuple(
            Assessment(
                index=a.index,
                verdict=verdict_from_pb(a.verdict),
                role=role,
                counted_as=COLOUR_FROM.get(a.counted_as),
            )
            for a, role in zip(message.codes, roles, strict=True)
        ),
        steps=tuple(Step(s.rule, s.text, tuple(s.codes)) for s in message.steps),
        policy_id=message.policy_id,
        policy_version=message.policy_version,
        destination=RegionCode(message.destination),
        decided_at=from_timestamp(message.decided_at),
        trust_version=message.trust_version or None,
        subject=message.subject or None,
        code_stacking=message.code_stacking,
    )


# ---------------------------------------------------------------------- registry: requests


NAME_KIND = {k: rpb.NameKind.Value(f"NAME_KIND_{k.name}") for k in NameKind}
NAME_KIND_FROM = {v: k for k, v in NAME_KIND.items()}
ALGORITHM = {
    "ES256": rpb.ALGORITHM_ES256,
    "ES384": rpb.ALGORITHM_ES384,
    "EdDSA": rpb.ALGORITHM_EDDSA,
    "PS256": rpb.ALGORITHM_PS256,
}
"""JOSE algorithm names (what the model uses) <-> the API's enum (the admissible ones only)."""
ALGORITHM_FROM = {v: k for k, v in ALGORITHM.items()}
KEY_STATUS = {s.value: rpb.KeyStatus.Value(f"KEY_STATUS_{s.name}") for s in KeyStatus}
KEY_STATUS_FROM = {v: k for k, v in KEY_STATUS.items()}
OUTCOME = {o.value: rpb.AuditOutcome.Value(f"AUDIT_OUTCOME_{o.name}") for o in Outcome}
OUTCOME_FROM = {v: k for k, v in OUTCOME.items()}

RegistryRequest = (
    rpb.RegisterIssuerRequest
    | rpb.AddKeyRequest
    | rpb.RetireKeyRequest
    | rpb.RevokeKeyRequest
    | rpb.UpdateProfileRequest
    | rpb.SetRevocationsRequest
    | rpb.SetPolicyRequest
    | rpb.CreateRegionRequest
    | rpb.CreateOperatorRequest
    | rpb.RemoveOperatorRequest
    | rpb.RetireIssuerRequest
    | rpb.ReserveNameRequest
    | rpb.AddReplicaRequest
    | rpb.RemoveReplicaRequest
)


def _optional_time(value: Timestamp) -> datetime | None:
    return from_timestamp(value) if value.seconds or value.nanos else None


def key_offer(key: rpb.KeySubmission) -> KeyOffer:
    # An algorithm number this API does not define stays visible, so that the registry refuses
    # it by name instead of inferring one.
    named = ALGORITHM_FROM.get(key.algorithm) or (f"#{key.algorithm}" if key.algorithm else "")
    return KeyOffer(
        kid=key.kid,
        key=key.key,
        proof=key.proof,
        algorithm=named,
        not_before=_optional_time(key.not_before),
        not_after=_optional_time(key.not_after),
    )


def key_submission(offer: KeyOffer) -> rpb.KeySubmission:
    if offer.algorithm and offer.algorithm not in ALGORITHM:
        raise RequestInvalid(f"the API carries no algorithm {offer.algorithm[:16]!r}")
    return rpb.KeySubmission(
        kid=offer.kid,
        key=offer.key,
        algorithm=ALGORITHM.get(offer.algorithm, rpb.ALGORITHM_UNSPECIFIED),
        proof=offer.proof,
        not_before=timestamp(offer.not_before) if offer.not_before else None,
        not_after=timestamp(offer.not_after) if offer.not_after else None,
    )


def command(request: RegistryRequest) -> Command:
    """The command a Registry request carries (its request id stays in the message)."""
    match request:
        case rpb.RegisterIssuerRequest():
            online = None
            if request.HasField("online"):
                o = request.online
                online = OnlineEndpoint(o.code_prefix, o.verify_url, o.client_id, o.client_secret)
            return RegisterIssuer(
                issuer_id=request.issuer_id,
                region=request.region,
                name=request.name,
                profile_toml=request.profile_toml,
                keys=tuple(key_offer(k) for k in request.keys),
                online=online,
                pseudonym_key=request.pseudonym_key or None,
                code_name=request.code_name or None,
            )
        case rpb.AddKeyRequest():
            return AddKey(request.issuer_id, key_offer(request.key))
        case rpb.RetireKeyRequest():
            return RetireKey(request.issuer_id, request.kid, _optional_time(request.retire_at))
        case rpb.RevokeKeyRequest():
            return RevokeKey(request.issuer_id, request.kid, request.reason)
        case rpb.UpdateProfileRequest():
            return UpdateProfile(request.issuer_id, request.profile_toml)
        case rpb.SetRevocationsRequest():
            return SetRevocations(request.issuer_id, request.kid, request.revocation_list)
        case rpb.SetPolicyRequest():
            return SetPolicy(request.policy_toml)
        case rpb.CreateRegionRequest():
            return CreateRegion(request.region, request.name)
        case rpb.CreateOperatorRequest():
            return CreateOperator(request.name, request.region or None, request.certificate_pem)
        case rpb.RemoveOperatorRequest():
            return RemoveOperator(request.name)
        case rpb.RetireIssuerRequest():
            return RetireIssuer(request.issuer_id, request.reason)
        case rpb.ReserveNameRequest():
            kind = NAME_KIND_FROM.get(request.kind)
            if kind is None:
                raise RequestInvalid("kind must be NAME_KIND_PROFILE, _POLICY or _ISSUER")
            return ReserveName(kind, request.name, request.region)
        case rpb.AddReplicaRequest():
            return AddReplica(request.name, request.certificate_pem)
        case rpb.RemoveReplicaRequest():
            return RemoveReplica(request.name)
    raise AssertionError(f"not a Registry request: {type(request).__name__}")


def request(request_id: str, change: Command) -> RegistryRequest:
    """The Registry request that carries ``change`` (clients)."""
    match change:
        case RegisterIssuer():
            message = rpb.RegisterIssuerRequest(
                request_id=request_id,
                issuer_id=change.issuer_id,
                region=change.region,
                name=change.name,
                profile_toml=change.profile_toml,
                keys=[key_submission(k) for k in change.keys],
                pseudonym_key=change.pseudonym_key or b"",
                code_name=change.code_name or "",
            )
            if change.online is not None:
                message.online.CopyFrom(
                    rpb.OnlineEndpoint(
                        code_prefix=change.online.code_prefix,
                        verify_url=change.online.verify_url,
                        client_id=change.online.client_id,
                        client_secret=change.online.client_secret,
                    )
                )
            return message
        case AddKey():
            return rpb.AddKeyRequest(
                request_id=request_id, issuer_id=change.issuer_id, key=key_submission(change.key)
            )
        case RetireKey():
            return rpb.RetireKeyRequest(
                request_id=request_id,
                issuer_id=change.issuer_id,
                kid=change.kid,
                retire_at=timestamp(change.at) if change.at else None,
            )
        case RevokeKey():
            return rpb.RevokeKeyRequest(
                request_id=request_id,
                issuer_id=change.issuer_id,
                kid=change.kid,
                reason=change.reason,
            )
        case UpdateProfile():
            return rpb.UpdateProfileRequest(
                request_id=request_id, issuer_id=change.issuer_id, profile_toml=change.profile_toml
            )
        case SetRevocations():
            return rpb.SetRevocationsRequest(
                request_id=request_id,
                issuer_id=change.issuer_id,
                kid=change.kid,
                revocation_list=change.revocation_list,
            )
        case SetPolicy():
            return rpb.SetPolicyRequest(request_id=request_id, policy_toml=change.policy_toml)
        case CreateRegion():
            return rpb.CreateRegionRequest(
                request_id=request_id, region=change.region, name=change.name
            )
        case CreateOperator():
            return rpb.CreateOperatorRequest(
                request_id=request_id,
                name=change.name,
                region=change.region or "",
                certificate_pem=change.certificate_pem,
            )
        case RemoveOperator():
            return rpb.RemoveOperatorRequest(request_id=request_id, name=change.name)
        case RetireIssuer():
            return rpb.RetireIssuerRequest(
                request_id=request_id, issuer_id=change.issuer_id, reason=change.reason
            )
        case ReserveName():
            return rpb.ReserveNameRequest(
                request_id=request_id,
                kind=NAME_KIND[change.kind],
                name=change.name,
                region=change.region,
            )
        case AddReplica():
            return rpb.AddReplicaRequest(
                request_id=request_id, name=change.name, certificate_pem=change.certificate_pem
            )
        case RemoveReplica():
            return rpb.RemoveReplicaRequest(request_id=request_id, name=change.name)
    raise RequestInvalid(f"{type(change).__name__} is done on the gateway's host, not over gRPC")


# ---------------------------------------------------------------------- registry: answers


def audit_entry(entry: AuditEntry) -> rpb.AuditEntry:
    return rpb.AuditEntry(
        seq=entry.seq,
        at=timestamp(entry.at),
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        outcome=OUTCOME.get(entry.outcome, rpb.AUDIT_OUTCOME_UNSPECIFIED),
        detail=entry.detail,
        state_digest=entry.state_digest,
        previous_hash=entry.previous_hash,
        entry_hash=entry.entry_hash,
    )


def audit_entry_from(message: rpb.AuditEntry, trust_version: int = 0) -> AuditEntry:
    return AuditEntry(
        seq=message.seq,
        at=from_timestamp(message.at),
        actor=message.actor,
        action=message.action,
        target=message.target,
        outcome=OUTCOME_FROM.get(message.outcome, "unspecified"),
        detail=message.detail,
        state_digest=message.state_digest,
        trust_version=trust_version,
        previous_hash=message.previous_hash,
        entry_hash=message.entry_hash,
    )


def change(value: Change) -> rpb.RegistryChange:
    return rpb.RegistryChange(trust_version=value.trust_version, audit=audit_entry(value.audit))


def change_from(message: rpb.RegistryChange) -> Change:
    return Change(message.trust_version, audit_entry_from(message.audit, message.trust_version))


def _stamp(value: datetime | None) -> Timestamp | None:
    return timestamp(value) if value is not None else None


def issuer(view: IssuerView) -> rpb.IssuerRecord:
    return rpb.IssuerRecord(
        issuer_id=view.issuer_id,
        region=view.region,
        name=view.name,
        profile_id=view.profile_id,
        profile_version=view.profile_version,
        keys=[
            rpb.KeyRecord(
                kid=k.kid,
                algorithm=ALGORITHM.get(k.algorithm, rpb.ALGORITHM_UNSPECIFIED),
                status=KEY_STATUS[k.status],
                status_since=_stamp(k.status_since),
                not_before=_stamp(k.not_before),
                not_after=_stamp(k.not_after),
                spki_sha256=k.spki_sha256,
                usage=list(k.usage),
                restricted=k.restricted,
                certificate_sha256=k.certificate_sha256,
                revoked_ids=k.revoked_ids,
                revocation_counter=k.revocation_counter,
            )
            for k in view.keys
        ],
        profiles=[
            rpb.ProfileVersion(version=p.version, sha256=p.sha256, profile_toml=p.profile_toml)
            for p in view.profiles
        ],
        online_code_prefix=view.online_code_prefix,
        pseudonymous=view.pseudonymous,
        code_name=view.code_name,
        retired_at=_stamp(view.retired_at),
        retired_reason=view.retired_reason,
    )


def _optional(message: Any, name: str) -> datetime | None:
    return from_timestamp(getattr(message, name)) if message.HasField(name) else None


def issuer_from(message: rpb.IssuerRecord) -> IssuerView:
    return IssuerView(
        issuer_id=message.issuer_id,
        region=message.region,
        name=message.name,
        profile_id=message.profile_id,
        profile_version=message.profile_version,
        keys=tuple(
            KeyView(
                kid=k.kid,
                algorithm=ALGORITHM_FROM.get(k.algorithm, "unspecified"),
                status=KEY_STATUS_FROM.get(k.status, "unspecified"),
                status_since=_optional(k, "status_since"),
                not_before=_optional(k, "not_before"),
                not_after=_optional(k, "not_after"),
                spki_sha256=k.spki_sha256,
                usage=tuple(k.usage),
                restricted=k.restricted,
                certificate_sha256=k.certificate_sha256,
                revoked_ids=k.revoked_ids,
                revocation_counter=k.revocation_counter,
            )
            for k in message.keys
        ),
        profiles=tuple(
            ProfileVersionView(p.version, p.sha256, p.profile_toml) for p in message.profiles
        ),
        online_code_prefix=message.online_code_prefix,
        pseudonymous=message.pseudonymous,
        code_name=message.code_name,
        retired_at=_optional(message, "retired_at"),
        retired_reason=message.retired_reason,
    )


def policy(view: PolicyView) -> rpb.PolicyRecord:
    return rpb.PolicyRecord(
        destination=view.destination,
        applies_from=view.applies_from,
        policy_id=view.policy_id,
        policy_version=view.policy_version,
        flags=list(view.flags),
        versions=[
            rpb.PolicyVersion(
                version=v.version, policy_id=v.policy_id, sha256=v.sha256, policy_toml=v.policy_toml
            )
            for v in view.versions
        ],
    )


def policy_from(message: rpb.PolicyRecord) -> PolicyView:
    return PolicyView(
        destination=message.destination,
        applies_from=message.applies_from,
        policy_id=message.policy_id,
        policy_version=message.policy_version,
        flags=tuple(message.flags),
        versions=tuple(
            PolicyVersionView(v.version, v.policy_id, v.sha256, v.policy_toml)
            for v in message.versions
        ),
    )


def trust_list(view: TrustListView) -> rpb.GetTrustListResponse:
    return rpb.GetTrustListResponse(jws=view.jws, version=view.version)


def trust_list_from(
    message: rpb.GetTrustListResponse | rpb.WatchTrustListResponse,
) -> TrustListView:
    return TrustListView(message.jws, message.version)


def watched_trust_list(view: TrustListView) -> rpb.WatchTrustListResponse:
    return rpb.WatchTrustListResponse(jws=view.jws, version=view.version)


def attest_response(value: AttestOutcome) -> vpb.AttestResponse:
    message = vpb.AttestResponse(
        decision=decision(value.decision),
        attestation=value.attestation or "",
        expiry_bound=value.bound,
        code_ref=value.code_ref,
    )
    if value.expires_at is not None:
        message.expires_at.CopyFrom(timestamp(value.expires_at))
    if value.refused is not None:
        message.refusal = vpb.AttestRefusal.Value(f"ATTEST_REFUSAL_{value.refused.refusal.value}")
        message.refusal_detail = value.refused.detail
    return message


def attest_from_pb(message: vpb.AttestResponse) -> AttestOutcome:
    """An attestation answer received from a gateway (clients). Raises ValueError if it is
    inconsistent (an attestation and a refusal, or neither)."""
    refused = None
    if message.refusal:
        try:
            refusal = Refusal[vpb.AttestRefusal.Name(message.refusal)[len("ATTEST_REFUSAL_") :]]
        except (KeyError, ValueError) as e:
            raise ValueError("attestation answer with an unknown refusal") from e
        refused = Refused(refusal, message.refusal_detail)
    return AttestOutcome(
        decision=decision_from_pb(message.decision),
        attestation=message.attestation or None,
        expires_at=from_timestamp(message.expires_at) if message.HasField("expires_at") else None,
        refused=refused,
        bound=message.expiry_bound,
        code_ref=message.code_ref,
    )


def replica_secrets(value: ReplicaSecrets, known_digest: str) -> rpb.GetReplicaSecretsResponse:
    """The answer to ``GetReplicaSecrets``: no secret at all when the caller holds these."""
    digest = value.digest
    if known_digest == digest:
        return rpb.GetReplicaSecretsResponse(version=value.version, digest=digest, unchanged=True)
    return rpb.GetReplicaSecretsResponse(
        version=value.version,
        digest=digest,
        subject_key=value.subject_key,
        link_key=value.link_key,
        issuers=[
            rpb.ReplicaIssuerSecrets(
                issuer_id=s.issuer_id,
                pseudonym_key=s.pseudonym_key or b"",
                online=rpb.OnlineEndpoint(
                    code_prefix=s.online.code_prefix,
                    verify_url=s.online.verify_url,
                    client_id=s.online.client_id,
                    client_secret=s.online.client_secret,
                )
                if s.online is not None
                else None,
            )
            for _, s in sorted(value.issuers.items())
        ],
    )


def replica_secrets_from(message: rpb.GetReplicaSecretsResponse) -> ReplicaSecrets | None:
    """The secrets in an answer; None if it says the caller's are unchanged. Check them with
    :func:`gateway.replica_secrets.check` before use."""
    if message.unchanged:
        return None
    issuers: dict[IssuerId, IssuerSecrets] = {}
    for entry in message.issuers:
        if entry.issuer_id in issuers:  # one would silently replace the other
            raise ConfigurationInvalid(
                Reason.ERR_SCHEMA,
                f"replica secrets refused: issuer {entry.issuer_id[:64]!r} is named twice",
            )
        o = entry.online
        online = (
            OnlineEndpoint(o.code_prefix, o.verify_url, o.client_id, o.client_secret)
            if entry.HasField("online")
            else None
        )
        issuers[IssuerId(entry.issuer_id)] = IssuerSecrets(
            IssuerId(entry.issuer_id), entry.pseudonym_key or None, online
        )
    return ReplicaSecrets(
        message.version, message.subject_key, message.link_key, MappingProxyType(issuers)
    )


# ---------------------------------------------------------------------- registry: hub reading


def replica(view: ReplicaView) -> rpb.ReplicaRecord:
    return rpb.ReplicaRecord(name=view.name, spki_sha256=view.spki_sha256, active=view.active)


def replica_from(message: rpb.ReplicaRecord) -> ReplicaView:
    return ReplicaView(message.name, message.spki_sha256, message.active)


def issuance_query(message: rpb.ListAttestationsRequest) -> IssuanceQuery:
    """The issuance log query a ListAttestations request asks.

    Raises:
        RequestInvalid: for a page larger than :data:`~gateway.transfer.MAX_LOG_PAGE`, a
            destination that is no region code, or an impossible interval.
    """
    if message.limit > MAX_LOG_PAGE:
        raise RequestInvalid(
            f"at most {MAX_LOG_PAGE} entries per call, not {message.limit}: page with before"
        )
    try:
        return IssuanceQuery(
            before=message.before,
            limit=message.limit or DEFAULT_LOG_PAGE,
            destination=parse_region_code(message.destination) if message.destination else None,
            issued_from=_strict_time(message, "issued_from"),
            issued_until=_strict_time(message, "issued_until"),
            policy_id=message.policy_id,
            policy_version=message.policy_version,
            code_ref=message.code_ref,
        )
    except (ValueError, OverflowError) as e:
        raise RequestInvalid(str(e)) from None


def _strict_time(message: Any, name: str) -> datetime | None:
    return from_timestamp(getattr(message, name), strict=True) if message.HasField(name) else None


def issuance_request(query: IssuanceQuery) -> rpb.ListAttestationsRequest:
    return rpb.ListAttestationsRequest(
        before=query.before,
        limit=query.limit,
        destination=str(query.destination or ""),
        issued_from=_stamp(query.issued_from),
        issued_until=_stamp(query.issued_until),
        policy_id=query.policy_id,
        policy_version=query.policy_version,
        code_ref=query.code_ref,
    )


def issuance_page(page: IssuancePage) -> rpb.ListAttestationsResponse:
    return rpb.ListAttestationsResponse(
        entries=[_issuance_record(seq, issuance) for seq, issuance in page.entries],
        next_before=page.next_before,
        kept=page.kept,
        max_kept=page.max_kept,
    )


def _issuance_record(seq: int, issuance: Issuance) -> rpb.IssuanceRecord:
    return rpb.IssuanceRecord(
        seq=seq,
        code_ref=issuance.code_ref,
        destination=issuance.destination,
        policy_id=issuance.policy_id,
        policy_version=issuance.policy_version,
        source_code_refs=list(issuance.sources),
        kid=issuance.kid,
        issued_at=timestamp(issuance.issued_at),
        expires_at=timestamp(issuance.expires_at),
    )


def issuance_page_from(message: rpb.ListAttestationsResponse) -> IssuancePage:
    entries = tuple(
        (
            e.seq,
            Issuance(
                code_ref=e.code_ref,
                destination=RegionCode(e.destination),
                policy_id=e.policy_id,
                policy_version=e.policy_version,
                sources=tuple(e.source_code_refs),
                kid=e.kid,
                issued_at=from_timestamp(e.issued_at),
                expires_at=from_timestamp(e.expires_at),
            ),
        )
        for e in message.entries
    )
    return IssuancePage(entries, message.next_before, message.kept, message.max_kept)
