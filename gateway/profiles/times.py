"""Time values in payloads: strict parsing for every time format a profile can declare.

Every format yields an aware UTC datetime between 2000-01-01 and 2100-01-01; anything else
(``true``, a number given as text, a float, a date without an offset, a local time that does not
exist in its zone) is ``ERR_CLAIMS``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from gateway.errors import CodeRejected
from gateway.model import Reason
from gateway.profiles.model import TimeField, TimeFormat

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_EARLIEST_S, _LATEST_S = EARLIEST.timestamp(), LATEST.timestamp()

# [0-9], never \d: \d also matches full-width and other Unicode digits.
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
MAX_PATTERN_CHARS = 64
"""The longest ``pattern`` a local time field may have (quotes included)."""
_FIELDS = {"YYYY": 4, "MM": 2, "DD": 2, "HH": 2, "mm": 2, "ss": 2}
_REQUIRED = ("YYYY", "MM", "DD", "HH", "mm")
_QUOTE = "'"


@dataclass(frozen=True, slots=True)
class LocalPattern:
    """A compiled local-time pattern: its parts in order (a field such as ``YYYY``, or
    literal text) and the regular expression that reads exactly that text."""

    parts: tuple[tuple[bool, str], ...]
    """``(True, field)`` or ``(False, literal)``; adjacent literals are joined."""
    regex: re.Pattern[str]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(text for is_field, text in self.parts if is_field)


def _separator(char: str) -> bool:
    """Whether ``char`` may stand for itself outside quotes: not an ASCII letter (those are
    pattern letters), not a digit of any script, not a letter with case (Latin, Greek,
    Cyrillic ...), not a control, format or line-break character. So spaces, punctuation,
    symbols and CJK characters (年 月 日 时 分 秒 ： the ideographic space) are."""
    if char.isascii() and char.isalpha():
        return False
    return unicodedata.category(char) not in ("Nd", "Lu", "Ll", "Lt") and _visible(char)


def _visible(char: str) -> bool:
    """Printable, or a space of any width (U+3000, the ideographic space, is not printable to
    Python); never a control, format or line-break character."""
    return char.isprintable() or unicodedata.category(char) == "Zs"


@lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> LocalPattern:
    """Compile a local-time pattern such as ``YYYYMMDDHHmmss``, ``YYYY-MM-DD'T'HH:mm:ss`` or
    ``YYYY年MM月DD日 HH时mm分`` (docs/profiles.md, "Time fields").

    Pattern letters are ``YYYY MM DD HH mm ss``: ``YYYY``, ``MM``, ``DD``, ``HH`` and ``mm``
    exactly once, ``ss`` at most once (without it the seconds are 0). Text in single quotes
    stands for itself (``''`` is one quote, inside quotes or out); so does every unquoted
    character :func:`_separator` allows.

    Raises:
        ValueError: naming the first problem and its position.
    """
    if not 0 < len(pattern) <= MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern has 1 to {MAX_PATTERN_CHARS} characters")
    parts: list[tuple[bool, str]] = []

    def literal(text: str) -> None:
        if parts and not parts[-1][0]:
            parts[-1] = (False, parts[-1][1] + text)
        else:
            parts.append((False, text))

    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == _QUOTE:
            text, pos = _quoted(pattern, pos)
            literal(text)
            continue
        field = next((f for f in _FIELDS if pattern.startswith(f, pos)), None)
        if field is not None:
            if field in (f for is_field, f in parts if is_field):
                raise ValueError(f"pattern {pattern!r} uses {field} twice")
            parts.append((True, field))
            pos += len(field)
            continue
        if char.isascii() and char.isalpha():
            raise ValueError(
                f"pattern {pattern!r}: unknown pattern letter {char!r} at position {pos}; "
                f"quote letters that stand for themselves: '{char}'"
            )
        if not _separator(char):
            raise ValueError(
                f"pattern {pattern!r}: {char!r} at position {pos} must be quoted "
                "(digits and letters with case stand for themselves only in quotes)"
            )
        literal(char)
        pos += 1
    fields = [f for is_field, f in parts if is_field]
    if not all(f in fields for f in _REQUIRED):
        raise ValueError(
            f"pattern {pattern!r} must use YYYY, MM, DD, HH and mm once each (ss at most once)"
        )
    regex = "".join(
        rf"([0-9]{{{_FIELDS[text]}}})" if is_field else re.escape(text) for is_field, text in parts
    )
    return LocalPattern(tuple(parts), re.compile(regex))


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The literal text of the quote that starts at ``start``, and the position after it.
    ``''`` is one quote character, inside a quoted text or on its own."""
    if pattern.startswith(_QUOTE * 2, start):
        return _QUOTE, start + 2
    text, pos = "", start + 1
    while pos < len(pattern):
        if pattern.startswith(_QUOTE * 2, pos):
            text, pos = text + _QUOTE, pos + 2
        elif pattern[pos] == _QUOTE:
            return text, pos + 1
        elif not _visible(pattern[pos]):
            raise ValueError(f"pattern {pattern!r}: unprintable character at position {pos}")
        else:
            text, pos = text + pattern[pos], pos + 1
    raise ValueError(f"pattern {pattern!r}: the quote at position {start} is not closed")


def parse_time(value: Any, spec: TimeField, what: str) -> datetime:
    """The instant ``value`` denotes under ``spec``.

    Raises:
        CodeRejected: ``ERR_CLAIMS`` for a value of the wrong type or shape, or out of range.
    """
    fmt = spec.format
    try:
        if fmt in (TimeFormat.UNIX_S, TimeFormat.UNIX_MS, TimeFormat.NUMERIC_DATE):
            numeric = (int, float) if fmt is TimeFormat.NUMERIC_DATE else (int,)
            if isinstance(value, bool) or not isinstance(value, numeric):
                raise ValueError("not a number" if len(numeric) > 1 else "not an integer")
            seconds = value / 1000 if fmt is TimeFormat.UNIX_MS else value
            if not _EARLIEST_S <= seconds < _LATEST_S:
                raise ValueError("out of range")
            return datetime.fromtimestamp(seconds, UTC)
        if not isinstance(value, str):
            raise ValueError("not text")
        if fmt is TimeFormat.ISO8601:
            instant = _iso(value)
        elif fmt is TimeFormat.DATE:
            instant = _date(value)
        else:
            instant = _local(value, spec)
    except (ValueError, OverflowError) as e:
        raise CodeRejected(Reason.ERR_CLAIMS, f"{what} is not a valid {fmt.value} time") from e
    if not EARLIEST <= instant < LATEST:
        raise CodeRejected(Reason.ERR_CLAIMS, f"{what} is outside 2000-2099")
    return instant


def _date(text: str) -> datetime:
    m = _DATE.fullmatch(text)
    if m is None:
        raise ValueError("not YYYY-MM-DD")
    return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=UTC)


def _iso(text: str) -> datetime:
    m = _ISO.fullmatch(text)
    if m is None:
        raise ValueError("not RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    offset = m.group(8)
    if offset == "Z":
        zone = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("bad offset")
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone).astimezone(UTC)


def _local(text: str, spec: TimeField) -> datetime:
    pattern = compile_pattern(spec.pattern)
    m = pattern.regex.fullmatch(text)
    if m is None or spec.zone is None:
        raise ValueError("does not match the pattern")
    parts = dict(zip(pattern.fields, (int(g) for g in m.groups()), strict=True))
    local = datetime(
        parts["YYYY"],
        parts["MM"],
        parts["DD"],
        parts["HH"],
        parts["mm"],
        parts.get("ss", 0),
        tzinfo=spec.zone,
    )
    instant = local.astimezone(UTC)
    if instant.astimezone(spec.zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError("no such local time in the zone")  # a skipped daylight-saving hour
    return instant


def end_of_local_day(instant: datetime, zone: Any) -> datetime:
    """The first midnight in ``zone`` after ``instant`` (Beijing: valid until 24:00)."""
    local = instant.astimezone(zone)
    next_day = (local + timedelta(days=1)).date()
    midnight = datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
    return midnight.astimezone(UTC)
