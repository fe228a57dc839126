"""What a replica does with the secrets its hub hands it: bounds, merging into a signed list's
snapshot (never adding trust), the digest that says whether they changed, and the wire form."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from types import MappingProxyType

import pytest

from gateway import wire
from gateway.clients.hubsecrets import FETCH_TIMEOUT
from gateway.errors import ConfigurationInvalid
from gateway.model import IssuerId, ProfileId, Reason, RegionCode
from gateway.profiles import load_profile
from gateway.registry import Issuer, OnlineEndpoint, TrustSnapshot, TrustState
from gateway.registry.model import Region, Retirement
from gateway.replica_secrets import (
    MAX_AGE,
    MAX_SECRET_ISSUERS,
    MIN_MAX_AGE,
    IssuerSecrets,
    ReplicaSecrets,
    bundle,
    check,
    merge,
    outlived,
)
from gateway.server.replica import SECRETS_BACKOFF, SECRETS_CHECK_SECONDS
from gateway.tomltable import format_duration, parse_duration
from tests.conftest import NOW, REPO

PREFIX = "https://zj.example/hc/v1/"
ONLINE = OnlineEndpoint(PREFIX, "https://zj.example/api/verify", "hub", b"s" * 32)
PSEUDONYM_KEY = b"p" * 64
BEIJING, ZHEJIANG = IssuerId("beijing"), IssuerId("zhejiang")


def _profile(name: str):
    return load_profile((REPO / "regions" / name / "profile.toml").read_text("utf-8"))


def _snapshot(*, secrets: bool, retired: bool = False) -> TrustSnapshot:
    """A registry's snapshot (``secrets``) or a trust list's (credentials stripped)."""
    beijing, zhejiang = _profile("beijing"), _profile("zhejiang")
    online = ONLINE if secrets else OnlineEndpoint(PREFIX, ONLINE.verify_url, "", b"")
    issuers = {
        IssuerId("beijing"): Issuer(
            IssuerId("beijing"),
            RegionCode("110000"),
            "北京",
            ProfileId("beijing"),
            1,
            pseudonym_key=PSEUDONYM_KEY if secrets else None,
        ),
        IssuerId("zhejiang"): Issuer(
            IssuerId("zhejiang"), RegionCode("330000"), "浙江", ProfileId("zhejiang"), 1, online
        ),
    }
    return TrustSnapshot(
        7,
        MappingProxyType(issuers),
        MappingProxyType({}),
        MappingProxyType(
            {(ProfileId("beijing"), 1): beijing, (ProfileId("zhejiang"), 1): zhejiang}
        ),
        retired=MappingProxyType(
            {IssuerId("zhejiang"): Retirement(IssuerId("zhejiang"), NOW, "x")} if retired else {}
        ),
    )


def _secrets() -> ReplicaSecrets:
    return bundle(_snapshot(secrets=True), b"a" * 32, b"b" * 32)


def test_the_hub_bundles_each_live_issuers_secrets_and_the_replica_puts_them_back():
    secrets = check(_secrets())
    assert sorted(secrets.issuers) == ["beijing", "zhejiang"]
    listed = _snapshot(secrets=False)
    merged = merge(listed, secrets)
    assert merged.issuers[BEIJING].pseudonym_key == PSEUDONYM_KEY
    assert merged.issuers[ZHEJIANG].online == ONLINE
    assert merged.version == listed.version
    assert merged.keys == listed.keys
    assert merged.route_for(PREFIX + "token") is not None
    assert merge(listed, None) is listed
    retired = bundle(_snapshot(secrets=True, retired=True), b"a" * 32, b"b" * 32)
    assert sorted(retired.issuers) == ["beijing"]


def test_a_secret_never_adds_what_the_signed_list_does_not_say():
    listed = _snapshot(secrets=False)
    elsewhere = OnlineEndpoint("https://evil.example/", ONLINE.verify_url, "hub", b"s" * 32)
    stranger = IssuerId("stranger")
    secrets = ReplicaSecrets(
        9,
        b"a" * 32,
        b"b" * 32,
        MappingProxyType(
            {
                IssuerId("zhejiang"): IssuerSecrets(IssuerId("zhejiang"), None, elsewhere),
                stranger: IssuerSecrets(stranger, PSEUDONYM_KEY),
            }
        ),
    )
    merged = merge(listed, check(secrets))
    assert sorted(merged.issuers) == ["beijing", "zhejiang"]
    assert merged.issuers[ZHEJIANG].online == listed.issuers[ZHEJIANG].online  # prefix differs
    online = merged.issuers[ZHEJIANG].online
    assert online is not None
    assert online.client_secret == b""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: dataclasses.replace(s, subject_key=b"a" * 31), "subject key"),
        (lambda s: dataclasses.replace(s, link_key=b"b" * 65), "link key"),
        (
            lambda s: dataclasses.replace(
                s,
                issuers={
                    IssuerId(f"i{n}"): IssuerSecrets(IssuerId(f"i{n}"), PSEUDONYM_KEY)
                    for n in range(MAX_SECRET_ISSUERS + 1)
                },
            ),
            "more than",
        ),
        (
            lambda s: dataclasses.replace(
                s, issuers={IssuerId("Bad Id"): IssuerSecrets(IssuerId("Bad Id"), PSEUDONYM_KEY)}
            ),
            "malformed issuer id",
        ),
        (
            lambda s: dataclasses.replace(
                s, issuers={IssuerId("x"): IssuerSecrets(IssuerId("y"), PSEUDONYM_KEY)}
            ),
            "malformed issuer id",
        ),
        (
            lambda s: dataclasses.replace(
                s, issuers={IssuerId("x"): IssuerSecrets(IssuerId("x"), b"k" * 65)}
            ),
            "pseudonym key",
        ),
        (  # shorter than an AES-SIV key: refused as the registry refuses it
            lambda s: dataclasses.replace(
                s, issuers={IssuerId("x"): IssuerSecrets(IssuerId("x"), b"k" * 16)}
            ),
            "pseudonym key",
        ),
        (
            lambda s: dataclasses.replace(
                s,
                issuers={
                    IssuerId("x"): IssuerSecrets(
                        IssuerId("x"), None, dataclasses.replace(ONLINE, client_secret=b"short")
                    )
                },
            ),
            "online endpoint",
        ),
    ],
)
def test_secrets_out_of_bounds_are_refused_whole(change, message):
    with pytest.raises(ConfigurationInvalid, match=message):
        check(change(_secrets()))


def test_the_digest_follows_the_content_not_the_version():
    secrets = _secrets()
    assert dataclasses.replace(secrets, version=99).digest == secrets.digest
    assert dataclasses.replace(secrets, link_key=b"c" * 32).digest != secrets.digest
    fewer = dataclasses.replace(
        secrets, issuers={k: v for k, v in secrets.issuers.items() if k == "beijing"}
    )
    assert fewer.digest != secrets.digest


def test_on_the_wire_the_secrets_travel_whole_or_not_at_all():
    secrets = _secrets()
    answer = wire.replica_secrets(secrets, "")
    back = wire.replica_secrets_from(answer)
    assert back is not None
    assert (back.digest, back.version) == (secrets.digest, secrets.version)
    unchanged = wire.replica_secrets(secrets, secrets.digest)
    assert unchanged.unchanged
    assert unchanged.version == secrets.version
    assert not unchanged.subject_key
    assert not unchanged.link_key
    assert not unchanged.issuers
    assert wire.replica_secrets_from(unchanged) is None
    assert "a" * 32 not in repr(secrets)
    assert "61" * 32 not in repr(secrets)


def test_an_answer_naming_an_issuer_twice_is_refused_not_merged():
    answer = wire.replica_secrets(_secrets(), "")
    answer.issuers.append(answer.issuers[0])
    with pytest.raises(ConfigurationInvalid, match="named twice"):
        wire.replica_secrets_from(answer)


def test_secrets_not_vouched_for_within_their_maximum_age_are_outlived():
    age = timedelta(minutes=15)
    assert outlived(NOW, NOW, age) is None
    assert outlived(NOW, NOW + age - timedelta(seconds=1), age) is None
    assert outlived(NOW, NOW - timedelta(hours=1), age) is None  # a clock set back keeps them
    why = outlived(NOW, NOW + age, age)
    assert why is not None
    assert NOW.isoformat() in why
    assert "(15m)" in why


def test_the_shortest_maximum_age_outlasts_the_gap_between_two_answered_fetches():
    """A replica whose hub answers never drops its secrets: the longest gap between two answers
    (the periodic fetch, a fetch's timeout, the longest backoff) is under the shortest age."""
    gap = SECRETS_CHECK_SECONDS + FETCH_TIMEOUT + SECRETS_BACKOFF[1]
    assert timedelta(seconds=2 * gap) <= MIN_MAX_AGE <= MAX_AGE


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=24), "1d"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=2), "2h"),
        (timedelta(0), "0s"),
    ],
)
def test_a_maximum_age_is_shown_as_it_is_given(value, text):
    assert format_duration(value) == text
    assert parse_duration(text) == value


_VERIFY_512 = "https://verifier.example" + "/" + "/".join(["s" * 60] * 7) + "/" + "s" * 60
"""A verify URL of the largest length (8 path segments, the most there may be)."""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"code_prefix": "https://zj.example/hc/v1"}, Reason.ERR_IDENTIFIER),  # no final '/'
        ({"code_prefix": "ftp://zj.example/"}, Reason.ERR_IDENTIFIER),
        ({"verify_url": "https://zj.example/api verify"}, Reason.ERR_IDENTIFIER),
        ({"verify_url": _VERIFY_512 + "s"}, Reason.ERR_TOO_LARGE),
        ({"client_id": ""}, Reason.ERR_IDENTIFIER),
        ({"client_id": "hub\n"}, Reason.ERR_IDENTIFIER),
        ({"client_secret": b"s" * 31}, Reason.ERR_KEY_WEAK),
        ({"client_secret": b"s" * 257}, Reason.ERR_TOO_LARGE),
    ],
)
def test_the_registry_and_a_replica_refuse_the_same_online_endpoints(change, reason):
    """One check: an endpoint the registry takes is one its replicas take, and the reverse; the
    hub can never hold an endpoint that would make every replica refuse its secrets whole."""
    zhejiang = _profile("zhejiang")
    state = TrustState()
    state.add_region(Region(RegionCode("330000"), "浙江"))
    state.add_profile(zhejiang)

    def issuer(online: OnlineEndpoint) -> Issuer:
        return Issuer(ZHEJIANG, RegionCode("330000"), "浙江", ProfileId("zhejiang"), 1, online)

    def secrets(online: OnlineEndpoint) -> ReplicaSecrets:
        entry = IssuerSecrets(ZHEJIANG, None, online)
        return ReplicaSecrets(1, b"a" * 32, b"b" * 32, MappingProxyType({ZHEJIANG: entry}))

    bad = dataclasses.replace(ONLINE, **change)
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_issuer(issuer(bad))
    assert refused.value.reason is reason
    assert ZHEJIANG not in state.snapshot().issuers
    with pytest.raises(ConfigurationInvalid, match="zhejiang's online endpoint") as too:
        check(secrets(bad))
    assert str(refused.value) in str(too.value)

    largest = dataclasses.replace(ONLINE, verify_url=_VERIFY_512, client_secret=b"s" * 256)
    assert len(largest.verify_url) == 512
    check(secrets(largest))
    state.add_issuer(issuer(largest))
    assert state.snapshot().issuers[ZHEJIANG].online == largest
