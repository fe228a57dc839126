"""Reading a TOML document strictly: every key must be known and consumed, every value checked,
and every message names the full key (``combine.strategy is 'wildest'; expected ...``).

Shared by the declarative languages (translation profiles, precedence policies); each passes the
error type its refusals raise.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DURATION = re.compile(r"([0-9]{1,6})(s|m|h|d)")
"""A duration: whole seconds, minutes, hours or days (``fullmatch``)."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_E = TypeVar("_E", bound=enum.Enum)

Refuse = Callable[[str], Exception]


def parse_document(source: str, what: str, max_bytes: int, refuse: Refuse) -> dict[str, Any]:
    """The TOML document in ``source``, at most ``max_bytes`` of UTF-8.

    Raises:
        Exception: ``refuse(message)`` if it is too large or not TOML.
    """
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise refuse(f"{what} is not valid Unicode text") from e
    if size > max_bytes:
        raise refuse(f"{what} is larger than {max_bytes} bytes")
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise refuse(f"{what} is not valid TOML: {e}") from e


def parse_duration(text: str) -> timedelta | None:
    """``'30m'``, ``'6h'``, ``'3d'`` (whole seconds, minutes, hours or days), or None."""
    m = DURATION.fullmatch(text)
    if m is None:
        return None
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def format_duration(value: timedelta) -> str:
    """``value`` (whole seconds) as :func:`parse_duration` reads it back, in its largest whole
    unit: ``'15m'``, ``'2h'``, ``'90s'``."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


class Table:
    """A TOML table being read."""

    def __init__(self, data: Mapping[str, Any], where: str, refuse: Refuse) -> None:
        self._data = data
        self._where = where
        self._seen: set[str] = set()
        self.refuse = refuse

    def key(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def child(self, data: Mapping[str, Any], where: str) -> Self:
        """A table of the same kind over ``data``, named ``where`` in messages."""
        return type(self)(data, where, self.refuse)

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str, *, required: bool = True) -> Any:
        self._seen.add(key)
        if key not in self._data:
            if required:
                raise self.refuse(f"missing {self.key(key)}")
            return None
        return self._data[key]

    def text(self, key: str, *, required: bool = True, max_len: int = 256) -> str | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > max_len:
            raise self.refuse(f"{self.key(key)} must be text of 1 to {max_len} characters")
        return value

    def need_text(self, key: str, *, max_len: int = 256) -> str:
        value = self.text(key, max_len=max_len)
        assert value is not None
        return value

    def integer(self, key: str, *, low: int, high: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.refuse(f"{self.key(key)} must be an integer from {low} to {high}")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.refuse(f"{self.key(key)} must be true or false")
        return value

    def text_list(self, key: str, *, max_items: int, max_len: int = 64) -> list[str]:
        value = self.raw(key, required=False)
        if value is None:
            return []
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or not all(isinstance(v, str) and 0 < len(v) <= max_len for v in value)
        ):
            raise self.refuse(
                f"{self.key(key)} must be a list of at most {max_items} texts "
                f"of 1 to {max_len} characters"
            )
        if len(set(value)) != len(value):
            raise self.refuse(f"{self.key(key)} lists a value twice")
        return value

    def table(self, key: str, *, required: bool = True) -> Self | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.refuse(f"{self.key(key)} must be a table")
        return self.child(value, self.key(key))

    def need_table(self, key: str) -> Self:
        value = self.table(key)
        assert value is not None
        return value

    def choice(self, key: str, enum_type: type[_E], *, default: _E | None = None) -> _E:
        value = self.raw(key, required=default is None)
        if value is None:
            assert default is not None
            return default
        allowed = [member.value for member in enum_type]
        if value not in allowed:
            raise self.refuse(
                f"{self.key(key)} is {value!r}; expected one of {', '.join(map(repr, allowed))}"
            )
        return enum_type(value)

    def duration(self, key: str) -> timedelta | None:
        text = self.text(key, required=False, max_len=16)
        if text is None:
            return None
        value = parse_duration(text)
        if value is None:
            raise self.refuse(f"{self.key(key)} must be a duration like '30m', '6h' or '3d'")
        if value <= timedelta(0):
            raise self.refuse(f"{self.key(key)} must be positive")
        return value

    def zone(self, key: str) -> ZoneInfo | None:
        name = self.text(key, required=False, max_len=64)
        if name is None:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise self.refuse(f"{self.key(key)}: unknown time zone {name!r}") from e

    def items(self) -> list[tuple[str, Any]]:
        self._seen.update(self._data)
        return list(self._data.items())

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.refuse(f"unknown key {self.key(unknown[0])}")
