"""Model <-> protobuf, in one place. Enum values map by name (``VALID`` <-> ``STATUS_VALID``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from gateway._generated.huren.v1 import decision_pb2 as dpb
from gateway._generated.huren.v1 import verdict_pb2 as pb
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
)
from gateway.recognise import Assessment, Decision, DecisionReason, DecisionStatus, Role, Step

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


def canonical_code(code: CanonicalCode) -> pb.CanonicalCode:
    return pb.CanonicalCode(
        colour=COLOUR[code.colour],
        region=code.region,
        issuer=code.issuer,
        issued_at=timestamp(code.issued_at),
        expires_at=timestamp(code.expires_at),
        local_state=code.local_state,
        masked_identity=code.masked_identity,
        subject=code.subject,
    )


def provenance(value: Provenance) -> pb.Provenance:
    return pb.Provenance(
        region=value.region or "",
        issuer=value.issuer or "",
        kid=value.kid or "",
        profile_id=value.profile_id or "",
        profile_version=value.profile_version or 0,
        trust_version=value.trust_version or 0,
        code_ref=value.code_ref or "",
        destination=value.destination or "",
    )


def verdict(value: Verdict) -> pb.Verdict:
    message = pb.Verdict(
        status=STATUS[value.status],
        colour=COLOUR[value.colour],
        reason=REASON[value.reason],
        detail=value.detail,
        provenance=provenance(value.provenance),
        verified_at=timestamp(value.verified_at),
    )
    if value.code is not None:
        message.code.CopyFrom(canonical_code(value.code))
    return message


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
