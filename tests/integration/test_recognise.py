"""Mutual recognition over gRPC (``Recognise``, ``SetPolicy``, ``GetPolicy``), end to end.

Real regional issuers (aiohttp) hand out codes, a real TLS gateway with its mutual-TLS registry
port and SQLite file decides, and each destination's precedence policy is set by that
destination's own operator, exactly as in production. Every test starts only the regions it
needs; destinations without an issuer of their own here (Beijing, Shanghai, Guangdong, Macau) get
their region and operator from the hub administrator, which is all a policy needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from gateway import crypto, trustlist
from gateway._generated.huren.v1 import decision_pb2 as dpb
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc
from gateway._generated.huren.v1 import verdict_pb2 as vpb
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.clients import new_request_id
from gateway.crypto import Algorithm, PrivateKey
from gateway.model import Colour, Reason, Status
from gateway.recognise import Decision, DecisionReason, DecisionStatus, Role
from gateway.wire import decision_from_pb, timestamp
from regions import spec_of
from regions.common.spec import Holder, Secrets
from regions.hangzhou import Hangzhou
from tests.conftest import REPO, resident_id
from tests.integration.conftest import GATEWAY_LIMITS, Hub, MutableClock, running_hub
from tests.integration.rpc import refused

pytestmark = pytest.mark.asyncio

ZJ, HZ, BJ, SH, GD, MO, HB = "330000", "330100", "110000", "310000", "440000", "820000", "420000"
TRAVELLER = resident_id("330105", "19920618", "045")
STRANGER = resident_id("110105", "19850101", "017")


# ------------------------------------------------------------------ helpers


def demo_policy(name: str) -> str:
    return (REPO / "regions" / name / "policy.toml").read_text("utf-8")


def policy(
    policy_id: str, version: int, destination: str, body: str = "", description: str = ""
) -> str:
    """A policy's TOML text: the [policy] table, then ``body``."""
    head = f'[policy]\nid = "{policy_id}"\nversion = {version}\ndestination = "{destination}"\n'
    if description:
        head += f'description = "{description}"\n'
    return head + ("\n" + body if body else "")


async def add_destination(hub: Hub, name: str) -> None:
    """The hub administrator creates a demo region and pins its operator ``<name>-ops`` (no
    issuer: a destination needs none to have a policy)."""
    spec = spec_of(name)
    admin = hub.registry("hub-admin")
    await admin.CreateRegion(
        rpb.CreateRegionRequest(
            request_id=new_request_id(), region=spec.code, name=spec.display_name
        )
    )
    await admin.CreateOperator(
        rpb.CreateOperatorRequest(
            request_id=new_request_id(),
            name=f"{name}-ops",
            region=spec.code,
            certificate_pem=(hub.pki / "operators" / f"{name}-ops.pem").read_bytes(),
        )
    )


async def set_policy(hub: Hub, who: str, text: str) -> rpb.RegistryChange:
    change: rpb.RegistryChange = (
        await hub.registry(who).SetPolicy(
            rpb.SetPolicyRequest(request_id=new_request_id(), policy_toml=text)
        )
    ).change
    return change


async def get_policy(hub: Hub, destination: str) -> rpb.PolicyRecord:
    """GetPolicy as anyone (no client certificate, on the verification port)."""
    record: rpb.PolicyRecord = (
        await hub.registry(None).GetPolicy(rpb.GetPolicyRequest(destination=destination))
    ).policy
    return record


async def decide_pb(
    hub: Hub, codes: Sequence[str], destination: str, at: datetime | None = None
) -> dpb.Decision:
    request = pb.RecogniseRequest(codes=list(codes), destination=destination)
    if at is not None:
        request.at.CopyFrom(timestamp(at))
    response = await hub.stub.Recognise(request)
    return response.decision


async def decide(
    hub: Hub, codes: Sequence[str], destination: str, at: datetime | None = None
) -> Decision:
    """The decision as a client sees it (converted and checked by ``decision_from_pb``)."""
    return decision_from_pb(await decide_pb(hub, codes, destination, at))


async def trust_version(hub: Hub) -> int:
    answer = await hub.registry(None).ListIssuers(rpb.ListIssuersRequest())
    return answer.trust_version


async def audit(hub: Hub) -> list[rpb.AuditEntry]:
    answer = await hub.registry("hub-admin").ListAudit(rpb.ListAuditRequest())
    return list(answer.entries)


def roles(decision: Decision) -> list[Role]:
    return [a.role for a in decision.assessments]


def rules(decision: Decision) -> list[str]:
    return [s.rule for s in decision.steps]


def step(decision: Decision, rule: str) -> tuple[int, ...]:
    """The codes of the one step with ``rule`` (which must be there exactly once)."""
    found = [s for s in decision.steps if s.rule == rule]
    assert len(found) == 1, (rule, decision.steps)
    return found[0].codes


def summary(decision: Decision) -> tuple[Any, ...]:
    return (decision.status, decision.reason, decision.colour, decision.deciding)


def tampered(code: str) -> str:
    """The same compact JWS with its payload changed into another well-formed one (issued a
    second later), its signature kept: only the signature check can refuse it. (Changing one
    character of the base64 could also break the JSON, refused earlier as ERR_SCHEMA.)"""
    head, payload, signature = code.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["iat"] += 1
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{changed}.{signature}"


def foreign_hangzhou_code(at: datetime) -> str:
    """A well-formed Hangzhou code signed by a key the gateway has never seen."""
    holder = Holder(TRAVELLER, "刘洋")
    secrets = Secrets(PrivateKey.generate(Algorithm.ES256), "hz-unregistered")
    return Hangzhou().issue(holder, "绿码", at, secrets, "test").code


@pytest_asyncio.fixture
async def zhejiang_hub(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Hub]:
    """Zhejiang (online URL codes) and Hangzhou (signed JWS codes), each registered by its own
    operator."""
    async with running_hub(tmp_path, clock, names=("zhejiang", "hangzhou")) as started:
        yield started


@pytest_asyncio.fixture
async def hangzhou_hub(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as started:
        yield started


async def journey_codes(hub: Hub) -> list[str]:
    """The demo traveller's codes: Zhejiang's provincial system says yellow (a fever), Hangzhou's
    city system says green."""
    return [
        await hub.regions["zhejiang"].issue(id_number=TRAVELLER, symptoms=["发热"]),
        await hub.regions["hangzhou"].issue(id_number=TRAVELLER),
    ]


# ------------------------------------------------------------------ the demo journey


async def test_one_traveller_five_destinations_five_policies(
    tmp_path: Path, clock: MutableClock
) -> None:
    async with running_hub(tmp_path, clock, names=("zhejiang", "hangzhou", "beijing")) as hub:
        await _journey(hub)


async def _journey(hub: Hub) -> None:
    codes = await journey_codes(hub)
    for name in ("beijing", "shanghai", "guangdong", "macau"):
        if name != "beijing":  # Beijing's region and operator came with its issuer
            await add_destination(hub, name)
        change = await set_policy(hub, f"{name}-ops", demo_policy(name))
        destination = spec_of(name).code
        assert (change.audit.action, change.audit.target, change.audit.outcome) == (
            "set-policy",
            destination,
            rpb.AUDIT_OUTCOME_OK,
        )
        assert change.audit.actor == f"operator:{destination}:{name}-ops"
        assert change.audit.detail.startswith(f"policy {name}@1 (")
    version = await trust_version(hub)

    beijing, shanghai, guangdong, macau, hubei = [
        await decide(hub, codes, where) for where in (BJ, SH, GD, MO, HB)
    ]
    decisions = {BJ: beijing, SH: shanghai, GD: guangdong, MO: macau, HB: hubei}
    expected_policy = {
        BJ: ("beijing", 1),
        SH: ("shanghai", 1),
        GD: ("guangdong", 1),
        MO: ("macau", 1),
        HB: ("national-default", 0),
    }
    subjects = set()
    for where, decision in decisions.items():
        assert (decision.policy_id, decision.policy_version) == expected_policy[where]
        assert decision.destination == where
        assert decision.trust_version == version
        assert decision.steps[0].rule == "policy"
        # Both codes verified, whatever the destination makes of them.
        verdicts = [a.verdict for a in decision.assessments]
        assert [(v.status, v.colour, v.provenance.issuer) for v in verdicts] == [
            (Status.VALID, Colour.YELLOW, "zhejiang"),
            (Status.VALID, Colour.GREEN, "hangzhou"),
        ]
        assert [v.provenance.destination for v in verdicts] == [where, where]
        assert [a.index for a in decision.assessments] == [0, 1]
        subjects.add(decision.subject)
    assert len(subjects) == 1
    assert None not in subjects

    # Beijing: 码上加码, a Beijing code is required and none was shown; Zhejiang's YELLOW,
    # counted, is not hidden by the unmet requirement.
    assert summary(beijing) == (
        DecisionStatus.DECIDED,
        DecisionReason.REQUIREMENT_UNMET,
        Colour.YELLOW,
        (0,),
    )
    assert beijing.code_stacking
    assert "require.own_region.unmet" in rules(beijing)
    assert rules(beijing)[-1] == "decide.requirement_unmet"
    assert roles(beijing) == [Role.DECIDING, Role.COUNTED]
    assert not any(d.code_stacking for d in (shanghai, guangdong, macau, hubei))

    # Shanghai: the city's code is more specific than its province's, and decides.
    assert summary(shanghai) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.GREEN,
        (1,),
    )
    assert sorted(step(shanghai, "combine.jurisdiction")) == [0, 1]
    assert roles(shanghai) == [Role.SUPERSEDED, Role.DECIDING]
    assert shanghai.assessments[1].counted_as is Colour.GREEN

    # Guangdong: another province's yellow is read as red.
    assert summary(guangdong) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.RED,
        (0,),
    )
    assert step(guangdong, "severity.adjusted") == (0,)
    assert "YELLOW is read as RED" in next(
        s.text for s in guangdong.steps if s.rule == "severity.adjusted"
    )
    assert [(a.role, a.counted_as) for a in guangdong.assessments] == [
        (Role.DECIDING, Colour.RED),
        (Role.COUNTED, Colour.GREEN),
    ]

    # Macau recognises only its own and Guangdong's codes.
    assert summary(macau) == (
        DecisionStatus.DECIDED,
        DecisionReason.NO_RECOGNISED_CODE,
        Colour.GREY,
        (),
    )
    assert roles(macau) == [Role.NOT_RECOGNISED, Role.NOT_RECOGNISED]
    assert [a.counted_as for a in macau.assessments] == [None, None]
    assert [s.codes for s in macau.steps if s.rule == "trust.not_recognised"] == [(0,), (1,)]

    # Hubei has no policy: the built-in national default, the most severe colour.
    assert summary(hubei) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.YELLOW,
        (0,),
    )
    assert sorted(step(hubei, "combine.most_severe")) == [0, 1]
    assert roles(hubei) == [Role.DECIDING, Role.COUNTED]

    # Every colour decided names its deciding codes in the last step.
    for decision in (shanghai, guangdong, hubei):
        assert decision.steps[-1].rule == "decide.colour"
        assert decision.steps[-1].codes == decision.deciding

    # With a Beijing code (a pseudonymous identity, yet the same subject) the requirement is
    # met, and the most severe colour decides: Zhejiang's yellow.
    own = await hub.regions["beijing"].issue(id_number=TRAVELLER)
    stacked = await decide(hub, [*codes, own], BJ)
    assert stacked.subject == beijing.subject
    assert summary(stacked) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.YELLOW,
        (0,),
    )
    assert step(stacked, "require.own_region") == (2,)
    assert stacked.code_stacking
    assert roles(stacked) == [Role.DECIDING, Role.COUNTED, Role.COUNTED]
    cleared = await decide(hub, [codes[1], own], BJ)
    assert summary(cleared)[2:] == (Colour.GREEN, (0, 1))


# ------------------------------------------------------------------ live, versioned policies

PROVINCE_GENERAL = """[combine]
strategy = "jurisdiction"
prefer = "general"
"""

PROVINCE_SPECIFIC_STACKED = """[combine]
strategy = "jurisdiction"
prefer = "specific"

[require]
own_region = true
"""


async def test_policies_are_live_versioned_and_inherited(zhejiang_hub: Hub) -> None:
    hub = zhejiang_hub
    codes = await journey_codes(hub)
    await add_destination(hub, "beijing")

    # Nothing registered anywhere: the built-in default decides, and GetPolicy says so.
    built_in = await get_policy(hub, HZ)
    assert (built_in.destination, built_in.applies_from) == (HZ, "built-in")
    assert (built_in.policy_id, built_in.policy_version) == ("national-default", 0)
    assert list(built_in.versions) == []
    assert list(built_in.flags) == []
    national_record = await get_policy(hub, "national")
    assert national_record.applies_from == "built-in"
    first = await decide(hub, codes, HZ)
    assert (first.policy_id, first.colour, first.deciding) == (
        "national-default",
        Colour.YELLOW,
        (0,),
    )

    # The hub administrator's national policy applies wherever no regional one does.
    national = policy("nation", 1, "national", '[combine]\nstrategy = "freshest"\n')
    await set_policy(hub, "hub-admin", national)
    at_beijing = await decide(hub, codes, BJ)
    assert (at_beijing.policy_id, at_beijing.policy_version) == ("nation", 1)
    assert "combine.freshest" in rules(at_beijing)
    for where in (HZ, BJ, "national"):
        record = await get_policy(hub, where)
        assert (record.applies_from, record.policy_id, record.policy_version) == (
            "national",
            "nation",
            1,
        )
        assert [(v.version, v.policy_toml) for v in record.versions] == [(1, national)]

    # Zhejiang's policy, filed for 330000, decides in Hangzhou (330100) too, which has none of
    # its own: the province's code is the more general one, and decides.
    v1 = policy("zhejiang", 1, ZJ, PROVINCE_GENERAL, "provincial codes decide")
    changed = await set_policy(hub, "zhejiang-ops", v1)
    assert changed.trust_version == await trust_version(hub)
    in_city = await decide(hub, codes, HZ)
    assert (in_city.policy_id, in_city.policy_version, in_city.destination) == ("zhejiang", 1, HZ)
    assert summary(in_city) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.YELLOW,
        (0,),
    )
    assert roles(in_city) == [Role.DECIDING, Role.SUPERSEDED]
    assert in_city.trust_version == changed.trust_version
    # ... but not in Beijing, which is not within Zhejiang.
    assert (await decide(hub, codes, BJ)).policy_id == "nation"
    record = await get_policy(hub, HZ)
    assert (record.applies_from, record.policy_id, record.policy_version) == (ZJ, "zhejiang", 1)

    # Version 2 takes effect on the very next call: now the city's code decides, and a code of
    # the destination's own region is required (code-stacking).
    v2 = policy("zhejiang", 2, ZJ, PROVINCE_SPECIFIC_STACKED, "city codes decide")
    changed = await set_policy(hub, "zhejiang-ops", v2)
    assert "code-stacking" in changed.audit.detail
    in_city = await decide(hub, codes, HZ)
    assert (in_city.policy_version, in_city.trust_version) == (2, changed.trust_version)
    assert summary(in_city) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.GREEN,
        (1,),
    )
    assert in_city.code_stacking
    assert step(in_city, "require.own_region") == (1,)
    # In the province itself both codes are its own; the city's still decides.
    in_province = await decide(hub, codes, ZJ)
    assert (in_province.colour, in_province.deciding) == (Colour.GREEN, (1,))
    assert sorted(step(in_province, "require.own_region")) == [0, 1]

    # Skipping a version is refused, audited, and changes nothing.
    before = await trust_version(hub)
    v4 = policy("zhejiang", 4, ZJ, PROVINCE_GENERAL)
    error = await refused(
        set_policy(hub, "zhejiang-ops", v4),
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.ERR_VERSION,
    )
    assert "version 3, not 4" in (error.details() or "")
    # Re-sending version 1 is refused the same way.
    await refused(
        set_policy(hub, "zhejiang-ops", v1),
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.ERR_VERSION,
    )
    assert await trust_version(hub) == before
    assert [(e.action, e.target, e.outcome) for e in (await audit(hub))[-2:]] == [
        ("set-policy", ZJ, rpb.AUDIT_OUTCOME_REFUSED),
        ("set-policy", ZJ, rpb.AUDIT_OUTCOME_REFUSED),
    ]
    assert (await decide(hub, codes, HZ)).policy_version == 2

    # GetPolicy (anyone may ask) shows where the policy is filed, its flags and every version.
    for where in (HZ, ZJ):
        record = await get_policy(hub, where)
        assert record.destination == where
        assert (record.applies_from, record.policy_id, record.policy_version) == (ZJ, "zhejiang", 2)
        assert list(record.flags) == [
            "code-stacking: requires a code from the destination's own region"
        ]
        assert [(v.version, v.policy_id, v.policy_toml) for v in record.versions] == [
            (1, "zhejiang", v1),
            (2, "zhejiang", v2),
        ]
        assert [v.sha256 for v in record.versions] == [
            hashlib.sha256(text.encode()).hexdigest() for text in (v1, v2)
        ]
    # The most specific registered policy wins: Hangzhou's own in its counties, Zhejiang's
    # elsewhere in the province (Ningbo 330200), the national one outside it.
    await set_policy(hub, "hangzhou-ops", policy("hangzhou", 1, HZ))
    assert (await decide(hub, codes, "330106")).policy_id == "hangzhou"
    assert (await decide(hub, codes, HZ)).policy_id == "hangzhou"
    assert (await decide(hub, codes, "330200")).policy_id == "zhejiang"
    assert (await get_policy(hub, "330106")).applies_from == HZ
    assert (await get_policy(hub, "330200")).applies_from == ZJ
    assert (await get_policy(hub, "820000")).applies_from == "national"
    await refused(get_policy(hub, "82000"), grpc.StatusCode.INVALID_ARGUMENT)


# ------------------------------------------------------------------ who may set a policy


async def test_only_a_regions_operators_set_its_policy_and_only_the_admin_the_nations(
    hangzhou_hub: Hub,
) -> None:
    hub = hangzhou_hub
    await add_destination(hub, "zhejiang")
    before = await trust_version(hub)
    seen = len(await audit(hub))
    hangzhou = hub.registry("hangzhou-ops")
    admin = hub.registry("hub-admin")

    async def send(
        stub: registry_pb2_grpc.RegistryServiceAsyncStub, text: str
    ) -> rpb.RegistryChange:
        request = rpb.SetPolicyRequest(request_id=new_request_id(), policy_toml=text)
        change: rpb.RegistryChange = (await stub.SetPolicy(request)).change
        return change

    attempts = [
        # (caller, policy, what the refusal says)
        (hangzhou, policy("beijing", 1, BJ), f"only an operator of {BJ} sets its policy"),
        # A city's operator does not set its province's policy.
        (hangzhou, policy("zhejiang", 1, ZJ), f"only an operator of {ZJ} sets its policy"),
        (
            hangzhou,
            policy("nation", 1, "national"),
            "only the hub administrator sets the national policy",
        ),
        (admin, policy("hangzhou", 1, HZ), f"only an operator of {HZ} sets its policy"),
        # Authorisation comes first: a broken policy for another region is denied, not refused.
        (
            hangzhou,
            policy("beijing", 1, BJ, '[combine]\nstrategy = "loudest"\n'),
            f"only an operator of {BJ} sets its policy",
        ),
    ]
    for stub, text, message in attempts:
        error = await refused(send(stub, text), grpc.StatusCode.PERMISSION_DENIED)
        assert error.details() == message

    # The right operator with a malformed policy: refused, naming the key.
    broken = policy("hangzhou", 1, HZ, '[combine]\nstrategy = "loudest"\n')
    error = await refused(
        send(hangzhou, broken), grpc.StatusCode.INVALID_ARGUMENT, Reason.ERR_POLICY
    )
    assert "strategy" in (error.details() or "")
    # Not even TOML: refused against the caller's own region, not treated as an attack.
    error = await refused(
        send(hangzhou, "[policy\nid = "), grpc.StatusCode.INVALID_ARGUMENT, Reason.ERR_POLICY
    )
    assert "not valid TOML" in (error.details() or "")
    assert await trust_version(hub) == before

    entries = (await audit(hub))[seen:]
    assert [(e.actor, e.action, e.target, e.outcome) for e in entries] == [
        (f"operator:{HZ}:hangzhou-ops", "set-policy", BJ, rpb.AUDIT_OUTCOME_DENIED),
        (f"operator:{HZ}:hangzhou-ops", "set-policy", ZJ, rpb.AUDIT_OUTCOME_DENIED),
        (f"operator:{HZ}:hangzhou-ops", "set-policy", "national", rpb.AUDIT_OUTCOME_DENIED),
        ("admin:hub-admin", "set-policy", HZ, rpb.AUDIT_OUTCOME_DENIED),
        (f"operator:{HZ}:hangzhou-ops", "set-policy", BJ, rpb.AUDIT_OUTCOME_DENIED),
        (f"operator:{HZ}:hangzhou-ops", "set-policy", HZ, rpb.AUDIT_OUTCOME_REFUSED),
        (f"operator:{HZ}:hangzhou-ops", "set-policy", HZ, rpb.AUDIT_OUTCOME_REFUSED),
    ]
    assert "ERR_POLICY" in entries[-2].detail
    assert "ERR_POLICY" in entries[-1].detail
    # Nothing changed anywhere.
    for where in (BJ, ZJ, HZ, "national"):
        assert (await get_policy(hub, where)).applies_from == "built-in"

    # The same operator, with a valid policy for its own region, succeeds; the administrator
    # sets the national one.
    own = await set_policy(hub, "hangzhou-ops", policy("hangzhou", 1, HZ))
    assert (own.audit.actor, own.audit.outcome) == (
        f"operator:{HZ}:hangzhou-ops",
        rpb.AUDIT_OUTCOME_OK,
    )
    nation = await set_policy(hub, "hub-admin", policy("nation", 1, "national"))
    assert (nation.audit.target, nation.audit.outcome) == ("national", rpb.AUDIT_OUTCOME_OK)
    assert (await get_policy(hub, HZ)).applies_from == HZ
    assert (await get_policy(hub, ZJ)).applies_from == "national"
    # A policy cannot be set without a client certificate (on the verification port).
    await refused(
        hub.registry(None).SetPolicy(
            rpb.SetPolicyRequest(request_id=new_request_id(), policy_toml=policy("x", 1, HZ))
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )


# ------------------------------------------------------------------ failing closed


async def test_invalid_codes_take_no_part_and_never_make_a_green(
    hangzhou_hub: Hub, clock: MutableClock
) -> None:
    hub = hangzhou_hub
    region = hub.regions["hangzhou"]
    green = await region.issue(id_number=TRAVELLER)
    red = await region.issue(id_number=TRAVELLER, contact=True)
    forged, unknown = tampered(red), foreign_hangzhou_code(clock())

    decision = await decide(hub, [forged, unknown, green], HZ)
    assert summary(decision) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.GREEN,
        (2,),
    )
    assert roles(decision) == [Role.NOT_VALID, Role.NOT_VALID, Role.DECIDING]
    assert [a.counted_as for a in decision.assessments] == [None, None, Colour.GREEN]
    assert [(a.verdict.status, a.verdict.reason) for a in decision.assessments[:2]] == [
        (Status.REJECTED, Reason.ERR_SIGNATURE),
        (Status.REJECTED, Reason.ERR_KEY_UNKNOWN),
    ]
    assert [s.codes for s in decision.steps if s.rule == "code.not_valid"] == [(0,), (1,)]
    assert step(decision, "combine.most_severe") == (2,)

    # Only invalid codes: GREY, nothing decides.
    grey = await decide(hub, [forged, unknown, "HC1:garbage"], HZ)
    assert summary(grey) == (
        DecisionStatus.DECIDED,
        DecisionReason.NO_RECOGNISED_CODE,
        Colour.GREY,
        (),
    )
    assert roles(grey) == [Role.NOT_VALID] * 3
    assert grey.subject is None
    assert rules(grey)[-1] == "decide.no_recognised_code"


async def test_codes_of_two_people_are_refused_without_a_colour(hangzhou_hub: Hub) -> None:
    hub = hangzhou_hub
    region = hub.regions["hangzhou"]
    mine = await region.issue(id_number=TRAVELLER)
    theirs = await region.issue(id_number=STRANGER)
    raw = await decide_pb(hub, [mine, theirs], HZ)
    assert raw.status == dpb.DECISION_STATUS_REFUSED
    assert raw.reason == dpb.DECISION_REASON_SUBJECT_MISMATCH
    assert raw.colour == vpb.COLOUR_UNSPECIFIED
    assert list(raw.deciding) == []
    assert raw.subject == ""
    decision = decision_from_pb(raw)
    assert decision.colour is None
    assert roles(decision) == [Role.UNUSED, Role.UNUSED]
    assert [a.verdict.status for a in decision.assessments] == [Status.VALID, Status.VALID]
    assert sorted(step(decision, "subject.mismatch")) == [0, 1]
    # Each alone is fine.
    for code in (mine, theirs):
        assert (await decide(hub, [code], HZ)).colour is Colour.GREEN


async def test_a_code_older_than_the_policy_allows_is_ignored_or_counted_as_the_stale_colour(
    hangzhou_hub: Hub, clock: MutableClock
) -> None:
    hub = hangzhou_hub
    green = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    await set_policy(
        hub, "hangzhou-ops", policy("hangzhou", 1, HZ, '[freshness]\nmax_age = "1h"\n')
    )
    assert (await decide(hub, [green], HZ)).colour is Colour.GREEN
    clock.advance(timedelta(hours=2))
    # Still a valid code (Hangzhou codes last 24 hours), but too old for the destination.
    ignored = await decide(hub, [green], HZ)
    assert ignored.assessments[0].verdict.status is Status.VALID
    assert summary(ignored) == (
        DecisionStatus.DECIDED,
        DecisionReason.NO_RECOGNISED_CODE,
        Colour.GREY,
        (),
    )
    assert roles(ignored) == [Role.STALE]
    assert ignored.assessments[0].counted_as is None
    assert step(ignored, "freshness.ignored") == (0,)

    fresh = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    both = await decide(hub, [green, fresh], HZ)
    assert summary(both)[2:] == (Colour.GREEN, (1,))
    assert roles(both) == [Role.STALE, Role.DECIDING]

    await set_policy(
        hub,
        "hangzhou-ops",
        policy("hangzhou", 2, HZ, '[freshness]\nmax_age = "1h"\nstale = "YELLOW"\n'),
    )
    counted = await decide(hub, [green, fresh], HZ)
    assert summary(counted) == (
        DecisionStatus.DECIDED,
        DecisionReason.RECOGNISED,
        Colour.YELLOW,
        (0,),
    )
    assert [(a.role, a.counted_as) for a in counted.assessments] == [
        (Role.DECIDING, Colour.YELLOW),
        (Role.COUNTED, Colour.GREEN),
    ]
    assert step(counted, "freshness.counted_as") == (0,)


async def test_an_unreachable_online_issuer_never_contributes_green(zhejiang_hub: Hub) -> None:
    hub = zhejiang_hub
    provincial = await hub.regions["zhejiang"].issue(id_number=TRAVELLER)
    city = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    assert (await decide(hub, [provincial], ZJ)).colour is Colour.GREEN
    await hub.regions["zhejiang"].running.stop()

    alone = await decide(hub, [provincial], ZJ)
    assert summary(alone) == (
        DecisionStatus.DECIDED,
        DecisionReason.NO_RECOGNISED_CODE,
        Colour.GREY,
        (),
    )
    verdict = alone.assessments[0].verdict
    assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_ISSUER_UNAVAILABLE)
    assert roles(alone) == [Role.NOT_VALID]

    # With Hangzhou's code the decision is Hangzhou's alone.
    both = await decide(hub, [provincial, city], HZ)
    assert summary(both)[2:] == (Colour.GREEN, (1,))
    assert roles(both) == [Role.NOT_VALID, Role.DECIDING]
    assert both.assessments[0].counted_as is None


# ------------------------------------------------------------------ the request itself


async def test_malformed_requests_are_invalid_arguments(
    hangzhou_hub: Hub, clock: MutableClock
) -> None:
    hub = hangzhou_hub
    green = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    now = clock()
    too_many = [green] * (GATEWAY_LIMITS.max_batch + 1)
    cases = [
        ([green], "", None),
        ([green], "national", None),
        ([green], "11000", None),
        ([green], "１１００００", None),  # full-width digits
        ([], HZ, None),
        (too_many, HZ, None),
        ([green], HZ, now - timedelta(minutes=20)),
        ([green], HZ, now + timedelta(minutes=5)),
    ]
    for codes, destination, at in cases:
        await refused(decide_pb(hub, codes, destination, at), grpc.StatusCode.INVALID_ARGUMENT)

    # The batch limit itself is fine.
    full = await decide(hub, [green] * GATEWAY_LIMITS.max_batch, HZ)
    assert full.colour is Colour.GREEN
    assert full.deciding == tuple(range(GATEWAY_LIMITS.max_batch))


async def test_an_instant_out_of_any_calendar_is_an_invalid_argument(hangzhou_hub: Hub) -> None:
    hub = hangzhou_hub
    green = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    for seconds in (10**12, -(10**12)):
        request = pb.RecogniseRequest(codes=[green], destination=HZ)
        request.at.seconds = seconds
        await refused(hub.stub.Recognise(request), grpc.StatusCode.INVALID_ARGUMENT)


async def test_a_queued_scan_is_decided_at_its_instant_of_presentation(
    hangzhou_hub: Hub, clock: MutableClock
) -> None:
    hub = hangzhou_hub
    green = await hub.regions["hangzhou"].issue(id_number=TRAVELLER)
    clock.advance(timedelta(minutes=6))
    presented = clock() - timedelta(minutes=5)
    decision = await decide(hub, [green], HZ, presented)
    assert decision.decided_at == presented
    assert decision.assessments[0].verdict.verified_at == presented
    assert decision.colour is Colour.GREEN
    now = await decide(hub, [green], HZ)
    assert now.decided_at == clock()


async def test_a_queued_scan_of_an_online_code_asks_its_issuer_now(
    zhejiang_hub: Hub, clock: MutableClock
) -> None:
    """A checkpoint decides a scan it queued 10 minutes ago: Zhejiang (which refuses questions
    dated more than 60 s from its clock) is asked now, and the code is judged at the instant
    it was presented (it used to be UNVERIFIABLE, "HTTP 401")."""
    hub = zhejiang_hub
    code = await hub.regions["zhejiang"].issue(id_number=TRAVELLER)
    clock.advance(timedelta(minutes=11))
    presented = clock() - timedelta(minutes=10)
    decision = await decide(hub, [code], "330000", presented)
    (assessment,) = decision.assessments
    assert (assessment.verdict.status, assessment.verdict.colour) == (Status.VALID, Colour.GREEN)
    assert assessment.verdict.verified_at == presented


# ------------------------------------------------------------------ order does not matter


async def test_the_order_of_the_codes_does_not_change_the_decision(zhejiang_hub: Hub) -> None:
    hub = zhejiang_hub
    codes = await journey_codes(hub)
    await add_destination(hub, "shanghai")
    await set_policy(hub, "shanghai-ops", demo_policy("shanghai"))
    for where in (SH, HB):
        forward = await decide(hub, codes, where)
        backward = await decide(hub, codes[::-1], where)
        assert (backward.status, backward.reason, backward.colour) == (
            forward.status,
            forward.reason,
            forward.colour,
        )
        assert backward.deciding == tuple(1 - i for i in forward.deciding)
        assert roles(backward) == roles(forward)[::-1]
        # The same code twice changes nothing but naming both copies.
        doubled = await decide(hub, [*codes, codes[forward.deciding[0]]], where)
        assert (doubled.status, doubled.reason, doubled.colour) == (
            forward.status,
            forward.reason,
            forward.colour,
        )
        assert doubled.deciding == (*forward.deciding, 2)
        doubled_other = await decide(hub, [*codes, codes[1 - forward.deciding[0]]], where)
        assert summary(doubled_other) == summary(forward)


# ------------------------------------------------------------------ the signed trust list


async def test_the_signed_trust_list_carries_every_current_policy(hangzhou_hub: Hub) -> None:
    hub = hangzhou_hub
    await add_destination(hub, "beijing")
    beijing = demo_policy("beijing")
    national = policy("nation", 1, "national", '[require]\nissuers = ["hangzhou"]\n')
    await set_policy(hub, "beijing-ops", beijing)
    await set_policy(hub, "hub-admin", national)
    v1 = policy("hangzhou", 1, HZ)
    v2 = policy("hangzhou", 2, HZ, description="second")
    await set_policy(hub, "hangzhou-ops", v1)
    await set_policy(hub, "hangzhou-ops", v2)

    answer = await hub.registry(None).GetTrustList(rpb.GetTrustListRequest())
    key = crypto.load_jwk(json.loads(hub.files.trust_list_public.read_text()))
    content = trustlist.verify(answer.jws, key)
    assert content["version"] == answer.version == await trust_version(hub)
    listed = {p["destination"]: p for p in content["policies"]}
    assert set(listed) == {BJ, HZ, "national"}
    for destination, text, policy_id, version in (
        (BJ, beijing, "beijing", 1),
        (HZ, v2, "hangzhou", 2),
        ("national", national, "nation", 1),
    ):
        entry = listed[destination]
        assert (entry["id"], entry["version"], entry["source"]) == (policy_id, version, text)
        assert entry["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert listed[BJ]["flags"] == [
        "code-stacking: requires a code from the destination's own region"
    ]
    assert listed["national"]["flags"] == ["code-stacking: requires a code from issuer hangzhou"]
    assert listed[HZ]["flags"] == []
