"""The verification service: the in-process API that every edge (gRPC, CLI, benchmarks) uses.

It owns nothing but references: the current trust snapshot (through a :class:`TrustHolder`), the
limits, the identity keys, the clock, and optionally the port through which online issuers are
asked. Each call reads the clock and the snapshot exactly once.

The clock is watched: the service keeps the latest instant it has seen (starting from the
registry's last change, or the mark persisted by the last run if that is later) and, if the
clock ever reads earlier than that by more than the leeway (a clock set back, by mistake or to
revive expired codes), answers every code UNVERIFIABLE ``ERR_CLOCK_UNTRUSTED`` until the clock
has caught up again.

So is the trust behind the snapshot: when the registry stops verifying (see
:class:`~gateway.registry.TrustHolder`), codes are still judged on the last good snapshot for
``limits.stale_grace``, then every code is UNVERIFIABLE ``ERR_TRUST_STALE``. A snapshot read
from a signed trust list (a replica's) is judged on only until the list's ``fresh_until``; from
then on, too, every code is UNVERIFIABLE ``ERR_TRUST_STALE``, never judged on the old list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway import transfer
from gateway.clock import Clock
from gateway.crypto import PrivateKey
from gateway.errors import RequestInvalid, StorageUnavailable
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import KeyId, Provenance, Reason, RegionCode, Verdict, parse_region_code
from gateway.online import OnlineAnswer
from gateway.recognise import Decision, recognise
from gateway.registry import KeyStatus, TrustHolder, TrustSnapshot
from gateway.transfer import AttestOutcome, Issuance, Refusal, Refused
from gateway.verify import Question, begin, finish_online, offline

_YIELD_EVERY = 16
RECOGNISE_PAST = timedelta(minutes=15)
"""How far in the past a decision's instant of presentation may be (a checkpoint that queued a
scan); the trust snapshot is always the current one."""


class AttestationDesk(Protocol):
    """Where the hub keeps what transfer needs (gateway.storage.attestations)."""

    def signing_keys(self) -> Sequence[tuple[str, PrivateKey]]:
        """Every attestation key on this host, as ``(kid, key)``."""
        ...

    def record(self, issuance: Issuance) -> int:
        """Log one issued attestation (raises StorageUnavailable if it cannot)."""
        ...


class OnlineAsker(Protocol):
    """The edge that asks an online issuer about a token (see gateway.clients.online)."""

    async def ask(self, question: Question, now: datetime) -> OnlineAnswer: ...

    async def close(self) -> None: ...


def parse_destination(text: str) -> RegionCode | None:
    """An optional destination region from a request; empty means none.

    Raises:
        RequestInvalid: for anything but a GB/T 2260 region code.
    """
    if not text:
        return None
    try:
        return parse_region_code(text)
    except ValueError as e:
        raise RequestInvalid(f"destination: {e}") from e


NO_IDENTITIES = (
    Reason.ERR_SECRET_UNAVAILABLE,
    "this replica holds no identity secrets from its hub (not received yet, refused, or "
    "dropped when the hub answered no fetch within their maximum age: docs/scaling.md): no "
    "code is judged",
)


@dataclass(frozen=True, slots=True)
class Doubts:
    """Why no code of a call can be judged, taken once per call with its instant: its clock
    set back, or stale trust. Missing identity secrets (named between the two) are looked at
    per code, as a replica may drop them in the middle of a batch."""

    clock: tuple[Reason, str] | None = None
    trust: tuple[Reason, str] | None = None


class VerificationService:
    def __init__(
        self,
        trust: TrustHolder,
        limits: Limits,
        identities: IdentityKeys | None,
        clock: Clock,
        online: OnlineAsker | None = None,
        *,
        clock_floor: datetime | None = None,
        attestations: AttestationDesk | None = None,
    ) -> None:
        self.trust = trust
        self.limits = limits
        self._identities: tuple[IdentityKeys, datetime | None] | None = (
            None if identities is None else (identities, None)
        )
        """The identity secrets, and the instant from which they may no longer be used (None:
        no end); one reference, replaced whole."""
        self._clock = clock
        self._online = online
        self._attestations = attestations
        self._high_water = clock_floor
        """The latest instant known to have passed: the registry's last change or the persisted
        mark, then the latest instant this service has read from its clock."""

    @property
    def identities(self) -> IdentityKeys | None:
        """The identity secrets every verdict's references are made with; None (a replica that
        has not received them from its hub, or was refused them): every code is UNVERIFIABLE
        ``ERR_SECRET_UNAVAILABLE``."""
        held = self._identities
        return None if held is None else held[0]

    def replace_identities(
        self, identities: IdentityKeys | None, until: datetime | None = None
    ) -> None:
        """Judge with ``identities`` from the next code on (one reference assignment), and at
        no instant from ``until`` on (a replica's secrets past their maximum age: a code judged
        then finds none, whenever the replica's own watch gets to dropping them)."""
        self._identities = None if identities is None else (identities, until)

    def _identities_at(self, now: datetime) -> IdentityKeys | None:
        held = self._identities  # per code: a replica may drop them between two codes
        if held is None or (held[1] is not None and now >= held[1]):
            return None
        return held[0]

    @property
    def online(self) -> OnlineAsker | None:
        """The port through which online issuers are asked (None: online codes UNVERIFIABLE)."""
        return self._online

    @property
    def high_water(self) -> datetime | None:
        """The latest instant this service knows to have passed (to persist, off this path)."""
        return self._high_water

    def _now(self) -> tuple[datetime, Doubts]:
        """The clock's reading, and why nothing can be judged now (see :class:`Doubts`)."""
        now = self._clock()
        seen = self._high_water
        if seen is not None and now < seen - self.limits.leeway:
            return now, Doubts(
                clock=(
                    Reason.ERR_CLOCK_UNTRUSTED,
                    f"the gateway's clock reads {now.isoformat()}, before {seen.isoformat()}, "
                    "which has already passed: no code is judged until the clock is right",
                )
            )
        if seen is None or now > seen:
            self._high_water = now
        return now, Doubts(trust=self.trust_problem(now))

    def trust_problem(self, now: datetime) -> tuple[Reason, str] | None:
        """Why no code can be judged on the trust held at ``now`` (ERR_TRUST_STALE), or None."""
        fresh_until = self.trust.fresh_until
        if fresh_until is not None and now >= fresh_until:
            version = self.trust.current.version
            held = (
                f"the trust list this gateway holds (version {version}) was fresh until "
                f"{fresh_until.isoformat()}"
                if version
                else "this gateway holds no verified trust list yet"
            )
            return (
                Reason.ERR_TRUST_STALE,
                f"{held}: no code is judged on trust the hub no longer vouches for",
            )
        unverified = self.trust.unverified
        if unverified is not None and now - unverified[0] > self.limits.stale_grace:
            return (
                Reason.ERR_TRUST_STALE,
                f"the registry has not verified since {unverified[0].isoformat()} "
                f"({unverified[1]}): no code is judged on trust nobody can vouch for",
            )
        return None

    @staticmethod
    def _untrusted(
        why: tuple[Reason, str], trust: TrustSnapshot, now: datetime, where: RegionCode | None
    ) -> Verdict:
        provenance = Provenance(trust_version=trust.version, destination=where)
        return Verdict.failed(why[0], why[1], provenance, now)

    # ------------------------------------------------------------------ offline, synchronous

    def verify(self, code: str, destination: str = "") -> Verdict:
        """Verify one code now, without network access (online codes are UNVERIFIABLE here)."""
        where = parse_destination(destination)
        trust, (now, doubts) = self.trust.current, self._now()
        return offline(self._begin(code, trust, now, where, doubts), now)

    def check_batch(self, codes: Sequence[str], destination: str) -> RegionCode | None:
        """Validate a batch request before any work.

        Raises:
            RequestInvalid: for an empty batch, one over the limit, or a bad destination.
        """
        if not codes:
            raise RequestInvalid("a batch needs at least one code")
        if len(codes) > self.limits.max_batch:
            raise RequestInvalid(
                f"a batch holds at most {self.limits.max_batch} codes, this one {len(codes)}"
            )
        return parse_destination(destination)

    # ------------------------------------------------------------------ with online issuers

    async def verify_async(self, code: str, destination: str = "") -> Verdict:
        """Verify one code now, asking its issuer if it is an online code."""
        where = parse_destination(destination)
        trust, (now, doubts) = self.trust.current, self._now()
        first = self._begin(code, trust, now, where, doubts)
        if isinstance(first, Verdict):
            return first
        return await self._finish(first, trust, now, now)

    async def verify_batch_async(
        self, codes: Sequence[str], destination: str = ""
    ) -> list[Verdict]:
        """Verify a batch at one instant against one snapshot; online issuers are asked
        concurrently. Identical code strings are verified once and share the verdict.

        Raises:
            RequestInvalid: for an empty batch, one over the limit, or a bad destination.
        """
        where = self.check_batch(codes, destination)
        trust, (now, doubts) = self.trust.current, self._now()
        return await self._verify_all(codes, trust, now, where, doubts)

    async def recognise_async(
        self, codes: Sequence[str], destination: str, at: datetime | None = None
    ) -> Decision:
        """One traveller's codes, verified at one instant against one snapshot, decided under
        the destination's policy (see :mod:`gateway.recognise`).

        Raises:
            RequestInvalid: for an empty or oversized set of codes, a missing or malformed
                destination, or an instant outside the accepted window.
        """
        where = self.check_batch(codes, destination)
        if where is None:
            raise RequestInvalid("a decision needs its destination region")
        trust, (now, doubts) = self.trust.current, self._now()
        instant = now if at is None else self._presented(at, now)
        # Codes are judged at the instant of presentation; an online issuer is asked now (it
        # answers for its token as it stands, and refuses questions dated far from its clock).
        verdicts = await self._verify_all(codes, trust, instant, where, doubts, asked_at=now)
        policy = trust.policy_for(where)
        return recognise(verdicts, policy, where, instant, trust_version=trust.version)

    async def attest_async(self, codes: Sequence[str], destination: str) -> AttestOutcome:
        """转码: recognise one traveller's codes at the destination now and, only for a GREEN
        decision under a policy that allows transfer, issue the hub's signed attestation
        (:mod:`gateway.transfer`). The attestation is verified through the pipeline before it
        is handed out (so a key the registry does not list as active signs nothing) and
        logged (so none is handed out unlogged).

        Raises:
            RequestInvalid: as :meth:`recognise_async`.
        """
        decision = await self.recognise_async(codes, destination)
        trust = self.trust.current
        now = decision.decided_at
        verdicts = [a.verdict for a in decision.assessments]
        profiles = {
            v.code.issuer: trust.profile_of(trust.issuers[v.code.issuer])
            for v in verdicts
            if v.code is not None and v.code.issuer in trust.issuers
        }
        policy = trust.policy_for(decision.destination)
        assessed = transfer.assess(decision, verdicts, policy, profiles, now)
        if isinstance(assessed, Refused):
            return AttestOutcome(decision, refused=assessed)
        why = "this gateway holds no attestation key"
        for kid, key in self._attestations.signing_keys() if self._attestations else ():
            registered = trust.keys.get((transfer.ISSUER, KeyId(kid)))
            if registered is None or registered.status is not KeyStatus.ACTIVE:
                why = f"attestation key {kid} is not an active key of {transfer.ISSUER} here"
                continue
            text = transfer.seal(assessed, key, kid)
            check = offline(self._begin(text, trust, now, decision.destination, Doubts()), now)
            if check.code is None or check.code.destination != decision.destination:
                why = f"the attestation did not verify here ({check.reason.value}: {check.detail})"
                continue
            issuance = Issuance(
                code_ref=check.provenance.code_ref or "",
                destination=decision.destination,
                policy_id=decision.policy_id,
                policy_version=decision.policy_version,
                sources=assessed.sources,
                kid=kid,
                issued_at=check.code.issued_at,
                expires_at=check.code.expires_at,
            )
            try:
                self._attestations.record(issuance)  # type: ignore[union-attr]
            except StorageUnavailable as e:
                why = f"the issuance log cannot be written ({e})"
                break
            return AttestOutcome(
                decision,
                attestation=text,
                expires_at=check.code.expires_at,
                issuance=issuance,
                bound=assessed.bound,
                code_ref=issuance.code_ref,
            )
        return AttestOutcome(
            decision, refused=Refused(Refusal.KEY_UNAVAILABLE, f"no attestation: {why}")
        )

    def _presented(self, at: datetime, now: datetime) -> datetime:
        if at.tzinfo is None or not now - RECOGNISE_PAST <= at <= now + self.limits.leeway:
            raise RequestInvalid(
                f"the instant of presentation must be within {RECOGNISE_PAST} before now "
                f"and {self.limits.leeway} after"
            )
        return at

    async def _verify_all(
        self,
        codes: Sequence[str],
        trust: TrustSnapshot,
        now: datetime,
        where: RegionCode | None,
        doubts: Doubts,
        *,
        asked_at: datetime | None = None,
    ) -> list[Verdict]:
        firsts: dict[str, Verdict | Question] = {}
        for code in codes:
            if code not in firsts:
                firsts[code] = self._begin(code, trust, now, where, doubts)
                if len(firsts) % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let other calls run between slices of a batch
        pending = {c: q for c, q in firsts.items() if isinstance(q, Question)}
        answers = await asyncio.gather(
            *(self._finish(q, trust, now, asked_at or now) for q in pending.values())
        )
        done = {**{c: v for c, v in firsts.items() if isinstance(v, Verdict)}}
        done.update(zip(pending, answers, strict=True))
        return [done[code] for code in codes]

    def _begin(
        self,
        code: str,
        trust: TrustSnapshot,
        now: datetime,
        where: RegionCode | None,
        doubts: Doubts,
    ) -> Verdict | Question:
        """Where every code starts: judged nowhere while the clock, the identity secrets or the
        trust is untrusted (named in that order)."""
        identities = self._identities_at(now)
        if doubts.clock is not None:
            return self._untrusted(doubts.clock, trust, now, where)
        if identities is None:
            return self._untrusted(NO_IDENTITIES, trust, now, where)
        if doubts.trust is not None:
            return self._untrusted(doubts.trust, trust, now, where)
        return begin(
            code, trust=trust, now=now, limits=self.limits, identities=identities, destination=where
        )

    async def close(self) -> None:
        """Release the online client's connections (call from the event loop that used them)."""
        if self._online is not None:
            await self._online.close()

    async def _finish(
        self, question: Question, trust: TrustSnapshot, now: datetime, asked_at: datetime
    ) -> Verdict:
        if self._online is None:
            answer = OnlineAnswer(nonce="", failure="online verification is not configured")
        else:
            answer = await self._online.ask(question, asked_at)
        identities = self._identities_at(now)
        if identities is None:  # dropped (or outlived) while the issuer was asked
            return self._untrusted(NO_IDENTITIES, trust, now, question.provenance.destination)
        return finish_online(
            question, answer, trust=trust, now=now, limits=self.limits, identities=identities
        )
