"""Load and validate a translation profile from TOML text (the language is in docs/profiles.md).

Validation happens here, once. A profile is refused, with a message naming the offending key, if
it has an unknown table or key, an unparseable path, pattern or zone, an unknown format, a local
state without a canonical colour, states not listed from least to most severe, a degradation
towards a less severe colour, no source of expiry, or anything else the gateway could not apply.
Nothing in the language can give an unlisted value a colour, so nothing unlisted can be GREEN.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.crypto import ADMISSIBLE, Algorithm
from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityScheme
from gateway.model import Colour, ProfileId, Reason
from gateway.profiles.model import (
    SEVERITY,
    ColourRule,
    ColourRules,
    Condition,
    Degrade,
    EnvelopeFormat,
    EnvelopeSpec,
    FieldPath,
    IdentityField,
    KeyIdRule,
    PayloadFormat,
    Profile,
    StateField,
    StateType,
    Test,
    TextForm,
    TimeField,
    TimeFormat,
    Validity,
)
from gateway.profiles.times import MAX_PATTERN_CHARS, compile_pattern
from gateway.tomltable import Table, parse_document

MAX_SOURCE_BYTES = 64 * 1024
MAX_STATES = 64
MAX_NOTE_CHARS = 256
MAX_FIELDS = 16
PROFILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
PREFIX = re.compile(r"[A-Z0-9]{1,8}:/?")
NUMERIC_PREFIX = re.compile(r"[a-z0-9]{1,8}:/")
MAX_RULES = 32
MAX_CONDITIONS = 8
MAX_KINDS = 8
KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
DELIMITERS = "|~^;,*!"
INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,17})")
ENVELOPES = {
    EnvelopeFormat.JWS: (
        (TextForm.COMPACT, TextForm.NUMERIC),
        (PayloadFormat.JSON, PayloadFormat.CBOR),
    ),
    EnvelopeFormat.COSE: ((TextForm.BASE45_ZLIB,), (PayloadFormat.JSON, PayloadFormat.CBOR)),
    EnvelopeFormat.DELIMITED: ((TextForm.DELIMITED,), (PayloadFormat.DELIMITED,)),
    EnvelopeFormat.ONLINE: ((TextForm.URL,), (PayloadFormat.JSON,)),
}


class ProfileError(ConfigurationInvalid):
    """A profile was refused; the message names the key and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.ERR_PROFILE, message)


class _Table(Table):
    """A profile table: the shared reader plus field paths."""

    def path(self, key: str, *, required: bool = True) -> FieldPath | None:
        text = self.text(key, required=required, max_len=128)
        if text is None:
            return None
        try:
            return FieldPath.parse(text)
        except ValueError as e:
            raise ProfileError(f"{self.key(key)}: {e}") from e

    def need_path(self, key: str) -> FieldPath:
        path = self.path(key)
        assert path is not None
        return path


def load_profile(source: str) -> Profile:
    """Parse and validate a profile.

    Raises:
        ProfileError: with a message naming the first problem found.
    """
    data = parse_document(source, "profile", MAX_SOURCE_BYTES, ProfileError)
    root = _Table(data, "", ProfileError)

    meta = root.need_table("profile")
    profile_id = meta.need_text("id", max_len=64)
    if not PROFILE_ID.fullmatch(profile_id):
        raise ProfileError("profile.id must be lower-case letters, digits, '.', '_' or '-'")
    version = meta.integer("version", low=1, high=1_000_000)
    description = meta.text("description", required=False, max_len=512) or ""
    meta.done()

    envelope = _envelope(root.need_table("envelope"))

    claims = root.need_table("claims")
    issuer = claims.path("issuer", required=False)
    issuer_region = claims.path("issuer_region", required=False)
    destination = claims.path("destination", required=False)
    issued_at = _time_field(claims, "issued_at")
    expires_at = (
        _time_field(claims, "expires_at", may_be_optional=True)
        if claims.has("expires_at")
        else None
    )
    by_rules = root.has("colours")
    state = None if by_rules and not claims.has("state") else _state_field(claims)
    identity = _identity(claims)
    kinds = _kinds(claims)
    revocation_id = claims.path("revocation_id", required=False)
    not_before = (
        _time_field(claims, "not_before", may_be_optional=True)
        if claims.has("not_before")
        else None
    )
    claims.done()

    rules = None
    states: Mapping[str, Colour] = MappingProxyType({})
    notes: Mapping[str, str] = MappingProxyType({})
    if by_rules:
        if state is not None or root.has("states"):
            raise ProfileError(
                "colours replaces claims.state and states: a profile has one or the other"
            )
        rules = _rules(root.need_table("colours"))
    else:
        assert state is not None
        states, notes = _states(root.need_table("states"), state.type)

    validity_table = root.table("validity", required=False)
    validity = _validity(validity_table) if validity_table is not None else Validity()
    root.done()

    fixed_expiry = expires_at is not None and not expires_at.optional
    if not fixed_expiry and validity.duration is None and validity.end_of_day is None:
        raise ProfileError(
            "no source of expiry: set claims.expires_at, validity.duration or validity.until"
            " (an optional expires_at needs one of the others)"
        )
    if envelope.format is EnvelopeFormat.DELIMITED:
        for key, path in _paths(
            issuer, issuer_region, issued_at, expires_at, not_before, state, identity, destination
        ):
            if len(path.segments) != 1 or path.segments[0] not in envelope.fields:
                raise ProfileError(f"claims.{key}: {path.text!r} is not one of envelope.fields")

    return Profile(
        id=ProfileId(profile_id),
        version=version,
        description=description,
        envelope=envelope,
        issuer=issuer,
        issued_at=issued_at,
        expires_at=expires_at,
        state=state,
        identity=identity,
        states=states,
        validity=validity,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        canonical_sha256=_canonical_sha256(data),
        rules=rules,
        kinds=kinds,
        revocation_id=revocation_id,
        not_before=not_before,
        issuer_region=issuer_region,
        destination=destination,
        notes=notes,
    )


def _canonical_sha256(data: Mapping[str, Any]) -> str:
    """The digest of a profile's TOML data, in document order (the order of ``[states]`` is
    meaning, so keys are not sorted). Called after validation, which admits only text,
    integers, booleans, lists and tables; ``repr`` keeps anything else deterministic."""
    canonical = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _paths(
    issuer: FieldPath | None,
    issuer_region: FieldPath | None,
    issued_at: TimeField,
    expires_at: TimeField | None,
    not_before: TimeField | None,
    state: StateField | None,
    identity: IdentityField,
    destination: FieldPath | None = None,
) -> list[tuple[str, FieldPath]]:
    pairs: list[tuple[str, FieldPath | None]] = [
        ("issuer", issuer),
        ("issuer_region", issuer_region),
        ("issued_at", issued_at.path),
        ("expires_at", expires_at.path if expires_at else None),
        ("not_before", not_before.path if not_before else None),
        ("state", state.path if state else None),
        ("identity", identity.path),
        ("identity.masked", identity.masked),
        ("identity.link", identity.link),
        ("destination", destination),
    ]
    return [(k, p) for k, p in pairs if p is not None]


_ALGORITHMS = ", ".join(sorted(a.value for a in ADMISSIBLE))


def _algorithms(value: object) -> tuple[Algorithm, ...]:
    """``envelope.algorithms``: a non-empty list of distinct admitted algorithm names."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ProfileError(f"envelope.algorithms must be a non-empty list of: {_ALGORITHMS}")
    chosen: list[Algorithm] = []
    for name in value:
        algorithm = next((a for a in ADMISSIBLE if a.value == name), None)
        if algorithm is None:
            raise ProfileError(
                f"envelope.algorithms: {name!r} is not an algorithm the gateway admits "
                f"({_ALGORITHMS})"
            )
        if algorithm in chosen:
            raise ProfileError(f"envelope.algorithms names {name} twice")
        chosen.append(algorithm)
    return tuple(chosen)


def _envelope(table: _Table) -> EnvelopeSpec:
    fmt = table.choice("format", EnvelopeFormat)
    text = table.choice("text", TextForm)
    payload = table.choice("payload", PayloadFormat)
    text_forms, payloads = ENVELOPES[fmt]
    if text not in text_forms:
        allowed = " or ".join(repr(t.value) for t in text_forms)
        raise ProfileError(f"envelope.text must be {allowed} for a {fmt.value} envelope")
    if payload not in payloads:
        allowed = ", ".join(repr(p.value) for p in payloads)
        raise ProfileError(f"envelope.payload must be {allowed} for a {fmt.value} envelope")
    prefix = table.text("prefix", required=False, max_len=10) or ""
    if text is TextForm.NUMERIC:
        if not NUMERIC_PREFIX.fullmatch(prefix):
            raise ProfileError(
                "envelope.prefix must be 1-8 lower-case letters or digits and ':/' "
                "(like 'shc:/') for numeric codes"
            )
    elif fmt in (EnvelopeFormat.JWS, EnvelopeFormat.ONLINE):
        if prefix:
            raise ProfileError(f"envelope.prefix is not used with {fmt.value} codes")
    elif not PREFIX.fullmatch(prefix):
        raise ProfileError(
            "envelope.prefix must be 1-8 upper-case letters or digits and ':' (like 'BJ1:')"
        )
    compression = table.text("compression", required=False, max_len=8) or ""
    if compression and (fmt is not EnvelopeFormat.JWS or compression != "DEF"):
        raise ProfileError("envelope.compression must be 'DEF', and only for jws envelopes")
    key_id = table.choice("key_id", KeyIdRule, default=KeyIdRule.ANY)
    date_tags = table.boolean("cbor_date_tags", default=False)
    if date_tags and payload is not PayloadFormat.CBOR:
        raise ProfileError("envelope.cbor_date_tags is only for cbor payloads")
    if key_id is KeyIdRule.X509_SHA256_8 and fmt is not EnvelopeFormat.COSE:
        raise ProfileError("envelope.key_id 'x509-sha256-8' is for cose envelopes")
    algorithms = _algorithms(table.raw("algorithms", required=False))
    if fmt is not EnvelopeFormat.DELIMITED:
        table.done()
        return EnvelopeSpec(
            fmt,
            text,
            payload,
            prefix,
            compression=compression,
            date_tags=date_tags,
            key_id=key_id,
            algorithms=algorithms,
        )
    delimiter = table.need_text("delimiter", max_len=1)
    if delimiter not in DELIMITERS:
        raise ProfileError(f"envelope.delimiter must be one of {DELIMITERS!r}")
    fields = table.raw("fields")
    if (
        not isinstance(fields, list)
        or not 0 < len(fields) <= MAX_FIELDS
        or not all(isinstance(f, str) and FIELD.fullmatch(f) for f in fields)
        or len(set(fields)) != len(fields)
    ):
        raise ProfileError(
            f"envelope.fields must list 1 to {MAX_FIELDS} distinct names (letters, digits, '_')"
        )
    kid = table.need_text("kid", max_len=32)
    if kid not in fields:
        raise ProfileError(f"envelope.kid: {kid!r} is not one of envelope.fields")
    signature = table.need_text("signature", max_len=16)
    if signature != "base64url":
        raise ProfileError("envelope.signature must be 'base64url'")
    table.done()
    return EnvelopeSpec(
        fmt, text, payload, prefix, delimiter, tuple(fields), kid, algorithms=algorithms
    )


def _time_field(claims: _Table, key: str, *, may_be_optional: bool = False) -> TimeField:
    table = claims.need_table(key)
    path = table.need_path("path")
    fmt = table.choice("format", TimeFormat)
    optional = table.boolean("optional", default=False) if may_be_optional else False
    pattern, zone = "", None
    if fmt is TimeFormat.LOCAL:
        pattern = table.need_text("pattern", max_len=MAX_PATTERN_CHARS)
        try:
            compile_pattern(pattern)
        except ValueError as e:
            raise ProfileError(f"{table.key('pattern')}: {e}") from e
        zone = table.zone("zone")
        if zone is None:
            raise ProfileError(f"missing {table.key('zone')} (a local time needs its time zone)")
    table.done()
    return TimeField(path, fmt, pattern, zone, optional)


def _state_field(claims: _Table) -> StateField:
    raw = claims.raw("state")
    if isinstance(raw, str):
        return StateField(claims.need_path("state"))
    table = claims.need_table("state")
    state = StateField(table.need_path("path"), table.choice("type", StateType))
    table.done()
    return state


def _identity(claims: _Table) -> IdentityField:
    table = claims.need_table("identity")
    scheme = table.choice("scheme", IdentityScheme)
    if scheme is IdentityScheme.MASKED_LINK:
        identity = IdentityField(
            scheme, masked=table.need_path("masked"), link=table.need_path("link")
        )
    elif scheme is IdentityScheme.NAME_DOB:
        identity = IdentityField(
            scheme,
            family=table.need_path("family"),
            given=table.need_path("given"),
            birth=table.need_path("birth"),
        )
    else:
        identity = IdentityField(scheme, path=table.need_path("path"))
    table.done()
    return identity


def _states(table: _Table, state_type: StateType) -> tuple[Mapping[str, Colour], Mapping[str, str]]:
    """The states in order with their colours, and the notes of those that have one."""
    items = table.items()
    if not items:
        raise ProfileError("states must list at least one local state")
    if len(items) > MAX_STATES:
        raise ProfileError(f"states may list at most {MAX_STATES} local states")
    names = [c.value for c in Colour]
    out: dict[str, Colour] = {}
    notes: dict[str, str] = {}
    most_severe: tuple[str, Colour] | None = None
    for local, value in items:
        where = f"states.{local}"
        if not local or len(local) > 64 or not local.isprintable():
            raise ProfileError(
                f"states: local state {local[:20]!r} must be 1-64 printable characters"
            )
        if state_type is StateType.INTEGER and not INTEGER.fullmatch(local):
            raise ProfileError(f"{where}: an integer state must be written as a decimal integer")
        if isinstance(value, dict):
            entry = table.child(value, where)
            value = entry.raw("colour", required=False)
            note = entry.text("note", required=False, max_len=MAX_NOTE_CHARS)
            entry.done()
            if note is not None:
                if not note.isprintable():
                    raise ProfileError(f"{where}.note must be one line of printable text")
                notes[local] = note
            if value is None:
                raise ProfileError(f"{where} has no colour")
        if value not in names:
            raise ProfileError(
                f"{where} is {value!r}; expected one of {', '.join(map(repr, names))}"
            )
        colour = Colour(value)
        if colour in SEVERITY:
            if most_severe is not None and SEVERITY[colour] < SEVERITY[most_severe[1]]:
                raise ProfileError(
                    f"states must be listed from least to most severe: {most_severe[0]!r} "
                    f"({most_severe[1].value}) comes before {local!r} ({colour.value})"
                )
            most_severe = (local, colour)
        out[local] = colour
    return MappingProxyType(out), MappingProxyType(notes)


def _validity(table: _Table) -> Validity:
    maximum = table.duration("max")
    duration = table.duration("duration")
    until = table.text("until", required=False, max_len=32)
    end_of_day = None
    if until is not None:
        if until != "end-of-local-day":
            raise ProfileError("validity.until must be 'end-of-local-day'")
        end_of_day = table.zone("zone")
        if end_of_day is None:
            raise ProfileError("missing validity.zone (end-of-local-day needs its time zone)")
    elif table.has("zone"):
        raise ProfileError("validity.zone is only used with validity.until")
    inclusive = table.boolean("inclusive_expiry", default=False)
    rules = table.raw("degrade", required=False) or []
    if not isinstance(rules, list) or len(rules) > 4:
        raise ProfileError("validity.degrade must be a list of at most 4 rules")
    degrade: list[Degrade] = []
    for index, raw in enumerate(rules):
        if not isinstance(raw, dict):
            raise ProfileError(f"validity.degrade[{index}] must be a table")
        rule = table.child(raw, f"validity.degrade[{index}]")
        source = _colour(rule, "from")
        target = _colour(rule, "to")
        after = rule.duration("after")
        rule.done()
        if after is None:
            raise ProfileError(f"missing validity.degrade[{index}].after")
        if SEVERITY[target] <= SEVERITY[source]:
            raise ProfileError(
                f"validity.degrade[{index}] must go to a more severe colour "
                f"({source.value} -> {target.value} does not)"
            )
        if any(r.source is source for r in degrade):
            raise ProfileError(f"validity.degrade has two rules for {source.value}")
        degrade.append(Degrade(source, target, after))
    table.done()
    return Validity(maximum, duration, end_of_day, tuple(degrade), inclusive)


def _colour(rule: _Table, key: str) -> Colour:
    value = rule.need_text(key, max_len=8)
    colour = Colour(value) if value in Colour._value2member_map_ else None
    if colour not in SEVERITY:
        raise ProfileError(f"{rule.key(key)} must be GREEN, YELLOW or RED")
    assert colour is not None
    return colour


def _kinds(claims: _Table) -> Mapping[str, FieldPath]:
    table = claims.table("kinds", required=False)
    if table is None:
        return MappingProxyType({})
    kinds: dict[str, FieldPath] = {}
    items = table.items()
    if not items or len(items) > MAX_KINDS:
        raise ProfileError(f"claims.kinds must name 1 to {MAX_KINDS} kinds")
    for name, _ in items:
        if not KIND.fullmatch(name):
            raise ProfileError(f"claims.kinds: {name[:32]!r} must be a lower-case name")
        path = table.path(name)
        assert path is not None
        kinds[name] = path
    table.done()
    return MappingProxyType(kinds)


def _rules(table: _Table) -> ColourRules:
    otherwise = _any_colour(table, "otherwise")
    if otherwise is Colour.GREEN:
        raise ProfileError("colours.otherwise cannot be GREEN: what no rule vouches for is not")
    otherwise_name = table.text("otherwise_name", required=False, max_len=64) or "no rule applies"
    raw = table.raw("rule")
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_RULES:
        raise ProfileError(f"colours.rule must list 1 to {MAX_RULES} rules ([[colours.rule]])")
    rules: list[ColourRule] = []
    for index, entry in enumerate(raw):
        where = f"colours.rule[{index}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{where} must be a table")
        rule = table.child(entry, where)
        name = rule.need_text("name", max_len=64)
        if not name.isprintable() or name in {r.name for r in rules} or name == otherwise_name:
            raise ProfileError(f"{where}.name must be printable and unique")
        colour = _any_colour(rule, "colour")
        when = _conditions(rule, "when", where, nested=False)
        if colour is Colour.GREEN and all(c.test is Test.PRESENT and not c.value for c in when):
            raise ProfileError(
                f"{where}: a GREEN rule must test something the certificate holds, "
                "not only that fields are absent (present = false)"
            )
        rule.done()
        rules.append(ColourRule(name, colour, when))
    table.done()
    return ColourRules(tuple(rules), otherwise, otherwise_name)


def _any_colour(table: _Table, key: str) -> Colour:
    value = table.need_text(key, max_len=8)
    if value not in Colour._value2member_map_:
        names = ", ".join(repr(c.value) for c in Colour)
        raise ProfileError(f"{table.key(key)} is {value!r}; expected one of {names}")
    return Colour(value)


_TESTS_NEEDING_TIME = (Test.WITHIN, Test.OLDER_THAN)
CONDITION_FORMATS = (
    TimeFormat.UNIX_S,
    TimeFormat.UNIX_MS,
    TimeFormat.NUMERIC_DATE,
    TimeFormat.ISO8601,
    TimeFormat.DATE,
)


def _conditions(rule: _Table, key: str, where: str, *, nested: bool) -> tuple[Condition, ...]:
    raw = rule.raw(key)
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_CONDITIONS:
        raise ProfileError(f"{where}.{key} must list 1 to {MAX_CONDITIONS} conditions")
    out = []
    for index, entry in enumerate(raw):
        at = f"{where}.{key}[{index}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{at} must be a table like {{ path = ..., equals = ... }}")
        out.append(_condition(rule.child(entry, at), at, nested=nested))
    return tuple(out)


def _condition(table: _Table, where: str, *, nested: bool) -> Condition:
    path = table.need_path("path")
    tests = [t for t in Test if table.has(t.value)]
    if len(tests) != 1:
        names = ", ".join(t.value for t in Test)
        raise ProfileError(f"{where} must have exactly one test of: {names}")
    (test,) = tests
    fmt = None
    if test in _TESTS_NEEDING_TIME:
        fmt = table.choice("format", TimeFormat)
        if fmt not in CONDITION_FORMATS:
            raise ProfileError(f"{table.key('format')}: a condition cannot read local times")
    value: Any = None
    other = None
    where_conditions: tuple[Condition, ...] = ()
    if test is Test.EQUALS:
        value = _scalar(table.raw("equals"), table.key("equals"))
    elif test is Test.IN:
        raw = table.raw("in")
        if not isinstance(raw, list) or not 0 < len(raw) <= 64:
            raise ProfileError(f"{table.key('in')} must list 1 to 64 values")
        value = tuple(_scalar(v, table.key("in")) for v in raw)
    elif test is Test.PRESENT:
        value = table.boolean("present", default=True)
    elif test in _TESTS_NEEDING_TIME:
        value = table.duration(test.value)
    elif test is Test.AT_LEAST:
        value = table.integer("at_least", low=-(10**9), high=10**9)
    elif test is Test.AT_LEAST_PATH:
        other = table.need_path("at_least_path")
    else:  # count
        if nested:
            raise ProfileError(f"{where}: count cannot be nested")
        count = table.need_table("count")
        where_conditions = _conditions(count, "where", table.key("count"), nested=True)
        value = count.integer("at_least", low=1, high=1000)
        count.done()
    table.done()
    return Condition(path, test, value, fmt, other, where_conditions)


def _scalar(value: Any, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProfileError(f"{where} must be text or an integer")
    if isinstance(value, str) and not 0 < len(value) <= 256:
        raise ProfileError(f"{where} must be text of 1 to 256 characters")
    return value
