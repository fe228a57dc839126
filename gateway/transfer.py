"""转码: the hub's transfer attestation, a green decision the traveller carries away.

Pure: no I/O and no clock. The service recognises a traveller's codes at a destination, then
asks this module, in this order:

1. **Decision.** Only a GREEN decision is attested; any other yields the decision's reason.
2. **Policy.** The destination's policy must allow transfer (``[transfer] attest = true``, off
   by default, audited like every policy change).
3. **Sources.** Every presented code must be VALID (a code that is not valid now may become
   valid later and change the decision), none may be an attestation itself, and the traveller
   must be identified by a resident identity number (the attestation carries its masked form
   and link value, nothing else of the person).
4. **Expiry.** The earliest of: the policy's maximum (at most 24 h), and for every code that
   took part in the decision its expiry, the instant the policy stops counting it as fresh, and
   the instant its profile degrades its colour. So at every instant an attestation is valid,
   its sources at its destination still decide GREEN under the same policy: an attestation
   never makes a decision greener than its sources would have made.
5. **Claims.** The CBOR payload the hub signs (:func:`claims`), as ``HR1:`` + base45(zlib(
   COSE_Sign1)) with the hub's attestation key (:func:`seal`), read back everywhere by the
   profile ``gateway/profiles/formats/huren-attestation.toml``.

The format is in docs/transfer.md, with a test vector.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Final

from gateway.codecs import cose, strictcbor, textform
from gateway.crypto import PrivateKey, PublicKey
from gateway.identity import normalise_masked
from gateway.model import (
    NATIONAL_REGION,
    CanonicalCode,
    Colour,
    IssuerId,
    RegionCode,
    Verdict,
    format_span,
)
from gateway.policy.model import Policy
from gateway.profiles.model import Profile
from gateway.recognise import Decision, Role

ISSUER: Final = IssuerId("huren-hub")
"""The hub's own issuer of attestations, in the national pseudo-region."""
REGION: Final = NATIONAL_REGION
REGION_NAME: Final = "全国"
ISSUER_NAME: Final = "互认转码 huren transfer attestations"
PREFIX: Final = "HR1:"
PROFILE_FILE: Final = "huren-attestation.toml"
STATE: Final = "GREEN"
MIN_VALIDITY: Final = timedelta(minutes=5)
"""An attestation that would live less than this is not issued (the traveller could not use it)."""
MAX_SOURCES: Final = 100
"""At most this many source code references in one attestation (the batch limit's default)."""
KID_BYTES: Final = 8

_TAKING_PART = frozenset({Role.DECIDING, Role.COUNTED, Role.SUPERSEDED})


def profile_text() -> str:
    """The attestation format's profile, as shipped (registered with the hub's issuer)."""
    return (resources.files("gateway.profiles.formats") / PROFILE_FILE).read_text("utf-8")


def key_id(public: PublicKey) -> str:
    """The attestation key's id: the first 8 bytes of the SHA-256 of its SubjectPublicKeyInfo,
    in standard base64 (how a COSE kid is registered)."""
    digest = hashlib.sha256(public.spki_der).digest()[:KID_BYTES]
    return base64.b64encode(digest).decode("ascii")


class Refusal(enum.Enum):
    """Why no attestation was issued (the decision itself is returned beside it)."""

    NOT_GREEN = "NOT_GREEN"
    """The decision is not GREEN."""
    TRANSFER_OFF = "TRANSFER_OFF"
    """The destination's policy does not allow transfer."""
    SOURCE_NOT_VALID = "SOURCE_NOT_VALID"
    """A presented code is not VALID."""
    SOURCE_IS_ATTESTATION = "SOURCE_IS_ATTESTATION"
    """An attestation is never the source of another."""
    IDENTITY_UNSUPPORTED = "IDENTITY_UNSUPPORTED"
    """The traveller is not identified by a resident identity number (EU DCC, SMART cards)."""
    EXPIRES_TOO_SOON = "EXPIRES_TOO_SOON"
    """The sources allow less than :data:`MIN_VALIDITY`."""
    KEY_UNAVAILABLE = "KEY_UNAVAILABLE"
    """The hub holds no attestation key that the registry lists as active."""


@dataclass(frozen=True, slots=True)
class Refused:
    refusal: Refusal
    detail: str
    """One sentence for people; never an identity number."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What an attestation for a GREEN decision will say."""

    destination: RegionCode
    policy: str
    """The deciding policy, ``id@version``."""
    sources: tuple[str, ...]
    """The ``code_ref`` of every presented code, in request order."""
    masked: str
    link: bytes
    issued_at: datetime
    expires_at: datetime
    bound: str
    """What set the expiry, for the explanation (``the policy's maximum of 24h``, ...)."""


@dataclass(frozen=True, slots=True)
class Issuance:
    """One issued attestation, as the hub's issuance log keeps it: no personal data."""

    code_ref: str
    destination: RegionCode
    policy_id: str
    policy_version: int
    sources: tuple[str, ...]
    kid: str
    issued_at: datetime
    expires_at: datetime

    @property
    def policy(self) -> str:
        """The deciding policy's label, ``id@version``, as the log keeps and prints it."""
        return f"{self.policy_id}@{self.policy_version}"


def policy_label(label: str) -> tuple[str, int]:
    """``id@version`` as its two parts.

    Raises:
        ValueError: for anything else (a version that is not a decimal integer ≥ 0: 0 is the
            built-in ``national-default@0``).
    """
    policy_id, at, version = label.rpartition("@")
    if not at or not policy_id or not version.isascii() or not version.isdecimal():
        raise ValueError(f"not a policy label id@version: {label[:80]!r}")
    number = int(version)
    if not 0 <= number < 1 << 63 or str(number) != version:
        raise ValueError(f"not a policy label id@version: {label[:80]!r}")
    return policy_id, number


MAX_LOG_PAGE: Final = 1000
"""Most issuance log entries one query answers (``ListAttestations``, ``huren registry
attestations``)."""
DEFAULT_LOG_PAGE: Final = 100
MAX_FILTER_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class IssuanceQuery:
    """Which entries of the issuance log to read, newest first; every filter given must match.

    Only what the log answers from an index: a destination, an interval of issue times, a
    policy id (and version), and a ``code_ref`` (the attestation's own, or one of its sources').
    """

    before: int = 0
    """Entries with a lower sequence number (0: from the newest): the cursor of the next page."""
    limit: int = DEFAULT_LOG_PAGE
    destination: RegionCode | None = None
    issued_from: datetime | None = None
    """Issued at or after this instant."""
    issued_until: datetime | None = None
    """Issued before this instant."""
    policy_id: str = ""
    policy_version: int = 0
    """With ``policy_id``: only this version (0: any)."""
    code_ref: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LOG_PAGE:
            raise ValueError(f"a page holds 1 to {MAX_LOG_PAGE} entries, not {self.limit}")
        if not 0 <= self.before < 2**63:
            raise ValueError("before is a sequence number: 0 to 2^63 - 1")
        if len(self.policy_id) > MAX_FILTER_CHARS or len(self.code_ref) > MAX_FILTER_CHARS:
            raise ValueError(
                f"a policy id or code_ref has at most {MAX_FILTER_CHARS} characters: none longer "
                "is ever logged"
            )
        if self.policy_version and not self.policy_id:
            raise ValueError("a policy version needs the policy id")
        if self.policy_version < 0:
            raise ValueError("a policy version is 1 or more")
        for name in ("issued_from", "issued_until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a UTC offset")
        if (
            self.issued_from is not None
            and self.issued_until is not None
            and self.issued_until <= self.issued_from
        ):
            raise ValueError("the interval is empty: issued_until must be after issued_from")

    @property
    def policy(self) -> str:
        """The policy label the log keeps (``id@version``), or its prefix (``id@``)."""
        if not self.policy_id:
            return ""
        return f"{self.policy_id}@{self.policy_version or ''}"


@dataclass(frozen=True, slots=True)
class IssuancePage:
    """A page of the issuance log, newest first."""

    entries: tuple[tuple[int, Issuance], ...]
    next_before: int
    """The cursor of the next page (``IssuanceQuery.before``); 0: there is none."""
    kept: int
    """How many entries the log holds (all, not only those matching)."""
    max_kept: int


@dataclass(frozen=True, slots=True)
class AttestOutcome:
    """The answer to an attestation request: the decision it rests on, and the attestation or
    why there is none."""

    decision: Decision
    attestation: str | None = None
    expires_at: datetime | None = None
    refused: Refused | None = None
    issuance: Issuance | None = None
    bound: str = ""
    """What set the expiry (``the policy's maximum``, ``code 2's expiry``, ...)."""
    code_ref: str = ""
    """The attestation's code reference, as the issuance log keeps it."""

    def __post_init__(self) -> None:
        if (self.attestation is None) == (self.refused is None):
            raise ValueError("an outcome has an attestation or a refusal, never both")


def assess(
    decision: Decision,
    verdicts: Sequence[Verdict],
    policy: Policy,
    profiles: dict[IssuerId, Profile],
    at: datetime,
) -> Grant | Refused:
    """Steps 1 to 4: what an attestation for ``decision`` would say, or why there is none.

    ``profiles``: the profile of each VALID code's issuer (for its degradation rules).
    """
    # Step 1: only GREEN is ever attested.
    if decision.colour is not Colour.GREEN:
        last = decision.steps[-1].text if decision.steps else ""
        colour = decision.colour.value if decision.colour else decision.status.value
        return Refused(
            Refusal.NOT_GREEN,
            f"no attestation: the decision is {colour} ({decision.reason.value}): {last}",
        )
    # Step 2: the destination must allow transfer.
    if not policy.transfer.attest:
        return Refused(
            Refusal.TRANSFER_OFF,
            f"no attestation: policy {policy.label} does not allow transfer "
            f"([transfer] attest = true)",
        )
    # Step 3: every source valid, none an attestation, one resident identity.
    codes: list[CanonicalCode] = []
    for index, verdict in enumerate(verdicts):
        if verdict.code is None:
            return Refused(
                Refusal.SOURCE_NOT_VALID,
                f"no attestation: code {index + 1} is {verdict.status.value} "
                f"({verdict.reason.value}); present only valid codes",
            )
        if verdict.code.destination is not None:
            return Refused(
                Refusal.SOURCE_IS_ATTESTATION,
                f"no attestation: code {index + 1} is an attestation itself; present the "
                "region's own codes",
            )
        codes.append(verdict.code)
    masked = normalise_masked(codes[0].masked_identity) if codes else None
    if masked is None or not codes[0].link:
        return Refused(
            Refusal.IDENTITY_UNSUPPORTED,
            "no attestation: transfer needs codes that identify the traveller by a resident "
            "identity number",
        )
    # Step 4: the expiry, bounded by everything that could change the decision.
    bounds = [(at + policy.transfer.max_validity, "the policy's maximum")]
    for assessment in decision.assessments:
        code = assessment.verdict.code
        if assessment.role not in _TAKING_PART or code is None:
            continue
        n = assessment.index + 1
        bounds.append((code.expires_at, f"code {n}'s expiry"))
        max_age, _ = policy.freshness.max_age.lookup(code.region, code.issuer)
        if max_age is not None:
            bounds.append((code.issued_at + max_age, f"code {n}'s freshness here"))
        profile = profiles.get(code.issuer)
        for rule in profile.validity.degrade if profile is not None else ():
            change = code.issued_at + rule.after
            if rule.source is code.colour and change > at:
                bounds.append((change, f"code {n}'s {rule.source.value} reading"))
    expires_at, bound = min(bounds, key=lambda b: b[0])
    if expires_at - at < MIN_VALIDITY:
        return Refused(
            Refusal.EXPIRES_TOO_SOON,
            f"no attestation: {bound} leaves less than {format_span(MIN_VALIDITY)}",
        )
    return Grant(
        destination=decision.destination,
        policy=f"{decision.policy_id}@{decision.policy_version}",
        sources=tuple(v.provenance.code_ref or "" for v in verdicts),
        masked=masked,
        link=codes[0].link,
        issued_at=at,
        expires_at=expires_at,
        bound=bound,
    )


def claims(grant: Grant) -> dict[str, Any]:
    """Step 5: the payload, exactly (docs/transfer.md lists every member)."""
    return {
        "iss": ISSUER,
        "iat": int(grant.issued_at.timestamp()),
        "exp": int(grant.expires_at.timestamp()),
        "st": STATE,
        "dst": grant.destination,
        "sub": {"m": grant.masked, "l": grant.link},
        "pol": grant.policy,
        "src": list(grant.sources[:MAX_SOURCES]),
    }


def seal(grant: Grant, key: PrivateKey, kid: str) -> str:
    """The attestation text: ``HR1:`` + base45(zlib(COSE_Sign1)), signed with ``key``.

    Times are whole seconds (issued at rounded down, expiry rounded down: never later than
    the bound)."""
    payload = strictcbor.dumps(claims(grant))
    return textform.encode(PREFIX, cose.sign(payload, key, base64.b64decode(kid)))
