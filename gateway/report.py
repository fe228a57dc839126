"""How verdicts, decisions and policies are shown: JSON (``--json``) or lines for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from gateway.model import Status, Verdict, format_span
from gateway.policy import Policy, Strategy
from gateway.profiles import Profile
from gateway.profiles.describe import (
    describe_algorithms,
    describe_condition,
    describe_identity,
    describe_time,
)
from gateway.recognise import Decision, DecisionStatus
from gateway.trace import Step
from gateway.transfer import AttestOutcome, Issuance

if TYPE_CHECKING:
    from gateway.dryrun import Trial

_CST = timezone(timedelta(hours=8), "CST")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """The flat JSON form used by ``huren verify --json`` and ``huren demo --json``."""
    p, code = verdict.provenance, verdict.code
    return {
        "status": verdict.status.value,
        "colour": verdict.colour.value,
        "reason": verdict.reason.value,
        "detail": verdict.detail,
        "region": p.region,
        "issuer": p.issuer,
        "kid": p.kid,
        "profile": p.profile_id,
        "profile_version": p.profile_version,
        "issued_at": _iso(code.issued_at) if code else None,
        "expires_at": _iso(code.expires_at) if code else None,
        "local_state": code.local_state if code else None,
        "masked_identity": code.masked_identity if code else None,
        "subject": code.subject if code else None,
        "trust_version": p.trust_version,
        "code_ref": p.code_ref,
        "destination": p.destination,
        "verified_at": _iso(verdict.verified_at),
    }


def verdict_line(verdict: Verdict) -> str:
    """One line a person can read at a checkpoint."""
    p, code = verdict.provenance, verdict.code
    head = f"{verdict.colour.value:<6} {verdict.status.value:<12}"
    if code is not None and verdict.status is Status.VALID:
        expires = code.expires_at.astimezone(_CST).strftime("%Y-%m-%d %H:%M %z")
        note = "" if verdict.detail == "verified" else f"  ({verdict.detail})"
        return (
            f"{head} {code.region} {code.issuer} {code.local_state} {code.masked_identity}"
            f"  expires {expires}  kid={p.kid} profile={p.profile_id}@{p.profile_version}{note}"
        )
    where = ", ".join(
        f"{name} {value}"
        for name, value in (("issuer", p.issuer), ("kid", p.kid), ("region", p.region))
        if value
    )
    return f"{head} {verdict.reason.value}: {verdict.detail}" + (f" ({where})" if where else "")


def trial_json(number: int, trial: Trial) -> dict[str, Any]:
    """One dry-run code as JSON (``huren profile test --json``). A dry run has no registry and
    throwaway identity secrets: its verdict carries no trust version, subject or code reference."""
    verdict = verdict_json(trial.verdict)
    for meaningless in ("subject", "code_ref", "trust_version", "destination"):
        verdict.pop(meaningless)
    return {
        "code": number,
        "verdict": verdict,
        "assumed": list(trial.assumed),
        "steps": [
            {
                "step": int(record.step),
                "name": record.step.title,
                "passed": record.passed,
                "facts": list(record.facts),
                "reason": record.reason.value if record.reason else None,
                "detail": record.detail or None,
            }
            for record in trial.steps
        ],
    }


def trial_lines(number: int, trial: Trial) -> list[str]:
    """One dry-run code for people: the verdict, what was assumed, then each step the pipeline
    ran with what it read and established; the step that refused the code says why."""
    lines = [f"code {number}: {verdict_line(trial.verdict)}"]
    lines += [f"  assumed      {assumption}" for assumption in trial.assumed]
    indent = " " * 24  # under the first fact
    for record in trial.steps:
        head = f"  {int(record.step):>2} {record.step.title:<12}"
        if record.reason is not None:
            lines.append(f"{head} FAILED {record.reason.value}: {record.detail}")
            lines += [indent + fact for fact in record.facts]
            continue
        facts = list(record.facts) or [""]
        lines.append(f"{head} ok     {facts[0]}".rstrip())
        lines += [indent + fact for fact in facts[1:]]
    ran, last = len(trial.steps), len(Step)
    if trial.steps and not trial.steps[-1].passed and ran < last:
        rest = f"step {last}" if ran + 1 == last else f"steps {ran + 1} to {last}"
        lines.append(f"{indent}{rest} did not run")
    return lines


def decision_json(decision: Decision) -> dict[str, Any]:
    """The JSON form used by ``huren recognise --json``."""
    return {
        "status": decision.status.value,
        "reason": decision.reason.value,
        "colour": decision.colour.value if decision.colour else None,
        "deciding": list(decision.deciding),
        "destination": decision.destination,
        "policy_id": decision.policy_id,
        "policy_version": decision.policy_version,
        "code_stacking": decision.code_stacking,
        "subject": decision.subject,
        "trust_version": decision.trust_version,
        "decided_at": _iso(decision.decided_at),
        "steps": [{"rule": s.rule, "text": s.text, "codes": list(s.codes)} for s in decision.steps],
        "codes": [
            {
                "index": a.index,
                "role": a.role.value,
                "counted_as": a.counted_as.value if a.counted_as else None,
                "verdict": verdict_json(a.verdict),
            }
            for a in decision.assessments
        ],
    }


def attest_json(outcome: AttestOutcome) -> dict[str, Any]:
    """The JSON form used by ``huren attest --json`` and the checkpoint's ``POST /api/attest``."""
    return {
        "attestation": outcome.attestation,
        "expires_at": _iso(outcome.expires_at) if outcome.expires_at else None,
        "expiry_bound": outcome.bound or None,
        "code_ref": outcome.code_ref or None,
        "refusal": outcome.refused.refusal.value if outcome.refused else None,
        "refusal_detail": outcome.refused.detail if outcome.refused else None,
        "decision": decision_json(outcome.decision),
    }


def issuance_json(seq: int, issuance: Issuance) -> dict[str, Any]:
    """One entry of the hub's issuance log (``huren registry attestations --json``)."""
    return {
        "seq": seq,
        "code_ref": issuance.code_ref,
        "destination": issuance.destination,
        "policy": issuance.policy,
        "sources": list(issuance.sources),
        "kid": issuance.kid,
        "issued_at": _iso(issuance.issued_at),
        "expires_at": _iso(issuance.expires_at),
    }


def decision_lines(decision: Decision) -> list[str]:
    """The decision, each code, and the explanation, for people."""
    if decision.status is DecisionStatus.REFUSED:
        head = f"REFUSED {decision.reason.value}"
    else:
        head = f"{decision.colour.value if decision.colour else '-':<6} {decision.reason.value}"
    lines = [
        f"{head}  at {decision.destination} under policy "
        f"{decision.policy_id}@{decision.policy_version}"
        + ("  (code-stacking)" if decision.code_stacking else "")
    ]
    for a in decision.assessments:
        counted = f" as {a.counted_as.value}" if a.counted_as else ""
        lines.append(
            f"  code {a.index + 1}: {a.role.value.lower()}{counted}  {verdict_line(a.verdict)}"
        )
    lines.extend(f"  {i}. [{s.rule}] {s.text}" for i, s in enumerate(decision.steps, 1))
    return lines


def policy_lines(policy: Policy) -> list[str]:
    """What a policy does, in the order it is applied."""
    where = policy.destination or "the nation (where a region has no policy of its own)"
    lines = [f"policy {policy.label} for {where}"]
    if policy.description:
        lines.append(f"  {policy.description}")
    r = policy.recognise
    recognised = ["every region"] if r.everywhere else [*r.regions]
    recognised += [f"issuer {i}" for i in sorted(r.issuers)]
    lines.append(f"  recognises {', '.join(recognised)}")
    e = policy.exclude
    if not e.empty:
        lines.append(
            f"  excludes   {', '.join([*e.regions, *(f'issuer {i}' for i in sorted(e.issuers))])}"
        )
    ages = policy.freshness.max_age
    if not ages.empty:
        parts = [f"{format_span(ages.default)} by default"] if ages.default else []
        parts += [f"{format_span(v)} for {k}" for k, v in sorted(ages.regions.items())]
        parts += [f"{format_span(v)} for issuer {k}" for k, v in sorted(ages.issuers.items())]
        stale = policy.freshness.stale
        then = "ignored" if stale is None else f"counted as at least {stale.value}"
        lines.append(f"  max age    {', '.join(parts)}; older codes are {then}")
    readings = [
        *((k, m) for k, m in sorted(policy.severity.regions.items())),
        *((f"issuer {k}", m) for k, m in sorted(policy.severity.issuers.items())),
    ]
    for origin, mapping in readings:
        read = ", ".join(f"{a.value} as {b.value}" for a, b in mapping.items())
        lines.append(f"  reads      {origin}: {read}")
    combine = policy.strategy.value
    if policy.strategy is Strategy.JURISDICTION:
        combine += f" (the more {policy.prefer.value} region wins)"
    lines.append(f"  combines   {combine}")
    lines.extend(f"  FLAG       {flag}" for flag in policy.flags())
    return lines


def profile_lines(profile: Profile) -> list[str]:
    """What a profile will do (``huren profile check``): how codes are wrapped and signed, where
    each fact is read and in which format, how long codes live, and the colours."""
    envelope, validity = profile.envelope, profile.validity
    start = f", codes start with {envelope.prefix!r}" if envelope.prefix else ""
    lines = [
        f"profile {profile.label}: valid",
        f"  envelope  {envelope.format.value} / {envelope.text.value} / "
        f"{envelope.payload.value}{start}",
        f"  signed    {describe_algorithms(profile)}",
        f"  issuer    {profile.issuer.text if profile.issuer else '(named by key id only)'}",
    ]
    if profile.issuer_region is not None:
        lines.append(
            f"  region    {profile.issuer_region.text} must be the issuer's registered region"
        )
    if profile.destination is not None:
        lines.append(f"  made for  {profile.destination.text} (the destination region)")
    times = {
        "issued": profile.issued_at,
        "expires": profile.expires_at,
        "starts": profile.not_before,
    }
    lines += [f"  {label:<9} {describe_time(field)}" for label, field in times.items() if field]
    expiry = [f"field {profile.expires_at.path.text}"] if profile.expires_at else []
    if validity.duration:
        expiry.append(f"issue + {format_span(validity.duration)}")
    if validity.end_of_day:
        expiry.append(f"end of day in {validity.end_of_day.key}")
    lines.append(f"  expiry    earliest of: {', '.join(expiry)}")
    if validity.max:
        lines.append(f"  at most   {format_span(validity.max)} of validity")
    for rule in validity.degrade:
        after = format_span(rule.after)
        lines.append(f"  degrade   {rule.source.value} -> {rule.target.value} after {after}")
    if envelope.compression:
        lines.append(f"  payload   compressed ({envelope.compression})")
    if envelope.key_id.value != "any":
        lines.append(f"  key ids   {envelope.key_id.value}")
    lines.append(f"  identity  {describe_identity(profile.identity)}")
    for kind, path in profile.kinds.items():
        lines.append(
            f"  kind      {kind} when {path.text} is present (keys may be restricted to kinds)"
        )
    if profile.revocation_id is not None:
        lines.append(
            f"  revoked   by id {profile.revocation_id.text} (the issuer's revocation lists)"
        )
    if profile.rules is not None:
        for colour_rule in profile.rules.rules:
            tests = " and ".join(describe_condition(c) for c in colour_rule.when)
            lines.append(
                f"  rule      {colour_rule.name!r} -> {colour_rule.colour.value} when {tests}"
            )
        rules = profile.rules
        lines.append(f"  otherwise {rules.otherwise_name!r} -> {rules.otherwise.value}")
        return lines
    assert profile.state is not None  # a profile has states or colour rules
    lines.append(f"  state     {profile.state.path.text} ({profile.state.type.value})")
    for local, colour in profile.states.items():
        note = profile.notes.get(local)
        lines.append(f"  state     {local!r} -> {colour.value}" + (f"  ({note})" if note else ""))
    lines.append("  anything else -> refused (ERR_COLOUR_UNKNOWN)")
    return lines
