"""Mutual recognition, the pure core: named cases for every building block and their
combinations, and properties that hold for every policy and every set of codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import (
    CanonicalCode,
    Colour,
    IssuerId,
    Provenance,
    Reason,
    RegionCode,
    Status,
    SubjectRef,
    Verdict,
    region_contains,
)
from gateway.policy import (
    DEFAULT_NATIONAL,
    RANK,
    Freshness,
    Origins,
    PerOrigin,
    Policy,
    Prefer,
    Requirements,
    Strategy,
    load_policy,
)
from gateway.recognise import Decision, DecisionReason, DecisionStatus, Role, recognise
from tests.conftest import examples

AT = datetime(2022, 3, 1, 8, 0, tzinfo=UTC)
TRAVELLER = SubjectRef("s1.traveller")
ZHEJIANG = ("zhejiang", "330000")
HANGZHOU = ("hangzhou", "330100")
BEIJING = ("beijing", "110000")
SHANGHAI = ("shanghai", "310000")
GUANGDONG = ("guangdong", "440000")
MACAU = ("macau", "820000")
HUBEI = ("hubei", "420000")
ORIGINS = [ZHEJIANG, HANGZHOU, BEIJING, SHANGHAI, GUANGDONG, MACAU, HUBEI]


def code(
    origin: tuple[str, str],
    colour: Colour,
    *,
    age: timedelta = timedelta(hours=1),
    subject: SubjectRef = TRAVELLER,
) -> Verdict:
    """A VALID verdict for a code of ``origin`` issued ``age`` before AT."""
    issuer, region = origin
    canonical = CanonicalCode(
        colour=colour,
        region=RegionCode(region),
        issuer=IssuerId(issuer),
        issued_at=AT - age,
        expires_at=AT + timedelta(hours=12),
        local_state=colour.value.lower(),
        masked_identity="330*************28",
        subject=subject,
    )
    provenance = Provenance(region=RegionCode(region), issuer=IssuerId(issuer), trust_version=7)
    return Verdict.valid(canonical, provenance, AT)


def rejected(reason: Reason = Reason.ERR_SIGNATURE) -> Verdict:
    return Verdict.failed(reason, "refused", Provenance(), AT)


def policy(**fields: object) -> Policy:
    base = Policy(id="test", version=1, destination=RegionCode("310000"))
    return replace(base, **fields)  # type: ignore[arg-type]


def decide(verdicts: list[Verdict], p: Policy = DEFAULT_NATIONAL, at: str = "310000") -> Decision:
    return recognise(verdicts, p, RegionCode(at), AT, trust_version=7)


def rules(decision: Decision) -> list[str]:
    return [s.rule for s in decision.steps]


# ------------------------------------------------------------------ named cases


CASES = {
    # name: (codes, policy, destination, colour, reason, deciding)
    "one green": (
        [code(HANGZHOU, Colour.GREEN)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "most severe of two": (
        [code(HANGZHOU, Colour.GREEN), code(ZHEJIANG, Colour.YELLOW)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "a valid pending code outranks green": (
        [code(HANGZHOU, Colour.GREEN), code(ZHEJIANG, Colour.GREY)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.GREY,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "red outranks pending": (
        [code(HANGZHOU, Colour.RED), code(ZHEJIANG, Colour.GREY)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "two codes share the deciding colour": (
        [code(HANGZHOU, Colour.RED), code(ZHEJIANG, Colour.RED), code(BEIJING, Colour.GREEN)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (0, 1),
    ),
    "a rejected code takes no part": (
        [rejected(), code(HANGZHOU, Colour.GREEN)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "only rejected codes": (
        [rejected(), rejected(Reason.ERR_EXPIRED)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.GREY,
        DecisionReason.NO_RECOGNISED_CODE,
        (),
    ),
    "an unverifiable code takes no part": (
        [rejected(Reason.ERR_ISSUER_UNAVAILABLE)],
        DEFAULT_NATIONAL,
        "310000",
        Colour.GREY,
        DecisionReason.NO_RECOGNISED_CODE,
        (),
    ),
    "trust: only listed regions": (
        [code(HANGZHOU, Colour.RED), code(GUANGDONG, Colour.GREEN)],
        policy(recognise=Origins(regions=(RegionCode("440000"), RegionCode("820000")))),
        "820000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "trust: a province covers its cities": (
        [code(HANGZHOU, Colour.YELLOW)],
        policy(recognise=Origins(regions=(RegionCode("330000"),))),
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "trust: nothing recognised is grey": (
        [code(HANGZHOU, Colour.GREEN), code(ZHEJIANG, Colour.GREEN)],
        policy(recognise=Origins(regions=(RegionCode("440000"),))),
        "820000",
        Colour.GREY,
        DecisionReason.NO_RECOGNISED_CODE,
        (),
    ),
    "trust: an issuer recognised by id": (
        [code(HANGZHOU, Colour.GREEN)],
        policy(recognise=Origins(issuers=frozenset({IssuerId("hangzhou")}))),
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "trust: an excluded issuer inside a recognised region": (
        [code(HANGZHOU, Colour.RED), code(ZHEJIANG, Colour.GREEN)],
        policy(exclude=Origins(issuers=frozenset({IssuerId("hangzhou")}))),
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "freshness: a stale code is ignored": (
        [code(HANGZHOU, Colour.RED, age=timedelta(hours=30)), code(ZHEJIANG, Colour.GREEN)],
        policy(freshness=Freshness(PerOrigin(default=timedelta(hours=24)))),
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "freshness: a stale green counts as yellow": (
        [code(HANGZHOU, Colour.GREEN, age=timedelta(hours=30))],
        policy(freshness=Freshness(PerOrigin(default=timedelta(hours=24)), Colour.YELLOW)),
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "freshness: a stale red stays red": (
        [code(HANGZHOU, Colour.RED, age=timedelta(hours=30))],
        policy(freshness=Freshness(PerOrigin(default=timedelta(hours=24)), Colour.YELLOW)),
        "310000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "freshness: per origin, the region entry beats the default": (
        [code(MACAU, Colour.GREEN, age=timedelta(hours=7))],
        policy(
            freshness=Freshness(
                PerOrigin(
                    default=timedelta(hours=24), regions={RegionCode("820000"): timedelta(hours=6)}
                )
            )
        ),
        "820000",
        Colour.GREY,
        DecisionReason.NO_RECOGNISED_CODE,
        (),
    ),
    "freshness: exactly the maximum age is still fresh": (
        [code(MACAU, Colour.GREEN, age=timedelta(hours=6))],
        policy(freshness=Freshness(PerOrigin(default=timedelta(hours=6)))),
        "820000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "severity: an origin's yellow counts as red": (
        [code(HUBEI, Colour.YELLOW), code(HANGZHOU, Colour.GREEN)],
        policy(severity=PerOrigin(regions={RegionCode("420000"): {Colour.YELLOW: Colour.RED}})),
        "440000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "severity: the issuer entry beats the region entry": (
        [code(HANGZHOU, Colour.YELLOW)],
        policy(
            severity=PerOrigin(
                regions={RegionCode("330000"): {Colour.YELLOW: Colour.RED}},
                issuers={IssuerId("hangzhou"): {Colour.GREY: Colour.YELLOW}},
            )
        ),
        "440000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "severity: an unsafe policy may read red as yellow": (
        [code(HUBEI, Colour.RED)],
        policy(
            unsafe=True,
            severity=PerOrigin(regions={RegionCode("420000"): {Colour.RED: Colour.YELLOW}}),
        ),
        "440000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "require: own region missing is grey": (
        [code(HANGZHOU, Colour.GREEN), code(ZHEJIANG, Colour.GREEN)],
        policy(destination=RegionCode("110000"), require=Requirements(own_region=True)),
        "110000",
        Colour.GREY,
        DecisionReason.REQUIREMENT_UNMET,
        (),
    ),
    "require: own region present": (
        [code(HANGZHOU, Colour.GREEN), code(BEIJING, Colour.GREEN)],
        policy(destination=RegionCode("110000"), require=Requirements(own_region=True)),
        "110000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (0, 1),
    ),
    "require: own region present but rejected": (
        [code(HANGZHOU, Colour.GREEN), rejected()],
        policy(destination=RegionCode("110000"), require=Requirements(own_region=True)),
        "110000",
        Colour.GREY,
        DecisionReason.REQUIREMENT_UNMET,
        (),
    ),
    "require: an issuer's code": (
        [code(HANGZHOU, Colour.GREEN)],
        policy(require=Requirements(issuers=(IssuerId("zhejiang"),))),
        "310000",
        Colour.GREY,
        DecisionReason.REQUIREMENT_UNMET,
        (),
    ),
    "destination first: the own code decides": (
        [code(HANGZHOU, Colour.RED), code(SHANGHAI, Colour.GREEN)],
        policy(strategy=Strategy.DESTINATION_FIRST),
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "destination first: without an own code, the most severe": (
        [code(HANGZHOU, Colour.RED), code(ZHEJIANG, Colour.GREEN)],
        policy(strategy=Strategy.DESTINATION_FIRST),
        "310000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "destination first: several own codes, the most severe of them": (
        [code(SHANGHAI, Colour.GREEN), code(SHANGHAI, Colour.YELLOW, age=timedelta(hours=2))],
        policy(strategy=Strategy.DESTINATION_FIRST),
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "freshest: the later code decides": (
        [code(ZHEJIANG, Colour.YELLOW, age=timedelta(hours=3)), code(HANGZHOU, Colour.GREEN)],
        policy(strategy=Strategy.FRESHEST),
        "440000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "freshest: a tie goes to the more severe": (
        [code(ZHEJIANG, Colour.YELLOW), code(HANGZHOU, Colour.GREEN)],
        policy(strategy=Strategy.FRESHEST),
        "440000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "jurisdiction: the city beats its province": (
        [code(ZHEJIANG, Colour.YELLOW), code(HANGZHOU, Colour.GREEN)],
        policy(strategy=Strategy.JURISDICTION),
        "310000",
        Colour.GREEN,
        DecisionReason.RECOGNISED,
        (1,),
    ),
    "jurisdiction: the province beats its city when general is preferred": (
        [code(ZHEJIANG, Colour.YELLOW), code(HANGZHOU, Colour.GREEN)],
        policy(strategy=Strategy.JURISDICTION, prefer=Prefer.GENERAL),
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
    "jurisdiction: unrelated regions combine by most severe": (
        [code(ZHEJIANG, Colour.YELLOW), code(HANGZHOU, Colour.GREEN), code(HUBEI, Colour.RED)],
        policy(strategy=Strategy.JURISDICTION),
        "310000",
        Colour.RED,
        DecisionReason.RECOGNISED,
        (2,),
    ),
    "combination: trust, freshness and severity before jurisdiction": (
        [
            code(ZHEJIANG, Colour.YELLOW),
            code(HANGZHOU, Colour.GREEN, age=timedelta(hours=30)),  # stale: ignored
            code(BEIJING, Colour.RED),  # not recognised
        ],
        policy(
            strategy=Strategy.JURISDICTION,
            recognise=Origins(regions=(RegionCode("330000"),)),
            freshness=Freshness(PerOrigin(default=timedelta(hours=24))),
        ),
        "310000",
        Colour.YELLOW,
        DecisionReason.RECOGNISED,
        (0,),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_named_cases(name: str) -> None:
    verdicts, p, at, colour, reason, deciding = CASES[name]
    decision = decide(verdicts, p, at)
    assert (decision.colour, decision.reason, decision.deciding) == (colour, reason, deciding)
    assert decision.status is DecisionStatus.DECIDED
    assert (decision.policy_id, decision.policy_version) == (p.id, p.version)
    assert decision.destination == at
    assert decision.trust_version == 7
    assert [a.index for a in decision.assessments] == list(range(len(verdicts)))
    for index in decision.deciding:
        assert decision.assessments[index].role is Role.DECIDING
        assert decision.assessments[index].counted_as is colour
    assert decision.steps[0].rule == "policy"
    assert decision.steps[-1].rule.startswith("decide.")


def test_codes_of_two_people_are_refused_without_a_colour() -> None:
    other = SubjectRef("s1.someone-else")
    decision = decide([code(HANGZHOU, Colour.GREEN), code(ZHEJIANG, Colour.GREEN, subject=other)])
    assert decision.status is DecisionStatus.REFUSED
    assert decision.reason is DecisionReason.SUBJECT_MISMATCH
    assert decision.colour is None
    assert decision.deciding == ()
    assert rules(decision) == ["policy", "subject.mismatch"]
    assert {a.role for a in decision.assessments} == {Role.UNUSED}
    # A rejected code has no subject and does not count against the match.
    decision = decide([code(HANGZHOU, Colour.GREEN), rejected()])
    assert decision.subject == TRAVELLER


def test_every_code_gets_a_role_and_a_step() -> None:
    p = policy(
        strategy=Strategy.JURISDICTION,
        recognise=Origins(regions=(RegionCode("330000"), RegionCode("420000"))),
        freshness=Freshness(PerOrigin(default=timedelta(hours=24))),
    )
    decision = decide(
        [
            code(ZHEJIANG, Colour.YELLOW),
            code(HANGZHOU, Colour.GREEN),
            code(HUBEI, Colour.GREEN, age=timedelta(days=2)),
            code(BEIJING, Colour.RED),
            rejected(),
        ],
        p,
    )
    roles = [a.role for a in decision.assessments]
    assert roles == [
        Role.SUPERSEDED,
        Role.DECIDING,
        Role.STALE,
        Role.NOT_RECOGNISED,
        Role.NOT_VALID,
    ]
    assert rules(decision) == [
        "policy",
        "freshness.ignored",
        "trust.not_recognised",
        "code.not_valid",
        "combine.jurisdiction",
        "decide.colour",
    ]
    stale = next(s for s in decision.steps if s.rule == "freshness.ignored")
    assert stale.codes == (2,)
    assert "48h" in stale.text or "2d" in stale.text
    assert decision.colour is Colour.GREEN


def test_requirements_are_flagged_as_code_stacking() -> None:
    p = policy(destination=RegionCode("110000"), require=Requirements(own_region=True))
    decision = decide([code(HANGZHOU, Colour.GREEN)], p, "110000")
    assert decision.code_stacking
    unmet = next(s for s in decision.steps if s.rule == "require.own_region.unmet")
    assert "code-stacking" in unmet.text
    assert not decide([code(HANGZHOU, Colour.GREEN)]).code_stacking


def test_a_policy_text_drives_the_decision() -> None:
    text = """
[policy]
id = "guangdong-2022"
version = 3
destination = "440000"

[severity.regions."330000"]
YELLOW = "RED"
"""
    decision = decide(
        [code(HANGZHOU, Colour.YELLOW), code(GUANGDONG, Colour.GREEN)], load_policy(text), "440000"
    )
    assert (decision.colour, decision.policy_id, decision.policy_version) == (
        Colour.RED,
        "guangdong-2022",
        3,
    )
    adjusted = next(s for s in decision.steps if s.rule == "severity.adjusted")
    assert "region 330000" in adjusted.text


def test_the_decision_model_cannot_hold_an_unfounded_green() -> None:
    decision = decide([code(HANGZHOU, Colour.YELLOW)])
    with pytest.raises(ValueError, match="GREEN"):
        replace(decision, colour=Colour.GREEN)
    with pytest.raises(ValueError, match="colour exactly when"):
        replace(decision, colour=None)


# ------------------------------------------------------------------ properties

COLOURS = [Colour.GREEN, Colour.YELLOW, Colour.RED, Colour.GREY]
REGIONS = sorted({r for _, r in ORIGINS})


@st.composite
def verdict_lists(draw: st.DrawFn, max_size: int = 6) -> list[Verdict]:
    items = []
    for _ in range(draw(st.integers(0, max_size))):
        if draw(st.integers(0, 4)) == 0:
            items.append(
                rejected(
                    draw(st.sampled_from([Reason.ERR_SIGNATURE, Reason.ERR_ISSUER_UNAVAILABLE]))
                )
            )
        else:
            items.append(
                code(
                    draw(st.sampled_from(ORIGINS)),
                    draw(st.sampled_from(COLOURS)),
                    age=timedelta(minutes=draw(st.integers(0, 3 * 24 * 60))),
                )
            )
    return items


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    unsafe = draw(st.booleans())

    def readings() -> st.SearchStrategy[dict[Colour, Colour]]:
        pairs = st.tuples(st.sampled_from(COLOURS), st.sampled_from(COLOURS)).filter(
            lambda p: p[1] is not Colour.GREEN and (unsafe or RANK[p[1]] >= RANK[p[0]])
        )
        return st.dictionaries(st.sampled_from(COLOURS), st.just(Colour.RED)) | st.lists(
            pairs, max_size=3
        ).map(dict)

    region_codes = st.sampled_from(REGIONS).map(RegionCode)
    issuers = st.sampled_from([i for i, _ in ORIGINS]).map(IssuerId)
    return Policy(
        id="generated",
        version=1,
        destination=RegionCode(draw(st.sampled_from(REGIONS))),
        strategy=draw(st.sampled_from(list(Strategy))),
        prefer=draw(st.sampled_from(list(Prefer))),
        recognise=draw(
            st.one_of(
                st.just(Origins(everywhere=True)),
                st.builds(
                    Origins,
                    regions=st.lists(region_codes, max_size=3, unique=True).map(tuple),
                    issuers=st.frozensets(issuers, max_size=2),
                ),
            )
        ),
        exclude=draw(st.builds(Origins, issuers=st.frozensets(issuers, max_size=1))),
        freshness=Freshness(
            PerOrigin(
                default=draw(st.none() | st.integers(1, 72).map(lambda h: timedelta(hours=h))),
                regions=draw(
                    st.dictionaries(
                        region_codes,
                        st.integers(1, 72).map(lambda h: timedelta(hours=h)),
                        max_size=2,
                    )
                ),
            ),
            draw(st.none() | st.sampled_from([Colour.YELLOW, Colour.RED, Colour.GREY])),
        ),
        severity=PerOrigin(regions=draw(st.dictionaries(region_codes, readings(), max_size=2))),
        require=Requirements(own_region=draw(st.booleans())),
        unsafe=unsafe,
    )


def _fresh_recognised_green(verdicts: list[Verdict], p: Policy) -> bool:
    for v in verdicts:
        c = v.code
        if c is None or c.colour is not Colour.GREEN:
            continue
        if p.exclude.match(c.region, c.issuer) or not p.recognise.match(c.region, c.issuer):
            continue
        limit, _ = p.freshness.max_age.lookup(c.region, c.issuer)
        if limit is None or AT - c.issued_at <= limit:
            return True
    return False


@settings(max_examples=examples(300), deadline=None)
@given(verdicts=verdict_lists(), p=policies(), data=st.data())
def test_the_order_of_codes_does_not_change_the_decision(
    verdicts: list[Verdict], p: Policy, data: st.DataObject
) -> None:
    shuffled_order = data.draw(st.permutations(range(len(verdicts))))
    first = decide(verdicts, p, p.destination or "310000")
    second = decide([verdicts[i] for i in shuffled_order], p, p.destination or "310000")
    assert (first.status, first.reason, first.colour) == (
        second.status,
        second.reason,
        second.colour,
    )
    moved = sorted(shuffled_order.index(i) for i in first.deciding)
    assert tuple(moved) == second.deciding


@settings(max_examples=examples(300), deadline=None)
@given(verdicts=verdict_lists(max_size=4), p=policies(), data=st.data())
def test_duplicates_change_nothing(verdicts: list[Verdict], p: Policy, data: st.DataObject) -> None:
    if not verdicts:
        return
    extra = data.draw(st.sampled_from(verdicts))
    first = decide(verdicts, p, p.destination or "310000")
    second = decide([*verdicts, extra], p, p.destination or "310000")
    assert (first.status, first.reason, first.colour) == (
        second.status,
        second.reason,
        second.colour,
    )


@settings(max_examples=examples(300), deadline=None)
@given(verdicts=verdict_lists(), p=policies(), added=verdict_lists(max_size=1))
def test_under_most_severe_adding_a_code_never_makes_it_less_severe(
    verdicts: list[Verdict], p: Policy, added: list[Verdict]
) -> None:
    p = replace(p, strategy=Strategy.MOST_SEVERE, require=Requirements())
    before = decide(verdicts, p)
    after = decide([*verdicts, *added], p)
    if before.colour is None or after.colour is None:
        return  # refused: two people
    if before.reason is DecisionReason.RECOGNISED:
        assert after.colour is not None
        assert RANK[after.colour] >= RANK[before.colour]


@settings(max_examples=examples(500), deadline=None)
@given(verdicts=verdict_lists(), p=policies())
def test_the_colour_is_a_counted_input_colour_or_grey_and_never_an_unfounded_green(
    verdicts: list[Verdict], p: Policy
) -> None:
    decision = decide(verdicts, p, p.destination or "310000")
    if decision.status is DecisionStatus.REFUSED:
        assert decision.colour is None
        return
    counted = {a.counted_as for a in decision.assessments if a.counted_as is not None}
    assert decision.colour in counted | {Colour.GREY}
    if decision.colour is Colour.GREEN:
        assert _fresh_recognised_green(verdicts, p)
        assert decision.reason is DecisionReason.RECOGNISED
        assert all(
            verdicts[i].status is Status.VALID and verdicts[i].colour is Colour.GREEN
            for i in decision.deciding
        )
    if (
        p.require.own_region
        and decision.destination
        and not any(
            v.code is not None
            and region_contains(decision.destination, v.code.region)
            and a.counted_as is not None
            for v, a in zip(verdicts, decision.assessments, strict=True)
        )
    ):
        assert decision.colour is not Colour.GREEN
        assert decision.reason is DecisionReason.REQUIREMENT_UNMET


@settings(max_examples=examples(500), deadline=None)
@given(verdicts=verdict_lists(), p=policies())
def test_an_unmet_requirement_never_hides_a_counted_colour(
    verdicts: list[Verdict], p: Policy
) -> None:
    """Code-stacking that is not satisfied decides at least as severe as every code it counted
    (a RED stays RED: a checkpoint must not lose the colour that means quarantine), never
    GREEN, and GREY only when nothing counted was more severe than GREY."""
    decision = decide(verdicts, p, p.destination or "310000")
    if decision.reason is not DecisionReason.REQUIREMENT_UNMET:
        return
    assert decision.colour is not None
    assert decision.colour is not Colour.GREEN
    counted = [a.counted_as for a in decision.assessments if a.counted_as is not None]
    assert all(RANK[decision.colour] >= RANK[c] for c in counted)
    if decision.colour is Colour.GREY:
        assert decision.deciding == ()
    else:
        assert decision.deciding
        assert all(decision.assessments[i].counted_as is decision.colour for i in decision.deciding)


@settings(max_examples=examples(300), deadline=None)
@given(verdicts=verdict_lists(), p=policies())
def test_every_decision_names_its_deciding_codes_and_rule(
    verdicts: list[Verdict], p: Policy
) -> None:
    decision = decide(verdicts, p, p.destination or "310000")
    last = decision.steps[-1]
    if decision.reason is DecisionReason.RECOGNISED:
        assert decision.deciding
        assert last.rule == "decide.colour"
        assert set(last.codes) == set(decision.deciding)
        for index in decision.deciding:
            assert str(index + 1) in last.text
    elif decision.reason is DecisionReason.REQUIREMENT_UNMET:
        assert last.rule == "decide.requirement_unmet"
        assert set(last.codes) == set(decision.deciding)
        for index in decision.deciding:
            assert str(index + 1) in last.text
    else:
        assert decision.deciding == ()
        assert last.rule in {"decide.no_recognised_code", "subject.mismatch"}
    for step in decision.steps:
        assert step.rule
        assert step.text
        assert all(0 <= i < len(verdicts) for i in step.codes)


@settings(max_examples=examples(300), deadline=None)
@given(verdicts=verdict_lists(), p=policies())
def test_every_recognised_decision_says_how_its_strategy_combined(
    verdicts: list[Verdict], p: Policy
) -> None:
    """Each strategy leaves at least one ``combine.*`` step, one code or many (issue 11: a
    single code under ``jurisdiction`` used to leave none)."""
    decision = decide(verdicts, p, p.destination or "310000")
    if decision.reason is DecisionReason.RECOGNISED:
        assert any(s.rule.startswith("combine.") for s in decision.steps), decision.steps
