"""Whose a name is (issue 10, defects 1 and 2), over gRPC with real operators on mutual TLS.

A profile id, a policy id and what codes call an issuer (its id or its code name) belong to one
region: the first to use them, or the one the hub administrator reserved them for. Another
region's operator using them is PERMISSION_DENIED, audited, and changes nothing; the owner goes
on publishing. A published profile version may be used as it is by anyone (EU DCC countries
share one). Retiring an issuer is the one way to undo a registration, and its names stay taken.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc
from gateway.clients import new_request_id
from gateway.model import Colour, Reason, Status
from gateway.profiles import load_profile
from gateway.registry.model import NameKind
from regions import spec_of
from tests.integration.conftest import Hub, MutableClock, running_hub
from tests.integration.rpc import refused
from tests.integration.test_formats import FORMATS, _eu_dcc_issuer
from tests.integration.test_recognise import policy
from tests.integration.test_registry import audit, profile_text, trust_version

pytestmark = pytest.mark.asyncio

REGIONS_HERE = ("hangzhou", "beijing", "guangdong")
SHARED = profile_text()
"""Hangzhou's published profile, version 1, as anyone may use it."""


@pytest_asyncio.fixture
async def hub(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path, clock, names=REGIONS_HERE) as started:
        yield started


def with_version(text: str, version: int) -> str:
    current = re.search(r"\nversion = (\d+)\n", text)
    assert current is not None
    return text.replace(current.group(0), f"\nversion = {version}\n", 1)


def with_id(text: str, profile_id: str) -> str:
    assert 'id = "hangzhou"' in text
    return text.replace('id = "hangzhou"', f'id = "{profile_id}"', 1)


def registration(
    issuer: str, region: str, profile: str = SHARED, code_name: str = ""
) -> rpb.RegisterIssuerRequest:
    """A registration without keys (they may be added later)."""
    return rpb.RegisterIssuerRequest(
        request_id=new_request_id(),
        issuer_id=issuer,
        region=region,
        name=f"{issuer} 健康码",
        profile_toml=profile,
        code_name=code_name,
    )


def setting(text: str) -> rpb.SetPolicyRequest:
    return rpb.SetPolicyRequest(request_id=new_request_id(), policy_toml=text)


Change = rpb.RegisterIssuerRequest | rpb.SetPolicyRequest | rpb.UpdateProfileRequest


def send(stub: registry_pb2_grpc.RegistryServiceAsyncStub, request: Change) -> Awaitable[Any]:
    if isinstance(request, rpb.RegisterIssuerRequest):
        return stub.RegisterIssuer(request)
    if isinstance(request, rpb.SetPolicyRequest):
        return stub.SetPolicy(request)
    return stub.UpdateProfile(request)


@dataclass(frozen=True)
class Owner:
    """What region ``name`` holds: its issuer and profile, a second issuer's code name, its
    policy id, and the names the hub administrator reserved for it."""

    name: str
    region: str
    issuer: str
    profile: str
    code_name: str
    policy_id: str
    reserved: dict[NameKind, str]

    @property
    def operator(self) -> str:
        return f"{self.name}-ops"


async def owner(hub: Hub, name: str) -> Owner:
    spec = spec_of(name)
    held = Owner(
        name,
        spec.code,
        spec.issuer,
        spec.profile_text(),
        f"{name}-alias",
        f"{name}-rules",
        {
            NameKind.PROFILE: f"{name}-next",
            NameKind.ISSUER: f"{name}-reserved",
            NameKind.POLICY: f"{name}-reserved-rules",
        },
    )
    operator = hub.registry(held.operator)
    await operator.RegisterIssuer(registration(f"{name}-city", spec.code, code_name=held.code_name))
    await operator.SetPolicy(setting(policy(held.policy_id, 1, spec.code)))
    for kind, reserved in held.reserved.items():
        await hub.registry("hub-admin").ReserveName(
            rpb.ReserveNameRequest(
                request_id=new_request_id(),
                kind=wire.NAME_KIND[kind],
                name=reserved,
                region=spec.code,
            )
        )
    return held


def squatting(a: Owner, b: str) -> dict[str, Change]:
    """Region ``b``'s attempts to use what ``a`` holds, each in ``b``'s own region."""
    region = spec_of(b).code
    return {
        "a new version of A's profile id": registration(
            f"{b}-squat-1", region, with_version(a.profile, 2)
        ),
        "A's issuer id as a code name": registration(f"{b}-squat-2", region, code_name=a.issuer),
        "A's code name as a code name": registration(f"{b}-squat-3", region, code_name=a.code_name),
        "A's code name as an issuer id": registration(a.code_name, region),
        "A's policy id": setting(policy(a.policy_id, 1, region)),
        "a profile id reserved for A": registration(
            f"{b}-squat-6", region, with_id(SHARED, a.reserved[NameKind.PROFILE])
        ),
        "an issuer name reserved for A": registration(a.reserved[NameKind.ISSUER], region),
        "a code name reserved for A": registration(
            f"{b}-squat-8", region, code_name=a.reserved[NameKind.ISSUER]
        ),
        "a policy id reserved for A": setting(policy(a.reserved[NameKind.POLICY], 1, region)),
    }


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.permutations(REGIONS_HERE, 2)),
    ids=[f"{b}-against-{a}" for a, b in itertools.permutations(REGIONS_HERE, 2)],
)
async def test_a_region_cannot_use_another_regions_names(hub: Hub, a: str, b: str) -> None:
    held = await owner(hub, a)
    listed = await hub.registry(None).ListIssuers(rpb.ListIssuersRequest())
    seen = len(await audit(hub))
    squatter = hub.registry(f"{b}-ops")
    attempts = squatting(held, b)
    for what, request in attempts.items():
        error = await refused(send(squatter, request), grpc.StatusCode.PERMISSION_DENIED)
        assert held.region in (error.details() or ""), (what, error.details())

    assert await hub.registry(None).ListIssuers(rpb.ListIssuersRequest()) == listed
    entries = (await audit(hub))[seen:]
    actions = [
        "set-policy" if isinstance(r, rpb.SetPolicyRequest) else "register-issuer"
        for r in attempts.values()
    ]
    actor = f"operator:{spec_of(b).code}:{b}-ops"
    assert [(e.actor, e.action, e.outcome) for e in entries] == [
        (actor, action, rpb.AUDIT_OUTCOME_DENIED) for action in actions
    ]

    # The owner goes on publishing, and uses what was reserved for it.
    operator = hub.registry(held.operator)
    for request in (
        rpb.UpdateProfileRequest(
            request_id=new_request_id(),
            issuer_id=held.issuer,
            profile_toml=with_version(held.profile, 2),
        ),
        setting(policy(held.policy_id, 2, held.region)),
        registration(
            held.reserved[NameKind.ISSUER],
            held.region,
            with_id(SHARED, held.reserved[NameKind.PROFILE]),
        ),
    ):
        change = (await send(operator, request)).change
        assert change.audit.outcome == rpb.AUDIT_OUTCOME_OK
    record = (
        await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id=held.issuer))
    ).issuer
    assert record.profile_version == 2
    answer = (
        await hub.registry(None).GetPolicy(rpb.GetPolicyRequest(destination=held.region))
    ).policy
    assert (answer.policy_id, answer.policy_version) == (held.policy_id, 2)


async def test_anyone_may_use_a_published_profile_version_as_it_is(
    tmp_path: Path, clock: MutableClock
) -> None:
    """Two EU DCC countries register with the same profile text; only the first to publish the
    id moves it to a new version, and the same version with other content is not the same."""
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        await _eu_dcc_issuer(hub, "DE")
        await _eu_dcc_issuer(hub, "FR")
        anonymous = hub.registry(None)
        text = (FORMATS / "eu-dcc.toml").read_text()
        shipped = load_profile(text).version
        for country in ("DE", "FR"):
            record = (
                await anonymous.GetIssuer(
                    rpb.GetIssuerRequest(issuer_id=f"eu-dcc-{country.lower()}")
                )
            ).issuer
            assert (record.region, record.profile_id, record.profile_version) == (
                country,
                "eu-dcc",
                shipped,
            )
        altered = text.replace('description = "', 'description = "altered: ', 1)
        france = hub.registry("fr-ops")
        await refused(
            france.RegisterIssuer(registration("eu-dcc-fr-2", "FR", altered)),
            grpc.StatusCode.FAILED_PRECONDITION,
            Reason.ERR_VERSION,
        )
        moved = rpb.UpdateProfileRequest(
            request_id=new_request_id(),
            issuer_id="eu-dcc-fr",
            profile_toml=with_version(text, shipped + 1),
        )
        await refused(france.UpdateProfile(moved), grpc.StatusCode.PERMISSION_DENIED)
        moved.issuer_id = "eu-dcc-de"
        await hub.registry("de-ops").UpdateProfile(moved)


async def test_a_retired_issuer_is_refused_at_once_changes_no_more_and_keeps_its_names(
    hub: Hub,
) -> None:
    code = await hub.regions["guangdong"].issue()
    assert (await hub.verify(code)).colour is Colour.GREEN
    retire = rpb.RetireIssuerRequest(
        request_id=new_request_id(), issuer_id="guangdong", reason="signing service compromised"
    )
    version = await trust_version(hub)
    for operator in ("guangdong-ops", "beijing-ops"):
        error = await refused(
            hub.registry(operator).RetireIssuer(retire), grpc.StatusCode.PERMISSION_DENIED
        )
        assert "hub administrator" in (error.details() or "")
    assert await trust_version(hub) == version
    change = (await hub.registry("hub-admin").RetireIssuer(retire)).change
    assert (change.audit.actor, change.audit.action) == ("admin:hub-admin", "retire-issuer")

    verdict = await hub.verify(code)
    assert (verdict.status, verdict.reason) == (Status.REJECTED, Reason.ERR_ISSUER_RETIRED)
    assert verdict.provenance.trust_version == change.trust_version

    guangdong, kid = hub.registry("guangdong-ops"), hub.regions["guangdong"].kid
    profile = spec_of("guangdong").profile_text()
    for call in (
        guangdong.RevokeKey(
            rpb.RevokeKeyRequest(request_id=new_request_id(), issuer_id="guangdong", kid=kid)
        ),
        guangdong.RetireKey(
            rpb.RetireKeyRequest(request_id=new_request_id(), issuer_id="guangdong", kid=kid)
        ),
        guangdong.UpdateProfile(
            rpb.UpdateProfileRequest(
                request_id=new_request_id(),
                issuer_id="guangdong",
                profile_toml=with_version(profile, 2),
            )
        ),
    ):
        await refused(call, grpc.StatusCode.FAILED_PRECONDITION, Reason.ERR_ISSUER_RETIRED)

    # Its names stay taken: its id, what its codes call it, and its profile id.
    await refused(
        guangdong.RegisterIssuer(registration("guangdong", "440000")),
        grpc.StatusCode.INVALID_ARGUMENT,
        Reason.ERR_IDENTIFIER,
    )
    beijing = hub.registry("beijing-ops")
    for request in (
        registration("bj-second", "110000", code_name="guangdong"),
        registration("bj-third", "110000", with_version(profile, 2)),
    ):
        await refused(beijing.RegisterIssuer(request), grpc.StatusCode.PERMISSION_DENIED)
    assert (await hub.verify(code)).reason is Reason.ERR_ISSUER_RETIRED

    record = (
        await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="guangdong"))
    ).issuer
    assert record.retired_at == change.audit.at
    assert record.retired_reason == "signing service compromised"


async def test_only_the_hub_administrator_reserves_names_and_never_anothers(hub: Hub) -> None:
    def reserve(kind: NameKind, name: str, region: str) -> rpb.ReserveNameRequest:
        return rpb.ReserveNameRequest(
            request_id=new_request_id(), kind=wire.NAME_KIND[kind], name=name, region=region
        )

    version = await trust_version(hub)
    await refused(
        hub.registry("hangzhou-ops").ReserveName(reserve(NameKind.PROFILE, "hz-next", "330100")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    admin = hub.registry("hub-admin")
    for request in (
        reserve(NameKind.ISSUER, "beijing", "330100"),  # Beijing's issuer already answers to it
        reserve(NameKind.PROFILE, "beijing", "330100"),  # Beijing published it
        reserve(NameKind.PROFILE, "hz-next", "310000"),  # no such region here
    ):
        await refused(
            admin.ReserveName(request), grpc.StatusCode.INVALID_ARGUMENT, Reason.ERR_IDENTIFIER
        )
    assert await trust_version(hub) == version


async def test_within_a_region_too_one_name_identifies_one_issuer(hub: Hub) -> None:
    """An operator's own issuers cannot answer to one name either (refused, not denied)."""
    operator = hub.registry("hangzhou-ops")
    await operator.RegisterIssuer(registration("hz-district", "330100", code_name="hz-alias"))
    for request in (
        registration("hz-second", "330100", code_name="hangzhou"),
        registration("hz-third", "330100", code_name="hz-alias"),
        registration("hz-alias", "330100"),
    ):
        error = await refused(
            operator.RegisterIssuer(request),
            grpc.StatusCode.INVALID_ARGUMENT,
            Reason.ERR_IDENTIFIER,
        )
        assert "codes already call issuer" in (error.details() or "")
