"""The JSON Schema of a translation profile file, from the loader's own rules
(:mod:`gateway.profiles.loader`; see :mod:`gateway.tomlschema` for what a schema can and cannot
say: which envelope takes which keys is said here, the order of states by severity, a GREEN
rule's content and the time patterns' letters are the loader's alone)."""

from __future__ import annotations

import re

from gateway import tomlschema as s
from gateway.crypto import ADMISSIBLE
from gateway.identity import IdentityScheme
from gateway.model import Colour
from gateway.profiles.loader import (
    CONDITION_FORMATS,
    DELIMITERS,
    ENVELOPES,
    FIELD,
    KIND,
    MAX_CONDITIONS,
    MAX_FIELDS,
    MAX_KINDS,
    MAX_NOTE_CHARS,
    MAX_RULES,
    MAX_STATES,
    NUMERIC_PREFIX,
    PREFIX,
    PROFILE_ID,
)
from gateway.profiles.model import (
    MAX_PATH_SEGMENTS,
    PATH_SEGMENT,
    SEVERITY,
    EnvelopeFormat,
    KeyIdRule,
    PayloadFormat,
    StateType,
    Test,
    TextForm,
    TimeFormat,
)
from gateway.profiles.times import MAX_PATTERN_CHARS

_DELIMITED_KEYS = ("delimiter", "fields", "kid", "signature")


def _path() -> s.Schema:
    """``FieldPath.parse``: dot-separated segments, at most :data:`MAX_PATH_SEGMENTS`."""
    segment = f"(?:{PATH_SEGMENT})"
    pattern = re.compile(f"{segment}(?:\\.{segment}){{0,{MAX_PATH_SEGMENTS - 1}}}")
    return s.matching(pattern, 128)


def _if(key: str, value: str, then: s.Schema) -> s.Schema:
    return {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}


def _envelope() -> s.Schema:
    properties = {
        "format": s.choice(EnvelopeFormat),
        "text": s.choice(TextForm),
        "payload": s.choice(PayloadFormat),
        "prefix": s.text(10),
        "compression": {"const": "DEF"},
        "key_id": s.choice(KeyIdRule),
        "cbor_date_tags": s.boolean(),
        "algorithms": {
            **s.unique_list(s.choice(sorted(a.value for a in ADMISSIBLE)), len(ADMISSIBLE)),
            "minItems": 1,
        },
        "delimiter": s.choice(DELIMITERS),
        "fields": {**s.unique_list(s.matching(FIELD, 32), MAX_FIELDS), "minItems": 1},
        "kid": s.matching(FIELD, 32),
        "signature": {"const": "base64url"},
    }
    rules: list[s.Schema] = []
    for fmt, (texts, payloads) in ENVELOPES.items():
        then: s.Schema = {
            "properties": {
                "text": s.choice(t.value for t in texts),
                "payload": s.choice(p.value for p in payloads),
            }
        }
        if fmt is EnvelopeFormat.DELIMITED:
            then["required"] = list(_DELIMITED_KEYS)
        else:
            then["not"] = {"anyOf": [{"required": [k]} for k in _DELIMITED_KEYS]}
        if fmt is not EnvelopeFormat.JWS:
            then["properties"]["compression"] = False
        if fmt is not EnvelopeFormat.COSE:
            then["properties"]["key_id"] = s.choice(
                k.value for k in KeyIdRule if k is not KeyIdRule.X509_SHA256_8
            )
        rules.append(_if("format", fmt.value, then))
    numeric = {"properties": {"prefix": s.matching(NUMERIC_PREFIX, 10)}, "required": ["prefix"]}
    rules.append(_if("text", TextForm.NUMERIC.value, numeric))
    rules.append(
        {
            "if": {
                "properties": {
                    "format": {"enum": [EnvelopeFormat.COSE.value, EnvelopeFormat.DELIMITED.value]}
                },
                "required": ["format"],
            },
            "then": {"properties": {"prefix": s.matching(PREFIX, 10)}, "required": ["prefix"]},
        }
    )
    rules.append(
        {
            "if": {
                "properties": {
                    "format": {"enum": [EnvelopeFormat.JWS.value, EnvelopeFormat.ONLINE.value]},
                    "text": {"not": {"const": TextForm.NUMERIC.value}},
                },
                "required": ["format"],
            },
            "then": {"not": {"required": ["prefix"]}},
        }
    )
    rules.append(
        {
            "if": {"properties": {"payload": {"not": {"const": PayloadFormat.CBOR.value}}}},
            "then": {"properties": {"cbor_date_tags": {"const": False}}},
        }
    )
    return s.table(properties, required=("format", "text", "payload"), allOf=rules)


def _time(*, may_be_optional: bool) -> s.Schema:
    properties: dict[str, s.Schema] = {
        "path": _path(),
        "format": s.choice(TimeFormat),
        "pattern": s.text(MAX_PATTERN_CHARS),
        "zone": s.text(64),
    }
    if may_be_optional:
        properties["optional"] = s.boolean()
    local = {"required": ["pattern", "zone"]}
    other = {"not": {"anyOf": [{"required": ["pattern"]}, {"required": ["zone"]}]}}
    return s.table(
        properties,
        required=("path", "format"),
        **{"if": {"properties": {"format": {"const": TimeFormat.LOCAL.value}}}},
        then=local,
        **{"else": other},
    )


def _identity() -> s.Schema:
    path = _path()
    keys = {
        IdentityScheme.CN_RESIDENT_ID: ("path",),
        IdentityScheme.PSEUDONYM: ("path",),
        IdentityScheme.MASKED_LINK: ("masked", "link"),
        IdentityScheme.NAME_DOB: ("family", "given", "birth"),
    }
    every = sorted({k for ks in keys.values() for k in ks})
    rules = [
        _if(
            "scheme",
            scheme.value,
            {"required": list(needed), "propertyNames": {"enum": ["scheme", *needed]}},
        )
        for scheme, needed in keys.items()
    ]
    return s.table(
        {"scheme": s.choice(IdentityScheme), **dict.fromkeys(every, path)},
        required=("scheme",),
        allOf=rules,
    )


def _claims() -> s.Schema:
    path = _path()
    state = {
        "anyOf": [
            path,
            s.table({"path": path, "type": s.choice(StateType)}, required=("path",)),
        ]
    }
    return s.table(
        {
            "issuer": path,
            "issuer_region": path,
            "destination": path,
            "issued_at": _time(may_be_optional=False),
            "expires_at": _time(may_be_optional=True),
            "not_before": _time(may_be_optional=True),
            "state": state,
            "identity": _identity(),
            "kinds": {**s.keyed(s.matching(KIND, 32), path, MAX_KINDS), "minProperties": 1},
            "revocation_id": path,
        },
        required=("issued_at", "identity"),
    )


def _states() -> s.Schema:
    colour = s.choice(Colour)
    entry = s.table({"colour": colour, "note": s.text(MAX_NOTE_CHARS)}, required=("colour",))
    return {
        **s.keyed(
            {"type": "string", "minLength": 1, "maxLength": 64},
            {"anyOf": [colour, entry]},
            MAX_STATES,
        ),
        "minProperties": 1,
    }


def _conditions(condition: s.Schema) -> s.Schema:
    return {"type": "array", "items": condition, "minItems": 1, "maxItems": MAX_CONDITIONS}


def _condition() -> s.Schema:
    scalar = {"anyOf": [s.text(256), s.integer(-(2**63), 2**63 - 1)]}
    ref = {"$ref": "#/$defs/condition"}
    properties = {
        "path": _path(),
        Test.EQUALS.value: scalar,
        Test.IN.value: {"type": "array", "items": scalar, "minItems": 1, "maxItems": 64},
        Test.PRESENT.value: s.boolean(),
        Test.WITHIN.value: s.duration(),
        Test.OLDER_THAN.value: s.duration(),
        Test.AT_LEAST.value: s.integer(-(10**9), 10**9),
        Test.AT_LEAST_PATH.value: _path(),
        Test.COUNT.value: s.table(
            {"where": _conditions(ref), "at_least": s.integer(1, 1000)},
            required=("where", "at_least"),
        ),
        "format": s.choice(f.value for f in CONDITION_FORMATS),
    }
    timed = [Test.WITHIN.value, Test.OLDER_THAN.value]
    return s.table(
        properties,
        required=("path",),
        oneOf=[{"required": [t.value]} for t in Test],
        **{"if": {"anyOf": [{"required": [t]} for t in timed]}},
        then={"required": ["format"]},
        **{"else": {"not": {"required": ["format"]}}},
    )


def _colours() -> s.Schema:
    rule = s.table(
        {
            "name": s.text(64),
            "colour": s.choice(Colour),
            "when": _conditions({"$ref": "#/$defs/condition"}),
        },
        required=("name", "colour", "when"),
    )
    return s.table(
        {
            "otherwise": s.choice(c.value for c in Colour if c is not Colour.GREEN),
            "otherwise_name": s.text(64),
            "rule": {"type": "array", "items": rule, "minItems": 1, "maxItems": MAX_RULES},
        },
        required=("otherwise", "rule"),
    )


def _validity() -> s.Schema:
    severe = s.choice(c.value for c in SEVERITY)
    degrade = s.table(
        {"from": severe, "to": severe, "after": s.duration()}, required=("from", "to", "after")
    )
    return s.table(
        {
            "max": s.duration(),
            "duration": s.duration(),
            "until": {"const": "end-of-local-day"},
            "zone": s.text(64),
            "inclusive_expiry": s.boolean(),
            "degrade": {"type": "array", "items": degrade, "maxItems": 4},
        },
        dependentRequired={"until": ["zone"], "zone": ["until"]},
    )


def profile_schema() -> s.Schema:
    """The schema ``docs/schemas/profile.schema.json`` holds."""
    root = s.table(
        {
            "profile": s.table(
                {
                    "id": s.matching(PROFILE_ID, 64),
                    "version": s.integer(1, 1_000_000),
                    "description": s.text(512),
                },
                required=("id", "version"),
            ),
            "envelope": _envelope(),
            "claims": _claims(),
            "states": _states(),
            "colours": _colours(),
            "validity": _validity(),
        },
        required=("profile", "envelope", "claims"),
        # A profile gives colours by its states (claims.state and [states]) or by [colours].
        oneOf=[
            {
                "required": ["states"],
                "properties": {"claims": {"required": ["state"]}},
                "not": {"required": ["colours"]},
            },
            {"required": ["colours"], "properties": {"claims": {"not": {"required": ["state"]}}}},
        ],
    )
    return s.document(
        "huren translation profile",
        "How a region's codes are read and translated (docs/profiles.md). The structure only: "
        "`huren profile check` applies every rule.",
        {**root, "$defs": {"condition": _condition()}},
    )
