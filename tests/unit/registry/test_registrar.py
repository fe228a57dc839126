"""The Registrar's decisions, pure: who may change what, whose names are whose, and that the
state's digest vouches for everything in it."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.crypto import Algorithm, PrivateKey
from gateway.crypto.pki import issue_operator, issue_replica, new_ca
from gateway.errors import NotAuthenticated, NotPermitted
from gateway.model import IssuerId, Reason, RegionCode
from gateway.policy import load_policy
from gateway.profiles import load_profile
from gateway.registry import TrustState
from gateway.registry.admission import KeyOffer, SignerCertificate, offers_from_file
from gateway.registry.authority import (
    Action,
    Actor,
    Role,
    may_fetch_secrets,
    may_read_as_admin,
    may_read_audit,
)
from gateway.registry.commands import (
    AddKey,
    AddReplica,
    CreateOperator,
    CreateRegion,
    ImportCertificate,
    ImportCertificates,
    Initialise,
    RegisterIssuer,
    RemoveOperator,
    RemoveReplica,
    ReserveName,
    RetireIssuer,
    RevokeKey,
    SetPolicy,
    UpdateProfile,
    command_digest,
)
from gateway.registry.model import NameKind, Operator, Region
from gateway.registry.registrar import (
    MAX_CERTIFICATES_PER_CHANGE,
    Credential,
    Decision,
    Outcome,
    decide,
    identify,
    schema_upgrade,
    screen_certificates,
)
from tests.conftest import HANGZHOU_PROFILE, NOW

REGIONS = ("330100", "110000", "440000")
ADMIN = Actor(Role.ADMIN, "hub-admin")
LOCAL = Actor(Role.LOCAL, "root")


def ops(region: str) -> Actor:
    return Actor(Role.OPERATOR, f"ops-{region}", RegionCode(region))


def _state() -> TrustState:
    state = TrustState()
    for code in REGIONS:
        accepted = decide(state, ADMIN, CreateRegion(code, f"region {code}"), NOW)
        assert accepted.state is not None
        state = accepted.state
    return state


def _profile(profile_id: str, version: int = 1, max_validity: str = "24h") -> str:
    return (
        HANGZHOU_PROFILE.replace('id = "hangzhou"', f'id = "{profile_id}"')
        .replace("version = 1", f"version = {version}")
        .replace('max = "24h"', f'max = "{max_validity}"')
    )


def _offer(issuer: str, kid: str = "k1", request_id: str = "-") -> KeyOffer:
    key = PrivateKey.generate(Algorithm.ES256)
    jwk = json.dumps({**key.public_key().jwk(), "kid": kid}).encode()
    (offer,) = offers_from_file(jwk, [key], issuer=issuer, request_id=request_id)
    return offer


def _apply(state: TrustState, actor: Actor, command: object) -> Decision:
    return decide(state, actor, command, NOW)  # type: ignore[arg-type]


def _registered(state: TrustState, region: str, issuer: str, profile_id: str) -> TrustState:
    command = RegisterIssuer(issuer, region, issuer, _profile(profile_id), (_offer(issuer),))
    decision = _apply(state, ops(region), command)
    assert decision.outcome is Outcome.OK, decision.detail
    assert decision.state is not None
    return decision.state


def _denied(decision: Decision, state: TrustState) -> None:
    assert decision.outcome is Outcome.DENIED, decision.detail
    assert isinstance(decision.error, NotPermitted)
    assert decision.state is None


def test_deciding_never_changes_the_state_it_decides_on():
    state = _registered(_state(), "330100", "hangzhou", "hangzhou")
    before = (state.digest(), state.version, len(state.journal))
    for actor, command in (
        (ops("110000"), RevokeKey("hangzhou", "k1")),  # denied
        (ops("330100"), RevokeKey("hangzhou", "nope")),  # refused
        (ops("330100"), RevokeKey("hangzhou", "k1")),  # accepted, on a candidate
    ):
        _apply(state, actor, command)
        assert (state.digest(), state.version, len(state.journal)) == before


# Canonically the same as _profile("hangzhou", 2): comments, spacing, quoting, escapes and
# table layout differ; the data, in its order, does not.
_REFORMATTED = (
    _profile("hangzhou", 2)
    .replace('[validity]\nmax = "24h"', "[validity]   # how long codes live\nmax = '24h'")
    .replace('"绿码" = "GREEN"', '"\\u7eff\\u7801"   =   "GREEN"')
)


@pytest.mark.parametrize(
    ("text", "outcome", "detail"),
    [
        (_profile("hangzhou", 2), Outcome.OK, "profile hangzhou@2 unchanged: "),
        (_REFORMATTED, Outcome.OK, "profile hangzhou@2 unchanged: "),
        (
            _profile("hangzhou", 2, "12h"),
            Outcome.REFUSED,
            "ERR_VERSION: profile hangzhou@2 already exists with other content",
        ),
        (
            _profile("hangzhou", 2).replace(
                '"黄码" = "YELLOW"\n"红码" = "RED"', '"红码" = "RED"\n"黄码" = "YELLOW"'
            ),
            Outcome.REFUSED,
            "ERR_PROFILE: states must be listed from least to most severe",
        ),
        (
            _profile("hangzhou", 1),
            Outcome.REFUSED,
            "ERR_VERSION: the next profile of hangzhou is hangzhou@3, not hangzhou@1",
        ),
    ],
    ids=["identical", "canonically-identical", "other-content", "reordered", "older-version"],
)
def test_resending_the_current_profile_version_changes_nothing(text, outcome, detail):
    """Issue 11, item 8: the issuer's current version sent again, byte for byte or canonically
    the same, is accepted and changes nothing (its audit entry says so); other content under
    that version number, or an older version, is still ERR_VERSION."""
    state = _registered(_state(), "330100", "hangzhou", "hangzhou")
    moved = _apply(state, ops("330100"), UpdateProfile("hangzhou", _profile("hangzhou", 2)))
    assert moved.state is not None
    state = moved.state
    state.journal.clear()
    decision = _apply(state, ops("330100"), UpdateProfile("hangzhou", text))
    assert (decision.outcome, decision.detail[: len(detail)]) == (outcome, detail)
    if outcome is Outcome.OK:
        assert decision.state is not None
        assert decision.detail == "profile hangzhou@2 unchanged: it is already the current version"
        assert decision.state.journal == []
        assert (decision.state.version, decision.state.digest()) == (state.version, state.digest())
    # Another region's operator may not even re-send it.
    _denied(_apply(state, ops("110000"), UpdateProfile("hangzhou", text)), state)


PAIRS = list(permutations(REGIONS, 2))
PAIR_IDS = [f"{a}-then-{b}" for a, b in PAIRS]


@pytest.mark.parametrize(("owner", "other"), PAIRS, ids=PAIR_IDS)
def test_a_region_cannot_publish_another_regions_profile_id(owner, other):
    state = _registered(_state(), owner, f"first-{owner}", "shared")
    squat = RegisterIssuer(
        f"second-{other}", other, "x", _profile("shared", 2), (_offer(f"second-{other}"),)
    )
    _denied(_apply(state, ops(other), squat), state)
    # The owner publishes the next version all the same.
    moved = _apply(state, ops(owner), UpdateProfile(f"first-{owner}", _profile("shared", 2, "12h")))
    assert moved.outcome is Outcome.OK, moved.detail
    # ... and anyone may use a published version exactly as it is.
    using = RegisterIssuer(
        f"user-{other}", other, "x", _profile("shared"), (_offer(f"user-{other}"),)
    )
    assert _apply(state, ops(other), using).outcome is Outcome.OK


@pytest.mark.parametrize(("owner", "other"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("as_code_name", [False, True], ids=["as-issuer-id", "as-code-name"])
def test_what_codes_call_an_issuer_belongs_to_its_region(owner, other, as_code_name):
    state = _state()
    named = RegisterIssuer(
        "first",
        owner,
        "x",
        _profile(f"p-{owner}"),
        (_offer("first"),),
        code_name="https://first.example/iss",
    )
    state = _apply(state, ops(owner), named).state or state
    for taken in ("first", "https://first.example/iss"):
        command = (
            RegisterIssuer(
                "mine", other, "x", _profile(f"p-{other}"), (_offer("mine"),), code_name=taken
            )
            if as_code_name
            else RegisterIssuer(taken, other, "x", _profile(f"p-{other}"), ())
        )
        decision = _apply(state, ops(other), command)
        _denied(decision, state)


@pytest.mark.parametrize(("owner", "other"), PAIRS, ids=PAIR_IDS)
def test_a_region_cannot_take_another_regions_policy_id(owner, other):
    state = _state()
    text = f'[policy]\nid = "mine"\nversion = 1\ndestination = "{owner}"\n'
    state = _apply(state, ops(owner), SetPolicy(text)).state or state
    theirs = f'[policy]\nid = "mine"\nversion = 1\ndestination = "{other}"\n'
    _denied(_apply(state, ops(other), SetPolicy(theirs)), state)
    again = text.replace("version = 1", "version = 2")
    assert _apply(state, ops(owner), SetPolicy(again)).outcome is Outcome.OK


@pytest.mark.parametrize(("owner", "other"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("kind", list(NameKind), ids=[k.value for k in NameKind])
def test_a_reserved_name_is_its_regions_alone(owner, other, kind):
    name = "reserved-name"
    reserved = _apply(_state(), ADMIN, ReserveName(kind, name, owner))
    assert reserved.outcome is Outcome.OK, reserved.detail
    state = reserved.state
    assert state is not None
    attempts = {
        NameKind.PROFILE: RegisterIssuer("x", other, "x", _profile(name), (_offer("x"),)),
        NameKind.ISSUER: RegisterIssuer(name, other, "x", _profile("p"), (_offer(name),)),
        NameKind.POLICY: SetPolicy(
            f'[policy]\nid = "{name}"\nversion = 1\ndestination = "{other}"\n'
        ),
    }
    _denied(_apply(state, ops(other), attempts[kind]), state)
    mine = {
        NameKind.PROFILE: RegisterIssuer("x", owner, "x", _profile(name), (_offer("x"),)),
        NameKind.ISSUER: RegisterIssuer(name, owner, "x", _profile("p"), (_offer(name),)),
        NameKind.POLICY: SetPolicy(
            f'[policy]\nid = "{name}"\nversion = 1\ndestination = "{owner}"\n'
        ),
    }
    assert _apply(state, ops(owner), mine[kind]).outcome is Outcome.OK
    # Only the hub administrator reserves, and never a name already another region's.
    _denied(_apply(_state(), ops(owner), ReserveName(kind, name, owner)), _state())
    taken = _apply(state, ADMIN, ReserveName(kind, name, other))
    assert taken.outcome is Outcome.REFUSED


def test_a_retired_issuer_changes_no_more_and_keeps_its_names():
    state = _registered(_state(), "330100", "xihu", "xihu")
    _denied(_apply(state, ops("330100"), RetireIssuer("xihu")), state)
    retired = _apply(state, ADMIN, RetireIssuer("xihu", "registered by mistake"))
    assert retired.outcome is Outcome.OK
    assert retired.state is not None
    state = retired.state
    assert state.snapshot().retired[IssuerId("xihu")].reason == "registered by mistake"
    for change in (
        AddKey("xihu", _offer("xihu", "k2")),
        RevokeKey("xihu", "k1"),
        RetireIssuer("xihu"),
    ):
        actor = ADMIN if isinstance(change, RetireIssuer) else ops("330100")
        refused = _apply(state, actor, change)
        assert refused.outcome is Outcome.REFUSED
        assert refused.error is not None
        assert getattr(refused.error, "reason", None) is Reason.ERR_ISSUER_RETIRED
    again = RegisterIssuer("xihu", "330100", "x", _profile("xihu"), (_offer("xihu"),))
    assert _apply(state, ops("330100"), again).outcome is Outcome.REFUSED


def test_local_administration_is_bound_by_the_same_names():
    state = _registered(_state(), "440000", "guangdong", "guangdong")
    squat = RegisterIssuer("mine", "330100", "x", _profile("guangdong", 2), (_offer("mine"),))
    _denied(_apply(state, LOCAL, squat), state)
    assert _apply(state, LOCAL, Initialise()).outcome is Outcome.REFUSED  # it exists already
    for actor in (ADMIN, ops("330100")):
        _denied(_apply(TrustState(), actor, Initialise()), TrustState())


def test_operators_need_a_client_authentication_certificate():
    ca = new_ca()
    issued = issue_operator(ca, "hangzhou-ops", "330100")
    state = _state()
    pinned = _apply(state, ADMIN, CreateOperator("hangzhou-ops", "330100", issued.certificate_pem))
    assert pinned.outcome is Outcome.OK
    assert pinned.state is not None
    actor = identify(pinned.state, Credential(issued.certificate_pem))
    assert actor == Actor(Role.OPERATOR, "hangzhou-ops", RegionCode("330100"))
    with pytest.raises(NotAuthenticated, match="not a registered operator"):
        identify(state, Credential(issued.certificate_pem))


def test_the_digest_of_a_command_ignores_proofs_but_nothing_else():
    offer = _offer("hangzhou", request_id="r")
    reproved = KeyOffer(offer.kid, offer.key, b"another signature", offer.algorithm)
    assert command_digest(AddKey("hangzhou", offer)) == command_digest(AddKey("hangzhou", reproved))
    assert command_digest(AddKey("hangzhou", offer)) != command_digest(AddKey("xihu", offer))
    assert command_digest(RevokeKey("h", "k")) != command_digest(RevokeKey("h", "k", "why"))
    assert command_digest(RevokeKey("h", "k")) != command_digest(AddKey("h", offer))


def test_the_digest_covers_everything_a_verdict_or_decision_reads():
    """Each element, changed alone, changes the digest; restoring the same content gives the
    same digest (what storage relies on to vouch for a file it read back)."""
    state = _registered(_state(), "330100", "hangzhou", "hangzhou")
    text = '[policy]\nid = "bj"\nversion = 1\ndestination = "110000"\n'
    state = _apply(state, ops("110000"), SetPolicy(text)).state or state
    base = state.digest()
    snapshot = state.snapshot()
    rebuilt = TrustState.restore(
        state.version,
        regions=snapshot.regions.values(),
        operators=snapshot.operators.values(),
        names=snapshot.names.values(),
        profiles=[(p, snapshot.profile_sources[k]) for k, p in snapshot.profiles.items()],
        issuers=snapshot.issuers.values(),
        keys=snapshot.keys.values(),
        revocations=[(i, k, r) for (i, k), r in snapshot.revocations.items()],
        policies=[
            (load_policy(v.text), v.text) for vs in snapshot.policy_versions.values() for v in vs
        ],
        retired=snapshot.retired.values(),
    )
    assert rebuilt.digest() == base
    changes = {
        "trust version": lambda s: s.raise_version(s.version + 1),
        "a profile text": lambda s: s.add_profile(
            load_profile(_profile("other")), _profile("other")
        ),
        "a key status": lambda s: s.revoke_key(
            IssuerId("hangzhou"), next(k for i, k in s.snapshot().keys if i == "hangzhou"), NOW
        ),
        "a region": lambda s: s.add_region(Region(RegionCode("310000"), "上海")),
        "an operator": lambda s: s.add_operator(Operator("x", None, "ab" * 32)),
        "a replica": lambda s: s.add_operator(Operator("y", None, "cd" * 32, replica=True)),
        "a policy": lambda s: s.set_policy(
            load_policy(text.replace("version = 1", "version = 2")),
            text.replace("version = 1", "version = 2"),
        ),
        "a retirement": lambda s: s.retire_issuer(IssuerId("hangzhou"), NOW + timedelta(1), "x"),
    }
    seen = {base}
    for what, change in changes.items():
        candidate = state.candidate()
        change(candidate)
        digest = candidate.digest()
        assert digest not in seen, what
        seen.add(digest)
    assert state.digest() == base  # candidates never touch their origin


@given(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=6))
def test_the_digest_depends_on_content_not_on_history(codes):
    """Two states holding the same regions in any order digest alike."""
    one, two = TrustState(), TrustState()
    unique = list(dict.fromkeys(codes))
    for code in unique:
        one.add_region(Region(RegionCode(code), code))
    for code in reversed(unique):
        two.add_region(Region(RegionCode(code), code))
    assert one.digest() == two.digest()


def test_authority_names_every_action():
    assert {a.value for a in Action} >= {
        "register-issuer",
        "retire-issuer",
        "reserve-name",
        "rate-limited",
    }


def test_a_policy_requiring_an_issuer_its_trust_rules_exclude_is_refused():
    """Issue 11, 12: the requirement could never be met, and would answer every traveller
    REQUIREMENT_UNMET while they showed exactly the code required."""
    state = _registered(_state(), "330100", "hangzhou", "hangzhou")
    text = (
        '[policy]\nid = "gd"\nversion = 1\ndestination = "440000"\n'
        '[trust]\nregions = ["440000"]\n[require]\nissuers = ["hangzhou"]\n'
    )
    refused = _apply(state, ops("440000"), SetPolicy(text))
    assert refused.outcome is Outcome.REFUSED
    assert "could never be met" in refused.detail
    reachable = text.replace('regions = ["440000"]', 'regions = ["440000", "330000"]')
    assert _apply(state, ops("440000"), SetPolicy(reachable)).outcome is Outcome.OK


# ---------------------------------------------------------------------- signer certificates


def _dsc(name: str) -> bytes:
    """A signer certificate (DER) of a fresh ES256 key, valid around NOW."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from gateway.crypto.pki import self_signed

    raw = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(
        raw, name, not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _eu_state() -> TrustState:
    """A state with one EU DCC issuer (country XX) and no key yet."""
    from tests.conftest import REPO

    state = TrustState()
    for command in (
        CreateRegion("XX", "Country XX"),
        RegisterIssuer(
            "eu-dcc-xx",
            "XX",
            "EU DCC XX",
            (REPO / "gateway" / "profiles" / "formats" / "eu-dcc.toml").read_text(),
        ),
    ):
        accepted = decide(state, LOCAL, command, NOW)
        assert accepted.state is not None, accepted.detail
        state = accepted.state
    return state


def test_a_list_of_certificates_is_imported_as_one_audited_change():
    state = _eu_state()
    certificates = tuple(_dsc(f"DSC {n}") for n in range(3))
    decision = decide(state, LOCAL, ImportCertificates("eu-dcc-xx", certificates), NOW)
    assert decision.outcome is Outcome.OK, decision.detail
    assert decision.action is Action.IMPORT_CERTIFICATE
    assert decision.state is not None
    kids = sorted(kid for issuer, kid in decision.state.snapshot().keys if issuer == "eu-dcc-xx")
    assert len(kids) == 3
    assert decision.detail.startswith("3 certificates: key ids ")
    assert all(kid in decision.detail for kid in kids)
    # Decided on a copy: the state it started from holds no key yet.
    assert not state.snapshot().keys
    # The same three one by one reach the same keys.
    one_by_one = state
    for certificate in certificates:
        single = decide(one_by_one, LOCAL, ImportCertificate("eu-dcc-xx", certificate), NOW)
        assert single.state is not None, single.detail
        one_by_one = single.state
    assert dict(one_by_one.snapshot().keys) == dict(decision.state.snapshot().keys)


def test_a_list_with_one_bad_certificate_changes_nothing():
    state = _eu_state()
    good = _dsc("good")
    for bad in (b"not a certificate", good):  # garbage, and the same certificate twice
        decision = decide(state, LOCAL, ImportCertificates("eu-dcc-xx", (good, bad)), NOW)
        assert decision.outcome is Outcome.REFUSED, bad[:20]
        assert decision.state is None
    assert not state.snapshot().keys


def test_certificates_read_by_the_screening_are_the_same_change_as_their_bytes():
    """``huren registry import-certificates`` reads each certificate once, in the screening,
    and submits it as read: the same decision, audit target and request digest as its bytes;
    what the screening refuses, the change refuses too."""
    state = _eu_state()
    good = tuple(_dsc(f"DSC {n}") for n in range(2))
    listed = (good[0], b"not a certificate", good[1], good[0])
    admitted, refused = screen_certificates(state, "eu-dcc-xx", listed)
    assert sorted(admitted) == [0, 2]
    assert sorted(refused) == [1, 3]
    assert [admitted[n].der for n in (0, 2)] == list(good)
    as_read = ImportCertificates("eu-dcc-xx", (admitted[0], admitted[2]))
    as_bytes = ImportCertificates("eu-dcc-xx", good)
    assert command_digest(as_read) == command_digest(as_bytes)
    read, given = decide(state, LOCAL, as_read, NOW), decide(state, LOCAL, as_bytes, NOW)
    assert read.outcome is Outcome.OK, read.detail
    assert (read.target, read.detail) == (given.target, given.detail)
    assert read.state is not None
    assert given.state is not None
    assert dict(read.state.snapshot().keys) == dict(given.state.snapshot().keys)
    for position, error in refused.items():
        before = read.state if position == 3 else state  # a twin is refused once one is held
        alone = decide(before, LOCAL, ImportCertificate("eu-dcc-xx", listed[position]), NOW)
        assert alone.outcome is Outcome.REFUSED
        assert alone.detail.startswith(f"{error.reason.value}: "), alone.detail


def test_a_certificate_as_read_cannot_pair_one_certificates_bytes_with_anothers_key():
    """The change imports a read certificate's key and its audit names the bytes: only the
    Registrar's reading may pair them."""
    state = _eu_state()
    admitted, _ = screen_certificates(state, "eu-dcc-xx", (_dsc("one"), _dsc("two")))
    with pytest.raises(TypeError, match="read_signer_certificate"):
        SignerCertificate(admitted[0].der, admitted[1].entry)
    with pytest.raises(TypeError):
        dataclasses.replace(admitted[0], entry=admitted[1].entry)  # type: ignore[type-var]
    with pytest.raises(AttributeError):
        admitted[0].entry = admitted[1].entry


@pytest.mark.parametrize("count", [0, MAX_CERTIFICATES_PER_CHANGE + 1])
def test_a_list_of_certificates_has_bounds(count):
    certificates = (_dsc("one"),) * count
    decision = decide(_eu_state(), LOCAL, ImportCertificates("eu-dcc-xx", certificates), NOW)
    assert decision.outcome is Outcome.REFUSED
    assert str(MAX_CERTIFICATES_PER_CHANGE) in decision.detail


def test_only_the_host_imports_certificates():
    state = _eu_state()
    admin = decide(state, ADMIN, ImportCertificates("eu-dcc-xx", (_dsc("x"),)), NOW)
    assert admin.outcome is Outcome.DENIED
    assert admin.state is None


REPLICA = Actor(Role.REPLICA, "edge-1")


def _every_change(state: TrustState) -> list[object]:
    """One command of each kind a network caller may send."""
    offer = _offer("hangzhou")
    policy = '[policy]\nid = "n"\nversion = 1\ndestination = "national"\n'
    return [
        RegisterIssuer("xihu", "330100", "xihu", _profile("xihu"), (_offer("xihu"),)),
        AddKey("hangzhou", offer),
        RevokeKey("hangzhou", "k1"),
        UpdateProfile("hangzhou", _profile("hangzhou", 2)),
        SetPolicy(policy),
        SetPolicy(policy.replace('"national"', '"330100"')),
        CreateRegion("320000", "江苏"),
        CreateOperator("x", None, b"-"),
        RemoveOperator("ops-330100"),
        AddReplica("edge-2", b"-"),
        RemoveReplica("edge-1"),
        ReserveName(NameKind.ISSUER, "suzhou", "330100"),
        RetireIssuer("hangzhou"),
        Initialise(),
    ]


def test_a_replica_may_change_nothing_at_all():
    state = _registered(_state(), "330100", "hangzhou", "hangzhou")
    for command in _every_change(state):
        decision = _apply(state, REPLICA, command)
        assert decision.outcome is not Outcome.OK, command
        if decision.outcome is Outcome.DENIED:
            assert "a replica changes nothing" in decision.detail
        else:  # refused before authority: what it acts on does not exist
            assert decision.outcome is Outcome.REFUSED
    assert may_fetch_secrets(REPLICA) is None
    assert may_read_audit(REPLICA) is not None
    for actor in (ADMIN, ops("330100"), LOCAL):
        assert may_fetch_secrets(actor) is not None
        assert may_read_audit(actor) is None


def test_only_the_hub_administrator_reads_the_issuance_log_and_the_replicas():
    for actor in (ADMIN, LOCAL):
        assert may_read_as_admin(actor, "the issuance log") is None
    why = may_read_as_admin(ops("820000"), "the issuance log")
    assert why == "only the hub administrator reads the issuance log"
    assert may_read_as_admin(REPLICA, "the replicas") == (
        "a replica's certificate only fetches the replica secrets"
    )


def test_a_replica_is_pinned_and_unpinned_by_the_hub_administrator_only():
    ca = new_ca()
    issued = issue_replica(ca, "edge-1")
    state = _state()
    for actor in (ops("330100"), REPLICA):
        _denied(_apply(state, actor, AddReplica("edge-1", issued.certificate_pem)), state)
    pinned = _apply(state, ADMIN, AddReplica("edge-1", issued.certificate_pem))
    assert (pinned.outcome, pinned.action, pinned.target) == (
        Outcome.OK,
        Action.ADD_REPLICA,
        "edge-1",
    )
    assert pinned.state is not None
    assert identify(pinned.state, Credential(issued.certificate_pem)) == REPLICA
    # Kinds do not mix: an operator's removal does not unpin a replica, nor the reverse.
    assert _apply(pinned.state, ADMIN, RemoveOperator("edge-1")).outcome is Outcome.REFUSED
    assert _apply(pinned.state, ADMIN, RemoveReplica("ops-x")).outcome is Outcome.REFUSED
    removed = _apply(pinned.state, ADMIN, RemoveReplica("edge-1"))
    assert removed.outcome is Outcome.OK
    assert removed.state is not None
    with pytest.raises(NotAuthenticated, match="not a registered operator"):
        identify(removed.state, Credential(issued.certificate_pem))
    again = _apply(removed.state, ADMIN, AddReplica("edge-1", issued.certificate_pem))
    assert again.outcome is Outcome.REFUSED  # a name and a key are pinned once, ever


def test_a_certificate_pins_only_as_what_it_names():
    ca = new_ca()
    replica = issue_replica(ca, "edge-1")
    operator = issue_operator(ca, "edge-1", "330100")
    admin = issue_operator(ca, "edge-1", None)
    state = _state()
    for command in (
        AddReplica("edge-1", operator.certificate_pem),
        AddReplica("edge-1", admin.certificate_pem),
        AddReplica("edge-2", replica.certificate_pem),
        CreateOperator("edge-1", None, replica.certificate_pem),
        CreateOperator("edge-1", "330100", replica.certificate_pem),
    ):
        decision = _apply(state, ADMIN, command)
        assert decision.outcome is Outcome.REFUSED, command
        assert decision.error is not None
        assert "certificate" in str(decision.error)
    # A pinned operator's certificate does not authenticate as a replica, nor the reverse.
    pinned = _apply(state, ADMIN, CreateOperator("edge-1", "330100", operator.certificate_pem))
    assert pinned.state is not None
    with pytest.raises(NotAuthenticated):
        identify(pinned.state, Credential(replica.certificate_pem))


def test_only_the_hubs_host_upgrades_the_registry_schema():
    local = Actor(Role.LOCAL, "root")
    record = schema_upgrade(local, NOW, 6, 7, "registry.db.schema-6.bak", "ab" * 32)
    assert (record.actor, record.action, record.target) == (
        "local:root",
        Action.MIGRATE_SCHEMA,
        "schema-7",
    )
    assert (
        record.detail
        == "registry schema 6 -> 7; backup registry.db.schema-6.bak (sha256 abababababababab)"
    )
    for other in (
        Actor(Role.ADMIN, "hub-admin"),
        Actor(Role.OPERATOR, "zj-ops", RegionCode("330000")),
        Actor(Role.REPLICA, "replica-1"),
    ):
        with pytest.raises(NotPermitted):
            schema_upgrade(other, NOW, 6, 7, "registry.db.schema-6.bak", "ab" * 32)
