"""Load and validate a translation profile from TOML text (the language is in docs/profiles.md).

Validation happens here, once. A profile is refused, with a message naming the offending key, if
it has an unknown table or key, an unparseable path, pattern or zone, an unknown format, a local
state without a canonical colour, states not listed from least to most severe, a degradation
towards a less severe colour, no source of expiry, or anything else the gateway could not apply.
Nothing in the language can give an unlisted value a colour, so nothing unlisted can be GREEN.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from types import MappingProxyType

from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityScheme
from gateway.model import Colour, ProfileId, Reason
from gateway.profiles.model import (
    SEVERITY,
    Degrade,
    EnvelopeFormat,
    EnvelopeSpec,
    FieldPath,
    IdentityField,
    PayloadFormat,
    Profile,
    StateField,
    StateType,
    TextForm,
    TimeField,
    TimeFormat,
    Validity,
)
from gateway.profiles.times import compile_pattern
from gateway.tomltable import Table, parse_document

MAX_SOURCE_BYTES = 64 * 1024
MAX_STATES = 64
MAX_FIELDS = 16
_PROFILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_PREFIX = re.compile(r"[A-Z0-9]{1,8}:/?")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_DELIMITERS = "|~^;,*!"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_ENVELOPES = {
    EnvelopeFormat.JWS: (TextForm.COMPACT, (PayloadFormat.JSON, PayloadFormat.CBOR)),
    EnvelopeFormat.COSE: (TextForm.BASE45_ZLIB, (PayloadFormat.JSON, PayloadFormat.CBOR)),
    EnvelopeFormat.DELIMITED: (TextForm.DELIMITED, (PayloadFormat.DELIMITED,)),
    EnvelopeFormat.ONLINE: (TextForm.URL, (PayloadFormat.JSON,)),
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
    if not _PROFILE_ID.fullmatch(profile_id):
        raise ProfileError("profile.id must be lower-case letters, digits, '.', '_' or '-'")
    version = meta.integer("version", low=1, high=1_000_000)
    description = meta.text("description", required=False, max_len=512) or ""
    meta.done()

    envelope = _envelope(root.need_table("envelope"))

    claims = root.need_table("claims")
    issuer = claims.path("issuer", required=False)
    issued_at = _time_field(claims, "issued_at")
    expires_at = _time_field(claims, "expires_at") if claims.has("expires_at") else None
    state = _state_field(claims)
    identity = _identity(claims)
    claims.done()

    states = _states(root.need_table("states"), state.type)

    validity_table = root.table("validity", required=False)
    validity = _validity(validity_table) if validity_table is not None else Validity()
    root.done()

    if expires_at is None and validity.duration is None and validity.end_of_day is None:
        raise ProfileError(
            "no source of expiry: set claims.expires_at, validity.duration or validity.until"
        )
    if envelope.format is EnvelopeFormat.DELIMITED:
        for key, path in _paths(issuer, issued_at, expires_at, state, identity):
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
    )


def _paths(
    issuer: FieldPath | None,
    issued_at: TimeField,
    expires_at: TimeField | None,
    state: StateField,
    identity: IdentityField,
) -> list[tuple[str, FieldPath]]:
    pairs: list[tuple[str, FieldPath | None]] = [
        ("issuer", issuer),
        ("issued_at", issued_at.path),
        ("expires_at", expires_at.path if expires_at else None),
        ("state", state.path),
        ("identity", identity.path),
        ("identity.masked", identity.masked),
        ("identity.link", identity.link),
    ]
    return [(k, p) for k, p in pairs if p is not None]


def _envelope(table: _Table) -> EnvelopeSpec:
    fmt = table.choice("format", EnvelopeFormat)
    text = table.choice("text", TextForm)
    payload = table.choice("payload", PayloadFormat)
    text_form, payloads = _ENVELOPES[fmt]
    if text is not text_form:
        raise ProfileError(f"envelope.text must be {text_form.value!r} for a {fmt.value} envelope")
    if payload not in payloads:
        allowed = ", ".join(repr(p.value) for p in payloads)
        raise ProfileError(f"envelope.payload must be {allowed} for a {fmt.value} envelope")
    prefix = table.text("prefix", required=False, max_len=10) or ""
    if fmt in (EnvelopeFormat.JWS, EnvelopeFormat.ONLINE):
        if prefix:
            raise ProfileError(f"envelope.prefix is not used with {fmt.value} codes")
    elif not _PREFIX.fullmatch(prefix):
        raise ProfileError(
            "envelope.prefix must be 1-8 upper-case letters or digits and ':' (like 'BJ1:')"
        )
    if fmt is not EnvelopeFormat.DELIMITED:
        table.done()
        return EnvelopeSpec(fmt, text, payload, prefix)
    delimiter = table.need_text("delimiter", max_len=1)
    if delimiter not in _DELIMITERS:
        raise ProfileError(f"envelope.delimiter must be one of {_DELIMITERS!r}")
    fields = table.raw("fields")
    if (
        not isinstance(fields, list)
        or not 0 < len(fields) <= MAX_FIELDS
        or not all(isinstance(f, str) and _FIELD.fullmatch(f) for f in fields)
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
    return EnvelopeSpec(fmt, text, payload, prefix, delimiter, tuple(fields), kid)


def _time_field(claims: _Table, key: str) -> TimeField:
    table = claims.need_table(key)
    path = table.need_path("path")
    fmt = table.choice("format", TimeFormat)
    pattern, zone = "", None
    if fmt is TimeFormat.LOCAL:
        pattern = table.need_text("pattern", max_len=32)
        try:
            compile_pattern(pattern)
        except ValueError as e:
            raise ProfileError(f"{table.key('pattern')}: {e}") from e
        zone = table.zone("zone")
        if zone is None:
            raise ProfileError(f"missing {table.key('zone')} (a local time needs its time zone)")
    table.done()
    return TimeField(path, fmt, pattern, zone)


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
    else:
        identity = IdentityField(scheme, path=table.need_path("path"))
    table.done()
    return identity


def _states(table: _Table, state_type: StateType) -> Mapping[str, Colour]:
    items = table.items()
    if not items:
        raise ProfileError("states must list at least one local state")
    if len(items) > MAX_STATES:
        raise ProfileError(f"states may list at most {MAX_STATES} local states")
    names = [c.value for c in Colour]
    out: dict[str, Colour] = {}
    most_severe: tuple[str, Colour] | None = None
    for local, value in items:
        where = f"states.{local}"
        if not local or len(local) > 64 or not local.isprintable():
            raise ProfileError(
                f"states: local state {local[:20]!r} must be 1-64 printable characters"
            )
        if state_type is StateType.INTEGER and not _INTEGER.fullmatch(local):
            raise ProfileError(f"{where}: an integer state must be written as a decimal integer")
        if isinstance(value, dict):
            entry = table.child(value, where)
            value = entry.raw("colour", required=False)
            entry.text("note", required=False, max_len=256)
            entry.done()
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
    return MappingProxyType(out)


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
    return Validity(maximum, duration, end_of_day, tuple(degrade))


def _colour(rule: _Table, key: str) -> Colour:
    value = rule.need_text(key, max_len=8)
    colour = Colour(value) if value in Colour._value2member_map_ else None
    if colour not in SEVERITY:
        raise ProfileError(f"{rule.key(key)} must be GREEN, YELLOW or RED")
    assert colour is not None
    return colour
