"""Load and validate a translation profile from TOML text (the language is in docs/profiles.md).

Validation happens here, once: unknown tables or keys, unparseable paths, unknown formats, a state
mapped to anything but a canonical colour, or any construct that could turn an unlisted value
GREEN are refused with a message naming the offending key. Nothing is discovered per request.
"""

from __future__ import annotations

import enum
import hashlib
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityScheme
from gateway.model import Colour, ProfileId, Reason
from gateway.profiles.model import (
    EnvelopeFormat,
    EnvelopeSpec,
    FieldPath,
    IdentityField,
    PayloadFormat,
    Profile,
    TextForm,
    TimeField,
    TimeFormat,
)

MAX_SOURCE_BYTES = 64 * 1024
MAX_STATES = 64
_PROFILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_PREFIX = re.compile(r"[A-Z0-9]{1,8}:(?:/)?")
_DURATION = re.compile(r"([0-9]{1,6})(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_E = TypeVar("_E", bound=enum.Enum)


class ProfileError(ConfigurationInvalid):
    """A profile was refused; the message names the key and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.ERR_PROFILE, message)


class _Table:
    """A TOML table being read: every key must be consumed, and messages name the full key."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self._data = data
        self._where = where
        self._seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def raw(self, key: str, *, required: bool = True) -> Any:
        self._seen.add(key)
        if key not in self._data:
            if required:
                raise ProfileError(f"missing {self._key(key)}")
            return None
        return self._data[key]

    def text(self, key: str, *, required: bool = True, max_len: int = 256) -> str | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > max_len:
            raise ProfileError(f"{self._key(key)} must be text of 1 to {max_len} characters")
        return value

    def need_text(self, key: str, *, max_len: int = 256) -> str:
        value = self.text(key, max_len=max_len)
        assert value is not None
        return value

    def integer(self, key: str, *, low: int, high: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ProfileError(f"{self._key(key)} must be an integer from {low} to {high}")
        return value

    def table(self, key: str, *, required: bool = True) -> _Table | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ProfileError(f"{self._key(key)} must be a table")
        return _Table(value, self._key(key))

    def need_table(self, key: str) -> _Table:
        value = self.table(key)
        assert value is not None
        return value

    def choice(self, key: str, enum_type: type[_E], *, required: bool = True) -> _E | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        allowed = [member.value for member in enum_type]
        if value not in allowed:
            raise ProfileError(
                f"{self._key(key)} is {value!r}; expected one of {', '.join(map(repr, allowed))}"
            )
        return enum_type(value)

    def path(self, key: str) -> FieldPath:
        text = self.need_text(key, max_len=128)
        try:
            return FieldPath.parse(text)
        except ValueError as e:
            raise ProfileError(f"{self._key(key)}: {e}") from e

    def items(self) -> list[tuple[str, Any]]:
        self._seen.update(self._data)
        return list(self._data.items())

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise ProfileError(f"unknown key {self._key(unknown[0])}")


def load_profile(source: str) -> Profile:
    """Parse and validate a profile.

    Raises:
        ProfileError: with a message naming the first problem found.
    """
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise ProfileError(f"profile is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"profile is not valid TOML: {e}") from e
    root = _Table(data, "")

    meta = root.need_table("profile")
    profile_id = meta.need_text("id", max_len=64)
    if not _PROFILE_ID.fullmatch(profile_id):
        raise ProfileError("profile.id must be lower-case letters, digits, '.', '_' or '-'")
    version = meta.integer("version", low=1, high=1_000_000)
    description = meta.text("description", required=False, max_len=512) or ""
    meta.done()

    envelope = _envelope(root.need_table("envelope"))

    claims = root.need_table("claims")
    issuer = claims.path("issuer") if claims.raw("issuer", required=False) is not None else None
    issued_at = _time_field(claims, "issued_at")
    expires_at = _time_field(claims, "expires_at")
    state = claims.path("state")
    identity = _identity(claims)
    claims.done()

    states = _states(root.need_table("states"))

    validity = root.table("validity", required=False)
    max_validity = None
    if validity is not None:
        max_text = validity.text("max", required=False, max_len=16)
        max_validity = _duration(max_text, "validity.max") if max_text else None
        validity.done()
    root.done()

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
        max_validity=max_validity,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
    )


def _envelope(table: _Table) -> EnvelopeSpec:
    fmt = table.choice("format", EnvelopeFormat)
    text = table.choice("text", TextForm)
    payload = table.choice("payload", PayloadFormat)
    prefix = table.text("prefix", required=False, max_len=9) or ""
    table.done()
    assert fmt is not None
    assert text is not None
    assert payload is not None
    if fmt is EnvelopeFormat.JWS:
        if text is not TextForm.COMPACT:
            raise ProfileError("envelope.text must be 'compact' for a JWS envelope")
        if prefix:
            raise ProfileError("envelope.prefix is not used with compact JWS")
    elif fmt is EnvelopeFormat.COSE:
        if text is not TextForm.BASE45_ZLIB:
            raise ProfileError("envelope.text must be 'base45-zlib' for a COSE envelope")
        if not _PREFIX.fullmatch(prefix):
            raise ProfileError(
                "envelope.prefix must be 1-8 upper-case letters or digits and ':' (like 'BJ1:')"
            )
    return EnvelopeSpec(fmt, text, payload, prefix)


def _time_field(claims: _Table, key: str) -> TimeField:
    table = claims.need_table(key)
    path = table.path("path")
    fmt = table.choice("format", TimeFormat)
    table.done()
    assert fmt is not None
    return TimeField(path, fmt)


def _identity(claims: _Table) -> IdentityField:
    table = claims.need_table("identity")
    path = table.path("path")
    scheme = table.choice("scheme", IdentityScheme)
    table.done()
    assert scheme is not None
    return IdentityField(path, scheme)


def _states(table: _Table) -> Mapping[str, Colour]:
    items = table.items()
    if not items:
        raise ProfileError("states must list at least one local state")
    if len(items) > MAX_STATES:
        raise ProfileError(f"states may list at most {MAX_STATES} local states")
    out: dict[str, Colour] = {}
    for local, colour in items:
        if not local or len(local) > 64 or not local.isprintable():
            raise ProfileError(
                f"states: local state {local[:20]!r} must be 1-64 printable characters"
            )
        names = [c.value for c in Colour]
        if colour not in names:
            raise ProfileError(
                f"states.{local} is {colour!r}; expected one of {', '.join(map(repr, names))}"
            )
        out[local] = Colour(colour)
    return MappingProxyType(out)


def _duration(text: str, key: str) -> timedelta:
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ProfileError(f"{key} must be a duration like '30m', '6h' or '3d'")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ProfileError(f"{key} must be positive")
    return timedelta(seconds=seconds)
