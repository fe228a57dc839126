"""Local time patterns: pattern letters, quoted literals and separators (docs/profiles.md,
"Time fields"), a round trip for every pattern the language can write, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import CodeRejected
from gateway.model import Reason
from gateway.profiles import ProfileError, load_profile
from gateway.profiles.model import FieldPath, TimeField, TimeFormat
from gateway.profiles.times import MAX_PATTERN_CHARS, compile_pattern, parse_time
from tests.unit.profiles.test_loader import BASE

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 2, 5, 9, tzinfo=UTC)  # 10:05:09 in Shanghai
WIDTHS = {"YYYY": 4, "MM": 2, "DD": 2, "HH": 2, "mm": 2, "ss": 2}
_ATTRIBUTE = {
    "YYYY": "year",
    "MM": "month",
    "DD": "day",
    "HH": "hour",
    "mm": "minute",
    "ss": "second",
}


def _local(pattern: str, zone: ZoneInfo = SHANGHAI) -> TimeField:
    return TimeField(FieldPath.parse("t"), TimeFormat.LOCAL, pattern, zone)


def _profile_with(pattern: str) -> str:
    """The test profile with its issue time read as a local time written as ``pattern``."""
    pattern_toml = pattern.replace("\\", "\\\\").replace('"', '\\"')
    old = 'issued_at = { path = "iat", format = "unix-s" }'
    assert old in BASE
    return BASE.replace(
        old,
        f'issued_at = {{ path = "iat", format = "local", pattern = "{pattern_toml}", '
        'zone = "Asia/Shanghai" }',
    )


@pytest.mark.parametrize(
    ("pattern", "text", "instant"),
    [
        ("YYYYMMDDHHmmss", "20261123100509", T0),
        ("YYYY-MM-DD'T'HH:mm:ss", "2026-11-23T10:05:09", T0),
        ("YYYY年MM月DD日 HH时mm分ss秒", "2026年11月23日 10时05分09秒", T0),
        ("YYYY年MM月DD日 HH时mm分", "2026年11月23日 10时05分", T0.replace(second=0)),
        ("DD/MM/YYYY HH:mm", "23/11/2026 10:05", T0.replace(second=0)),
        ("YYYY'年''s' MM'' DD HH.mm.ss", "2026年's 11' 23 10.05.09", T0),
        ("''YYYY''MMDDHHmmss", "'2026'1123100509", T0),
        ("'at' HH:mm:ss 'on' YYYY-MM-DD", "at 10:05:09 on 2026-11-23", T0),
        ("YYYY\u3000MM\u3000DD\u3000HH：mm：ss", "2026\u300011\u300023\u300010：05：09", T0),
    ],
    ids=[
        "compact",
        "iso-without-offset",
        "chinese-with-seconds",
        "chinese-without-seconds",
        "day-first",
        "quotes-inside-quotes",
        "quote-outside-quotes",
        "quoted-words",
        "ideographic-space-full-width-colon",
    ],
)
def test_patterns_read_the_times_they_describe(pattern, text, instant):
    assert parse_time(text, _local(pattern), "t") == instant
    assert load_profile(_profile_with(pattern)).issued_at.pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("YYYY-MM-DD'T'HH:mm:ss", "2026-11-23 10:05:09"),
        ("YYYY-MM-DD'T'HH:mm:ss", "2026-11-23t10:05:09"),
        ("YYYY-MM-DD'T'HH:mm:ss", "2026-11-23T10:05:09Z"),
        ("YYYY年MM月DD日 HH时mm分", "2026年11月23日10时05分"),
        ("YYYY年MM月DD日 HH时mm分", "2026年11月23日 10时5分"),
        ("YYYY年MM月DD日 HH时mm分", "２０２６年11月23日 10时05分"),
        ("YYYYMMDDHHmm", "202611231005\n"),
        ("YYYYMMDDHHmm", "202613231005"),
    ],
    ids=[
        "space-for-T",
        "lower-case-t",
        "trailing-offset",
        "missing-space",
        "one-digit-minute",
        "full-width-digits",
        "trailing-newline",
        "month-13",
    ],
)
def test_a_time_that_does_not_match_its_pattern_exactly_is_a_claims_error(pattern, text):
    with pytest.raises(CodeRejected) as refused:
        parse_time(text, _local(pattern), "issued-at")
    assert refused.value.reason is Reason.ERR_CLAIMS
    assert refused.value.detail == "issued-at is not a valid local time"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            "YYYY-MM-DDTHH:mm:ss",
            "unknown pattern letter 'T' at position 10; quote letters that stand for "
            "themselves: 'T'",
        ),
        ("yyyy-MM-DD HH:mm", "unknown pattern letter 'y' at position 0"),
        ("YYYY-MM-DD HH:mm:ssZ", "unknown pattern letter 'Z' at position 19"),
        ("YYYYY-MM-DD HH:mm", "unknown pattern letter 'Y' at position 4"),
        ("YYYY-MM-DD hh:mm", "unknown pattern letter 'h' at position 11"),
        ("YYYY-MM-DD HH:mm'", "the quote at position 16 is not closed"),
        ("YYYY-MM-DD HH:mm 'T", "the quote at position 17 is not closed"),
        ("'20'YY-MM-DD HH:mm", "unknown pattern letter 'Y' at position 4"),
        ("YYYY-MM-DD HH:mm 0", "'0' at position 17 must be quoted"),
        ("YYYY-MM-DD HH:mm ２", "'２' at position 17 must be quoted"),
        ("YYYY-MM-DD HH:mm é", "'é' at position 17 must be quoted"),
        ("YYYY-MM-DD HH:mm Ω", "'Ω' at position 17 must be quoted"),
        ("YYYY-MM-DD\tHH:mm", "'\\t' at position 10 must be quoted"),
        ("YYYY-MM-DD HH:mm'\u200b'", "unprintable character at position 17"),
        ("YYYY-MM-DD HH:mm:ss:ss", "uses ss twice"),
        ("YYYY-MM-DD HH", "must use YYYY, MM, DD, HH and mm once each (ss at most once)"),
        ("YYYY-MM-DD", "must use YYYY, MM, DD, HH and mm once each"),
        ("YYYYMMDDHHmm" + "'-'" * 20, f"text of 1 to {MAX_PATTERN_CHARS} characters"),
    ],
    ids=[
        "unquoted-T",
        "lower-case-year",
        "unquoted-Z",
        "five-Y",
        "twelve-hour-clock",
        "unclosed-quote",
        "unclosed-quoted-word",
        "quoted-century-then-YY",
        "unquoted-digit",
        "unquoted-full-width-digit",
        "unquoted-latin-letter",
        "unquoted-greek-letter",
        "tab",
        "zero-width-space-in-quotes",
        "field-twice",
        "no-minutes",
        "date-only",
        "too-long",
    ],
)
def test_a_pattern_the_language_cannot_read_is_refused_naming_the_problem(pattern, message):
    with pytest.raises(ProfileError) as refused:
        load_profile(_profile_with(pattern))
    assert refused.value.reason is Reason.ERR_PROFILE
    assert str(refused.value).startswith("claims.issued_at.pattern")
    assert message in str(refused.value)


# Separators a pattern may hold unquoted, and text that only quotes can carry.
_SEPARATORS = st.sampled_from(list(" -/:.,_|年月日时分秒：、\u3000"))
_QUOTABLE = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=4)


@st.composite
def _patterns(draw: st.DrawFn) -> tuple[str, list[tuple[bool, str]]]:
    """A pattern's text, and the parts it means: the fields in any order (``ss`` or not),
    each followed by nothing, a separator, or a quoted text (with quotes inside)."""
    fields = draw(st.permutations(["YYYY", "MM", "DD", "HH", "mm", "ss"]))
    if draw(st.booleans()):
        fields = [f for f in fields if f != "ss"]
    text, parts = "", []
    for field in fields:
        text += field
        parts.append((True, field))
        kind = draw(st.sampled_from(["none", "separator", "quoted"]))
        if kind == "separator":
            literal = draw(_SEPARATORS)
            text += literal
        elif kind == "quoted":
            literal = draw(_QUOTABLE)
            text += _quote(literal)
        else:
            continue
        parts.append((False, literal))
    return text, parts


def _quote(literal: str) -> str:
    """``literal`` in quotes, each quote inside doubled; quotes alone are each ``''``."""
    if set(literal) == {"'"}:
        return "''" * len(literal)
    return "'" + literal.replace("'", "''") + "'"


@given(
    _patterns(),
    st.datetimes(
        min_value=datetime(2000, 1, 2),
        max_value=datetime(2099, 12, 30),
        timezones=st.just(SHANGHAI),
    ),
)
def test_a_local_time_written_as_its_pattern_reads_back(pattern, local):
    text, parts = pattern
    compiled = compile_pattern(text)
    assert list(compiled.parts) == parts
    # Fields sit next to each other without ambiguity: each has its width.
    written = "".join(
        str(getattr(local, _ATTRIBUTE[value])).zfill(WIDTHS[value]) if is_field else value
        for is_field, value in parts
    )
    seconds = local.second if "ss" in compiled.fields else 0
    expected = local.replace(second=seconds, microsecond=0)  # Shanghai: no daylight saving
    assert parse_time(written, _local(text), "t") == expected.astimezone(UTC)
