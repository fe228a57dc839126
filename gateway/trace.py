"""What each numbered step of the verify pipeline established, for the dry run.

:mod:`gateway.verify` records into a :class:`Trace` when its caller passes one (``huren profile
test``); the gateway's own verifications pass none and pay one comparison per step. The steps
are the pipeline's own (its module docstring numbers them); a rejection marks the step that was
running when it was raised.

Every fact is a line for people. None holds the code's text or an identity number: values read
from a code are shown short (:data:`MAX_SHOWN_CHARS`) with every run of digits long enough to be
an identity number masked, and an identity only ever appears masked.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.crypto import Algorithm
from gateway.identity import mask_number
from gateway.model import Reason
from gateway.profiles.describe import describe_identity, describe_time
from gateway.profiles.model import MISSING, EnvelopeFormat, EnvelopeSpec, Profile, TextForm

if TYPE_CHECKING:
    from gateway.registry import Issuer, IssuerKey, Route

MAX_SHOWN_CHARS = 40
"""The most characters of a value read from a code that a fact shows."""
# 15 digits (the old resident identity numbers) or more, with an optional check character.
_LONG_NUMBER = re.compile(r"[0-9]{14,}[0-9Xx]")


class Step(enum.IntEnum):
    """The numbered steps of :mod:`gateway.verify`."""

    SCREEN = 1
    ROUTE = 2
    ENVELOPE = 3
    ISSUER = 4
    KEY = 5
    SIGNATURE = 6
    KEY_STATUS = 7
    TIMES = 8
    TRANSLATION = 9
    IDENTITY = 10

    @property
    def title(self) -> str:
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step as it ran: what it established, and the refusal if it is where the code failed."""

    step: Step
    facts: tuple[str, ...]
    reason: Reason | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.reason is None


class Trace:
    """Collects the steps of one verification, in order. Not shared between verifications."""

    __slots__ = ("_failure", "_steps")

    def __init__(self) -> None:
        self._steps: list[tuple[Step, list[str]]] = []
        self._failure: tuple[Reason, str] | None = None

    def enter(self, step: Step) -> None:
        self._steps.append((step, []))

    def note(self, fact: str) -> None:
        """A fact the current step established (or read, before it failed)."""
        if self._steps:
            self._steps[-1][1].append(fact)

    def fail(self, reason: Reason, detail: str) -> None:
        """The current step refused the code (at most once: the first refusal ends the run)."""
        if self._failure is None:
            self._failure = (reason, detail)

    @property
    def steps(self) -> tuple[StepRecord, ...]:
        records = [StepRecord(step, tuple(facts)) for step, facts in self._steps]
        if self._failure is not None and records:
            reason, detail = self._failure
            last = records[-1]
            records[-1] = StepRecord(last.step, last.facts, reason, detail)
        return tuple(records)


# ---------------------------------------------------------------------- facts, for each step


def shown(value: Any) -> str:
    """A value read from a code, as a fact may show it: short, and never a long number."""
    if value is MISSING:
        return "missing"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if isinstance(value, Mapping):
        return f"a map of {len(value)} members"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS] + "…"
    text = _LONG_NUMBER.sub(lambda m: mask_number(m.group()), text)
    return repr(text) if isinstance(value, str) else text


def instant(value: datetime) -> str:
    """An instant in RFC 3339 UTC, to the second."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def screened(code: str) -> str:
    return f"{len(code)} characters of printable ASCII"


def routed(route: Route) -> str:
    spec = route.envelope
    start = repr(spec.route) + (" (the compact-JWS shape)" if not spec.prefix else "")
    issuers = ", ".join(issuer.id for issuer, _ in route.issuers)
    return (
        f"starts with {start}: envelope {spec.format.value} / {spec.text.value} / "
        f"{spec.payload.value}, issuers {issuers}"
    )


def opened(
    spec: EnvelopeSpec,
    algorithm: Algorithm | None,
    kid: str | None,
    signed: int,
    payload: int,
    claims: Mapping[Any, Any],
) -> str:
    """What the envelope held (its hints are unauthenticated until the signature verifies)."""
    named = f"alg {algorithm.value}" if algorithm else "no alg (the registered key's is used)"
    key = f"kid {shown(kid)}" if kid is not None else "no kid"
    if spec.format is EnvelopeFormat.DELIMITED:
        return (
            f"delimited text after {spec.prefix!r}, fields {' '.join(spec.fields)} split at "
            f"{spec.delimiter!r}; {named}, {key} (field {spec.kid_field}); the signature "
            f"covers {signed} characters"
        )
    if spec.format is EnvelopeFormat.COSE:
        outer = f"COSE_Sign1 in {spec.prefix!r} + base45 + zlib"
    elif spec.text is TextForm.NUMERIC:
        outer = f"compact JWS in numeric form after {spec.prefix!r}"
    else:
        outer = "compact JWS"
    inflated = " (inflated from DEFLATE)" if spec.compression else ""
    return (
        f"{outer}: {named}, {key}; {payload}-byte {spec.payload.value.upper()} payload"
        f"{inflated}, {shown(dict(claims))}"
    )


def candidates(route: Route, claims: Mapping[Any, Any], chosen: Sequence[Issuer]) -> str:
    """Step 4: where the code names its issuer, and the issuers that makes candidates."""
    who = ", ".join(i.id for i in chosen)
    paths = {path.text: path for _, path in route.issuers if path is not None}
    if not paths:
        if not chosen:
            return "the format names no issuer, and no issuer holds a key with the code's key id"
        return f"the format names no issuer: the key id selects {who}"
    read = "; ".join(f"{text} = {shown(path.get(claims))}" for text, path in paths.items())
    return f"{read}: candidate issuer {who}"


def keys_selected(kid: str, keys: Sequence[IssuerKey]) -> str:
    found = ", ".join(f"{k.issuer}/{k.kid} ({k.public_key.algorithm.value})" for k in keys)
    return f"key id {shown(kid)} selects {found}"


def signature(signer: IssuerKey, algorithm: Algorithm | None, signed: int) -> str:
    header = f"the header names {algorithm.value}" if algorithm else "the code names no algorithm"
    return (
        f"{signer.public_key.algorithm.value} signature verifies with key {signer.issuer}/"
        f"{signer.kid} over the {signed} bytes received (the algorithm is the registered "
        f"key's; {header})"
    )


def key_status(signer: IssuerKey, issuer: Issuer) -> str:
    return f"key {signer.kid} is {signer.status.value}; issuer {issuer.id} is not retired"


def times_read(profile: Profile, claims: Mapping[Any, Any]) -> list[str]:
    fields = {
        "issued_at": profile.issued_at,
        "expires_at": profile.expires_at,
        "not_before": profile.not_before,
    }
    return [
        f"{name} at {describe_time(field)} = {shown(field.path.get(claims))}"
        for name, field in fields.items()
        if field is not None
    ]


def times_parsed(issued: datetime, expires: datetime, not_before: datetime | None) -> str:
    start = f", valid from {instant(not_before)}" if not_before is not None else ""
    return f"issued {instant(issued)}, expires {instant(expires)}{start}"


def times_checked(now: datetime, leeway: str) -> str:
    return (
        f"checked at {instant(now)} (leeway {leeway} for issue times, none for expiry): not "
        "issued in the future, not expired, issued inside the key's validity"
    )


def state_read(profile: Profile, claims: Mapping[Any, Any], issuer: Issuer) -> list[str]:
    facts = []
    if profile.issuer is not None:
        facts.append(
            f"issuer at {profile.issuer.text} = {shown(profile.issuer.get(claims))} "
            f"(must be {issuer.name_in_codes!r})"
        )
    if profile.state is not None:
        facts.append(
            f"state at {profile.state.path.text} ({profile.state.type.value}) = "
            f"{shown(profile.state.path.get(claims))}"
        )
    if profile.issuer_region is not None:
        facts.append(
            f"issuer region at {profile.issuer_region.text} = "
            f"{shown(profile.issuer_region.get(claims))} (must be {issuer.region})"
        )
    if profile.destination is not None:
        facts.append(
            f"destination at {profile.destination.text} = {shown(profile.destination.get(claims))}"
        )
    return facts


def translated(
    local_state: str, colour: str, degraded_from: str | None, note: str | None, by_rule: bool
) -> str:
    how = "the first colour rule that holds" if by_rule else "the profile's states"
    fact = f"{shown(local_state)} -> {colour} by {how}"
    if degraded_from is not None:
        fact += f" (degraded from {degraded_from} by the code's age)"
    if note is not None:
        fact += f"; note: {note}"
    return fact


def identified(profile: Profile, masked: str) -> str:
    return f"{describe_identity(profile.identity)} -> {masked}"
