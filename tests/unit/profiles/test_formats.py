"""The formats without colours (EU DCC, SMART Health Cards): their shipped profiles, the profile
language they need (colour rules, thresholds, optional times, inclusive expiry, kinds, revocation
ids, key id rules), the colours their certificates translate to at an injected ``now``, and the
name-and-date-of-birth identity they carry (docs/profiles.md, "Formats without colours")."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import event, given
from hypothesis import strategies as st

from gateway.codecs import compression, cose, jws, strictjson, textform
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.identity import IdentityKeys, IdentityScheme
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, KeyId, ProfileId, Reason, RegionCode, Status
from gateway.profiles import Profile, ProfileError, load_profile, translate
from gateway.profiles.model import (
    Condition,
    FieldPath,
    KeyIdRule,
    PayloadFormat,
    TextForm,
    TimeFormat,
)
from gateway.profiles.model import Test as Check
from gateway.profiles.translate import (
    NameDob,
    Translated,
    kinds_of,
    read_times,
    revocation_id,
)
from gateway.registry import Issuer, IssuerKey, Revocations, TrustState
from gateway.registry.admission import certificate_key
from gateway.verify import verify_code
from tests.conftest import LINK_KEY, NOW, REPO, SUBJECT_SECRET, add_issuer

FORMATS = REPO / "gateway" / "profiles" / "formats"
EU_DCC = (FORMATS / "eu-dcc.toml").read_text("utf-8")
SHC = (FORMATS / "smart-health-card.toml").read_text("utf-8")
ISS = "https://shc.example/issuer"

# SNOMED CT test results, as the EU DCC value sets write them.
NOT_DETECTED = "260415000"
DETECTED = "260373001"

IDENTITIES = IdentityKeys(SUBJECT_SECRET, LINK_KEY)


def _edit(old: str, new: str, source: str = EU_DCC) -> str:
    assert old in source, old
    return source.replace(old, new, 1)


@pytest.fixture(scope="module")
def eu() -> Profile:
    return load_profile(EU_DCC)


@pytest.fixture(scope="module")
def shc() -> Profile:
    return load_profile(SHC)


# ------------------------------------------------------------------ the shipped profiles load


def test_the_eu_dcc_profile_loads_with_its_envelope_times_kinds_and_rules(eu):
    assert eu.label == "eu-dcc@2"
    envelope = eu.envelope
    assert (envelope.text, envelope.payload, envelope.route) == (
        TextForm.BASE45_ZLIB,
        PayloadFormat.CBOR,
        "HC1:",
    )
    assert envelope.key_id is KeyIdRule.X509_SHA256_8
    assert envelope.date_tags is True
    assert eu.issuer is None  # by key id only
    assert eu.issuer_region == FieldPath.parse("1")  # ... and iss must be the signer's country
    assert eu.issued_at.format is TimeFormat.NUMERIC_DATE
    assert eu.expires_at is not None
    assert eu.expires_at.format is TimeFormat.NUMERIC_DATE
    assert not eu.expires_at.optional
    assert eu.validity.inclusive_expiry is True
    assert eu.identity.scheme is IdentityScheme.NAME_DOB
    assert {k: p.text for k, p in eu.kinds.items()} == {
        "test": "-260.1.t",
        "vaccination": "-260.1.v",
        "recovery": "-260.1.r",
    }
    assert eu.revocation_id is None
    assert eu.state is None
    assert dict(eu.states) == {}
    assert eu.rules is not None
    assert eu.rules.otherwise is Colour.YELLOW
    assert [(r.name, r.colour) for r in eu.rules.rules] == [
        ("positive test", Colour.RED),
        ("negative test within 72 h", Colour.GREEN),
        ("complete vaccination series", Colour.GREEN),
        ("recovery within 180 days", Colour.GREEN),
    ]


def test_the_eu_dcc_thresholds_live_in_the_profile(eu):
    """72 h for a negative test and 180 days for a recovery are data, not code."""
    windows = {
        c.path.text: (c.value, c.format)
        for r in eu.rules.rules
        for c in r.when
        if c.test is Check.WITHIN
    }
    assert windows == {
        "-260.1.t.0.sc": (timedelta(hours=72), TimeFormat.ISO8601),
        "-260.1.r.0.fr": (timedelta(days=180), TimeFormat.DATE),
    }
    shorter = load_profile(_edit('within = "72h"', 'within = "48h"'))
    assert _window(shorter, "-260.1.t.0.sc") == timedelta(hours=48)


def test_the_smart_health_card_profile_loads_with_its_envelope_and_rules(shc):
    assert shc.label == "smart-health-card@1"
    envelope = shc.envelope
    assert (envelope.text, envelope.payload, envelope.prefix, envelope.compression) == (
        TextForm.NUMERIC,
        PayloadFormat.JSON,
        "shc:/",
        "DEF",
    )
    assert envelope.route == "shc:/"
    assert envelope.key_id is KeyIdRule.JWK_THUMBPRINT
    assert envelope.date_tags is False
    assert shc.issuer is not None
    assert shc.issuer.text == "iss"
    assert shc.expires_at is not None
    assert shc.expires_at.optional is True
    assert shc.validity.duration == timedelta(days=365)
    assert shc.validity.inclusive_expiry is False
    assert shc.revocation_id is not None
    assert shc.revocation_id.text == "vc.rid"
    assert dict(shc.kinds) == {}
    assert shc.rules is not None
    (rule,) = shc.rules.rules
    assert rule.colour is Colour.GREEN
    (count,) = rule.when
    assert (count.test, count.value) == (Check.COUNT, 2)
    assert [(c.path.text, c.test, c.value) for c in count.where] == [
        ("resource.resourceType", Check.EQUALS, "Immunization"),
        ("resource.status", Check.EQUALS, "completed"),
    ]


# ------------------------------------------------------------------ new language: accepted

_POSITIVE = '{ path = "-260.1.t.0.tr", equals = "260373001" }'
_ISSUED = 'issued_at = { path = "6", format = "numeric-date" }'
_EXPIRES = 'expires_at = { path = "4", format = "numeric-date" }'


def _conditions(profile: Profile) -> list[Condition]:
    assert profile.rules is not None
    return [c for r in profile.rules.rules for c in r.when]


def _at(profile: Profile, path: str) -> Condition:
    """The one condition of the profile's rules on ``path``."""
    (condition,) = [c for c in _conditions(profile) if c.path.text == path]
    return condition


ACCEPTED: list[Any] = [
    pytest.param(
        _edit(_POSITIVE, '{ path = "-260.1.t.0.tr", in = ["260373001", 1] }'),
        lambda p: _conditions(p)[0].value == ("260373001", 1),
        id="in-text-and-integer",
    ),
    pytest.param(
        _edit(_POSITIVE, '{ path = "-260.1.t.0.tr", present = false }'),
        lambda p: _conditions(p)[0].value is False,
        id="present-false",
    ),
    pytest.param(
        _edit('within = "180d", format = "date"', 'older_than = "11d", format = "date"'),
        lambda p: (
            (_at(p, "-260.1.r.0.fr").test, _at(p, "-260.1.r.0.fr").value)
            == (Check.OLDER_THAN, timedelta(days=11))
        ),
        id="older-than",
    ),
    pytest.param(
        _edit('at_least_path = "-260.1.v.0.sd"', "at_least = 2"),
        lambda p: (
            (_at(p, "-260.1.v.0.dn").test, _at(p, "-260.1.v.0.dn").value) == (Check.AT_LEAST, 2)
        ),
        id="at-least",
    ),
    pytest.param(
        _edit('format = "iso8601" }', 'format = "unix-ms" }'),
        lambda p: _conditions(p)[2].format is TimeFormat.UNIX_MS,
        id="within-unix-ms",
    ),
    pytest.param(
        _edit('format = "iso8601" }', 'format = "numeric-date" }'),
        lambda p: _conditions(p)[2].format is TimeFormat.NUMERIC_DATE,
        id="within-numeric-date",
    ),
    pytest.param(
        _edit('format = "iso8601" }', 'format = "unix-s" }'),
        lambda p: _conditions(p)[2].format is TimeFormat.UNIX_S,
        id="within-unix-s",
    ),
    pytest.param(
        _edit(_ISSUED, 'issued_at = { path = "6", format = "date" }'),
        lambda p: p.issued_at.format is TimeFormat.DATE,
        id="date-time-field",
    ),
    pytest.param(
        _edit('colour = "RED"', 'colour = "GREY"'),
        lambda p: p.rules.rules[0].colour is Colour.GREY,
        id="grey-rule",
    ),
    pytest.param(
        _edit('otherwise = "YELLOW"', 'otherwise = "RED"'),
        lambda p: p.rules.otherwise is Colour.RED,
        id="otherwise-red",
    ),
    pytest.param(
        _edit('otherwise = "YELLOW"', 'otherwise = "GREY"'),
        lambda p: p.rules.otherwise is Colour.GREY,
        id="otherwise-grey",
    ),
    pytest.param(
        _edit('otherwise_name = "no certificate that qualifies"\n', ""),
        lambda p: p.rules.otherwise_name == "no rule applies",
        id="otherwise-name-defaults",
    ),
    pytest.param(
        _edit(
            _EXPIRES,
            'expires_at = { path = "4", format = "numeric-date", optional = true }',
        ).replace("inclusive_expiry = true", 'inclusive_expiry = true\nduration = "30d"'),
        lambda p: p.expires_at.optional and p.validity.duration == timedelta(days=30),
        id="optional-expiry-with-duration",
    ),
    pytest.param(
        _edit("inclusive_expiry = true", "inclusive_expiry = false"),
        lambda p: p.validity.inclusive_expiry is False,
        id="inclusive-expiry-false",
    ),
    pytest.param(
        _edit("[validity]\ninclusive_expiry = true\n", ""),
        lambda p: p.validity.inclusive_expiry is False,
        id="inclusive-expiry-defaults-off",
    ),
    pytest.param(
        _edit("cbor_date_tags = true", "cbor_date_tags = false"),
        lambda p: p.envelope.date_tags is False,
        id="date-tags-off",
    ),
    pytest.param(
        _edit('key_id = "x509-sha256-8"\n', ""),
        lambda p: p.envelope.key_id is KeyIdRule.ANY,
        id="key-id-defaults-to-any",
    ),
    pytest.param(
        _edit('key_id = "x509-sha256-8"', 'key_id = "jwk-thumbprint"'),
        lambda p: p.envelope.key_id is KeyIdRule.JWK_THUMBPRINT,
        id="cose-with-thumbprints",
    ),
    pytest.param(
        _edit(
            'kinds = { test = "-260.1.t", vaccination = "-260.1.v", recovery = "-260.1.r" }',
            'kinds = { test = "-260.1.t" }\nrevocation_id = "-260.1.t.0.ci"',
        ),
        lambda p: list(p.kinds) == ["test"] and p.revocation_id.text == "-260.1.t.0.ci",
        id="one-kind-and-a-revocation-id",
    ),
    pytest.param(
        _edit('prefix = "shc:/"', 'prefix = "x9:/"', SHC),
        lambda p: p.envelope.route == "x9:/",
        id="numeric-other-prefix",
    ),
    pytest.param(
        _edit('payload = "json"', 'payload = "cbor"', SHC),
        lambda p: p.envelope.payload is PayloadFormat.CBOR,
        id="numeric-cbor",
    ),
    pytest.param(
        _edit('compression = "DEF"\n', "", SHC),
        lambda p: p.envelope.compression == "",
        id="numeric-uncompressed",
    ),
    pytest.param(
        _edit("at_least = 2, where", "at_least = 1, where", SHC),
        lambda p: p.rules.rules[0].when[0].value == 1,
        id="count-at-least-one",
    ),
]


@pytest.mark.parametrize(("source", "check"), ACCEPTED)
def test_every_new_element_of_the_language_is_accepted_when_valid(
    source: str, check: Callable[[Any], bool]
):
    assert check(load_profile(source))


# ------------------------------------------------------------------ new language: refused

_KINDS = 'kinds = { test = "-260.1.t", vaccination = "-260.1.v", recovery = "-260.1.r" }'
_COUNT_WHERE = (
    ', where = [\n    { path = "resource.resourceType", equals = "Immunization" },\n'
    '    { path = "resource.status", equals = "completed" },\n  ]'
)
_BASE_OF_RULES = EU_DCC.split("[[colours.rule]]")[0]

_NOT_BEFORE = 'not_before = { path = "5", format = "numeric-date", optional = true }'
REFUSED: list[Any] = [
    # [colours] and its rules
    pytest.param(
        _edit('otherwise = "YELLOW"', 'otherwise = "GREEN"'),
        "colours.otherwise cannot be GREEN",
        id="otherwise-green",
    ),
    pytest.param(
        _edit('otherwise = "YELLOW"', 'otherwise = "AMBER"'),
        "colours.otherwise is 'AMBER'",
        id="otherwise-unknown-colour",
    ),
    pytest.param(
        _edit('otherwise = "YELLOW"\n', ""), "missing colours.otherwise", id="otherwise-missing"
    ),
    pytest.param(_BASE_OF_RULES, "missing colours.rule", id="no-rules"),
    pytest.param(
        _BASE_OF_RULES + 'rule = ["positive test"]\n',
        "colours.rule[0] must be a table",
        id="rule-not-a-table",
    ),
    pytest.param(
        _BASE_OF_RULES
        + "".join(
            f'[[colours.rule]]\nname = "r{i}"\ncolour = "RED"\nwhen = [{{ path = "a", present = true }}]\n'
            for i in range(33)
        ),
        "colours.rule must list 1 to 32 rules",
        id="thirty-three-rules",
    ),
    pytest.param(
        _edit('colour = "RED"', 'colour = "BLUE"'),
        "colours.rule[0].colour is 'BLUE'",
        id="rule-unknown-colour",
    ),
    pytest.param(
        _edit('name = "positive test"\n', ""), "missing colours.rule[0].name", id="rule-no-name"
    ),
    pytest.param(
        _edit('name = "recovery within 180 days"', 'name = "positive test"'),
        "colours.rule[3].name must be printable and unique",
        id="rule-duplicate-name",
    ),
    pytest.param(
        _edit('name = "positive test"', 'name = "no certificate that qualifies"'),
        "colours.rule[0].name must be printable and unique",
        id="rule-named-like-otherwise",
    ),
    pytest.param(
        _edit('colour = "RED"', 'colour = "RED"\npriority = 1'),
        "unknown key colours.rule[0].priority",
        id="rule-unknown-key",
    ),
    pytest.param(
        _edit(f"when = [{_POSITIVE}]", "when = []"),
        "colours.rule[0].when must list 1 to 8 conditions",
        id="no-conditions",
    ),
    pytest.param(
        _edit(f"when = [{_POSITIVE}]", "when = [" + ", ".join([_POSITIVE] * 9) + "]"),
        "colours.rule[0].when must list 1 to 8 conditions",
        id="nine-conditions",
    ),
    pytest.param(
        _edit(f"when = [{_POSITIVE}]", 'when = ["260373001"]'),
        "colours.rule[0].when[0] must be a table",
        id="condition-not-a-table",
    ),
    pytest.param(
        _edit(_POSITIVE, '{ path = "-260.1.t.0.tr" }'),
        "colours.rule[0].when[0] must have exactly one test",
        id="condition-without-test",
    ),
    pytest.param(
        _edit(_POSITIVE, '{ path = "-260.1.t.0.tr", equals = "260373001", present = true }'),
        "colours.rule[0].when[0] must have exactly one test",
        id="condition-with-two-tests",
    ),
    pytest.param(
        _edit(_POSITIVE, '{ equals = "260373001" }'),
        "missing colours.rule[0].when[0].path",
        id="condition-without-path",
    ),
    pytest.param(
        _edit('"-260.1.t.0.tr", equals', '"-260.1.t..tr", equals'),
        "colours.rule[0].when[0].path",
        id="condition-bad-path",
    ),
    pytest.param(
        _edit('equals = "260373001" }', 'equals = "260373001", note = "x" }'),
        "unknown key colours.rule[0].when[0].note",
        id="condition-unknown-key",
    ),
    pytest.param(
        _edit('equals = "260373001" }', 'equals = "260373001", format = "date" }'),
        "unknown key colours.rule[0].when[0].format",
        id="format-without-time-test",
    ),
    pytest.param(
        _edit('equals = "260373001"', "equals = true"),
        "colours.rule[0].when[0].equals must be text or an integer",
        id="equals-boolean",
    ),
    pytest.param(
        _edit('equals = "260373001"', "equals = 1.5"),
        "colours.rule[0].when[0].equals must be text or an integer",
        id="equals-float",
    ),
    pytest.param(
        _edit('equals = "260373001"', 'equals = ""'),
        "colours.rule[0].when[0].equals must be text of 1 to 256 characters",
        id="equals-empty-text",
    ),
    pytest.param(
        _edit('equals = "260373001"', "in = []"),
        "colours.rule[0].when[0].in must list 1 to 64 values",
        id="in-empty",
    ),
    pytest.param(
        _edit('equals = "260373001"', 'in = ["260373001", 1.0]'),
        "colours.rule[0].when[0].in must be text or an integer",
        id="in-float",
    ),
    pytest.param(
        _edit('equals = "260373001"', 'present = "yes"'),
        "colours.rule[0].when[0].present must be true or false",
        id="present-text",
    ),
    pytest.param(
        _edit('within = "72h", format = "iso8601"', 'within = "72h"'),
        "missing colours.rule[1].when[1].format",
        id="within-without-format",
    ),
    pytest.param(
        _edit('format = "iso8601" }', 'format = "local" }'),
        "colours.rule[1].when[1].format: a condition cannot read local times",
        id="within-local",
    ),
    pytest.param(
        _edit('format = "iso8601" }', 'format = "rfc2822" }'),
        "colours.rule[1].when[1].format is 'rfc2822'",
        id="within-unknown-format",
    ),
    pytest.param(
        _edit('within = "72h"', 'within = "72 hours"'),
        "colours.rule[1].when[1].within must be a duration like",
        id="within-not-a-duration",
    ),
    pytest.param(
        _edit('within = "72h"', "within = 72"),
        "colours.rule[1].when[1].within must be text",
        id="within-integer",
    ),
    pytest.param(
        _edit('within = "72h"', 'within = "0h"'),
        "colours.rule[1].when[1].within must be positive",
        id="within-zero",
    ),
    pytest.param(
        _edit('within = "180d", format = "date"', 'older_than = "2w", format = "date"'),
        "colours.rule[3].when[0].older_than must be a duration like",
        id="older-than-weeks",
    ),
    pytest.param(
        _edit('at_least_path = "-260.1.v.0.sd"', 'at_least = "2"'),
        "colours.rule[2].when[1].at_least must be an integer",
        id="at-least-text",
    ),
    pytest.param(
        _edit('at_least_path = "-260.1.v.0.sd"', "at_least = 2.5"),
        "colours.rule[2].when[1].at_least must be an integer",
        id="at-least-float",
    ),
    pytest.param(
        _edit('at_least_path = "-260.1.v.0.sd"', 'at_least_path = "-260.1.v..sd"'),
        "colours.rule[2].when[1].at_least_path: field path",
        id="at-least-path-malformed",
    ),
    pytest.param(
        _edit("at_least = 2, where", "at_least = -1, where", SHC),
        "colours.rule[0].when[0].count.at_least must be an integer from 1 to 1000",
        id="count-negative",
    ),
    pytest.param(
        _edit(_NOT_BEFORE, 'not_before = { path = "5", format = "julian" }'),
        "claims.not_before.format is 'julian'",
        id="not-before-format",
    ),
    pytest.param(
        _edit(_NOT_BEFORE, 'not_before = "5"'),
        "claims.not_before must be a table",
        id="not-before-not-a-table",
    ),
    pytest.param(
        _edit("at_least = 2, where", "at_least = 0, where", SHC),
        "colours.rule[0].when[0].count.at_least must be an integer from 1 to 1000",
        id="count-zero-holds-for-any-list",
    ),
    pytest.param(
        _edit(
            '{ path = "-260.1.r.0.fr", within = "180d", format = "date" }',
            '{ path = "-260.1.t", present = false }, { path = "-260.1.v", present = false }',
        ),
        "colours.rule[3]: a GREEN rule must test something the certificate holds",
        id="green-only-on-absence",
    ),
    pytest.param(
        _edit("at_least = 2, where", 'at_least = "2", where', SHC),
        "colours.rule[0].when[0].count.at_least must be an integer",
        id="count-text",
    ),
    pytest.param(
        _edit(_COUNT_WHERE, "", SHC),
        "missing colours.rule[0].when[0].count.where",
        id="count-without-where",
    ),
    pytest.param(
        _edit(
            '{ path = "resource.status", equals = "completed" }',
            '{ path = "resource", count = { at_least = 1, where = [{ path = "x", present = true }] } }',
            SHC,
        ),
        "count cannot be nested",
        id="count-nested",
    ),
    pytest.param(
        _edit("at_least = 2, where", "at_least = 2, most = 3, where", SHC),
        "unknown key colours.rule[0].when[0].count.most",
        id="count-unknown-key",
    ),
    pytest.param(
        EU_DCC + '\n[states]\n"260415000" = "GREEN"\n',
        "colours replaces claims.state and states",
        id="colours-and-states",
    ),
    pytest.param(
        _edit("[claims]\n", '[claims]\nstate = "-260.1.t.0.tr"\n'),
        "colours replaces claims.state and states",
        id="colours-and-state-field",
    ),
    # optional times and expiry
    pytest.param(
        _edit(_ISSUED, 'issued_at = { path = "6", format = "numeric-date", optional = true }'),
        "unknown key claims.issued_at.optional",
        id="optional-issue-time",
    ),
    pytest.param(
        _edit("optional = true", 'optional = "yes"', SHC),
        "claims.expires_at.optional must be true or false",
        id="optional-not-boolean",
    ),
    pytest.param(
        _edit('duration = "365d"', 'max = "365d"', SHC),
        "no source of expiry",
        id="optional-expiry-alone",
    ),
    pytest.param(
        _edit('format = "numeric-date" }', 'format = "numeric_date" }'),
        "claims.issued_at.format is 'numeric_date'",
        id="numeric-date-misspelt",
    ),
    pytest.param(
        _edit("inclusive_expiry = true", 'inclusive_expiry = "yes"'),
        "validity.inclusive_expiry must be true or false",
        id="inclusive-expiry-text",
    ),
    pytest.param(
        _edit("inclusive_expiry = true", "inclusive_expiry = 1"),
        "validity.inclusive_expiry must be true or false",
        id="inclusive-expiry-integer",
    ),
    # kinds and revocation ids
    pytest.param(
        _edit(_KINDS, "kinds = {}"), "claims.kinds must name 1 to 8 kinds", id="kinds-empty"
    ),
    pytest.param(
        _edit(_KINDS, "kinds = { " + ", ".join(f'k{i} = "a"' for i in range(9)) + " }"),
        "claims.kinds must name 1 to 8 kinds",
        id="kinds-nine",
    ),
    pytest.param(
        _edit("kinds = { test =", "kinds = { Test ="),
        "claims.kinds: 'Test' must be a lower-case name",
        id="kind-upper-case",
    ),
    pytest.param(
        _edit('test = "-260.1.t"', "test = 1"),
        "claims.kinds.test must be text",
        id="kind-path-not-text",
    ),
    pytest.param(
        _edit('test = "-260.1.t"', 'test = "-260..t"'),
        "claims.kinds.test: field path",
        id="kind-path-malformed",
    ),
    pytest.param(
        _edit(_KINDS, 'kinds = "-260.1"'), "claims.kinds must be a table", id="kinds-not-a-table"
    ),
    pytest.param(
        _edit('revocation_id = "vc.rid"', 'revocation_id = "vc..rid"', SHC),
        "claims.revocation_id: field path",
        id="revocation-id-malformed",
    ),
    pytest.param(
        _edit('revocation_id = "vc.rid"', "revocation_id = 5", SHC),
        "claims.revocation_id must be text",
        id="revocation-id-not-text",
    ),
    # envelope: key ids, compression, numeric text, date tags
    pytest.param(
        _edit('key_id = "x509-sha256-8"', 'key_id = "sha1"'),
        "envelope.key_id is 'sha1'",
        id="key-id-unknown",
    ),
    pytest.param(
        _edit('key_id = "jwk-thumbprint"', 'key_id = "x509-sha256-8"', SHC),
        "envelope.key_id 'x509-sha256-8' is for cose envelopes",
        id="key-id-x509-on-jws",
    ),
    pytest.param(
        _edit('compression = "DEF"', 'compression = "zlib"', SHC),
        "envelope.compression must be 'DEF'",
        id="compression-unknown",
    ),
    pytest.param(
        _edit('compression = "DEF"', 'compression = "def"', SHC),
        "envelope.compression must be 'DEF'",
        id="compression-lower-case",
    ),
    pytest.param(
        _edit("cbor_date_tags = true", 'cbor_date_tags = true\ncompression = "DEF"'),
        "only for jws envelopes",
        id="compression-on-cose",
    ),
    pytest.param(
        _edit('key_id = "jwk-thumbprint"', 'key_id = "jwk-thumbprint"\ncbor_date_tags = true', SHC),
        "envelope.cbor_date_tags is only for cbor payloads",
        id="date-tags-on-json",
    ),
    pytest.param(
        _edit("cbor_date_tags = true", 'cbor_date_tags = "yes"'),
        "envelope.cbor_date_tags must be true or false",
        id="date-tags-not-boolean",
    ),
    pytest.param(
        _edit('prefix = "shc:/"', 'prefix = "SHC:/"', SHC),
        "envelope.prefix must be 1-8 lower-case letters or digits and ':/'",
        id="numeric-prefix-upper-case",
    ),
    pytest.param(
        _edit('prefix = "shc:/"', 'prefix = "shc:"', SHC),
        "envelope.prefix must be 1-8 lower-case letters or digits and ':/'",
        id="numeric-prefix-without-slash",
    ),
    pytest.param(
        _edit('prefix = "shc:/"\n', "", SHC),
        "envelope.prefix must be 1-8 lower-case letters or digits and ':/'",
        id="numeric-without-prefix",
    ),
    pytest.param(
        _edit('text = "numeric"', 'text = "numerical"', SHC),
        "envelope.text is 'numerical'",
        id="numeric-misspelt",
    ),
    pytest.param(
        _edit('text = "base45-zlib"', 'text = "numeric"'),
        "envelope.text must be 'base45-zlib' for a cose envelope",
        id="numeric-on-cose",
    ),
    pytest.param(
        _edit('prefix = "HC1:"', 'prefix = "hc1:"'),
        "envelope.prefix must be 1-8 upper-case letters or digits and ':'",
        id="cose-prefix-lower-case",
    ),
    # name-dob identity
    pytest.param(
        _edit(', given = "-260.1.nam.gnt"', ""),
        "missing claims.identity.given",
        id="name-dob-without-given",
    ),
    pytest.param(
        _edit('birth = "-260.1.dob"', 'birth = "-260.1.dob", path = "-260.1.id"'),
        "unknown key claims.identity.path",
        id="name-dob-with-number-path",
    ),
]


@pytest.mark.parametrize(("source", "message"), REFUSED)
def test_every_malformed_variant_is_refused_with_a_clear_message(source: str, message: str):
    with pytest.raises(ProfileError) as refused:
        load_profile(source)
    assert refused.value.reason is Reason.ERR_PROFILE
    assert message in str(refused.value)


# ------------------------------------------------------------------ EU DCC: claims -> colour

NAM = {"fn": "Musterfrau", "fnt": "MUSTERFRAU", "gn": "Erika", "gnt": "ERIKA"}
DOB = "1964-08-12"


def _hcert(*, nam: Any = None, dob: Any = DOB, **entries: Any) -> dict[Any, Any]:
    """A decoded EU DCC payload (CWT claims with the hcert at -260.1), as the CBOR decoder gives
    it: integer keys at the top, text keys inside."""
    health: dict[str, Any] = {"ver": "1.3.0", "nam": NAM if nam is None else nam, "dob": dob}
    health.update(entries)
    return {
        1: "DE",
        4: int((NOW + timedelta(days=365)).timestamp()),
        6: int((NOW - timedelta(days=400)).timestamp()),
        -260: {1: health},
    }


def _test(sc: Any, tr: Any = NOT_DETECTED) -> list[dict[str, Any]]:
    return [
        {
            "tg": "840539006",
            "tt": "LP6464-4",
            "sc": sc,
            "tr": tr,
            "tc": "Testzentrum Köln Hbf",
            "co": "DE",
            "is": "Robert Koch-Institut",
            "ci": "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W",
        }
    ]


def _vaccination(dn: Any, sd: Any) -> list[dict[str, Any]]:
    return [
        {
            "tg": "840539006",
            "vp": "1119349007",
            "mp": "EU/1/20/1528",
            "ma": "ORG-100030215",
            "dn": dn,
            "sd": sd,
            "dt": "2021-06-11",
            "co": "DE",
            "is": "Robert Koch-Institut",
            "ci": "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#V",
        }
    ]


def _recovery(fr: Any, df: Any = None, du: Any = None) -> list[dict[str, Any]]:
    return [
        {
            "tg": "840539006",
            "fr": fr,
            "co": "DE",
            "is": "Robert Koch-Institut",
            "df": df if df is not None else fr,
            "du": du if du is not None else fr,
            "ci": "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#R",
        }
    ]


def _colour(profile: Profile, claims: Any, now: datetime, issuer: str = "DE") -> Translated:
    """Times first, then the rest, as the verify pipeline does; ``now`` is always injected."""
    return translate(profile, claims, issuer, now, read_times(profile, claims))


def _window(profile: Profile, path: str) -> timedelta:
    """The ``within`` threshold the profile sets on ``path``."""
    (value,) = {
        c.value for c in _conditions(profile) if c.test is Check.WITHIN and c.path.text == path
    }
    assert isinstance(value, timedelta)
    return value


def _shift(offset: str) -> timedelta:
    """The UTC offset an RFC 3339 suffix (``Z``, ``+02:00``) denotes."""
    if offset == "Z":
        return timedelta(0)
    sign = -1 if offset[0] == "-" else 1
    return sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))


def _rfc3339(instant: datetime, offset: str) -> str:
    local = (instant + _shift(offset)).replace(tzinfo=None)
    text = local.isoformat(timespec="microseconds" if local.microsecond else "seconds")
    return text + offset


def _sc(age: timedelta, offset: str = "+00:00") -> str:
    """A sample collection time ``age`` before NOW, as RFC 3339 text in the given offset."""
    return _rfc3339(NOW - age, offset)


H72 = timedelta(hours=72)
MICRO = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("sc", "colour", "state"),
    [
        pytest.param(_sc(timedelta(hours=1)), Colour.GREEN, "negative test within 72 h", id="1h"),
        pytest.param(_sc(timedelta(0)), Colour.GREEN, "negative test within 72 h", id="now"),
        pytest.param(_sc(H72), Colour.GREEN, "negative test within 72 h", id="exactly-72h"),
        pytest.param(
            _sc(H72, "Z"), Colour.GREEN, "negative test within 72 h", id="exactly-72h-zulu"
        ),
        pytest.param(
            _sc(H72, "+02:00"), Colour.GREEN, "negative test within 72 h", id="exactly-72h-cest"
        ),
        pytest.param(
            _sc(H72, "-05:00"), Colour.GREEN, "negative test within 72 h", id="exactly-72h-est"
        ),
        pytest.param(
            _sc(H72 + MICRO), Colour.YELLOW, "no certificate that qualifies", id="72h-and-1us"
        ),
        pytest.param(
            _sc(H72 + timedelta(seconds=1), "+02:00"),
            Colour.YELLOW,
            "no certificate that qualifies",
            id="72h-and-1s-cest",
        ),
        pytest.param(
            _sc(timedelta(days=30)), Colour.YELLOW, "no certificate that qualifies", id="30d"
        ),
        pytest.param(
            _sc(-MICRO), Colour.YELLOW, "no certificate that qualifies", id="1us-in-the-future"
        ),
        pytest.param(
            _sc(-timedelta(hours=1)),
            Colour.YELLOW,
            "no certificate that qualifies",
            id="1h-in-the-future",
        ),
    ],
)
def test_a_negative_test_is_green_for_exactly_72_hours_after_sampling(eu, sc, colour, state):
    """docs: ``within`` holds when ``0 <= now - t <= D``: both ends are included."""
    result = _colour(eu, _hcert(t=_test(sc)), NOW)
    assert (result.colour, result.local_state) == (colour, state)


def test_the_72_hour_window_moves_with_the_injected_clock(eu):
    sampled = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)
    claims = _hcert(t=_test("2026-06-01T10:30:00+02:00"))
    assert _colour(eu, claims, sampled - MICRO).colour is Colour.YELLOW
    assert _colour(eu, claims, sampled).colour is Colour.GREEN
    assert _colour(eu, claims, sampled + H72).colour is Colour.GREEN
    assert _colour(eu, claims, sampled + H72 + MICRO).colour is Colour.YELLOW


@pytest.mark.parametrize(
    "age",
    [timedelta(0), timedelta(hours=1), H72, timedelta(days=400), -timedelta(hours=1)],
    ids=["now", "1h", "72h", "400d", "future"],
)
def test_a_positive_test_is_red_whenever_it_was_taken(eu, age):
    result = _colour(eu, _hcert(t=_test(_sc(age), tr=DETECTED)), NOW)
    assert (result.colour, result.local_state) == (Colour.RED, "positive test")


@pytest.mark.parametrize(
    ("dn", "sd", "colour"),
    [
        pytest.param(2, 2, Colour.GREEN, id="2-of-2"),
        pytest.param(1, 1, Colour.GREEN, id="1-of-1"),
        pytest.param(3, 2, Colour.GREEN, id="booster-3-of-2"),
        pytest.param(9, 9, Colour.GREEN, id="9-of-9"),
        pytest.param(1, 2, Colour.YELLOW, id="1-of-2"),
        pytest.param(2, 3, Colour.YELLOW, id="2-of-3"),
        pytest.param("2", 2, Colour.YELLOW, id="dn-as-text"),
        pytest.param(2, "2", Colour.YELLOW, id="sd-as-text"),
        pytest.param(True, True, Colour.YELLOW, id="booleans"),
        pytest.param(2.0, 2, Colour.YELLOW, id="dn-as-float"),
        pytest.param(None, 2, Colour.YELLOW, id="dn-null"),
    ],
)
def test_a_complete_vaccination_series_is_green_and_an_incomplete_one_yellow(eu, dn, sd, colour):
    result = _colour(eu, _hcert(v=_vaccination(dn, sd)), NOW)
    assert result.colour is colour
    if colour is Colour.GREEN:
        assert result.local_state == "complete vaccination series"


def test_a_vaccination_with_no_sd_is_not_green(eu):
    entry = _vaccination(2, 2)
    del entry[0]["sd"]
    assert _colour(eu, _hcert(v=entry), NOW).colour is Colour.YELLOW


@pytest.mark.parametrize(("dn", "sd"), [(0, 0), (0, -1)], ids=["0-of-0", "0-of-minus-1"])
def test_a_vaccination_of_zero_doses_is_not_green(eu, dn, sd):
    assert _colour(eu, _hcert(v=_vaccination(dn, sd)), NOW).colour is not Colour.GREEN


FR = "2026-05-27"
FR_INSTANT = datetime(2026, 5, 27, tzinfo=UTC)  # a date is read as its first instant in UTC
D180 = timedelta(days=180)


@pytest.mark.parametrize(
    ("now", "colour"),
    [
        pytest.param(FR_INSTANT - MICRO, Colour.YELLOW, id="before-the-first-positive-test"),
        pytest.param(FR_INSTANT, Colour.GREEN, id="day-0-midnight"),
        pytest.param(FR_INSTANT + timedelta(hours=23), Colour.GREEN, id="day-0-evening"),
        pytest.param(FR_INSTANT + timedelta(days=90), Colour.GREEN, id="day-90"),
        pytest.param(FR_INSTANT + D180, Colour.GREEN, id="exactly-180-days"),
        pytest.param(FR_INSTANT + D180 + MICRO, Colour.YELLOW, id="180-days-and-1us"),
        pytest.param(FR_INSTANT + D180 + timedelta(hours=12), Colour.YELLOW, id="day-180-noon"),
        pytest.param(FR_INSTANT + timedelta(days=365), Colour.YELLOW, id="a-year"),
    ],
)
def test_a_recovery_is_green_for_180_days_from_the_first_positive_test(eu, now, colour):
    result = _colour(eu, _hcert(r=_recovery(FR)), now)
    assert result.colour is colour
    if colour is Colour.GREEN:
        assert result.local_state == "recovery within 180 days"


@pytest.mark.parametrize(
    "fr",
    ["2026-05-27T00:00:00Z", "27.05.2026", "2026-5-27", "2026-02-30", 1779840000, "", None],
    ids=["date-time", "german", "short", "no-such-day", "epoch", "empty", "null"],
)
def test_a_recovery_date_that_is_not_a_date_is_never_green(eu, fr):
    now = FR_INSTANT + timedelta(days=10)
    assert _colour(eu, _hcert(r=_recovery(fr)), now).colour is Colour.YELLOW


@pytest.mark.parametrize(
    "sc",
    [
        "2026-11-22T02:00:00",  # no offset
        "2026-11-22 02:00:00Z",
        "2026-11-22T02:00:00+0200",
        "2026-11-22",
        int((NOW - timedelta(hours=1)).timestamp()),  # a bare number, not RFC 3339 text
        "１２",
        None,
    ],
    ids=["naive", "space", "offset-without-colon", "date-only", "epoch", "fullwidth", "null"],
)
def test_a_negative_test_whose_sample_time_is_not_rfc3339_is_never_green(eu, sc):
    assert _colour(eu, _hcert(t=_test(sc)), NOW).colour is Colour.YELLOW


@pytest.mark.parametrize(
    "hcert",
    [
        pytest.param({}, id="no-certificate"),
        pytest.param({"t": []}, id="empty-test-list"),
        pytest.param({"v": []}, id="empty-vaccination-list"),
        pytest.param({"r": []}, id="empty-recovery-list"),
        pytest.param({"t": _test(_sc(timedelta(hours=1)))[0]}, id="test-not-a-list"),
        pytest.param({"v": _vaccination(2, 2)[0]}, id="vaccination-not-a-list"),
        pytest.param({"v": "2/2"}, id="vaccination-text"),
        pytest.param({"t": [None]}, id="test-entry-null"),
        pytest.param({"t": _test(_sc(timedelta(hours=1)), tr=260415000)}, id="tr-as-integer"),
        pytest.param({"t": _test(_sc(timedelta(hours=1)), tr="260415000 ")}, id="tr-padded"),
        pytest.param({"t": _test(_sc(timedelta(hours=1)), tr="positive")}, id="tr-unknown"),
        pytest.param({"x": _vaccination(2, 2)}, id="unknown-kind"),
    ],
)
def test_no_certificate_or_an_unknown_shape_is_never_green(eu, hcert):
    result = _colour(eu, _hcert(**hcert), NOW)
    assert (result.colour, result.local_state) == (Colour.YELLOW, "no certificate that qualifies")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({1: "DE", 4: 2_000_000_000, 6: 1_700_000_000}, id="no-hcert"),
        pytest.param({1: "DE", 4: 2_000_000_000, 6: 1_700_000_000, -260: "x"}, id="hcert-text"),
        pytest.param(
            {1: "DE", 4: 2_000_000_000, 6: 1_700_000_000, -260: {"1": {}}}, id="hcert-text-key"
        ),
    ],
)
def test_a_payload_without_a_health_certificate_is_rejected_not_coloured(eu, claims):
    """Without nam/dob there is nobody to vouch for: the documented rejection, never a colour."""
    with pytest.raises(CodeRejected) as refused:
        _colour(eu, claims, NOW)
    assert refused.value.reason is Reason.ERR_SCHEMA


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({6: "1700000000"}, Reason.ERR_CLAIMS, id="iat-text"),
        pytest.param({6: True}, Reason.ERR_CLAIMS, id="iat-boolean"),
        pytest.param({4: 1_700_000_000_000}, Reason.ERR_CLAIMS, id="exp-in-milliseconds"),
        pytest.param({4: 1_600_000_000}, Reason.ERR_CLAIMS, id="exp-before-iat"),
        pytest.param({6: None}, Reason.ERR_SCHEMA, id="iat-missing"),
    ],
)
def test_malformed_cwt_times_are_the_documented_rejections(eu, overrides, reason):
    claims = _hcert(v=_vaccination(2, 2))
    claims[6] = 1_700_000_000
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(CodeRejected) as refused:
        _colour(eu, claims, NOW)
    assert refused.value.reason is reason


def test_fractional_numeric_dates_are_read_exactly(eu):
    claims = _hcert(v=_vaccination(2, 2))
    claims[6], claims[4] = 1_700_000_000.25, 1_800_000_000.5
    result = _colour(eu, claims, NOW)
    assert result.issued_at == datetime.fromtimestamp(1_700_000_000.25, UTC)
    assert result.expires_at == datetime.fromtimestamp(1_800_000_000.5, UTC)


def test_the_rule_order_decides_and_red_comes_first(eu):
    """A positive test and a complete series in one payload: the first rule that holds wins."""
    both = _hcert(t=_test(_sc(timedelta(hours=1)), tr=DETECTED), v=_vaccination(2, 2))
    assert _colour(eu, both, NOW).colour is Colour.RED


@pytest.mark.parametrize(
    "hcert",
    [
        pytest.param(
            {"t": _test(_sc(H72 * 2)), "v": _vaccination(2, 2)}, id="stale-test-and-series"
        ),
        pytest.param(
            {"t": _test(_sc(timedelta(hours=1))), "v": _vaccination(2, 2)}, id="test-and-series"
        ),
        pytest.param({"v": _vaccination(2, 2), "r": _recovery(FR)}, id="series-and-recovery"),
        pytest.param(
            {"t": [*_test(_sc(timedelta(hours=1))), *_test(_sc(timedelta(hours=2)), tr=DETECTED)]},
            id="negative-then-positive-test",
        ),
        pytest.param({"v": [*_vaccination(1, 2), *_vaccination(2, 2)]}, id="two-doses-listed"),
        pytest.param({"v": [*_vaccination(2, 2), *_vaccination(1, 2)]}, id="series-first"),
        pytest.param({"r": [*_recovery(FR), *_recovery(FR)]}, id="two-recoveries"),
    ],
)
def test_a_payload_holding_more_than_one_certificate_is_never_green(eu, hcert):
    """The rules read the first entry of a kind; a second entry or a second kind (older or
    malformed certificates, such as the test data's DGC2) must not hide behind it."""
    result = _colour(eu, _hcert(**hcert), NOW)
    assert result.colour is Colour.YELLOW
    assert result.local_state == "no certificate that qualifies"


def test_degradation_still_applies_to_a_colour_the_rules_give():
    profile = load_profile(
        EU_DCC + '\n[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\nafter = "30d"\n'
    )
    claims = _hcert(v=_vaccination(2, 2))
    claims[6] = int((NOW - timedelta(days=30)).timestamp())
    fresh = _colour(profile, claims, NOW - MICRO)
    assert (fresh.colour, fresh.degraded_from) == (Colour.GREEN, None)
    aged = _colour(profile, claims, NOW)
    assert (aged.colour, aged.degraded_from) == (Colour.YELLOW, Colour.GREEN)


def test_the_kinds_a_certificate_holds_are_read_from_the_profile(eu):
    assert kinds_of(eu, _hcert(t=_test(_sc(timedelta(hours=1))))) == {"test"}
    assert kinds_of(eu, _hcert(v=_vaccination(2, 2))) == {"vaccination"}
    assert kinds_of(eu, _hcert(r=_recovery(FR))) == {"recovery"}
    assert kinds_of(eu, _hcert(v=[], r=_recovery(FR))) == {"recovery"}
    assert kinds_of(eu, _hcert(t=None, v={}, r="")) == frozenset()
    assert kinds_of(eu, {}) == frozenset()


def test_eu_dcc_reads_no_revocation_id(eu):
    assert revocation_id(eu, _hcert(v=_vaccination(2, 2))) is None


# ------------------------------------------------------------------ SMART Health Cards


def _patient(family: Any = "Anyperson", given: Any = ("John", "B."), birth: Any = "1951-01-20"):
    name: dict[str, Any] = {"family": family}
    if given is not None:
        name["given"] = list(given)
    return {
        "fullUrl": "resource:0",
        "resource": {"resourceType": "Patient", "name": [name], "birthDate": birth},
    }


def _immunization(status: Any = "completed", kind: Any = "Immunization") -> dict[str, Any]:
    return {
        "fullUrl": "resource:1",
        "resource": {
            "resourceType": kind,
            "status": status,
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "207"}]},
            "occurrenceDateTime": "2021-01-01",
        },
    }


def _card(*entries: Any, rid: Any = "MTIzNDU2", **top: Any) -> dict[str, Any]:
    vc: dict[str, Any] = {
        "type": ["https://smarthealth.cards#health-card"],
        "credentialSubject": {
            "fhirVersion": "4.0.1",
            "fhirBundle": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [_patient(), *entries],
            },
        },
    }
    if rid is not None:
        vc["rid"] = rid
    card: dict[str, Any] = {"iss": ISS, "nbf": NOW.timestamp() - 3600.5, "vc": vc}
    card.update(top)
    return card


@pytest.mark.parametrize(
    ("entries", "colour"),
    [
        pytest.param([_immunization(), _immunization()], Colour.GREEN, id="two-completed"),
        pytest.param([_immunization()] * 3, Colour.GREEN, id="three-completed"),
        pytest.param(
            [_immunization(), _immunization("not-done"), _immunization()],
            Colour.GREEN,
            id="two-of-three-completed",
        ),
        pytest.param([_immunization()], Colour.YELLOW, id="one-completed"),
        pytest.param([], Colour.YELLOW, id="patient-only"),
        pytest.param(
            [_immunization(), _immunization("entered-in-error")],
            Colour.YELLOW,
            id="one-entered-in-error",
        ),
        pytest.param(
            [_immunization(), _immunization("Completed")], Colour.YELLOW, id="status-case"
        ),
        pytest.param(
            [_immunization(), _immunization(kind="immunization")],
            Colour.YELLOW,
            id="resource-type-case",
        ),
        pytest.param(
            [_immunization(), _immunization(kind="Observation")],
            Colour.YELLOW,
            id="one-observation",
        ),
        pytest.param([_immunization(), {"fullUrl": "resource:2"}], Colour.YELLOW, id="no-resource"),
        pytest.param([_immunization(), None, "x", 7], Colour.YELLOW, id="junk-entries"),
    ],
)
def test_a_smart_health_card_is_green_with_two_completed_immunizations(shc, entries, colour):
    result = _colour(shc, _card(*entries), NOW, ISS)
    assert result.colour is colour
    expected = (
        "two or more completed immunizations"
        if colour is Colour.GREEN
        else "fewer than two completed immunizations"
    )
    assert result.local_state == expected


def test_a_card_whose_bundle_is_not_a_list_is_rejected_or_yellow_never_green(shc):
    card = _card(_immunization(), _immunization())
    bundle = card["vc"]["credentialSubject"]["fhirBundle"]
    bundle["entry"] = {"0": bundle["entry"][0]}
    with pytest.raises(CodeRejected) as refused:  # the patient is not at entry.0 any more
        _colour(shc, card, NOW, ISS)
    assert refused.value.reason is Reason.ERR_SCHEMA
    bare = _card(_immunization(), _immunization())
    del bare["vc"]["credentialSubject"]["fhirBundle"]["entry"][1:]
    assert _colour(shc, bare, NOW, ISS).colour is Colour.YELLOW


def test_a_card_without_exp_is_valid_for_365_days_and_an_earlier_exp_wins(shc):
    nbf = NOW.timestamp() - 3600.5
    issued = datetime.fromtimestamp(nbf, UTC)
    without = _colour(shc, _card(_immunization(), _immunization()), NOW, ISS)
    assert (without.issued_at, without.expires_at) == (issued, issued + timedelta(days=365))
    shorter = _colour(shc, _card(exp=nbf + 86400), NOW, ISS)
    assert shorter.expires_at == issued + timedelta(days=1)
    longer = _colour(shc, _card(exp=nbf + 2 * 365 * 86400), NOW, ISS)
    assert longer.expires_at == issued + timedelta(days=365)
    for bad in ("soon", None, True):
        card = _card()
        card["exp"] = bad
        with pytest.raises(CodeRejected) as refused:
            _colour(shc, card, NOW, ISS)
        assert refused.value.reason is Reason.ERR_CLAIMS


def test_a_card_must_name_the_issuer_exactly(shc):
    card = _card(_immunization(), _immunization())
    assert _colour(shc, card, NOW, ISS).colour is Colour.GREEN
    for other in (ISS + "/", ISS.upper(), "https://other.example/issuer"):
        with pytest.raises(CodeRejected) as refused:
            _colour(shc, card, NOW, other)
        assert refused.value.reason is Reason.ERR_ISSUER_MISMATCH


def test_a_card_carries_its_revocation_id(shc):
    assert revocation_id(shc, _card()) == "MTIzNDU2"
    assert revocation_id(shc, _card(rid=None)) is None
    for bad in (5, "", "x" * 65, ["a"]):
        with pytest.raises(CodeRejected) as refused:
            revocation_id(shc, _card(rid=bad))
        assert refused.value.reason is Reason.ERR_SCHEMA


def test_a_card_holder_is_read_from_the_first_bundle_entry(shc):
    result = _colour(shc, _card(), NOW, ISS)
    assert result.identity == NameDob("Anyperson", "John", "1951-01-20")
    card = _card()
    card["vc"]["credentialSubject"]["fhirBundle"]["entry"][0] = _patient(given=None)
    assert _colour(shc, card, NOW, ISS).identity == NameDob("Anyperson", "", "1951-01-20")
    for patient in (_patient(family=""), _patient(birth="20.01.1951"), _patient(given=[7])):
        card["vc"]["credentialSubject"]["fhirBundle"]["entry"][0] = patient
        with pytest.raises(CodeRejected) as refused:
            _colour(shc, card, NOW, ISS)
        assert refused.value.reason is Reason.ERR_SCHEMA


# ------------------------------------------------------------------ NAME_DOB identity


def _subject(
    profile: Profile, claims: Any, keys: IdentityKeys = IDENTITIES, issuer: str = "DE"
) -> tuple[str, str]:
    carrier = _colour(profile, claims, NOW, issuer).identity
    assert isinstance(carrier, NameDob)
    identity = keys.from_name_dob(carrier.family, carrier.given, carrier.birth)
    return keys.subject(identity), identity.masked


def _person(fnt: str = "MUSTERFRAU", gnt: str = "ERIKA", dob: str = DOB) -> dict[Any, Any]:
    return _hcert(nam={"fn": fnt.title(), "fnt": fnt, "gn": gnt.title(), "gnt": gnt}, dob=dob)


def test_the_same_person_gets_the_same_subject_reference(eu):
    first, masked = _subject(eu, _person())
    assert first.startswith("s1.")
    assert masked == "M*** E***, 1964"
    assert _subject(eu, _person()) == (first, masked)
    # Another certificate of hers (another kind, another time) links to her.
    assert _subject(eu, _hcert(nam=NAM, v=_vaccination(1, 2)))[0] == first
    # Names are compared after NFKC, case folding and collapsing spaces; a midnight is dropped.
    assert _subject(eu, _person(fnt=" musterfrau ", gnt="Erika"))[0] == first
    assert _subject(eu, _person(fnt="ＭＵＳＴＥＲＦＲＡＵ"))[0] == first
    assert _subject(eu, _person(dob="1964-08-12T00:00:00Z"))[0] == first
    assert _subject(eu, _person(dob="1964-08-12T00:00:00"))[0] == first


def test_the_same_person_links_across_eu_dcc_and_smart_health_cards(eu, shc):
    dcc = _hcert(nam={"fnt": "ANYPERSON", "gnt": "JOHN"}, dob="1951-01-20")
    assert _subject(eu, dcc)[0] == _subject(shc, _card(), issuer=ISS)[0]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"fnt": "MUSTERMANN"}, id="family"),
        pytest.param({"gnt": "ERIKO"}, id="given"),
        pytest.param({"gnt": ""}, id="no-given"),
        pytest.param({"dob": "1964-08-13"}, id="birth-day"),
        pytest.param({"dob": "1964-08"}, id="birth-month-only"),
        pytest.param({"dob": "1964"}, id="birth-year-only"),
        pytest.param({"dob": ""}, id="birth-unknown"),
        pytest.param({"fnt": "ERIKA", "gnt": "MUSTERFRAU"}, id="names-swapped"),
        pytest.param({"fnt": "MUSTERFRAU ERIKA", "gnt": ""}, id="names-joined"),
    ],
)
def test_a_different_person_gets_a_different_subject_reference(eu, other):
    assert _subject(eu, _person(**other))[0] != _subject(eu, _person())[0]


def test_other_keys_give_other_subject_references(eu):
    mine = _subject(eu, _person())[0]
    other_subject = IdentityKeys(bytes(32), LINK_KEY)
    other_link = IdentityKeys(SUBJECT_SECRET, bytes(32))
    assert _subject(eu, _person(), other_subject)[0] != mine
    assert _subject(eu, _person(), other_link)[0] != mine
    assert _subject(eu, _person(), IdentityKeys(SUBJECT_SECRET, LINK_KEY))[0] == mine


@pytest.mark.parametrize(
    ("fnt", "gnt", "dob"),
    [
        ("MUSTERFRAU", "ERIKA", "1964-08-12"),
        ("ANYPERSON", "JOHN", "1951-01-20"),
        ("李", "强", "1990-03-07"),
        ("O'NEIL", "MARY ANN", "2001"),
    ],
    ids=["erika", "john", "chinese", "year-only"],
)
def test_a_subject_reference_never_contains_the_name_or_date_of_birth(eu, fnt, gnt, dob):
    claims = _person(fnt=fnt, gnt=gnt, dob=dob)
    subject, masked = _subject(eu, claims)
    raw = [fnt, gnt, dob, dob.replace("-", ""), dob[:4]]
    raw += [part for name in (fnt, gnt) for part in name.split()]
    for text in raw:
        for form in {text, text.casefold(), text.title()}:
            assert form not in subject, form
    # The masked form shows initials and the year only, as documented.
    for text in (fnt, gnt, dob):
        if len(text) > 1 and text != dob[:4]:
            assert text not in masked
    assert masked.endswith(", " + dob[:4])
    carrier = _colour(eu, claims, NOW).identity
    identity = IDENTITIES.from_name_dob(fnt, gnt, dob)
    for shown in (repr(carrier), repr(identity)):
        assert fnt not in shown
        assert dob not in shown


def test_names_cannot_be_shifted_between_fields_to_share_a_subject_reference(eu):
    one = _subject(eu, _person(fnt="ANNA\x00MARIA", gnt="LUISE"))[0]
    other = _subject(eu, _person(fnt="ANNA", gnt="MARIA\x00LUISE"))[0]
    assert one != other


# ------------------------------------------------------------------ inclusive expiry, key ids


def _dsc() -> tuple[PrivateKey, bytes]:
    """An EU DCC signer key and its self-signed certificate (PEM)."""
    key = PrivateKey.generate(Algorithm.ES256)
    raw = serialization.load_pem_private_key(key.pem(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    certificate = pki.self_signed(
        raw, "DSC DE", not_before=NOW - timedelta(days=500), not_after=NOW + timedelta(days=500)
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class Abroad:
    state: TrustState
    dsc: PrivateKey
    dsc_kid: bytes
    dsc_key: IssuerKey
    card_key: PrivateKey


@pytest.fixture(scope="module")
def abroad(eu, shc) -> Abroad:
    """A trust state with one EU DCC country (its signer certificate imported) and one SMART
    Health Cards issuer (its key id is its thumbprint)."""
    state = TrustState()
    state.add_profile(eu)
    state.add_profile(shc)
    add_issuer(
        state, Issuer(IssuerId("eu-dcc-de"), RegionCode("DE"), "EU DCC DE", eu.id, eu.version)
    )
    add_issuer(
        state,
        Issuer(
            IssuerId("shc-test"),
            RegionCode("US"),
            "SHC test",
            ProfileId("smart-health-card"),
            1,
            code_name=ISS,
        ),
    )
    dsc, pem = _dsc()
    dsc_key = certificate_key(IssuerId("eu-dcc-de"), pem)
    state.add_key(dsc_key)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    card_key = PrivateKey.generate(Algorithm.ES256)
    state.add_key(
        IssuerKey(
            IssuerId("shc-test"), KeyId(card_key.public_key().thumbprint()), card_key.public_key()
        )
    )
    return Abroad(state, dsc, hashlib.sha256(der).digest()[:8], dsc_key, card_key)


def _verify(abroad: Abroad, code: str, now: datetime) -> Any:
    return verify_code(
        code, trust=abroad.state.snapshot(), now=now, limits=Limits(), identities=IDENTITIES
    )


def test_an_eu_dcc_is_still_valid_at_the_instant_of_its_expiry(abroad):
    """docs: inclusive_expiry — EU DCC is valid while ``iat <= now <= exp``."""
    claims = _hcert(v=_vaccination(2, 2))
    expiry = datetime.fromtimestamp(claims[4], UTC)
    code = textform.encode("HC1:", cose.sign(cbor2.dumps(claims), abroad.dsc, abroad.dsc_kid))
    at_expiry = _verify(abroad, code, expiry)
    assert (at_expiry.status, at_expiry.colour) == (Status.VALID, Colour.GREEN)
    assert at_expiry.code.masked_identity == "M*** E***, 1964"
    after = _verify(abroad, code, expiry + MICRO)
    assert (after.status, after.reason, after.colour) == (
        Status.REJECTED,
        Reason.ERR_EXPIRED,
        Colour.GREY,
    )


def test_a_smart_health_card_is_expired_at_the_instant_of_its_expiry(abroad):
    """Without inclusive_expiry (RFC 7519), now must be before exp."""
    exp = NOW.timestamp() + 600
    card = _card(_immunization(), _immunization(), exp=exp)
    body = compression.deflate(strictjson.dumps(card), wbits=compression.RAW)
    header = {"zip": "DEF", "alg": "ES256", "kid": abroad.card_key.public_key().thumbprint()}
    code = textform.encode_numeric("shc:/", jws.sign(header, body, abroad.card_key))
    expiry = datetime.fromtimestamp(exp, UTC)
    before = _verify(abroad, code, expiry - MICRO)
    assert (before.status, before.colour) == (Status.VALID, Colour.GREEN)
    at_expiry = _verify(abroad, code, expiry)
    assert (at_expiry.status, at_expiry.reason) == (Status.REJECTED, Reason.ERR_EXPIRED)


def test_eu_dcc_keys_must_come_from_their_certificate_with_its_key_id(abroad):
    state = TrustState(abroad.state.snapshot())
    version = state.version
    plain = IssuerKey(IssuerId("eu-dcc-de"), KeyId("plain-key"), abroad.dsc.public_key())
    with pytest.raises(ConfigurationInvalid, match=r"registered from their X\.509 certificate"):
        state.add_key(plain)
    expected = abroad.dsc_key.kid
    wrong = replace(abroad.dsc_key, kid=KeyId("AAAAAAAAAAA="))
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_key(wrong)
    assert f"key id of the certificate ({expected})" in str(refused.value)
    assert state.version == version


def test_smart_health_card_keys_must_be_named_by_their_thumbprint(abroad):
    state = TrustState(abroad.state.snapshot())
    other = PrivateKey.generate(Algorithm.ES256).public_key()
    with pytest.raises(ConfigurationInvalid, match="JWK thumbprint") as refused:
        state.add_key(IssuerKey(IssuerId("shc-test"), KeyId("key-1"), other))
    assert refused.value.reason is Reason.ERR_IDENTIFIER
    state.add_key(IssuerKey(IssuerId("shc-test"), KeyId(other.thumbprint()), other))


def test_only_a_profile_that_reads_a_revocation_id_takes_a_revocation_list(abroad):
    state = TrustState(abroad.state.snapshot())
    revoked = Revocations(1, {"MTIzNDU2": None})
    state.set_revocations(
        IssuerId("shc-test"), KeyId(abroad.card_key.public_key().thumbprint()), revoked
    )
    with pytest.raises(ConfigurationInvalid, match="reads no revocation id") as refused:
        state.set_revocations(IssuerId("eu-dcc-de"), abroad.dsc_key.kid, revoked)
    assert refused.value.reason is Reason.ERR_PROFILE


# ------------------------------------------------------------------ property: EU DCC rules


@dataclass(frozen=True)
class Thresholds:
    """What the profile says, read from the loaded object (not from the docs or this file)."""

    positive: Any
    negative: Any
    test_window: timedelta
    recovery_window: timedelta
    least_series: int


def _thresholds(profile: Profile) -> Thresholds:
    assert profile.rules is not None
    red = [r for r in profile.rules.rules if r.colour is Colour.RED]
    green = [r for r in profile.rules.rules if r.colour is Colour.GREEN]
    (positive,) = [c.value for r in red for c in r.when if c.path.text == "-260.1.t.0.tr"]
    (negative,) = [c.value for r in green for c in r.when if c.path.text == "-260.1.t.0.tr"]
    assert positive != negative
    (least_series,) = [c.value for r in green for c in r.when if c.path.text == "-260.1.v.0.sd"]
    return Thresholds(
        positive,
        negative,
        _window(profile, "-260.1.t.0.sc"),
        _window(profile, "-260.1.r.0.fr"),
        least_series,
    )


EU_PROFILE = load_profile(EU_DCC)
LIMITS = _thresholds(EU_PROFILE)


@dataclass(frozen=True)
class Generated:
    """One generated certificate and what the test knows about it independently of the code."""

    hcert: dict[str, Any]
    now: datetime
    sampled: datetime | None  # the instant ``sc`` denotes, if it is valid RFC 3339
    recovered: datetime | None  # the first instant of ``fr``, if it is a valid date
    identity_ok: bool


_NOWS = st.datetimes(
    min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
_OFFSETS = st.sampled_from(["Z", "+00:00", "+02:00", "-05:00", "+05:45", "+14:00"])
_AGES = st.one_of(
    st.sampled_from(
        [
            timedelta(0),
            -MICRO,
            LIMITS.test_window,
            LIMITS.test_window + MICRO,
            LIMITS.test_window - MICRO,
            LIMITS.test_window + timedelta(seconds=1),
            LIMITS.test_window - timedelta(minutes=30),
            LIMITS.test_window + timedelta(minutes=30),
        ]
    ),
    st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=10)),
)
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def _sample_time(draw: st.DrawFn, now: datetime) -> tuple[Any, datetime | None]:
    if draw(st.integers(0, 5)) == 0:
        return draw(_JUNK), None
    instant = now - draw(_AGES)
    offset = draw(_OFFSETS)
    if draw(st.booleans()):  # whole seconds, as most issuers write them
        instant = instant.replace(microsecond=0)
    text = _rfc3339(instant, offset)
    if not 2000 <= instant.year <= 2099:
        return text, None  # never generated, but the documented range decides
    return text, instant


@st.composite
def _recovery_date(draw: st.DrawFn, now: datetime) -> tuple[Any, datetime | None]:
    if draw(st.integers(0, 5)) == 0:
        return draw(_JUNK), None
    days = draw(
        st.one_of(
            st.sampled_from([0, -1, 1, *(LIMITS.recovery_window.days + d for d in (-1, 0, 1))]),
            st.integers(-30, 400),
        )
    )
    day = now.date() - timedelta(days=days)
    return day.isoformat(), datetime(day.year, day.month, day.day, tzinfo=UTC)


@st.composite
def _mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any]) -> Any:
    """Usually a well-typed value, sometimes anything at all."""
    return draw(usual if draw(st.integers(0, 9)) else _JUNK)


_RESULTS = _mostly(
    st.sampled_from(
        [LIMITS.negative] * 3
        + [LIMITS.positive, LIMITS.negative + " ", int(LIMITS.negative), "1240581000000105"]
    )
)
_DOSES = _mostly(st.integers(-1, 9))


@st.composite
def _certificates(draw: st.DrawFn) -> Generated:
    now = draw(_NOWS)
    exactness = draw(st.integers(0, 3))  # a random instant, a whole second or a midnight
    if exactness:
        now = now.replace(microsecond=0)
    if exactness == 3:
        now = now.replace(hour=0, minute=0, second=0)
    # A real certificate holds one kind; combinations check that the rule order decides.
    kinds = draw(st.sampled_from(["t", "t", "v", "v", "r", "r", "", "tv", "tr", "vr", "tvr"]))
    hcert: dict[str, Any] = {}
    sampled = recovered = None
    if "t" in kinds:
        sc, sampled = draw(_sample_time(now))
        entry = {"tg": "840539006", "tt": "LP6464-4", "sc": sc, "tr": draw(_RESULTS)}
        hcert["t"] = [entry] if draw(st.integers(0, 19)) else entry  # sometimes not a list
    if "v" in kinds:
        hcert["v"] = [{"tg": "840539006", "dn": draw(_DOSES), "sd": draw(_DOSES)}]
    if "r" in kinds:
        fr, recovered = draw(_recovery_date(now))
        hcert["r"] = [{"tg": "840539006", "fr": fr, "df": "2021-01-01", "du": "2021-06-01"}]
    identity_ok = draw(st.integers(0, 9)) > 0
    if not identity_ok:
        hcert["dob"] = draw(st.sampled_from(["12.08.1964", 1964, None, "1964-8-12"]))
    return Generated(hcert, now, sampled, recovered, identity_ok)


def _expected(generated: Generated) -> Colour:
    """The colour the documented rules give, derived here from the thresholds alone."""
    hcert, now = generated.hcert, generated.now
    tests = hcert.get("t")
    test = tests[0] if isinstance(tests, list) else None
    result = test.get("tr") if test is not None else None
    if type(result) is str and result == LIMITS.positive:
        return Colour.RED
    if sum(kind in hcert for kind in "tvr") != 1:
        return Colour.YELLOW  # a GREEN rule vouches for one certificate alone
    if (
        type(result) is str
        and result == LIMITS.negative
        and generated.sampled is not None
        and timedelta(0) <= now - generated.sampled <= LIMITS.test_window
    ):
        return Colour.GREEN
    vaccination = hcert.get("v", [{}])[0]
    dn, sd = vaccination.get("dn"), vaccination.get("sd")
    if type(dn) is int and type(sd) is int and dn >= sd >= LIMITS.least_series:
        return Colour.GREEN
    if (
        generated.recovered is not None
        and "r" in hcert
        and timedelta(0) <= now - generated.recovered <= LIMITS.recovery_window
    ):
        return Colour.GREEN
    return Colour.YELLOW


@given(_certificates())
def test_eu_dcc_colours_follow_the_documented_rules_for_any_certificate(generated: Generated):
    hcert = dict(generated.hcert)
    dob = hcert.pop("dob", DOB)
    claims = _hcert(dob=dob, **hcert)
    if dob is None:
        del claims[-260][1]["dob"]
    if not generated.identity_ok:
        # The only documented rejection for a well-timed payload: a malformed holder.
        with pytest.raises(CodeRejected) as refused:
            _colour(EU_PROFILE, claims, generated.now)
        assert refused.value.reason is Reason.ERR_SCHEMA
        return
    result = _colour(EU_PROFILE, claims, generated.now)
    expected = _expected(generated)
    event(f"{expected.value}: {result.local_state}")
    if generated.sampled is not None and generated.now - generated.sampled == LIMITS.test_window:
        event("sample taken exactly at the end of the test window")
    if generated.recovered is not None and generated.now - generated.recovered == (
        LIMITS.recovery_window
    ):
        event("first positive test exactly at the end of the recovery window")
    assert result.colour is expected, (result.local_state, generated)
    assert EU_PROFILE.rules is not None
    if result.colour is Colour.GREEN:
        assert result.local_state in {
            r.name for r in EU_PROFILE.rules.rules if r.colour is Colour.GREEN
        }
