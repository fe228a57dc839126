"""TrustState accepts only valid changes; snapshots are immutable and route codes by prefix."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import ConfigurationInvalid
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode
from gateway.profiles import Profile, load_profile
from gateway.registry import Issuer, IssuerKey, TrustHolder, TrustState
from gateway.registry.model import Region
from tests.conftest import HANGZHOU_PROFILE, NOW, add_issuer, make_world


def _state() -> TrustState:
    state = TrustState()
    for code in ("330100", "330000", "330106"):
        state.add_region(Region(RegionCode(code), code))
    state.add_profile(load_profile(HANGZHOU_PROFILE))
    return state


def _issuer(issuer_id: str = "hangzhou", region: str = "330100", name: str = "杭州") -> Issuer:
    return Issuer(IssuerId(issuer_id), RegionCode(region), name, ProfileId("hangzhou"), 1)


@pytest.mark.parametrize(
    ("issuer", "reason"),
    [
        (_issuer("Hangzhou"), Reason.ERR_IDENTIFIER),
        (_issuer("hang zhou"), Reason.ERR_IDENTIFIER),
        (_issuer("h\u0430ngzhou"), Reason.ERR_IDENTIFIER),  # Cyrillic a
        (_issuer("x" * 65), Reason.ERR_IDENTIFIER),
        (_issuer("-hz"), Reason.ERR_IDENTIFIER),
        (_issuer(region="33010"), Reason.ERR_IDENTIFIER),
        (_issuer(region="990100"), Reason.ERR_IDENTIFIER),
        (_issuer(region="３３０１００"), Reason.ERR_IDENTIFIER),
        (_issuer(name=""), Reason.ERR_IDENTIFIER),
        (_issuer(name="x\n"), Reason.ERR_IDENTIFIER),
        (
            Issuer(IssuerId("hz"), RegionCode("330100"), "hz", ProfileId("hangzhou"), 2),
            Reason.ERR_PROFILE,
        ),
    ],
    ids=[
        "upper-case",
        "space",
        "confusable",
        "too-long",
        "leading-dash",
        "short-region",
        "unknown-province",
        "fullwidth-region",
        "empty-name",
        "control-in-name",
        "unknown-profile-version",
    ],
)
def test_bad_issuers_are_refused_and_change_nothing(issuer, reason):
    state = _state()
    before = state.version
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_issuer(issuer)
    assert refused.value.reason is reason
    assert state.version == before
    assert state.issuer_ids() == []


def test_duplicate_issuer_and_duplicate_key_are_refused():
    state = _state()
    state.add_issuer(_issuer())
    with pytest.raises(ConfigurationInvalid, match="already registered"):
        state.add_issuer(_issuer())
    key = PrivateKey.generate(Algorithm.ES256).public_key()
    state.add_key(IssuerKey(IssuerId("hangzhou"), KeyId("k1"), key))
    with pytest.raises(ConfigurationInvalid, match="already has a key"):
        state.add_key(IssuerKey(IssuerId("hangzhou"), KeyId("k1"), key))


@pytest.mark.parametrize(
    ("kid", "issuer", "algorithm", "window", "reason"),
    [
        ("k 1", "hangzhou", Algorithm.ES256, None, Reason.ERR_IDENTIFIER),
        ("", "hangzhou", Algorithm.ES256, None, Reason.ERR_IDENTIFIER),
        ("k" * 129, "hangzhou", Algorithm.ES256, None, Reason.ERR_IDENTIFIER),
        ("k1", "hangzhou", Algorithm.RS256, None, Reason.ERR_KEY_WEAK),
        ("k1", "hangzhou", Algorithm.ES256, (NOW, NOW - timedelta(1)), Reason.ERR_KEY_WEAK),
    ],
    ids=["kid-space", "kid-empty", "kid-too-long", "rs256", "empty-window"],
)
def test_bad_keys_are_refused(kid, issuer, algorithm, window, reason):
    state = _state()
    state.add_issuer(_issuer())
    public = PrivateKey.generate(algorithm).public_key()
    not_before, not_after = window or (None, None)
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_key(IssuerKey(IssuerId(issuer), KeyId(kid), public, not_before, not_after))
    assert refused.value.reason is reason


def test_same_profile_version_with_different_content_is_refused():
    state = _state()
    changed = load_profile(HANGZHOU_PROFILE.replace('max = "24h"', 'max = "12h"'))
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_profile(changed)
    assert refused.value.reason is Reason.ERR_VERSION
    version = state.version
    state.add_profile(load_profile(HANGZHOU_PROFILE))  # identical: a no-op
    assert state.version == version


def _other_profile(envelope_line: str) -> Profile:
    """Hangzhou's profile as issuer ``other``'s, with ``payload = "json"`` replaced."""
    return load_profile(
        HANGZHOU_PROFILE.replace('id = "hangzhou"', 'id = "other"').replace(
            'payload = "json"', envelope_line
        )
    )


def test_codes_that_start_alike_must_decode_alike():
    state = _state()
    state.add_issuer(_issuer())
    cbor_jws = _other_profile('payload = "cbor"')
    state.add_profile(cbor_jws)  # a profile alone routes nothing
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_issuer(Issuer(IssuerId("other"), RegionCode("330000"), "x", cbor_jws.id, 1))
    assert refused.value.reason is Reason.ERR_PROFILE
    assert "shares the code start" in str(refused.value)


def test_issuers_on_one_route_may_each_allow_their_own_algorithms():
    """envelope.algorithms restricts an issuer's keys, not how its codes decode."""
    state = _state()
    state.add_issuer(_issuer())
    eddsa_only = _other_profile('payload = "json"\nalgorithms = ["EdDSA"]')
    state.add_profile(eddsa_only)
    state.add_issuer(Issuer(IssuerId("other"), RegionCode("330000"), "x", eddsa_only.id, 1))
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_key(
            IssuerKey(
                IssuerId("other"),
                KeyId("o1"),
                PrivateKey.generate(Algorithm.ES256).public_key(),
            )
        )
    assert refused.value.reason is Reason.ERR_ALG_NOT_ALLOWED


def test_snapshots_are_immutable_and_versions_move_forward():
    world = make_world()
    snapshot = world.snapshot
    with pytest.raises(TypeError):
        snapshot.issuers["x"] = snapshot.issuers["hangzhou"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        snapshot.version = 99  # type: ignore[misc]
    holder = TrustHolder(snapshot)
    state = TrustState(snapshot)
    add_issuer(state, _issuer("xihu", "330106"))
    newer = state.snapshot()
    assert newer.version == snapshot.version + 2  # the region, then the issuer
    holder.replace(newer)
    assert holder.current is newer
    with pytest.raises(ValueError, match="forward"):
        holder.replace(snapshot)
    assert "xihu" not in snapshot.issuers  # the old snapshot did not change


def test_route_table_prefers_the_longest_prefix():
    world = make_world()
    assert world.snapshot.route_for("eyJhbGciOi.x.y") is not None
    assert world.snapshot.route_for("eyJhbGciOi") is None  # compact JWS needs dots
    assert world.snapshot.route_for("HC1:ABC") is None
