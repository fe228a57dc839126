"""Strict JSON (threats.md rows B12, D18, D20, E28): what ``json.loads`` accepts by default and
this decoder refuses, each with its stable reason."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import strictjson
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

LIMITS = Limits()
DEPTH = LIMITS.max_depth


def _loads(data: bytes) -> Any:
    return strictjson.loads(data, max_bytes=LIMITS.max_payload_bytes, max_depth=DEPTH)


def _nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _nested_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}', {"a": 1}),
        (b"[]", []),
        (b"{}", {}),
        (b"null", None),
        (b"true", True),
        (b"0", 0),
        (b"-0", 0),
        (b"1.5", 1.5),
        (b"1E2", 100.0),
        (b" \t\r\n{} \n", {}),  # RFC 8259 whitespace around the value
        ('{"hc":"绿码"}'.encode(), {"hc": "绿码"}),
        (b'"\\u7eff"', "绿"),
        (b'{"a":1,"A":2}', {"a": 1, "A": 2}),  # member names are case-sensitive, not duplicates
        (b"1" * 20, int("1" * 20)),  # MAX_INT_DIGITS
        (b"-" + b"9" * 20, -int("9" * 20)),
        (b"1700000000000", 1_700_000_000_000),  # a timestamp in milliseconds
        (_nested_arrays(DEPTH), json.loads(_nested_arrays(DEPTH))),
        (_nested_objects(DEPTH), _nested_value(DEPTH)),
    ],
    ids=[
        "object",
        "empty-array",
        "empty-object",
        "null",
        "true",
        "zero",
        "minus-zero",
        "float",
        "exponent",
        "surrounding-whitespace",
        "utf8-text",
        "escaped-text",
        "case-distinct-names",
        "20-digit-int",
        "negative-20-digit-int",
        "millisecond-timestamp",
        "arrays-at-depth-limit",
        "objects-at-depth-limit",
    ],
)
def test_valid_json_is_decoded_exactly(data: bytes, expected: Any) -> None:
    assert _loads(data) == expected


def test_integers_keep_their_type():
    value = _loads(b'{"exp":1700000000,"ok":true}')
    assert type(value["exp"]) is int
    assert value["ok"] is True


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # D18 / E28: duplicate member names (json.loads keeps the last one)
        (b'{"colour":"red","colour":"green"}', Reason.ERR_DUPLICATE_KEY),
        (b'{"alg":"ES256","alg":"none"}', Reason.ERR_DUPLICATE_KEY),
        (b'{"a":{"b":1,"b":1}}', Reason.ERR_DUPLICATE_KEY),
        (b'[{"x":1},{"y":2,"y":3}]', Reason.ERR_DUPLICATE_KEY),
        (b'{"\\u0061":1,"a":2}', Reason.ERR_DUPLICATE_KEY),  # same name once unescaped
        # E28: non-finite and over-long numbers
        (b"NaN", Reason.ERR_CLAIMS),
        (b"Infinity", Reason.ERR_CLAIMS),
        (b"-Infinity", Reason.ERR_CLAIMS),
        (b'{"exp":NaN}', Reason.ERR_CLAIMS),
        (b"[1,Infinity]", Reason.ERR_CLAIMS),
        (b"1e400", Reason.ERR_CLAIMS),
        (b"-1e400", Reason.ERR_CLAIMS),
        (b"1.0e309", Reason.ERR_CLAIMS),
        (b"1" * 25, Reason.ERR_CLAIMS),
        (b"-" + b"1" * 25, Reason.ERR_CLAIMS),
        (b"1" * 21, Reason.ERR_CLAIMS),
        (b'{"exp":' + b"1" * 5000 + b"}", Reason.ERR_CLAIMS),  # past Python's 4,300-digit limit
        # B12: not UTF-8, byte-order marks, UTF-16
        (b"\xff", Reason.ERR_UTF8),
        (b'"\xc3"', Reason.ERR_UTF8),  # truncated sequence
        (b'"\xc0\xaf"', Reason.ERR_UTF8),  # overlong encoding of '/'
        (b'"\xed\xa0\x80"', Reason.ERR_UTF8),  # encoded surrogate (CESU-8)
        (b'{"hc":"\xe7\xbb"}', Reason.ERR_UTF8),
        (b"\xef\xbb\xbf{}", Reason.ERR_UTF8),  # UTF-8 byte-order mark
        (b"\xff\xfe{\x00}\x00", Reason.ERR_UTF8),  # UTF-16LE with BOM
        (b"\xfe\xff\x00{\x00}", Reason.ERR_UTF8),  # UTF-16BE with BOM
        # D20: deep nesting, with and without a RecursionError inside the json module
        (b"[" * 60_000, Reason.ERR_TOO_DEEP),  # within the payload size limit
        (_nested_arrays(30_000), Reason.ERR_TOO_DEEP),
        (b'{"a":' * 12_000, Reason.ERR_TOO_DEEP),
        (_nested_arrays(DEPTH + 1), Reason.ERR_TOO_DEEP),
        (_nested_objects(DEPTH + 1), Reason.ERR_TOO_DEEP),
        (b'{"a":[' * 9 + b"]}" * 9, Reason.ERR_TOO_DEEP),  # 18 levels, alternating
        (b"[1,[2,[3]]," + _nested_arrays(DEPTH) + b"]", Reason.ERR_TOO_DEEP),  # deep later on
        # anything else that is not exactly one JSON value
        (b'{"a":1} x', Reason.ERR_SCHEMA),
        (b'{"a":1}\x00', Reason.ERR_SCHEMA),
        (b"{}{}", Reason.ERR_SCHEMA),
        (b"1 2", Reason.ERR_SCHEMA),
        (b'{"a":1},{"b":2}', Reason.ERR_SCHEMA),
        (b"", Reason.ERR_SCHEMA),
        (b"   ", Reason.ERR_SCHEMA),
        (b"[1,]", Reason.ERR_SCHEMA),
        (b"{'a':1}", Reason.ERR_SCHEMA),
        (b"01", Reason.ERR_SCHEMA),
        (b'"unterminated', Reason.ERR_SCHEMA),
        (b"nan", Reason.ERR_SCHEMA),
    ],
    ids=[
        "duplicate-colour",
        "duplicate-alg",
        "duplicate-nested",
        "duplicate-in-array",
        "duplicate-after-unescape",
        "nan",
        "infinity",
        "minus-infinity",
        "nan-member",
        "infinity-in-array",
        "1e400",
        "minus-1e400",
        "1e309",
        "25-digit-int",
        "negative-25-digit-int",
        "21-digit-int",
        "5000-digit-int",
        "invalid-byte",
        "truncated-utf8",
        "overlong-utf8",
        "surrogate-utf8",
        "truncated-utf8-in-member",
        "utf8-bom",
        "utf16le-bom",
        "utf16be-bom",
        "60000-open-brackets",
        "30000-nested-arrays",
        "12000-open-objects",
        "arrays-depth-limit-plus-1",
        "objects-depth-limit-plus-1",
        "mixed-depth-18",
        "deep-second-element",
        "trailing-garbage",
        "trailing-nul",
        "two-objects",
        "two-numbers",
        "comma-separated-values",
        "empty",
        "whitespace-only",
        "trailing-comma",
        "single-quotes",
        "leading-zero",
        "unterminated-string",
        "lowercase-nan",
    ],
)
def test_invalid_json_is_rejected(data: bytes, reason: Reason) -> None:
    with pytest.raises(CodeRejected) as e:
        _loads(data)
    assert e.value.reason is reason


@pytest.mark.parametrize(
    "data",
    [b"[" * 100_000, _nested_arrays(100_000), b'{"a":' * 100_000, b'{"a":[' * 100_000],
    ids=["open-brackets", "nested-arrays", "open-objects", "alternating"],
)
def test_100000_levels_are_too_deep_without_recursion_error(data: bytes) -> None:
    """Even with no size limit in the way, deep nesting is ``ERR_TOO_DEEP``, never a crash."""
    with pytest.raises(CodeRejected) as e:
        strictjson.loads(data, max_bytes=len(data), max_depth=DEPTH)
    assert e.value.reason is Reason.ERR_TOO_DEEP


@pytest.mark.parametrize(
    ("data", "max_bytes", "reason"),
    [
        (b'{"a":1}', 6, Reason.ERR_TOO_LARGE),
        (b"1" * 30, 29, Reason.ERR_TOO_LARGE),  # the size check comes before the digit check
        (b"\xff" * 9, 8, Reason.ERR_TOO_LARGE),  # and before the UTF-8 check
    ],
    ids=["one-byte-over", "long-int-over", "invalid-utf8-over"],
)
def test_size_limit_is_checked_first(data: bytes, max_bytes: int, reason: Reason) -> None:
    with pytest.raises(CodeRejected) as e:
        strictjson.loads(data, max_bytes=max_bytes, max_depth=DEPTH)
    assert e.value.reason is reason


def test_size_limit_is_inclusive():
    assert strictjson.loads(b'{"a":1}', max_bytes=7, max_depth=DEPTH) == {"a": 1}


@pytest.mark.parametrize(
    ("data", "max_depth", "expected"),
    [
        (b"1", 1, 1),
        (b"[]", 1, []),
        (b'{"a":[]}', 2, {"a": []}),
        (b"[[],[[]]]", 3, [[], [[]]]),
    ],
    ids=["scalar", "array-depth-1", "object-depth-2", "uneven-depth-3"],
)
def test_depth_limit_is_inclusive(data: bytes, max_depth: int, expected: Any) -> None:
    assert strictjson.loads(data, max_bytes=100, max_depth=max_depth) == expected


@pytest.mark.parametrize(
    ("data", "max_depth"),
    [(b"[[]]", 1), (b'{"a":{"b":1}}', 1), (b"[[],[[]]]", 2)],
    ids=["array-depth-2", "object-depth-2", "uneven-depth-3"],
)
def test_depth_limit_plus_one_is_too_deep(data: bytes, max_depth: int) -> None:
    with pytest.raises(CodeRejected) as e:
        strictjson.loads(data, max_bytes=100, max_depth=max_depth)
    assert e.value.reason is Reason.ERR_TOO_DEEP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"hc": "绿码", "n": 1}, '{"hc":"绿码","n":1}'.encode()),
        ([1, 2.5, None, True], b"[1,2.5,null,true]"),
    ],
    ids=["compact-utf8", "array"],
)
def test_dumps_is_compact_utf8(value: Any, expected: bytes) -> None:
    assert strictjson.dumps(value) == expected


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), [float("-inf")]], ids=["nan", "inf", "-inf"]
)
def test_dumps_refuses_non_finite_numbers(value: Any) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        strictjson.dumps(value)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20) + 1, max_value=10**20 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_dumps_then_loads_round_trips(value: Any) -> None:
    assert strictjson.loads(strictjson.dumps(value), max_bytes=10**6, max_depth=64) == value


_JSONISH = st.text(alphabet='[]{}",:0123456789.eE+-truefalsnNaIiy \\u\ufeff', max_size=80)


@given(st.one_of(st.binary(max_size=200), _JSONISH.map(lambda s: s.encode("utf-8"))))
def test_arbitrary_bytes_raise_only_code_rejected(data: bytes) -> None:
    with contextlib.suppress(CodeRejected):
        strictjson.loads(data, max_bytes=150, max_depth=4)


@pytest.mark.parametrize(
    "text",
    [b'"\\ud800"', b'"\\udc00"', b'{"family":"Any\\ud800person"}', b'["\\udbff\\u0041"]'],
    ids=["high-alone", "low-alone", "inside-a-name", "high-then-not-low"],
)
def test_an_escaped_lone_surrogate_is_refused(text: bytes) -> None:
    """JSON lets a lone surrogate be escaped; such a string can never be encoded again, so it
    is refused as not UTF-8 when read, never later as an internal error."""
    with pytest.raises(CodeRejected) as refused:
        strictjson.loads(text, max_bytes=1024, max_depth=8)
    assert refused.value.reason is Reason.ERR_UTF8


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    assert strictjson.loads(b'"\\ud83d\\ude00"', max_bytes=1024, max_depth=8) == "\U0001f600"


def _outcome(data: bytes, max_depth: int, *, fast_path: bool) -> Any:
    """What ``loads`` answers (a value, or the reason it refuses), with the fast path that skips
    the walk of every value allowed or not."""
    plain = strictjson._plain
    setattr(strictjson, "_plain", plain if fast_path else (lambda _data, _depth: False))  # noqa: B010
    try:
        return ("value", strictjson.loads(data, max_bytes=10**6, max_depth=max_depth))
    except CodeRejected as refused:
        return ("refused", refused.reason)
    finally:
        setattr(strictjson, "_plain", plain)  # noqa: B010


_RISKY_PIECES = st.sampled_from(
    [
        '"\\ud800"',
        '"\\ud83d\\ude00"',
        "1" * 21,
        "-" + "9" * 21,
        "1e400",
        "-1E-400",
        "1.5e999",
        "12345678901234567890.5e99",
        "NaN",
        "-Infinity",
        '{"a":1,"a":2}',
        "[[[[[[[[1]]]]]]]]",
        '{"k":{"k":{"k":{"k":{"k":1}}}}}',
    ]
)


@given(
    st.one_of(
        _JSON_VALUES.map(strictjson.dumps),
        st.lists(
            st.one_of(_RISKY_PIECES, _JSON_VALUES.map(lambda v: strictjson.dumps(v).decode())),
            min_size=1,
            max_size=4,
        ).map(lambda parts: ("[" + ",".join(parts) + "]").encode()),
        _JSONISH.map(lambda s: s.encode("utf-8")),
    ),
    st.integers(min_value=1, max_value=6),
)
def test_the_fast_path_accepts_and_refuses_exactly_what_the_strict_one_does(
    data: bytes, max_depth: int
) -> None:
    """Issue 14: plain JSON skips the walk of every value; nothing the full checks refuse may
    pass that way, and nothing they accept may change."""
    assert _outcome(data, max_depth, fast_path=True) == _outcome(data, max_depth, fast_path=False)


def test_plain_text_takes_the_fast_path_and_risky_text_does_not() -> None:
    payload = strictjson.dumps({"iss": "hangzhou", "iat": 1764900000, "hc": "绿码", "x": 1.5})
    assert strictjson._plain(payload, max_depth=4)
    for risky in (b'["\\ud800"]', b'["\\uDFFF"]', b"[[[[[1]]]]]", b'{"a":{"b":[[{}]]}}'):
        assert not strictjson._plain(risky, max_depth=4), risky
