"""The dry run's core (``huren profile test``): the real pipeline over a one-issuer snapshot, what
it assumes and says it assumed, and what it refuses before any code."""

from __future__ import annotations

import pytest

from gateway.crypto import Algorithm, PrivateKey
from gateway.dryrun import NO_REGION, DryRun
from gateway.errors import ConfigurationInvalid
from gateway.model import KeyId, Reason, Status
from gateway.profiles import load_profile
from gateway.registry.keyfiles import KeyEntry
from gateway.trace import Step
from tests.conftest import HANGZHOU_PROFILE, NOW, REPO, World, resident_id


def _dry_run(world: World, text: str = HANGZHOU_PROFILE, **options: object) -> DryRun:
    keys = [KeyEntry(world.kid, world.key.public_key())]
    return DryRun(load_profile(text), text, keys, **options)  # type: ignore[arg-type]


def test_a_code_is_verified_by_the_real_pipeline_and_the_assumptions_are_said(world):
    trial = _dry_run(world).run(world.code(), now=NOW, identities=world.identities)
    assert trial.verdict.status is Status.VALID
    assert [s.step for s in trial.steps] == list(Step)
    assert trial.assumed == (
        "issuer 'hangzhou': as the code names it, unauthenticated (--issuer checks the name)",
        f"region {NO_REGION}: none given (--region names one)",
    )
    assert trial.verdict.code is not None
    assert (trial.verdict.code.issuer, trial.verdict.code.region) == ("hangzhou", NO_REGION)


def test_a_named_issuer_and_region_are_checked_not_assumed(world):
    dry_run = _dry_run(world, issuer="xihu", region="330106")
    trial = dry_run.run(world.code(), now=NOW, identities=world.identities)
    assert trial.assumed == ()
    assert trial.verdict.reason is Reason.ERR_ISSUER_UNKNOWN
    assert trial.steps[-1].step is Step.ISSUER
    named = _dry_run(world, issuer="hangzhou", region="330106")
    valid = named.run(world.code(), now=NOW, identities=world.identities)
    assert valid.verdict.status is Status.VALID
    assert valid.verdict.code is not None
    assert valid.verdict.code.region == "330106"


def test_an_issuer_named_by_a_url_is_tried_under_the_profiles_id(world):
    """SMART Health Cards style: codes call their issuer by a URL, which is no issuer id."""
    url = "https://issuer.example/hc"
    trial = _dry_run(world).run(world.code(iss=url), now=NOW, identities=world.identities)
    assert trial.verdict.status is Status.VALID
    assert trial.verdict.provenance.issuer == "hangzhou"  # the profile's id
    assert trial.assumed[0].startswith(f"issuer {url!r}: as the code names it")


def test_a_region_the_code_names_is_assumed_where_the_profile_reads_one(world):
    text = HANGZHOU_PROFILE.replace('issuer = "iss"', 'issuer = "iss"\nissuer_region = "rg"', 1)
    assumed = _dry_run(world, text).run(
        world.code(rg="330100"), now=NOW, identities=world.identities
    )
    assert assumed.verdict.status is Status.VALID
    assert assumed.assumed[1] == (
        "region 330100: as the code names it, unauthenticated (--region checks it)"
    )
    checked = _dry_run(world, text, region="110000").run(
        world.code(rg="330100"), now=NOW, identities=world.identities
    )
    assert checked.verdict.reason is Reason.ERR_ISSUER_MISMATCH
    assert checked.steps[-1].step is Step.TRANSLATION


@pytest.mark.parametrize(
    ("profile", "options", "reason", "message"),
    [
        (
            "regions/zhejiang/profile.toml",
            {},
            Reason.ERR_PROFILE,
            "profile zhejiang@1 is an online profile: its codes are verified by asking their "
            "issuer, which a dry run cannot do",
        ),
        (
            "regions/beijing/profile.toml",
            {},
            Reason.ERR_PROFILE,
            "a dry run needs the issuer's pseudonym key to open them (--pseudonym-key-file)",
        ),
        (
            "gateway/profiles/formats/smart-health-card.toml",
            {},
            Reason.ERR_ALG_NOT_ALLOWED,
            "this key is EdDSA",
        ),
        ("regions/hangzhou/profile.toml", {"region": "33"}, Reason.ERR_IDENTIFIER, "'33'"),
        (
            "regions/hangzhou/profile.toml",
            {"issuer": "名字"},
            Reason.ERR_IDENTIFIER,
            "--issuer must be 1-256 printable ASCII characters",
        ),
    ],
    ids=["online", "pseudonym-without-key", "algorithm-not-allowed", "bad-region", "bad-issuer"],
)
def test_what_cannot_be_tried_is_refused_before_any_code(profile, options, reason, message):
    text = (REPO / profile).read_text("utf-8")
    key = PrivateKey.generate(Algorithm.EDDSA)
    with pytest.raises(ConfigurationInvalid) as refused:
        DryRun(load_profile(text), text, [KeyEntry(KeyId("k1"), key.public_key())], **options)
    assert refused.value.reason is reason
    assert message in str(refused.value)


def test_the_trace_shows_no_identity_number(world):
    number = resident_id()
    trial = _dry_run(world).run(world.code(idn=number), now=NOW, identities=world.identities)
    assert trial.verdict.status is Status.VALID
    assert number not in repr(trial)
