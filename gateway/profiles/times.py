"""Time values in payloads: strict parsing for every time format a profile can declare.

Every format yields an aware UTC datetime between 2000-01-01 and 2100-01-01; anything else
(``true``, a number given as text, a float, a date without an offset, a local time that does not
exist in its zone) is ``ERR_CLAIMS``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from gateway.errors import CodeRejected
from gateway.model import Reason
from gateway.profiles.model import TimeField, TimeFormat

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# [0-9], never \d: \d also matches full-width and other Unicode digits.
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TOKENS = {"YYYY": 4, "MM": 2, "DD": 2, "HH": 2, "mm": 2, "ss": 2}
_TOKEN = re.compile("|".join(_TOKENS))


@lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex and the token order for a local pattern such as ``YYYYMMDDHHmmss``.

    Raises:
        ValueError: unless every token appears exactly once and the literals are separators.
    """
    regex, order, pos = "", [], 0
    for m in _TOKEN.finditer(pattern):
        literal = pattern[pos : m.start()]
        if any(c.isalnum() for c in literal):
            raise ValueError(f"pattern {pattern!r}: unknown letters {literal!r}")
        regex += re.escape(literal) + rf"([0-9]{{{_TOKENS[m.group()]}}})"
        order.append(m.group())
        pos = m.end()
    tail = pattern[pos:]
    if any(c.isalnum() for c in tail):
        raise ValueError(f"pattern {pattern!r}: unknown letters {tail!r}")
    regex += re.escape(tail)
    if sorted(order) != sorted(_TOKENS):
        raise ValueError(f"pattern {pattern!r} must use YYYY, MM, DD, HH, mm and ss once each")
    return re.compile(regex), tuple(order)


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
            if not EARLIEST.timestamp() <= seconds < LATEST.timestamp():
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
    regex, order = compile_pattern(spec.pattern)
    m = regex.fullmatch(text)
    if m is None or spec.zone is None:
        raise ValueError("does not match the pattern")
    parts = dict(zip(order, (int(g) for g in m.groups()), strict=True))
    local = datetime(
        parts["YYYY"],
        parts["MM"],
        parts["DD"],
        parts["HH"],
        parts["mm"],
        parts["ss"],
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
