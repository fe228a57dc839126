"""The precedence-policy language: what it loads into, what it refuses (with a message naming the
key), and a property over generated policies (no reading ever becomes GREEN, and nothing is read
as less severe unless the policy says ``unsafe = true``)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigurationInvalid
from gateway.model import Colour, IssuerId, Reason, RegionCode, region_contains
from gateway.policy import (
    NATIONAL,
    RANK,
    Freshness,
    Origins,
    PerOrigin,
    Policy,
    PolicyError,
    Prefer,
    Requirements,
    Strategy,
    load_policy,
)
from gateway.policy.loader import MAX_ENTRIES, MAX_SOURCE_BYTES

GREEN, GREY, YELLOW, RED = Colour.GREEN, Colour.GREY, Colour.YELLOW, Colour.RED

FULL = """
[policy]
id = "shanghai-2022"
version = 7
destination = "310000"
description = "Shanghai, spring 2022"
unsafe = true

[combine]
strategy = "jurisdiction"
prefer = "general"

[trust]
regions = ["330000", "310000", "820000"]
issuers = ["national-hub"]
exclude_regions = ["330300"]
exclude_issuers = ["hubei"]

[freshness]
max_age = "24h"
stale = "YELLOW"
[freshness.regions]
"820000" = "6h"
"330000" = "2d"
"330100" = "12h"
[freshness.issuers]
zhejiang = "90m"

[severity.regions."420000"]
YELLOW = "RED"
GREY = "YELLOW"
[severity.regions."420100"]
GREY = "RED"
[severity.issuers.hubei]
RED = "YELLOW"
YELLOW = "YELLOW"

[require]
own_region = true
issuers = ["national-hub"]
"""

MINIMAL = """
[policy]
id = "minimal"
version = 1
destination = "330000"
"""

NATIONAL_MINIMAL = MINIMAL.replace('"330000"', '"national"')


def _edit(old: str, new: str, source: str = MINIMAL) -> str:
    assert old in source, old
    return source.replace(old, new, 1)


def _plus(extra: str, source: str = MINIMAL) -> str:
    return source + extra


def _list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _codes(n: int) -> list[str]:
    """``n`` distinct, well-formed county codes of Zhejiang (330001, 330002, ...)."""
    return [f"33{i:04d}" for i in range(1, n + 1)]


def _ids(n: int) -> list[str]:
    return [f"issuer-{i}" for i in range(n)]


def _table_lines(keys: list[str], value: str) -> str:
    return "".join(f'"{k}" = {value}\n' for k in keys)


def _full() -> Policy:
    return load_policy(FULL)


# ------------------------------------------------------------------------------ the full policy


def test_a_policy_using_every_block_loads_into_frozen_objects():
    policy = _full()
    assert (policy.id, policy.version, policy.label) == ("shanghai-2022", 7, "shanghai-2022@7")
    assert policy.destination == "310000"
    assert policy.key == "310000"
    assert policy.description == "Shanghai, spring 2022"
    assert policy.unsafe is True
    assert policy.source_sha256 == hashlib.sha256(FULL.encode("utf-8")).hexdigest()
    assert policy.strategy is Strategy.JURISDICTION
    assert policy.prefer is Prefer.GENERAL
    assert policy.recognise == Origins(
        everywhere=False,
        regions=(RegionCode("330000"), RegionCode("310000"), RegionCode("820000")),
        issuers=frozenset({IssuerId("national-hub")}),
    )
    assert policy.exclude == Origins(
        everywhere=False,
        regions=(RegionCode("330300"),),
        issuers=frozenset({IssuerId("hubei")}),
    )
    assert policy.freshness.stale is YELLOW
    assert policy.freshness.max_age.default == timedelta(hours=24)
    assert dict(policy.freshness.max_age.regions) == {
        "820000": timedelta(hours=6),
        "330000": timedelta(days=2),
        "330100": timedelta(hours=12),
    }
    assert dict(policy.freshness.max_age.issuers) == {"zhejiang": timedelta(minutes=90)}
    assert policy.severity.default is None
    assert {k: dict(v) for k, v in policy.severity.regions.items()} == {
        "420000": {YELLOW: RED, GREY: YELLOW},
        "420100": {GREY: RED},
    }
    # YELLOW = "YELLOW" is an identity reading: accepted, and dropped.
    assert {k: dict(v) for k, v in policy.severity.issuers.items()} == {"hubei": {RED: YELLOW}}
    assert policy.require == Requirements(own_region=True, issuers=(IssuerId("national-hub"),))
    assert policy.require.code_stacking is True

    flags = policy.flags()
    assert [flag.split(":")[0] for flag in flags] == ["code-stacking", "code-stacking", "unsafe"]
    assert "own region" in flags[0]
    assert "national-hub" in flags[1]

    for frozen, attribute in [
        (policy, "version"),
        (policy.recognise, "everywhere"),
        (policy.freshness, "stale"),
        (policy.severity, "default"),
        (policy.require, "own_region"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(frozen, attribute, None)


@pytest.mark.parametrize(
    ("origins", "region", "issuer", "expected"),
    [
        pytest.param(
            "recognise", "330106", "hangzhou", "region 330000", id="city-in-listed-province"
        ),
        pytest.param("recognise", "330000", "zhejiang", "region 330000", id="the-province-itself"),
        pytest.param(
            "recognise", "310104", "shanghai", "region 310000", id="district-of-destination"
        ),
        pytest.param("recognise", "820000", "macau", "region 820000", id="macau"),
        pytest.param("recognise", "320100", "nanjing", None, id="city-outside"),
        pytest.param("recognise", "340000", "anhui", None, id="neighbouring-province-outside"),
        pytest.param(
            "recognise",
            "420100",
            "national-hub",
            "issuer national-hub",
            id="listed-issuer-anywhere",
        ),
        pytest.param(
            "recognise", "330106", "national-hub", "issuer national-hub", id="issuer-beats-region"
        ),
        pytest.param("exclude", "330302", "wenzhou", "region 330300", id="excluded-city-county"),
        pytest.param("exclude", "330106", "hangzhou", None, id="other-city-not-excluded"),
        pytest.param("exclude", "110000", "hubei", "issuer hubei", id="excluded-issuer-anywhere"),
    ],
)
def test_origins_match_says_why(origins, region, issuer, expected):
    policy = _full()
    assert getattr(policy, origins).match(RegionCode(region), IssuerId(issuer)) == expected


@pytest.mark.parametrize(
    ("region", "issuer", "expected", "source"),
    [
        pytest.param(
            "330106", "zhejiang", timedelta(minutes=90), "issuer zhejiang", id="issuer-beats-region"
        ),
        pytest.param(
            "330106", "hangzhou", timedelta(hours=12), "region 330100", id="city-beats-province"
        ),
        pytest.param(
            "330100", "hangzhou", timedelta(hours=12), "region 330100", id="the-city-itself"
        ),
        pytest.param(
            "330302", "wenzhou", timedelta(days=2), "region 330000", id="province-covers-other-city"
        ),
        pytest.param(
            "331000", "taizhou", timedelta(days=2), "region 330000", id="3310-is-not-in-3301"
        ),
        pytest.param("820000", "macau", timedelta(hours=6), "region 820000", id="region-entry"),
        pytest.param("110105", "beijing", timedelta(hours=24), "default", id="default-last"),
    ],
)
def test_freshness_lookup_precedence(region, issuer, expected, source):
    assert _full().freshness.max_age.lookup(RegionCode(region), IssuerId(issuer)) == (
        expected,
        source,
    )


@pytest.mark.parametrize(
    ("region", "issuer", "expected", "source"),
    [
        pytest.param("420102", "hubei", {RED: YELLOW}, "issuer hubei", id="issuer-beats-region"),
        pytest.param("420102", "wuhan", {GREY: RED}, "region 420100", id="city-beats-province"),
        pytest.param(
            "420500", "yichang", {YELLOW: RED, GREY: YELLOW}, "region 420000", id="province"
        ),
        pytest.param("110105", "beijing", None, "default", id="no-entry-no-default"),
    ],
)
def test_severity_lookup_precedence(region, issuer, expected, source):
    mapping, where = _full().severity.lookup(RegionCode(region), IssuerId(issuer))
    assert (None if mapping is None else dict(mapping), where) == (expected, source)


def test_the_same_text_loads_into_equal_objects():
    assert load_policy(FULL) == load_policy(FULL)
    assert load_policy(FULL) != load_policy(FULL + "\n# edited\n")
    assert load_policy(FULL + "\n").source_sha256 != load_policy(FULL).source_sha256


# ------------------------------------------------------------------------------ the defaults


@pytest.mark.parametrize(
    ("source", "destination", "key"),
    [
        pytest.param(MINIMAL, "330000", "330000", id="region"),
        pytest.param(NATIONAL_MINIMAL, None, NATIONAL, id="national"),
    ],
)
def test_a_minimal_policy_gets_the_defaults(source, destination, key):
    policy = load_policy(source)
    assert policy.destination == destination
    assert policy.key == key
    assert policy.label == "minimal@1"
    assert policy.description == ""
    assert policy.strategy is Strategy.MOST_SEVERE
    assert policy.prefer is Prefer.SPECIFIC
    assert policy.recognise == Origins(everywhere=True)
    assert policy.recognise.match(RegionCode("650100"), IssuerId("xinjiang")) == "every region"
    assert policy.exclude == Origins()
    assert policy.exclude.empty
    assert policy.exclude.match(RegionCode("650100"), IssuerId("xinjiang")) is None
    assert policy.freshness == Freshness()
    assert policy.freshness.max_age.empty
    assert policy.freshness.stale is None
    assert policy.freshness.max_age.lookup(RegionCode("330106"), IssuerId("x")) == (
        None,
        "default",
    )
    assert policy.severity == PerOrigin()
    assert policy.severity.empty
    assert policy.require == Requirements()
    assert not policy.require.code_stacking
    assert policy.unsafe is False
    assert policy.flags() == []
    assert policy.source_sha256 == hashlib.sha256(source.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ accepted variants


def _severity_of(policy: Policy, region: str = "420000") -> dict[Colour, Colour]:
    return dict(policy.severity.regions[RegionCode(region)])


ACCEPTED: list[tuple[str, str, Any]] = [
    ("combine-empty", _plus("[combine]\n"), lambda p: p.strategy is Strategy.MOST_SEVERE),
    (
        "jurisdiction-default-prefer",
        _plus('[combine]\nstrategy = "jurisdiction"\n'),
        lambda p: (p.strategy, p.prefer) == (Strategy.JURISDICTION, Prefer.SPECIFIC),
    ),
    (
        "jurisdiction-specific",
        _plus('[combine]\nstrategy = "jurisdiction"\nprefer = "specific"\n'),
        lambda p: p.prefer is Prefer.SPECIFIC,
    ),
    (
        "destination-first",
        _plus('[combine]\nstrategy = "destination_first"\n'),
        lambda p: p.strategy is Strategy.DESTINATION_FIRST,
    ),
    (
        "freshest",
        _plus('[combine]\nstrategy = "freshest"\n'),
        lambda p: p.strategy is Strategy.FRESHEST,
    ),
    (
        "everywhere-plus-issuers",
        _plus('[trust]\nregions = ["*"]\nissuers = ["zhejiang"]\n'),
        lambda p: p.recognise == Origins(True, (), frozenset({IssuerId("zhejiang")})),
    ),
    (
        "issuers-only",
        _plus('[trust]\nissuers = ["zhejiang"]\n'),
        lambda p: p.recognise == Origins(False, (), frozenset({IssuerId("zhejiang")})),
    ),
    (
        "max-entries",
        _plus(f"[trust]\nregions = {_list(_codes(MAX_ENTRIES))}\n"),
        lambda p: len(p.recognise.regions) == MAX_ENTRIES,
    ),
    (
        "max-freshness-entries",
        _plus("[freshness.regions]\n" + _table_lines(_codes(MAX_ENTRIES), '"1h"')),
        lambda p: len(p.freshness.max_age.regions) == MAX_ENTRIES,
    ),
    (
        "stale-ignore",
        _plus('[freshness]\nmax_age = "1h"\nstale = "ignore"\n'),
        lambda p: p.freshness.stale is None,
    ),
    (
        "stale-grey",
        _plus('[freshness]\nmax_age = "1h"\nstale = "GREY"\n'),
        lambda p: p.freshness.stale is GREY,
    ),
    (
        "stale-red",
        _plus('[freshness]\nmax_age = "1h"\nstale = "RED"\n'),
        lambda p: p.freshness.stale is RED,
    ),
    (
        "seconds",
        _plus('[freshness]\nmax_age = "30s"\n'),
        lambda p: p.freshness.max_age.default == timedelta(seconds=30),
    ),
    (
        "longest-duration",
        _plus('[freshness]\nmax_age = "999999d"\n'),
        lambda p: p.freshness.max_age.default == timedelta(days=999_999),
    ),
    (
        "issuer-entry-only",
        _plus('[freshness.issuers]\nzhejiang = "12h"\n'),
        lambda p: (
            p.freshness.max_age.default is None
            and dict(p.freshness.max_age.issuers) == {"zhejiang": timedelta(hours=12)}
        ),
    ),
    (
        "inline-severity",
        _plus('[severity.regions]\n"420000" = { YELLOW = "RED" }\n'),
        lambda p: _severity_of(p) == {YELLOW: RED},
    ),
    (
        "green-read-as-grey",
        _plus('[severity.regions."420000"]\nGREEN = "GREY"\n'),
        lambda p: _severity_of(p) == {GREEN: GREY},
    ),
    (
        "identity-dropped",
        _plus('[severity.regions."420000"]\nYELLOW = "YELLOW"\nGREY = "RED"\n'),
        lambda p: _severity_of(p) == {GREY: RED},
    ),
    (
        "green-identity-dropped",
        _plus('[severity.regions."420000"]\nGREEN = "GREEN"\n'),
        lambda p: _severity_of(p) == {},
    ),
    (
        "only-identities-leave-an-empty-entry",
        _plus('[severity.regions."420000"]\nYELLOW = "YELLOW"\nRED = "RED"\nGREY = "GREY"\n'),
        lambda p: (
            _severity_of(p) == {}
            and p.severity.lookup(RegionCode("420100"), IssuerId("wuhan")) == ({}, "region 420000")
        ),
    ),
    (
        "identity-in-a-city-shadows-the-province",
        _plus(
            '[severity.regions."420000"]\nYELLOW = "RED"\n[severity.regions."420100"]\nYELLOW = "YELLOW"\n'
        ),
        lambda p: (
            p.severity.lookup(RegionCode("420102"), IssuerId("wuhan")) == ({}, "region 420100")
            and p.severity.lookup(RegionCode("420500"), IssuerId("yichang"))
            == ({YELLOW: RED}, "region 420000")
        ),
    ),
    (
        "unsafe-less-severe",
        _plus(
            '[severity.regions."420000"]\nRED = "YELLOW"\nYELLOW = "GREY"\n',
            _edit("version = 1", "version = 1\nunsafe = true"),
        ),
        lambda p: (
            _severity_of(p) == {RED: YELLOW, YELLOW: GREY} and p.flags()[-1].startswith("unsafe")
        ),
    ),
    (
        "unsafe-false-explicit",
        _edit("version = 1", "version = 1\nunsafe = false"),
        lambda p: p.unsafe is False and p.flags() == [],
    ),
    (
        "require-issuers-only",
        _plus('[require]\nissuers = ["national-hub", "zhejiang"]\n', NATIONAL_MINIMAL),
        lambda p: (
            p.require == Requirements(False, (IssuerId("national-hub"), IssuerId("zhejiang")))
            and len(p.flags()) == 2
        ),
    ),
    (
        "require-own-region-false-national",
        _plus("[require]\nown_region = false\n", NATIONAL_MINIMAL),
        lambda p: p.require == Requirements() and p.flags() == [],
    ),
    (
        "exactly-the-size-limit",
        MINIMAL + "#" * (MAX_SOURCE_BYTES - len(MINIMAL.encode()) - 1) + "\n",
        lambda p: p.label == "minimal@1",
    ),
    (
        "largest-version",
        _edit("version = 1", "version = 1_000_000"),
        lambda p: p.version == 1_000_000,
    ),
    ("longest-id", _edit('"minimal"', '"' + "a" * 64 + '"'), lambda p: p.id == "a" * 64),
    ("dotted-id", _edit('"minimal"', '"sh.2022_v-2"'), lambda p: p.id == "sh.2022_v-2"),
    ("trust-empty-table", _plus("[trust]\n"), lambda p: p.recognise == Origins(everywhere=True)),
    (
        "trust-only-exclusions-recognise-everywhere-else",
        _plus('[trust]\nexclude_regions = ["420000"]\n'),
        lambda p: p.recognise.everywhere and p.exclude.regions == ("420000",),
    ),
]


@pytest.mark.parametrize(("source", "check"), [pytest.param(s, c, id=i) for i, s, c in ACCEPTED])
def test_accepted_variants(source, check):
    assert check(load_policy(source))


# ------------------------------------------------------------------------------ refusals

UNSAFE = _edit("version = 1", "version = 1\nunsafe = true")

REFUSED: list[tuple[str, str, str]] = [
    # the document
    ("toml-syntax", "[policy\nid = 1\n", "policy is not valid TOML"),
    (
        "toml-duplicate-key",
        _edit('id = "minimal"', 'id = "minimal"\nid = "other"'),
        "policy is not valid TOML",
    ),
    ("toml-duplicate-table", _plus("[combine]\n[combine]\n"), "policy is not valid TOML"),
    (
        "too-large",
        MINIMAL + "#" * MAX_SOURCE_BYTES + "\n",
        f"policy is larger than {MAX_SOURCE_BYTES} bytes",
    ),
    (
        "too-large-in-utf8",
        MINIMAL + "# " + "码" * (MAX_SOURCE_BYTES // 3) + "\n",
        f"policy is larger than {MAX_SOURCE_BYTES} bytes",
    ),
    ("empty", "", "missing policy"),
    ("missing-policy", '[combine]\nstrategy = "freshest"\n', "missing policy"),
    ("policy-not-table", 'policy = "shanghai"\n', "policy must be a table"),
    ("unknown-top-level-table", _plus("[policyy]\nid = 1\n"), "unknown key policyy"),
    ("unknown-top-level-key", 'colour = "GREEN"\n' + MINIMAL, "unknown key colour"),
    ("combine-not-table", 'combine = "freshest"\n' + MINIMAL, "combine must be a table"),
    # [policy]
    ("unknown-key-policy", _plus('owner = "me"\n'), "unknown key policy.owner"),
    ("missing-id", _edit('id = "minimal"\n', ""), "missing policy.id"),
    ("missing-version", _edit("version = 1\n", ""), "missing policy.version"),
    ("missing-destination", _edit('destination = "330000"\n', ""), "missing policy.destination"),
    ("id-upper-case", _edit('"minimal"', '"Minimal"'), "policy.id"),
    ("id-space", _edit('"minimal"', '"mini mal"'), "policy.id"),
    ("id-leading-dash", _edit('"minimal"', '"-minimal"'), "policy.id"),
    ("id-trailing-dot", _edit('"minimal"', '"minimal."'), "policy.id"),
    ("id-empty", _edit('"minimal"', '""'), "policy.id"),
    ("id-too-long", _edit('"minimal"', '"' + "a" * 65 + '"'), "policy.id"),
    ("id-not-text", _edit('"minimal"', "7"), "policy.id"),
    ("version-zero", _edit("version = 1", "version = 0"), "policy.version"),
    ("version-negative", _edit("version = 1", "version = -1"), "policy.version"),
    ("version-too-large", _edit("version = 1", "version = 1_000_001"), "policy.version"),
    ("version-text", _edit("version = 1", 'version = "1"'), "policy.version"),
    ("version-bool", _edit("version = 1", "version = true"), "policy.version"),
    ("version-float", _edit("version = 1", "version = 1.0"), "policy.version"),
    ("destination-unknown-province", _edit('"330000"', '"999999"'), "policy.destination"),
    ("destination-letters", _edit('"330000"', '"abc"'), "policy.destination"),
    ("destination-short", _edit('"330000"', '"33"'), "policy.destination"),
    ("destination-seven-digits", _edit('"330000"', '"3300000"'), "policy.destination"),
    ("destination-capitalised-national", _edit('"330000"', '"National"'), "policy.destination"),
    ("destination-empty", _edit('"330000"', '""'), "policy.destination"),
    ("destination-integer", _edit('"330000"', "330000"), "policy.destination"),
    ("description-empty", _plus('description = ""\n'), "policy.description"),
    ("description-too-long", _plus('description = "' + "x" * 513 + '"\n'), "policy.description"),
    ("unsafe-text", _plus('unsafe = "yes"\n'), "policy.unsafe must be true or false"),
    ("unsafe-integer", _plus("unsafe = 1\n"), "policy.unsafe must be true or false"),
    # [combine]
    ("unknown-key-combine", _plus('[combine]\norder = "specific"\n'), "unknown key combine.order"),
    (
        "unknown-strategy",
        _plus('[combine]\nstrategy = "wildest"\n'),
        "combine.strategy is 'wildest'",
    ),
    ("strategy-upper-case", _plus('[combine]\nstrategy = "MOST_SEVERE"\n'), "combine.strategy"),
    ("strategy-not-text", _plus("[combine]\nstrategy = 1\n"), "combine.strategy"),
    (
        "prefer-without-strategy",
        _plus('[combine]\nprefer = "general"\n'),
        "combine.prefer is only used with",
    ),
    (
        "prefer-with-freshest",
        _plus('[combine]\nstrategy = "freshest"\nprefer = "specific"\n'),
        "combine.prefer is only used with strategy 'jurisdiction'",
    ),
    (
        "bad-prefer",
        _plus('[combine]\nstrategy = "jurisdiction"\nprefer = "nearest"\n'),
        "combine.prefer is 'nearest'",
    ),
    # [trust]
    (
        "unknown-key-trust",
        _plus('[trust]\nregions = ["*"]\nregion = ["330000"]\n'),
        "unknown key trust.region",
    ),
    (
        "star-and-region",
        _plus('[trust]\nregions = ["*", "330000"]\n'),
        "trust.regions: '*' already covers",
    ),
    (
        "region-and-star",
        _plus('[trust]\nregions = ["330000", "*"]\n'),
        "trust.regions: '*' already covers",
    ),
    (
        "exclude-star",
        _plus('[trust]\nregions = ["*"]\nexclude_regions = ["*"]\n'),
        "trust.exclude_regions cannot be '*'",
    ),
    (
        "trust-region-unknown-province",
        _plus('[trust]\nregions = ["999999"]\n'),
        "trust.regions: not a GB/T 2260",
    ),
    (
        "trust-region-letters",
        _plus('[trust]\nregions = ["abc"]\n'),
        "trust.regions: not a GB/T 2260",
    ),
    ("trust-region-short", _plus('[trust]\nregions = ["33"]\n'), "trust.regions: not a GB/T 2260"),
    (
        "trust-region-not-list",
        _plus('[trust]\nregions = "330000"\n'),
        "trust.regions must be a list",
    ),
    (
        "trust-region-integers",
        _plus("[trust]\nregions = [330000]\n"),
        "trust.regions must be a list",
    ),
    (
        "trust-region-too-long",
        _plus('[trust]\nregions = ["' + "3" * 17 + '"]\n'),
        "trust.regions must be a list",
    ),
    (
        "exclude-region-malformed",
        _plus('[trust]\nregions = ["*"]\nexclude_regions = ["420000", "4201"]\n'),
        "trust.exclude_regions: not a GB/T 2260",
    ),
    (
        "trust-issuer-upper-case",
        _plus('[trust]\nissuers = ["Zhejiang"]\n'),
        "trust.issuers: 'Zhejiang' is not an issuer id",
    ),
    (
        "trust-issuer-space",
        _plus('[trust]\nissuers = ["zhe jiang"]\n'),
        "trust.issuers: 'zhe jiang' is not an issuer id",
    ),
    ("trust-issuer-empty", _plus('[trust]\nissuers = [""]\n'), "trust.issuers must be a list"),
    (
        "exclude-issuer-upper-case",
        _plus('[trust]\nregions = ["*"]\nexclude_issuers = ["Hubei"]\n'),
        "trust.exclude_issuers: 'Hubei' is not an issuer id",
    ),
    ("trust-recognises-nothing", _plus("[trust]\nregions = []\n"), "trust recognises no origin"),
    ("trust-regions-empty", _plus("[trust]\nregions = []\n"), "trust recognises no origin"),
    (
        "duplicate-region",
        _plus('[trust]\nregions = ["330000", "330000"]\n'),
        "trust.regions lists a value twice",
    ),
    (
        "duplicate-issuer",
        _plus('[trust]\nissuers = ["zhejiang", "zhejiang"]\n'),
        "trust.issuers lists a value twice",
    ),
    (
        "duplicate-exclude-region",
        _plus('[trust]\nregions = ["*"]\nexclude_regions = ["420000", "420000"]\n'),
        "trust.exclude_regions lists a value twice",
    ),
    (
        "duplicate-exclude-issuer",
        _plus('[trust]\nregions = ["*"]\nexclude_issuers = ["hubei", "hubei"]\n'),
        "trust.exclude_issuers lists a value twice",
    ),
    ("duplicate-star", _plus('[trust]\nregions = ["*", "*"]\n'), "trust.regions"),
    (
        "too-many-regions",
        _plus(f"[trust]\nregions = {_list(_codes(MAX_ENTRIES + 1))}\n"),
        f"trust.regions must be a list of at most {MAX_ENTRIES}",
    ),
    (
        "too-many-issuers",
        _plus(f"[trust]\nissuers = {_list(_ids(MAX_ENTRIES + 1))}\n"),
        f"trust.issuers must be a list of at most {MAX_ENTRIES}",
    ),
    (
        "too-many-exclude-regions",
        _plus(f'[trust]\nregions = ["*"]\nexclude_regions = {_list(_codes(MAX_ENTRIES + 1))}\n'),
        "trust.exclude_regions must be a list of at most",
    ),
    (
        "too-many-exclude-issuers",
        _plus(f'[trust]\nregions = ["*"]\nexclude_issuers = {_list(_ids(MAX_ENTRIES + 1))}\n'),
        "trust.exclude_issuers must be a list of at most",
    ),
    # [freshness]
    (
        "unknown-key-freshness",
        _plus('[freshness]\nmaxage = "24h"\n'),
        "unknown key freshness.maxage",
    ),
    (
        "unknown-freshness-subtable",
        _plus('[freshness]\nmax_age = "24h"\n[freshness.region]\n"820000" = "6h"\n'),
        "unknown key freshness.region",
    ),
    ("freshness-empty", _plus("[freshness]\n"), "freshness needs max_age"),
    ("freshness-only-stale", _plus('[freshness]\nstale = "RED"\n'), "freshness needs max_age"),
    (
        "freshness-empty-subtables",
        _plus("[freshness.regions]\n[freshness.issuers]\n"),
        "freshness needs max_age",
    ),
    ("max-age-zero", _plus('[freshness]\nmax_age = "0h"\n'), "freshness.max_age must be positive"),
    (
        "max-age-zero-seconds",
        _plus('[freshness]\nmax_age = "0s"\n'),
        "freshness.max_age must be positive",
    ),
    (
        "max-age-weeks",
        _plus('[freshness]\nmax_age = "1w"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-negative",
        _plus('[freshness]\nmax_age = "-1h"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-fraction",
        _plus('[freshness]\nmax_age = "1.5h"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-space",
        _plus('[freshness]\nmax_age = "24 h"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-upper-case",
        _plus('[freshness]\nmax_age = "24H"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-no-number",
        _plus('[freshness]\nmax_age = "h"\n'),
        "freshness.max_age must be a duration",
    ),
    (
        "max-age-seven-digits",
        _plus('[freshness]\nmax_age = "1000000h"\n'),
        "freshness.max_age must be a duration",
    ),
    ("max-age-empty", _plus('[freshness]\nmax_age = ""\n'), "freshness.max_age must be text"),
    ("max-age-integer", _plus("[freshness]\nmax_age = 5\n"), "freshness.max_age must be text"),
    (
        "region-age-zero",
        _plus('[freshness.regions]\n"820000" = "0h"\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "region-age-weeks",
        _plus('[freshness.regions]\n"820000" = "1w"\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "region-age-empty",
        _plus('[freshness.regions]\n"820000" = ""\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "region-age-integer",
        _plus('[freshness.regions]\n"820000" = 5\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "region-age-negative",
        _plus('[freshness.regions]\n"820000" = "-1h"\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "region-age-table",
        _plus('[freshness.regions."820000"]\nmax_age = "6h"\n'),
        "freshness.regions.820000 must be a positive duration",
    ),
    (
        "issuer-age-zero",
        _plus('[freshness.issuers]\nzhejiang = "0m"\n'),
        "freshness.issuers.zhejiang must be a positive duration",
    ),
    (
        "freshness-region-malformed",
        _plus('[freshness.regions]\n"82" = "6h"\n'),
        "freshness.regions.82: not a GB/T 2260",
    ),
    (
        "freshness-region-unknown-province",
        _plus('[freshness.regions]\n"999999" = "6h"\n'),
        "freshness.regions.999999: not a GB/T 2260",
    ),
    (
        "freshness-issuer-upper-case",
        _plus('[freshness.issuers]\nZhejiang = "12h"\n'),
        "freshness.issuers.Zhejiang: 'Zhejiang' is not an issuer id",
    ),
    (
        "freshness-issuer-space",
        _plus('[freshness.issuers]\n"zhe jiang" = "12h"\n'),
        "freshness.issuers.zhe jiang: 'zhe jiang' is not an issuer id",
    ),
    (
        "freshness-regions-not-table",
        _plus('[freshness]\nregions = ["820000"]\n'),
        "freshness.regions must be a table",
    ),
    (
        "too-many-freshness-regions",
        _plus("[freshness.regions]\n" + _table_lines(_codes(MAX_ENTRIES + 1), '"1h"')),
        f"freshness.regions has more than {MAX_ENTRIES} entries",
    ),
    (
        "too-many-freshness-issuers",
        _plus("[freshness.issuers]\n" + _table_lines(_ids(MAX_ENTRIES + 1), '"1h"')),
        f"freshness.issuers has more than {MAX_ENTRIES} entries",
    ),
    (
        "stale-green",
        _plus('[freshness]\nmax_age = "1h"\nstale = "GREEN"\n'),
        "freshness.stale is 'GREEN'",
    ),
    (
        "stale-purple",
        _plus('[freshness]\nmax_age = "1h"\nstale = "purple"\n'),
        "freshness.stale is 'purple'",
    ),
    (
        "stale-lower-case",
        _plus('[freshness]\nmax_age = "1h"\nstale = "red"\n'),
        "freshness.stale is 'red'",
    ),
    (
        "stale-not-text",
        _plus('[freshness]\nmax_age = "1h"\nstale = true\n'),
        "freshness.stale must be text",
    ),
    # [severity]
    ("severity-empty", _plus("[severity]\n"), "severity needs entries"),
    ("severity-empty-regions", _plus("[severity.regions]\n"), "severity needs entries"),
    (
        "unknown-key-severity",
        _plus('[severity.default]\nYELLOW = "RED"\n'),
        "unknown key severity.default",
    ),
    (
        "severity-region-malformed",
        _plus('[severity.regions."42"]\nYELLOW = "RED"\n'),
        "severity.regions.42: not a GB/T 2260",
    ),
    (
        "severity-issuer-upper-case",
        _plus('[severity.issuers.Hubei]\nYELLOW = "RED"\n'),
        "severity.issuers.Hubei: 'Hubei' is not an issuer id",
    ),
    (
        "severity-issuer-space",
        _plus('[severity.issuers."hu bei"]\nYELLOW = "RED"\n'),
        "severity.issuers.hu bei: 'hu bei' is not an issuer id",
    ),
    (
        "yellow-as-green",
        _plus('[severity.regions."420000"]\nYELLOW = "GREEN"\n'),
        "severity.regions.420000.YELLOW: nothing may be read as GREEN",
    ),
    (
        "red-as-green",
        _plus('[severity.issuers.hubei]\nRED = "GREEN"\n'),
        "severity.issuers.hubei.RED: nothing may be read as GREEN",
    ),
    (
        "grey-as-green",
        _plus('[severity.regions."420000"]\nGREY = "GREEN"\n'),
        "severity.regions.420000.GREY: nothing may be read as GREEN",
    ),
    (
        "yellow-as-green-unsafe",
        _plus('[severity.regions."420000"]\nYELLOW = "GREEN"\n', UNSAFE),
        "severity.regions.420000.YELLOW: nothing may be read as GREEN",
    ),
    (
        "grey-as-green-unsafe",
        _plus('[severity.issuers.hubei]\nGREY = "GREEN"\n', UNSAFE),
        "severity.issuers.hubei.GREY: nothing may be read as GREEN",
    ),
    (
        "red-as-yellow",
        _plus('[severity.regions."420000"]\nRED = "YELLOW"\n'),
        "severity.regions.420000.RED: reading RED as YELLOW is less severe",
    ),
    (
        "red-as-grey",
        _plus('[severity.issuers.hubei]\nRED = "GREY"\n'),
        "severity.issuers.hubei.RED: reading RED as GREY is less severe",
    ),
    (
        "yellow-as-grey",
        _plus('[severity.regions."420000"]\nYELLOW = "GREY"\n'),
        "severity.regions.420000.YELLOW: reading YELLOW as GREY is less severe",
    ),
    (
        "red-as-yellow-unsafe-false",
        _plus(
            '[severity.regions."420000"]\nRED = "YELLOW"\n',
            _edit("version = 1", "version = 1\nunsafe = false"),
        ),
        "only a policy marked unsafe = true",
    ),
    (
        "severity-not-table",
        _plus('[severity.regions]\n"420000" = "RED"\n'),
        "severity.regions.420000 must be a table",
    ),
    (
        "severity-empty-table",
        _plus('[severity.regions."420000"]\n'),
        "severity.regions.420000 must be a table",
    ),
    (
        "severity-unknown-colour",
        _plus('[severity.regions."420000"]\nPURPLE = "RED"\n'),
        "severity.regions.420000.PURPLE: colours are",
    ),
    (
        "severity-lower-case-colour",
        _plus('[severity.regions."420000"]\nyellow = "RED"\n'),
        "severity.regions.420000.yellow: colours are",
    ),
    (
        "severity-unknown-target",
        _plus('[severity.regions."420000"]\nYELLOW = "purple"\n'),
        "severity.regions.420000.YELLOW: colours are",
    ),
    (
        "severity-integer-target",
        _plus('[severity.regions."420000"]\nYELLOW = 3\n'),
        "severity.regions.420000.YELLOW: colours are",
    ),
    (
        "severity-list-target",
        _plus('[severity.regions."420000"]\nYELLOW = ["RED"]\n'),
        "severity.regions.420000.YELLOW: colours are",
    ),
    (
        "severity-table-target",
        _plus('[severity.regions."420000".YELLOW]\ncolour = "RED"\n'),
        "severity.regions.420000.YELLOW: colours are",
    ),
    (
        "too-many-severity-regions",
        _plus("[severity.regions]\n" + _table_lines(_codes(MAX_ENTRIES + 1), '{ YELLOW = "RED" }')),
        f"severity.regions has more than {MAX_ENTRIES} entries",
    ),
    # [require]
    (
        "unknown-key-require",
        _plus('[require]\nregions = ["330000"]\n'),
        "unknown key require.regions",
    ),
    (
        "own-region-national",
        _plus("[require]\nown_region = true\n", NATIONAL_MINIMAL),
        "require.own_region needs a destination region",
    ),
    (
        "own-region-text",
        _plus('[require]\nown_region = "yes"\n'),
        "require.own_region must be true or false",
    ),
    (
        "own-region-integer",
        _plus("[require]\nown_region = 1\n"),
        "require.own_region must be true or false",
    ),
    (
        "require-issuer-upper-case",
        _plus('[require]\nissuers = ["National-Hub"]\n'),
        "require.issuers: 'National-Hub' is not an issuer id",
    ),
    (
        "require-issuer-space",
        _plus('[require]\nissuers = ["national hub"]\n'),
        "require.issuers: 'national hub' is not an issuer id",
    ),
    (
        "require-issuer-duplicate",
        _plus('[require]\nissuers = ["national-hub", "national-hub"]\n'),
        "require.issuers lists a value twice",
    ),
    (
        "require-issuers-not-list",
        _plus('[require]\nissuers = "national-hub"\n'),
        "require.issuers must be a list",
    ),
    (
        "too-many-required-issuers",
        _plus(f"[require]\nissuers = {_list(_ids(MAX_ENTRIES + 1))}\n"),
        f"require.issuers must be a list of at most {MAX_ENTRIES}",
    ),
]


@pytest.mark.parametrize(("source", "message"), [pytest.param(s, m, id=i) for i, s, m in REFUSED])
def test_malformed_policies_are_refused_with_a_message_naming_the_key(source, message):
    with pytest.raises(PolicyError) as refused:
        load_policy(source)
    assert isinstance(refused.value, ConfigurationInvalid)
    assert refused.value.reason is Reason.ERR_POLICY
    assert message in str(refused.value)


def test_refusal_ids_are_unique():
    ids = [case[0] for case in REFUSED] + [case[0] for case in ACCEPTED]
    assert len(ids) == len(set(ids))


def test_a_less_severe_reading_needs_unsafe():
    reading = '[severity.regions."420000"]\nRED = "YELLOW"\n'
    with pytest.raises(PolicyError, match="unsafe = true"):
        load_policy(_plus(reading))
    policy = load_policy(_plus(reading, UNSAFE))
    assert policy.unsafe
    assert _severity_of(policy) == {RED: YELLOW}
    assert policy.severity.lookup(RegionCode("420102"), IssuerId("wuhan")) == (
        {RED: YELLOW},
        "region 420000",
    )
    assert policy.flags() == [
        "unsafe: may read some colours as less severe than their issuers do",
    ]


# ------------------------------------------------------------------------------ closed gaps


def test_a_loaded_policy_cannot_be_changed_afterwards():
    policy = _full()
    with pytest.raises(TypeError):
        policy.severity.regions[RegionCode("420000")][YELLOW] = GREEN  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.severity.issuers[IssuerId("zhejiang")] = {RED: GREEN}  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.freshness.max_age.regions[RegionCode("110000")] = timedelta(days=999)  # type: ignore[index]


def test_text_that_is_not_unicode_is_refused_as_a_policy_error():
    with pytest.raises(PolicyError):
        load_policy(MINIMAL + 'description = "\ud800"\n')


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            _plus(
                '[trust]\nregions = ["*"]\nexclude_issuers = ["national-hub"]\n'
                '[require]\nissuers = ["national-hub"]\n'
            ),
            id="required-issuer-excluded",
        ),
        pytest.param(
            _plus(
                '[trust]\nregions = ["*"]\nexclude_regions = ["330000"]\n'
                "[require]\nown_region = true\n"
            ),
            id="own-region-excluded",
        ),
        pytest.param(
            _plus('[trust]\nregions = ["330100"]\nexclude_regions = ["330000"]\n'),
            id="everything-recognised-is-excluded",
        ),
        pytest.param(
            _plus('[trust]\nregions = ["440000"]\n[require]\nown_region = true\n'),
            id="own-region-not-recognised",
        ),
        pytest.param(
            _plus(
                '[trust]\nregions = ["110000", "330106"]\nexclude_regions = ["330106"]\n'
                "[require]\nown_region = true\n"
            ),
            id="own-region-only-recognised-where-excluded",
        ),
    ],
)
def test_a_policy_that_can_never_be_satisfied_is_refused(source):
    with pytest.raises(PolicyError):
        load_policy(source)


@pytest.mark.parametrize(
    "trust",
    ['regions = ["330100"]', 'regions = ["*"]', 'regions = ["110000"]\nissuers = ["hangzhou"]'],
    ids=["a-city-within", "everywhere", "an-issuer-listed"],
)
def test_an_own_region_requirement_that_some_recognised_origin_can_meet_is_accepted(trust):
    policy = load_policy(_plus(f"[trust]\n{trust}\n[require]\nown_region = true\n"))
    assert policy.require.own_region


# ------------------------------------------------------------------------------ property

REGION_POOL = ["110000", "310000", "330000", "330100", "330106", "420000", "420100", "820000"]
ISSUER_POOL = ["zhejiang", "hangzhou", "hubei", "national-hub", "macau"]
DESTINATIONS = [NATIONAL, "310000", "330000", "330100", "420100"]


def _subset(pool: list[str], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), unique=True, min_size=min_size, max_size=len(pool))


def _origins(everywhere: bool, regions: list[str], issuers: list[str]) -> Origins:
    return Origins(
        everywhere, tuple(RegionCode(r) for r in regions), frozenset(IssuerId(i) for i in issuers)
    )


def _allowed_readings(source: Colour, unsafe: bool) -> list[Colour]:
    """What ``source`` may be read as: never GREEN (unless it is GREEN: the identity), and
    nothing less severe unless unsafe."""
    return [
        target
        for target in Colour
        if (target is not GREEN or source is GREEN) and (unsafe or RANK[target] >= RANK[source])
    ]


@st.composite
def _readings(draw: st.DrawFn, unsafe: bool) -> dict[Colour, Colour]:
    sources = draw(st.lists(st.sampled_from(list(Colour)), unique=True, min_size=1))
    return {s: draw(st.sampled_from(_allowed_readings(s, unsafe))) for s in sources}


_DURATIONS = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(1, 999_999), st.sampled_from(["s", "m", "h", "d"])
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> timedelta:
    return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


@st.composite
def _policies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid policy's text, and what it should load into."""
    unsafe = draw(st.booleans())
    destination = draw(st.sampled_from(DESTINATIONS))
    expected: dict[str, Any] = {"unsafe": unsafe, "destination": destination}
    lines = [
        "[policy]",
        f'id = "{draw(st.sampled_from(["p", "shanghai-2022", "x.y_z"]))}"',
        f"version = {draw(st.integers(1, 1_000_000))}",
        f'destination = "{destination}"',
    ]
    if draw(st.booleans()):
        lines.append(f"unsafe = {'true' if unsafe else 'false'}")
    elif unsafe:
        lines.append("unsafe = true")

    strategy = draw(st.sampled_from(list(Strategy)))
    prefer = draw(st.sampled_from([None, *Prefer])) if strategy is Strategy.JURISDICTION else None
    expected["strategy"], expected["prefer"] = strategy, prefer or Prefer.SPECIFIC
    if strategy is not Strategy.MOST_SEVERE or draw(st.booleans()):
        lines += ["[combine]", f'strategy = "{strategy.value}"']
        if prefer is not None:
            lines.append(f'prefer = "{prefer.value}"')

    expected["recognise"], expected["exclude"] = Origins(everywhere=True), Origins()
    if draw(st.booleans()):
        everywhere = draw(st.booleans())
        regions = [] if everywhere else draw(_subset(REGION_POOL))
        issuers = draw(_subset(ISSUER_POOL))
        if not (everywhere or regions or issuers):
            everywhere = True
        excluded_regions, excluded_issuers = draw(_subset(REGION_POOL)), draw(_subset(ISSUER_POOL))
        if (
            not everywhere
            and not set(issuers) - set(excluded_issuers)
            and all(
                any(region_contains(RegionCode(x), RegionCode(r)) for x in excluded_regions)
                for r in regions
            )
        ):
            excluded_regions, excluded_issuers = [], []  # the loader refuses recognising nothing
        lines += [
            "[trust]",
            f"regions = {_list(['*'] if everywhere else regions)}",
            f"issuers = {_list(issuers)}",
            f"exclude_regions = {_list(excluded_regions)}",
            f"exclude_issuers = {_list(excluded_issuers)}",
        ]
        expected["recognise"] = _origins(everywhere, regions, issuers)
        expected["exclude"] = _origins(False, excluded_regions, excluded_issuers)

    expected["freshness"] = (None, {}, {}, None)
    if draw(st.booleans()):
        default = draw(st.none() | _DURATIONS)
        by_region = draw(st.dictionaries(st.sampled_from(REGION_POOL), _DURATIONS, max_size=4))
        by_issuer = draw(st.dictionaries(st.sampled_from(ISSUER_POOL), _DURATIONS, max_size=3))
        if default is None and not by_region and not by_issuer:
            default = "24h"
        stale = draw(st.sampled_from([None, "ignore", "YELLOW", "RED", "GREY"]))
        lines.append("[freshness]")
        if default is not None:
            lines.append(f'max_age = "{default}"')
        if stale is not None:
            lines.append(f'stale = "{stale}"')
        lines += ["[freshness.regions]", *(f'"{k}" = "{v}"' for k, v in by_region.items())]
        lines += ["[freshness.issuers]", *(f'{k} = "{v}"' for k, v in by_issuer.items())]
        expected["freshness"] = (
            None if default is None else _seconds(default),
            {k: _seconds(v) for k, v in by_region.items()},
            {k: _seconds(v) for k, v in by_issuer.items()},
            None if stale in (None, "ignore") else Colour(stale),
        )

    expected["severity"] = ({}, {})
    if draw(st.booleans()):
        readings_by_region = draw(
            st.dictionaries(st.sampled_from(REGION_POOL), _readings(unsafe), max_size=4)
        )
        readings_by_issuer = draw(
            st.dictionaries(st.sampled_from(ISSUER_POOL), _readings(unsafe), max_size=3)
        )
        if not readings_by_region and not readings_by_issuer:
            readings_by_region = {"420000": {YELLOW: RED}}
        for name, readings in readings_by_region.items():
            lines.append(f'[severity.regions."{name}"]')
            lines += [f'{s.value} = "{t.value}"' for s, t in readings.items()]
        for name, readings in readings_by_issuer.items():
            lines.append(f"[severity.issuers.{name}]")
            lines += [f'{s.value} = "{t.value}"' for s, t in readings.items()]

        def changed(readings: dict[Colour, Colour]) -> dict[Colour, Colour]:
            return {s: t for s, t in readings.items() if s is not t}

        expected["severity"] = (
            {k: changed(v) for k, v in readings_by_region.items()},
            {k: changed(v) for k, v in readings_by_issuer.items()},
        )

    expected["require"] = Requirements()
    if draw(st.booleans()):
        excluded, recognised = expected["exclude"], expected["recognise"]
        own = (
            destination != NATIONAL
            and not any(region_contains(r, RegionCode(destination)) for r in excluded.regions)
            # some recognised origin can meet it (else the policy is refused: see above)
            and (
                recognised.everywhere
                or bool(recognised.issuers)
                or any(
                    (
                        region_contains(RegionCode(destination), r)
                        or region_contains(r, RegionCode(destination))
                    )
                    and not excluded.match(r, IssuerId(""))
                    for r in recognised.regions
                )
            )
            and draw(st.booleans())
        )
        required = [i for i in draw(_subset(ISSUER_POOL)) if i not in excluded.issuers]
        lines += [
            "[require]",
            f"own_region = {'true' if own else 'false'}",
            f"issuers = {_list(required)}",
        ]
        expected["require"] = Requirements(own, tuple(IssuerId(i) for i in required))
    return "\n".join(lines) + "\n", expected


@given(_policies())
def test_generated_policies_load_as_written_and_never_read_anything_as_green(drawn):
    text, expected = drawn
    policy = load_policy(text)
    assert policy == load_policy(text)
    assert policy.source_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()

    assert policy.unsafe is expected["unsafe"]
    assert policy.key == expected["destination"]
    assert policy.destination == (
        None if expected["destination"] == NATIONAL else expected["destination"]
    )
    assert (policy.strategy, policy.prefer) == (expected["strategy"], expected["prefer"])
    assert policy.recognise == expected["recognise"]
    assert not policy.recognise.empty
    assert policy.exclude == expected["exclude"]
    max_age = policy.freshness.max_age
    assert (
        max_age.default,
        dict(max_age.regions),
        dict(max_age.issuers),
        policy.freshness.stale,
    ) == expected["freshness"]
    assert policy.freshness.stale is not GREEN
    assert (
        {k: dict(v) for k, v in policy.severity.regions.items()},
        {k: dict(v) for k, v in policy.severity.issuers.items()},
    ) == expected["severity"]
    assert policy.require == expected["require"]
    assert ("unsafe" in " ".join(policy.flags())) is policy.unsafe
    assert ("code-stacking" in " ".join(policy.flags())) is policy.require.code_stacking

    for readings in [*policy.severity.regions.values(), *policy.severity.issuers.values()]:
        for source, target in readings.items():
            assert target is not GREEN
            assert target is not source
            assert policy.unsafe or RANK[target] > RANK[source]


@given(_policies(), st.booleans(), st.data())
def test_a_reading_to_green_or_a_milder_one_without_unsafe_is_always_refused(
    drawn, by_issuer, data
):
    text, expected = drawn
    refused_readings = [
        (source, target)
        for source in Colour
        for target in Colour
        if target not in _allowed_readings(source, expected["unsafe"])
    ]
    source, target = data.draw(st.sampled_from(refused_readings))
    entry = "severity.issuers.zz-added" if by_issuer else 'severity.regions."650000"'
    with pytest.raises(PolicyError) as refused:
        load_policy(text + f'[{entry}]\n{source.value} = "{target.value}"\n')
    assert refused.value.reason is Reason.ERR_POLICY
    message = str(refused.value)
    assert f".{source.value}: " in message
    assert entry.replace('"', "") in message
    assert ("nothing may be read as GREEN" if target is GREEN else "unsafe = true") in message
