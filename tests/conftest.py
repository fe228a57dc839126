"""Shared test fixtures: paths, clocks, and a small trust world built from real components."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gateway.codecs import jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.identity import IdentityKeys, resident_id_check_char
from gateway.limits import Limits
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.profiles import Profile, load_profile
from gateway.registry import Issuer, IssuerKey, TrustSnapshot, TrustState
from gateway.registry.model import Region

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE = Path(os.environ.get("HUREN_CONFORMANCE", REPO.parent / "shared" / "conformance"))

settings.register_profile(
    "huren", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# `make unit`: the quick local loop, a tenth of the examples (CI keeps the full run).
settings.register_profile(
    "fast", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "huren"))


def examples(count: int) -> int:
    """``count`` examples for a property that wants more than the profile's default, scaled
    down with the profile (``make unit``)."""
    current = settings.default
    scale = current.max_examples if current is not None else 200
    return max(1, count * scale // 200)


NOW = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)  # 10:00 in Hangzhou
SUBJECT_SECRET = bytes(range(32))
LINK_KEY = bytes(range(32, 64))


def conformance(*parts: str) -> Path:
    """A path under ../shared/conformance; skips the test with a clear message if it is absent."""
    path = CONFORMANCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"conformance data not found at {path} (set HUREN_CONFORMANCE)")
    return path


def resident_id(district: str = "330106", born: str = "19900307", seq: str = "122") -> str:
    first17 = district + born + seq
    return first17 + resident_id_check_char(first17)


HANGZHOU_PROFILE = (REPO / "regions" / "hangzhou" / "profile.toml").read_text("utf-8")


def add_issuer(state: TrustState, issuer: Issuer) -> None:
    """``state.add_issuer``, creating the issuer's region first if the state lacks it."""
    if issuer.region not in state.snapshot().regions:
        state.add_region(Region(issuer.region, f"region {issuer.region}"))
    state.add_issuer(issuer)


@dataclass
class World:
    """A trust snapshot with the Hangzhou profile, one issuer and one ES256 key, plus the
    private key so that tests can mint codes exactly as the region does."""

    key: PrivateKey
    kid: KeyId
    profile: Profile
    snapshot: TrustSnapshot
    identities: IdentityKeys
    limits: Limits

    def payload(self, **overrides: object) -> dict[str, object]:
        base: dict[str, object] = {
            "iss": "hangzhou",
            "iat": int(NOW.timestamp()) - 600,
            "exp": int(NOW.timestamp()) + 3600,
            "hc": "绿码",
            "idn": resident_id(),
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def code(
        self,
        *,
        header: dict[str, object] | None = None,
        key: PrivateKey | None = None,
        **claims: object,
    ) -> str:
        signer = key or self.key
        head: dict[str, object] = {"alg": signer.algorithm.value, "kid": self.kid, "typ": "JWT"}
        if header is not None:
            head = header
        return jws.sign(head, strictjson.dumps(self.payload(**claims)), signer)


def make_world(
    algorithm: Algorithm = Algorithm.ES256,
    *,
    key: PrivateKey | None = None,
    issuer_key: IssuerKey | None = None,
) -> World:
    private = key or PrivateKey.generate(algorithm)
    kid = KeyId("hangzhou-test-1")
    profile = load_profile(HANGZHOU_PROFILE)
    state = TrustState()
    state.add_profile(profile)
    add_issuer(
        state,
        Issuer(IssuerId("hangzhou"), RegionCode("330100"), "杭州健康码", ProfileId("hangzhou"), 1),
    )
    state.add_key(issuer_key or IssuerKey(IssuerId("hangzhou"), kid, private.public_key()))
    identities = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
    return World(private, kid, profile, state.snapshot(), identities, Limits())


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()


ONE_HOUR = timedelta(hours=1)
