"""How verdicts are shown: one JSON object per verdict (``--json``) or one line for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from gateway.model import Status, Verdict

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
