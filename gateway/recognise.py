"""Mutual recognition: one colour for a traveller's codes, under the destination's policy.

Pure: it takes the verdicts the pipeline produced (one per presented code, in request order), the
policy, the destination and the instant, and returns a :class:`Decision` that explains itself in
ordered steps, each with a rule id (for machines) and a sentence (for people).

The order of work, which is also the order of the explanation:

1. **Subject.** Every VALID code must belong to one subject reference; otherwise the request is
   REFUSED (``SUBJECT_MISMATCH``) and there is no colour.
2. **Each code.** Not VALID: it takes no part. VALID but its origin is not recognised (or is
   excluded): no part. Older than the policy's maximum age for its origin: ignored, or counted
   as at least the policy's stale colour. Then the policy's severity adjustment for its origin.
3. **Requirements** (码上加码): a missing required code makes the decision GREY.
4. **Nothing left**: GREY.
5. **Combine** the remaining codes by the policy's strategy.

Fail closed by construction: only VALID codes are ever counted, nothing is ever *read* as GREEN
(the policy language refuses it), so the decision is GREEN only if a valid, recognised, fresh
code is GREEN and every other counted code is too (or, under ``freshest``, is older). Ties never
depend on the order of the request: every code that shares the deciding colour and position is
named as deciding.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.model import (
    CanonicalCode,
    Colour,
    RegionCode,
    Status,
    Verdict,
    format_span,
    region_contains,
)
from gateway.policy.model import RANK, Policy, Prefer, Strategy, more_severe


class DecisionStatus(enum.Enum):
    DECIDED = "DECIDED"
    """A colour was decided (possibly GREY)."""
    REFUSED = "REFUSED"
    """No colour: the request itself cannot be decided (codes of different people)."""


class DecisionReason(enum.Enum):
    RECOGNISED = "RECOGNISED"
    """The colour comes from the recognised codes."""
    NO_RECOGNISED_CODE = "NO_RECOGNISED_CODE"
    """No valid, recognised, fresh code: GREY."""
    REQUIREMENT_UNMET = "REQUIREMENT_UNMET"
    """The policy requires a code that is missing: GREY."""
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    """The valid codes belong to different subjects: REFUSED."""


class Role(enum.Enum):
    DECIDING = "DECIDING"
    """Its colour, as counted, is the decision."""
    COUNTED = "COUNTED"
    """Taken into account; another code decided."""
    SUPERSEDED = "SUPERSEDED"
    """Set aside by the strategy (a more specific or general code, or the destination's own)."""
    STALE = "STALE"
    """Older than the policy allows: ignored."""
    NOT_RECOGNISED = "NOT_RECOGNISED"
    """Its origin is not recognised by the destination."""
    NOT_VALID = "NOT_VALID"
    """Its verdict is not VALID."""
    UNUSED = "UNUSED"
    """The request was refused before any code was weighed."""


@dataclass(frozen=True, slots=True)
class Step:
    rule: str
    """A stable id a machine can read, such as ``combine.most_severe``."""
    text: str
    """One sentence for people; never an identity number."""
    codes: tuple[int, ...] = ()
    """The request positions (0-based) the step is about."""


@dataclass(frozen=True, slots=True)
class Assessment:
    index: int
    verdict: Verdict
    role: Role
    counted_as: Colour | None = None
    """The colour the code counted as (after freshness and severity rules), if it counted."""


@dataclass(frozen=True, slots=True)
class Decision:
    status: DecisionStatus
    reason: DecisionReason
    colour: Colour | None
    """None exactly when REFUSED."""
    deciding: tuple[int, ...]
    assessments: tuple[Assessment, ...]
    steps: tuple[Step, ...]
    policy_id: str
    policy_version: int
    destination: RegionCode
    decided_at: datetime
    trust_version: int | None = None
    subject: str | None = None
    code_stacking: bool = False

    def __post_init__(self) -> None:
        if (self.colour is None) != (self.status is DecisionStatus.REFUSED):
            raise ValueError("a decision has a colour exactly when it is DECIDED")
        if self.colour is Colour.GREEN:
            deciding = [self.assessments[i] for i in self.deciding]
            if not deciding or any(
                a.verdict.status is not Status.VALID or a.verdict.colour is not Colour.GREEN
                for a in deciding
            ):
                raise ValueError("GREEN needs deciding codes that are VALID and GREEN")


@dataclass(frozen=True, slots=True)
class _Candidate:
    index: int
    code: CanonicalCode
    colour: Colour


def recognise(
    verdicts: Sequence[Verdict],
    policy: Policy,
    destination: RegionCode,
    at: datetime,
    *,
    trust_version: int | None = None,
) -> Decision:
    """The destination's decision on one traveller's codes (see the module docstring)."""
    steps: list[Step] = []
    roles: dict[int, Role] = {}
    counted: dict[int, Colour] = {}

    def decision(
        status: DecisionStatus,
        reason: DecisionReason,
        colour: Colour | None,
        deciding: Sequence[int] = (),
        subject: str | None = None,
    ) -> Decision:
        assessments = tuple(
            Assessment(i, v, roles.get(i, Role.UNUSED), counted.get(i))
            for i, v in enumerate(verdicts)
        )
        return Decision(
            status,
            reason,
            colour,
            tuple(sorted(deciding)),
            assessments,
            tuple(steps),
            policy.id,
            policy.version,
            destination,
            at,
            trust_version,
            subject,
            policy.require.code_stacking,
        )

    steps.append(
        Step(
            "policy",
            f"policy {policy.label} of {policy.destination or 'the nation'} decides for "
            f"{destination}: {policy.strategy.value}",
        )
    )
    valid = [(i, v.code) for i, v in enumerate(verdicts) if v.code is not None]
    subjects = sorted({code.subject for _, code in valid})
    if len(subjects) > 1:
        steps.append(
            Step(
                "subject.mismatch",
                f"the valid codes belong to {len(subjects)} different people; "
                "one request holds one traveller's codes",
                tuple(i for i, _ in valid),
            )
        )
        return decision(DecisionStatus.REFUSED, DecisionReason.SUBJECT_MISMATCH, None)
    subject = subjects[0] if subjects else None

    candidates: list[_Candidate] = []
    for index, verdict in enumerate(verdicts):
        candidate = _weigh(index, verdict, policy, at, steps, roles)
        if candidate is not None:
            candidates.append(candidate)
            counted[index] = candidate.colour

    missing = _requirements(candidates, policy, destination, steps)
    if missing:
        # A requirement that is not met never hides what was seen: the decision is at least as
        # severe as every code counted (a RED stays RED), and never GREEN.
        colour = Colour.GREY
        for candidate in candidates:
            roles[candidate.index] = Role.COUNTED
            colour = more_severe(colour, candidate.colour)
        worst = [c.index for c in candidates if c.colour is colour and colour is not Colour.GREY]
        for index in worst:
            roles[index] = Role.DECIDING
        seen = (
            f"; code{'s' if len(worst) > 1 else ''} {_positions(worst)} "
            f"counted {colour.value}, which stands"
            if worst
            else ""
        )
        steps.append(
            Step(
                "decide.requirement_unmet",
                f"{colour.value}: {policy.label} requires {' and '.join(missing)}{seen}",
                tuple(worst),
            )
        )
        return decision(
            DecisionStatus.DECIDED, DecisionReason.REQUIREMENT_UNMET, colour, worst, subject
        )
    if not candidates:
        steps.append(
            Step("decide.no_recognised_code", "GREY: no valid, recognised, fresh code remains")
        )
        return decision(
            DecisionStatus.DECIDED, DecisionReason.NO_RECOGNISED_CODE, Colour.GREY, (), subject
        )

    colour, deciding = _combine(candidates, policy, destination, steps, roles)
    for candidate in candidates:
        roles.setdefault(candidate.index, Role.COUNTED)
    for index in deciding:
        roles[index] = Role.DECIDING
    steps.append(
        Step(
            "decide.colour",
            f"{colour.value}, decided by code{'s' if len(deciding) > 1 else ''} "
            f"{_positions(deciding)}",
            tuple(deciding),
        )
    )
    return decision(DecisionStatus.DECIDED, DecisionReason.RECOGNISED, colour, deciding, subject)


def _weigh(
    index: int,
    verdict: Verdict,
    policy: Policy,
    at: datetime,
    steps: list[Step],
    roles: dict[int, Role],
) -> _Candidate | None:
    """One code through validity, trust, freshness and severity: what it counts as, or None."""
    code = verdict.code
    if code is None:
        roles[index] = Role.NOT_VALID
        steps.append(
            Step(
                "code.not_valid",
                f"code {index + 1} is {verdict.status.value} ({verdict.reason.value}): "
                "it takes no part",
                (index,),
            )
        )
        return None
    origin = f"{code.issuer} ({code.region})"
    if code.destination is not None:
        # A transfer attestation (转码) counts only where the policy accepts attestations made
        # for its destination; [trust] alone never admits one (docs/transfer.md).
        accepted = policy.transfer.accepts(code.destination)
        excluded = policy.exclude.match(code.region, code.issuer)
        if accepted is None or excluded is not None:
            roles[index] = Role.NOT_RECOGNISED
            why = (
                f"{excluded} is excluded"
                if excluded
                else f"this policy accepts no attestation made for {code.destination}"
            )
            steps.append(
                Step(
                    "transfer.not_accepted",
                    f"code {index + 1} is an attestation made for {code.destination} by "
                    f"{origin}, not recognised here ({why}): it takes no part",
                    (index,),
                )
            )
            return None
        steps.append(
            Step(
                "transfer.accepted",
                f"code {index + 1} is an attestation made for {code.destination}; "
                f"{policy.label} accepts attestations made for {accepted}",
                (index,),
            )
        )
    elif not policy.recognises(code.region, code.issuer):
        excluded = policy.exclude.match(code.region, code.issuer)
        roles[index] = Role.NOT_RECOGNISED
        why = f"{excluded} is excluded" if excluded else "its origin is not on the trust list"
        steps.append(
            Step(
                "trust.not_recognised",
                f"code {index + 1} from {origin} is not recognised here ({why}): it takes no part",
                (index,),
            )
        )
        return None
    colour = code.colour
    max_age, source = policy.freshness.max_age.lookup(code.region, code.issuer)
    if max_age is not None and at - code.issued_at > max_age:
        age = format_span(at - code.issued_at)
        if policy.freshness.stale is None:
            roles[index] = Role.STALE
            steps.append(
                Step(
                    "freshness.ignored",
                    f"code {index + 1} from {origin} is {age} old, over the {format_span(max_age)} "
                    f"allowed ({source}): ignored",
                    (index,),
                )
            )
            return None
        counted = more_severe(colour, policy.freshness.stale)
        steps.append(
            Step(
                "freshness.counted_as",
                f"code {index + 1} from {origin} is {age} old, over the {format_span(max_age)} "
                f"allowed ({source}): {colour.value} counts as {counted.value}",
                (index,),
            )
        )
        colour = counted
    adjustment, source = policy.severity.lookup(code.region, code.issuer)
    if adjustment and colour in adjustment:
        read_as = adjustment[colour]
        steps.append(
            Step(
                "severity.adjusted",
                f"code {index + 1} from {origin}: {colour.value} is read as {read_as.value} "
                f"here ({source})",
                (index,),
            )
        )
        colour = read_as
    return _Candidate(index, code, colour)


def _requirements(
    candidates: Sequence[_Candidate],
    policy: Policy,
    destination: RegionCode,
    steps: list[Step],
) -> list[str]:
    """What the policy requires and is missing (each also an explanation step)."""
    missing = []
    if policy.require.own_region:
        own = [c.index for c in candidates if region_contains(destination, c.code.region)]
        if own:
            steps.append(
                Step(
                    "require.own_region",
                    f"code-stacking: a code of {destination} is required; "
                    f"code{'s' if len(own) > 1 else ''} {_positions(own)} "
                    f"{'are' if len(own) > 1 else 'is'} one",
                    tuple(own),
                )
            )
        else:
            missing.append(f"a code of {destination}")
            steps.append(
                Step(
                    "require.own_region.unmet",
                    f"code-stacking: a valid, recognised code of {destination} is required "
                    "and none was presented",
                )
            )
    for issuer in policy.require.issuers:
        found = [c.index for c in candidates if c.code.issuer == issuer]
        if found:
            steps.append(
                Step(
                    "require.issuer",
                    f"code-stacking: a code of issuer {issuer} is required; "
                    f"code {_positions(found)} is one",
                    tuple(found),
                )
            )
        else:
            missing.append(f"a code of issuer {issuer}")
            steps.append(
                Step(
                    "require.issuer.unmet",
                    f"code-stacking: a valid, recognised code of issuer {issuer} is required "
                    "and none was presented",
                )
            )
    return missing


def _combine(
    candidates: Sequence[_Candidate],
    policy: Policy,
    destination: RegionCode,
    steps: list[Step],
    roles: dict[int, Role],
) -> tuple[Colour, list[int]]:
    """The strategy's colour and the codes that decide it."""
    pool = list(candidates)
    if policy.strategy is Strategy.DESTINATION_FIRST:
        own = [c for c in pool if region_contains(destination, c.code.region)]
        if own:
            mine = {c.index for c in own}
            others = [c.index for c in pool if c.index not in mine]
            for index in others:
                roles[index] = Role.SUPERSEDED
            steps.append(
                Step(
                    "combine.destination_first",
                    f"codes of {destination} decide here: "
                    f"{'code ' + _positions(others) + ' set aside' if others else 'no other code'}",
                    tuple(c.index for c in own),
                )
            )
            pool = own
        else:
            steps.append(
                Step(
                    "combine.destination_first.none",
                    f"no code of {destination}: the most severe colour decides",
                )
            )
    elif policy.strategy is Strategy.JURISDICTION:
        pool = _jurisdiction(pool, policy.prefer, steps, roles)
    elif policy.strategy is Strategy.FRESHEST:
        latest = max(c.code.issued_at for c in pool)
        older = [c.index for c in pool if c.code.issued_at != latest]
        for index in older:
            roles[index] = Role.SUPERSEDED
        newest = [c for c in pool if c.code.issued_at == latest]
        steps.append(
            Step(
                "combine.freshest",
                f"the most recently issued code decides (issued {latest.isoformat()}): "
                f"code{'s' if len(newest) > 1 else ''} "
                f"{_positions([c.index for c in newest])}",
                tuple(c.index for c in newest),
            )
        )
        pool = newest
    colour = max((c.colour for c in pool), key=RANK.__getitem__)
    deciding = [c.index for c in pool if c.colour is colour]
    if len(pool) > 1 or policy.strategy is Strategy.MOST_SEVERE:
        steps.append(
            Step(
                "combine.most_severe",
                f"the most severe colour among code{'s' if len(pool) > 1 else ''} "
                f"{_positions([c.index for c in pool])} is {colour.value}",
                tuple(c.index for c in pool),
            )
        )
    return colour, deciding


def _jurisdiction(
    pool: list[_Candidate], prefer: Prefer, steps: list[Step], roles: dict[int, Role]
) -> list[_Candidate]:
    """Set aside every code whose region strictly contains (``specific``) or lies strictly
    within (``general``) another code's region."""

    def strictly_within(inner: _Candidate, outer: _Candidate) -> bool:
        a, b = inner.code.region, outer.code.region
        return a != b and region_contains(b, a)

    kept, aside = [], []
    for candidate in pool:
        if prefer is Prefer.SPECIFIC:
            over = [o for o in pool if strictly_within(o, candidate)]
        else:
            over = [o for o in pool if strictly_within(candidate, o)]
        if over:
            aside.append((candidate, over))
        else:
            kept.append(candidate)
    if not aside:
        steps.append(
            Step(
                "combine.jurisdiction",
                "no code's region lies within another's: none is set aside",
                tuple(c.index for c in kept),
            )
        )
    for candidate, over in aside:
        roles[candidate.index] = Role.SUPERSEDED
        word = "more specific" if prefer is Prefer.SPECIFIC else "more general"
        steps.append(
            Step(
                "combine.jurisdiction",
                f"code {candidate.index + 1} ({candidate.code.region}) is set aside: "
                f"code {_positions([o.index for o in over])} is {word} "
                f"({', '.join(sorted({o.code.region for o in over}))})",
                (candidate.index, *(o.index for o in over)),
            )
        )
    return kept


def _positions(indices: Sequence[int]) -> str:
    return ", ".join(str(i + 1) for i in sorted(indices))
