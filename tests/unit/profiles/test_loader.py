"""The profile language: what it accepts, what it refuses (with a message naming the key)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.identity import IdentityScheme
from gateway.model import Colour, Reason
from gateway.profiles import EnvelopeFormat, FieldPath, PayloadFormat, ProfileError, load_profile
from gateway.profiles.model import MISSING, SEVERITY, StateType, TimeFormat
from regions import REGIONS, spec_of
from regions.common.spec import Level

BASE = """
[profile]
id = "sample"
version = 1
description = "a JWS region"

[envelope]
format = "jws"
text = "compact"
payload = "json"

[claims]
issuer = "iss"
issued_at = { path = "iat", format = "unix-s" }
expires_at = { path = "exp", format = "unix-s" }
state = "st"
identity = { scheme = "cn-resident-id", path = "idn" }

[states]
"ok" = "GREEN"
"wait" = { colour = "GREY", note = "pending" }
"watch" = "YELLOW"
"stop" = "RED"

[validity]
max = "24h"
"""

DELIMITED = """
[profile]
id = "text"
version = 1
[envelope]
format = "delimited"
text = "delimited"
prefix = "TX1:"
delimiter = "|"
fields = ["iss", "kid", "st", "t", "idn"]
kid = "kid"
signature = "base64url"
payload = "delimited"
[claims]
issuer = "iss"
issued_at = { path = "t", format = "local", pattern = "YYYYMMDDHHmmss", zone = "Asia/Shanghai" }
state = "st"
identity = { scheme = "cn-resident-id", path = "idn" }
[states]
"0" = "GREEN"
[validity]
duration = "30m"
"""


def _edit(old: str, new: str, source: str = BASE) -> str:
    assert old in source, old
    return source.replace(old, new)


def test_a_profile_loads_into_frozen_ordered_objects():
    profile = load_profile(BASE)
    assert (profile.id, profile.version, profile.label) == ("sample", 1, "sample@1")
    assert profile.envelope.format is EnvelopeFormat.JWS
    assert profile.envelope.payload is PayloadFormat.JSON
    assert profile.envelope.route == "eyJ"
    assert list(profile.states.items()) == [
        ("ok", Colour.GREEN),
        ("wait", Colour.GREY),
        ("watch", Colour.YELLOW),
        ("stop", Colour.RED),
    ]
    assert dict(profile.notes) == {"wait": "pending"}
    assert profile.validity.max == timedelta(hours=24)
    with pytest.raises(TypeError):
        profile.states["new"] = Colour.GREEN  # type: ignore[index]
    with pytest.raises(TypeError):
        profile.notes["ok"] = "anything"  # type: ignore[index]
    assert len(profile.source_sha256) == 64


def test_profiles_with_the_same_data_in_the_same_order_are_canonically_identical():
    """Comments, spacing, quoting, escapes and table layout do not change the canonical
    digest; any value, or the order of the states (which is meaning), does."""
    profile = load_profile(BASE)
    reformatted = load_profile(
        "# the sample region\n"
        + _edit('"ok" = "GREEN"', "'ok'   =   \"GREEN\"  # green")
        .replace('[validity]\nmax = "24h"', "[validity]\n\"max\" = '24h'")
        .replace(
            'issued_at = { path = "iat", format = "unix-s" }',
            'issued_at.path = "iat"\nissued_at . format = "unix-s"',
        )
        .replace('description = "a JWS region"', 'description = "a JWS \\u0072egion"')
    )
    assert reformatted.source_sha256 != profile.source_sha256
    assert reformatted.canonical_sha256 == profile.canonical_sha256
    for other in (
        _edit('max = "24h"', 'max = "12h"'),
        _edit('"watch" = "YELLOW"', '"watch" = "RED"'),
        _edit(
            '"ok" = "GREEN"\n"wait" = { colour = "GREY", note = "pending" }',
            '"wait" = { colour = "GREY", note = "pending" }\n"ok" = "GREEN"',
        ),
        _edit('description = "a JWS region"', 'description = "a JWS region "'),
    ):
        assert load_profile(other).canonical_sha256 != profile.canonical_sha256


def test_every_construct_of_the_language_loads():
    profile = load_profile(DELIMITED)
    assert profile.envelope.fields == ("iss", "kid", "st", "t", "idn")
    assert profile.issuer_region is None
    regional = load_profile(
        _edit('issuer = "iss"', 'issuer = "iss"\nissuer_region = "iss"', DELIMITED)
    )
    assert regional.issuer_region == FieldPath.parse("iss")
    assert profile.issued_at.format is TimeFormat.LOCAL
    assert profile.issued_at.zone is not None
    assert profile.validity.duration == timedelta(minutes=30)
    online = load_profile(
        _edit('format = "jws"\ntext = "compact"', 'format = "online"\ntext = "url"')
    )
    assert online.envelope.format is EnvelopeFormat.ONLINE
    cose = load_profile(
        _edit(
            'format = "jws"\ntext = "compact"\npayload = "json"',
            'format = "cose"\ntext = "base45-zlib"\nprefix = "BJ1:"\npayload = "cbor"',
        )
        .replace('state = "st"', 'state = { path = "10", type = "integer" }')
        .replace('"ok" = "GREEN"', '"0" = "GREEN"')
        .replace('"wait" = { colour = "GREY", note = "pending" }', '"99" = "GREY"')
        .replace('"watch" = "YELLOW"', '"1" = "YELLOW"')
        .replace('"stop" = "RED"', '"2" = "RED"')
        .replace('expires_at = { path = "exp", format = "unix-s" }\n', "")
        .replace('max = "24h"', 'until = "end-of-local-day"\nzone = "Asia/Shanghai"')
    )
    assert cose.envelope.route == "BJ1:"
    assert cose.state is not None
    assert cose.state.type is StateType.INTEGER
    assert cose.expires_at is None
    assert cose.validity.end_of_day is not None
    linked = load_profile(
        _edit(
            'identity = { scheme = "cn-resident-id", path = "idn" }',
            'identity = { scheme = "masked-link", masked = "id.m", link = "id.h" }',
        )
        + '\n[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\nafter = "3d"\n'
    )
    assert linked.identity.scheme is IdentityScheme.MASKED_LINK
    (rule,) = linked.validity.degrade
    assert (rule.source, rule.target, rule.after) == (
        Colour.GREEN,
        Colour.YELLOW,
        timedelta(days=3),
    )


REFUSED = [
    ("not-toml", "[profile", "not valid TOML"),
    ("unknown-table", BASE + "\n[extra]\nx = 1\n", "unknown key extra"),
    ("unknown-key", _edit("version = 1", 'version = 1\nowner = "x"'), "unknown key profile.owner"),
    ("missing-id", _edit('id = "sample"\n', ""), "missing profile.id"),
    ("upper-case-id", _edit('id = "sample"', 'id = "Sample"'), "profile.id"),
    ("version-zero", _edit("version = 1", "version = 0"), "profile.version"),
    ("version-text", _edit("version = 1", 'version = "1"'), "profile.version"),
    ("colour-typo", _edit('"ok" = "GREEN"', '"ok" = "GREN"'), "states.ok is 'GREN'"),
    ("colour-lower", _edit('"ok" = "GREEN"', '"ok" = "green"'), "states.ok"),
    (
        "state-without-colour",
        _edit('{ colour = "GREY", note = "pending" }', '{ note = "x" }'),
        "states.wait has no colour",
    ),
    (
        "note-two-lines",
        _edit('note = "pending"', 'note = "pending\\nreview"'),
        "states.wait.note must be one line of printable text",
    ),
    (
        "note-too-long",
        _edit('note = "pending"', f'note = "{"x" * 257}"'),
        "states.wait.note must be text of 1 to 256 characters",
    ),
    ("note-empty", _edit('note = "pending"', 'note = ""'), "states.wait.note must be text"),
    (
        "state-unknown-member",
        _edit('note = "pending"', 'default = "GREEN"'),
        "unknown key states.wait.default",
    ),
    (
        "severity-order",
        _edit('"watch" = "YELLOW"\n"stop" = "RED"', '"stop" = "RED"\n"watch" = "YELLOW"'),
        "least to most severe",
    ),
    ("no-states", BASE.split("[states]")[0] + "[states]\n", "at least one"),
    ("bad-path", _edit('state = "st"', 'state = "st..x"'), "claims.state"),
    (
        "issuer-region-bad-path",
        _edit('issuer = "iss"', 'issuer = "iss"\nissuer_region = "cc..x"'),
        "claims.issuer_region",
    ),
    (
        "issuer-region-not-a-path",
        _edit('issuer = "iss"', 'issuer = "iss"\nissuer_region = true'),
        "claims.issuer_region",
    ),
    (
        "delimited-issuer-region",
        _edit('issuer = "iss"', 'issuer = "iss"\nissuer_region = "cc"', DELIMITED),
        "claims.issuer_region",
    ),
    ("empty-path", _edit('state = "st"', 'state = ""'), "claims.state"),
    ("path-bracket", _edit('state = "st"', 'state = "st[0]"'), "claims.state"),
    (
        "bad-state-type",
        _edit('state = "st"', 'state = { path = "st", type = "float" }'),
        "claims.state.type",
    ),
    (
        "integer-state-text-key",
        _edit('state = "st"', 'state = { path = "st", type = "integer" }'),
        "decimal integer",
    ),
    ("bad-time-format", _edit('format = "unix-s" }', 'format = "unix-seconds" }'), "format"),
    (
        "local-without-zone",
        _edit('"iat", format = "unix-s"', '"iat", format = "local", pattern = "YYYYMMDDHHmmss"'),
        "time zone",
    ),
    (
        "local-bad-pattern",
        _edit(
            '"iat", format = "unix-s"',
            '"iat", format = "local", pattern = "YYYYMMDD", zone = "UTC"',
        ),
        "pattern",
    ),
    (
        "local-letters",
        _edit(
            '"iat", format = "unix-s"',
            '"iat", format = "local", pattern = "YYYYMMDDTHHmmss", zone = "UTC"',
        ),
        "unknown pattern letter 'T' at position 8",
    ),
    (
        "unknown-zone",
        _edit(
            '"iat", format = "unix-s"',
            '"iat", format = "local", pattern = "YYYYMMDDHHmmss", zone = "Mars/Olympus"',
        ),
        "unknown time zone",
    ),
    (
        "no-expiry",
        _edit('expires_at = { path = "exp", format = "unix-s" }\n', ""),
        "no source of expiry",
    ),
    ("until-without-zone", _edit('max = "24h"', 'until = "end-of-local-day"'), "validity.zone"),
    ("zone-without-until", _edit('max = "24h"', 'zone = "Asia/Shanghai"'), "only used with"),
    ("until-unknown", _edit('max = "24h"', 'until = "midnight"\nzone = "UTC"'), "validity.until"),
    (
        "degrade-milder",
        BASE + '[[validity.degrade]]\nfrom = "RED"\nto = "YELLOW"\nafter = "1d"\n',
        "more severe",
    ),
    (
        "degrade-to-green",
        BASE + '[[validity.degrade]]\nfrom = "YELLOW"\nto = "GREEN"\nafter = "1d"\n',
        "more severe",
    ),
    (
        "degrade-to-grey",
        BASE + '[[validity.degrade]]\nfrom = "GREEN"\nto = "GREY"\nafter = "1d"\n',
        "GREEN, YELLOW or RED",
    ),
    (
        "degrade-twice",
        BASE
        + '[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\nafter = "1d"\n[[validity.degrade]]\nfrom = "GREEN"\nto = "RED"\nafter = "2d"\n',
        "two rules",
    ),
    ("degrade-no-after", BASE + '[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\n', "after"),
    ("bad-envelope", _edit('format = "jws"', 'format = "jwt"'), "envelope.format"),
    ("jws-with-prefix", _edit('text = "compact"', 'text = "compact"\nprefix = "HZ1:"'), "prefix"),
    ("jws-base45", _edit('text = "compact"', 'text = "base45-zlib"'), "envelope.text"),
    (
        "online-cbor",
        _edit(
            'format = "jws"\ntext = "compact"\npayload = "json"',
            'format = "online"\ntext = "url"\npayload = "cbor"',
        ),
        "envelope.payload",
    ),
    (
        "delimited-no-fields",
        _edit('fields = ["iss", "kid", "st", "t", "idn"]\n', "", DELIMITED),
        "envelope.fields",
    ),
    ("delimited-kid", _edit('kid = "kid"', 'kid = "key"', DELIMITED), "envelope.kid"),
    ("delimited-path", _edit('state = "st"', 'state = "status"', DELIMITED), "claims.state"),
    ("delimited-deep-path", _edit('state = "st"', 'state = "st.x"', DELIMITED), "claims.state"),
    (
        "delimited-delimiter",
        _edit('delimiter = "|"', 'delimiter = "."', DELIMITED),
        "envelope.delimiter",
    ),
    (
        "delimited-json",
        _edit('payload = "delimited"', 'payload = "json"', DELIMITED),
        "envelope.payload",
    ),
    (
        "delimited-signature",
        _edit('signature = "base64url"', 'signature = "hex"', DELIMITED),
        "envelope.signature",
    ),
    ("bad-scheme", _edit('scheme = "cn-resident-id"', 'scheme = "passport"'), "scheme"),
    (
        "linked-without-link",
        _edit(
            '{ scheme = "cn-resident-id", path = "idn" }',
            '{ scheme = "masked-link", masked = "m" }',
        ),
        "identity.link",
    ),
    (
        "number-with-masked",
        _edit('path = "idn" }', 'path = "idn", masked = "m" }'),
        "unknown key claims.identity.masked",
    ),
    ("bad-duration", _edit('max = "24h"', 'max = "1 day"'), "validity.max"),
    ("zero-duration", _edit('max = "24h"', 'max = "0h"'), "validity.max"),
    ("missing-claims", _edit("[claims]", "[claimz]"), "missing claims"),
]


@pytest.mark.parametrize(("source", "message"), [pytest.param(s, m, id=i) for i, s, m in REFUSED])
def test_malformed_profiles_are_refused_with_a_clear_message(source, message):
    with pytest.raises(ProfileError) as refused:
        load_profile(source)
    assert refused.value.reason is Reason.ERR_PROFILE
    assert message in str(refused.value)


def test_there_is_no_way_to_give_an_unlisted_state_a_colour():
    """A catch-all key is just another literal state name, never a default."""
    profile = load_profile(_edit('"ok" = "GREEN"', '"ok" = "GREEN"\n"*" = "GREEN"'))
    assert profile.states.get("*") is Colour.GREEN
    assert profile.states.get("anything") is None


def test_oversized_profile_is_refused():
    with pytest.raises(ProfileError, match="larger than"):
        load_profile(BASE + "#" * 70_000)


@pytest.mark.parametrize("name", REGIONS)
def test_every_region_profile_loads_and_maps_every_state_the_region_issues(name):
    spec = spec_of(name)
    profile = load_profile(spec.profile_text())
    expected = {
        Level.GREEN: Colour.GREEN,
        Level.YELLOW: Colour.YELLOW,
        Level.RED: Colour.RED,
        Level.PENDING: Colour.GREY,
    }
    for level, word in spec.states.items():
        assert profile.states.get(word) is expected[level], (name, word)
    assert set(profile.states) == set(spec.states.values())
    assert profile.identity.scheme is spec.identity


@pytest.mark.parametrize("name", REGIONS)
def test_severity_is_monotone_in_every_region_profile(name):
    """A more severe local state never maps to a less severe canonical colour: the region's words
    in the order of its levels map to colours in the order of severity."""
    spec = spec_of(name)
    profile = load_profile(spec.profile_text())
    ranked = [spec.states[level] for level in (Level.GREEN, Level.YELLOW, Level.RED)]
    severities = [SEVERITY[profile.states[word]] for word in ranked]
    assert severities == sorted(severities)
    assert len(set(severities)) == 3


@pytest.mark.parametrize(
    ("path", "document", "expected"),
    [
        ("hc", {"hc": "绿码"}, "绿码"),
        ("a.b.c", {"a": {"b": {"c": 3}}}, 3),
        ("-260.1.v.0.dn", {-260: {1: {"v": [{"dn": 2}]}}}, 2),
        ('meta."0"', {"meta": {"0": "text key"}}, "text key"),
        ("meta.0", {"meta": {"0": "text key"}}, MISSING),
        ("list.1", {"list": ["a", "b"]}, "b"),
        ("list.2", {"list": ["a", "b"]}, MISSING),
        ("list.-1", {"list": ["a", "b"]}, MISSING),
        ("a.b", {"a": "scalar"}, MISSING),
        ("a", [], MISSING),
    ],
    ids=[
        "name",
        "nested",
        "cbor-int-keys",
        "quoted-text",
        "int-on-text-key",
        "index",
        "index-out-of-range",
        "negative-index",
        "through-scalar",
        "root-list",
    ],
)
def test_field_paths_select_exactly_and_never_raise(path, document, expected):
    assert FieldPath.parse(path).get(document) == expected


@pytest.mark.parametrize(
    "path",
    ["", ".", "a.", ".a", "a..b", "a[0]", "a b", '"unterminated', "1.2.3.4.5.6.7.8.9.10.11.12.13"],
)
def test_malformed_field_paths_are_refused(path):
    with pytest.raises(ValueError, match=r"field path|empty"):
        FieldPath.parse(path)
