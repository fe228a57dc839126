"""Strict CBOR (threats.md rows D17-D23): what cbor2 accepts by default and this decoder refuses.

Inputs are hex literals so that each case shows exactly the bytes on the wire.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import strictcbor
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

DEPTH = Limits().max_depth


def _loads(data: bytes) -> Any:
    return strictcbor.loads(data, max_depth=DEPTH)


def _reason(hex_or_bytes: str | bytes, *, preferred: bool = False) -> Reason:
    data = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    decode = strictcbor.loads_preferred if preferred else strictcbor.loads
    with pytest.raises(CodeRejected) as e:
        decode(data, max_depth=DEPTH)
    return e.value.reason


def _nested(depth: int, item: bytes = b"\x00") -> bytes:
    return b"\x81" * depth + item


def _nested_value(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("hex_data", "expected"),
    [
        ("00", 0),
        ("17", 23),
        ("1818", 24),
        ("1bffffffffffffffff", 2**64 - 1),
        ("20", -1),
        ("3bffffffffffffffff", -(2**64)),
        ("40", b""),
        ("4401020304", b"\x01\x02\x03\x04"),
        ("60", ""),
        ("63e7bbbf", "绿"),
        ("80", []),
        ("83010203", [1, 2, 3]),
        ("a0", {}),
        ("a201616102f5", {1: "a", 2: True}),
        ("a2616101616202", {"a": 1, "b": 2}),
        ("a20126044161", {1: -7, 4: b"a"}),
        ("f4", False),
        ("f5", True),
        ("f6", None),
        ("f93c00", 1.0),
        ("fb3ff8000000000000", 1.5),
        ("f98000", -0.0),
    ],
    ids=[
        "uint-0",
        "uint-23",
        "uint-24",
        "uint-max",
        "nint-1",
        "nint-min",
        "bstr-empty",
        "bstr",
        "tstr-empty",
        "tstr-utf8",
        "array-empty",
        "array",
        "map-empty",
        "map-int-keys",
        "map-text-keys",
        "cose-protected-header",
        "false",
        "true",
        "null",
        "half-float",
        "double",
        "negative-zero",
    ],
)
def test_valid_cbor_is_decoded_exactly(hex_data: str, expected: Any) -> None:
    value = _loads(bytes.fromhex(hex_data))
    assert value == expected
    assert type(value) is type(expected)


def test_nesting_at_the_depth_limit_is_accepted():
    assert _loads(_nested(DEPTH)) == _nested_value(DEPTH)


@pytest.mark.parametrize(
    "hex_data",
    [
        "0102",  # cbor2 alone returns 1 and ignores the 02
        "0100",
        "a000",
        "8000",
        "80ff",
        "8440a0404000",
        "616161",
    ],
    ids=[
        "int-then-int",
        "int-then-zero",
        "map-then-zero",
        "array-then-zero",
        "array-then-break",
        "cose-array-then-zero",
        "text-then-byte",
    ],
)
def test_trailing_bytes_are_rejected(hex_data: str) -> None:
    assert _reason(hex_data) is Reason.ERR_TRAILING_DATA


@pytest.mark.parametrize(
    "hex_data",
    [
        "c074323031332d30332d32315432303a30343a30305a",  # 0: date/time string
        "c11a514b67b0",  # 1: epoch date/time
        "c249010000000000000000",  # 2: positive bignum
        "c349010000000000000000",  # 3: negative bignum
        "c48221196ab3",  # 4: decimal fraction
        "c5822003",  # 5: bigfloat
        "d8184100",  # 24: embedded CBOR
        "d81c81d81d00",  # 28 + 29: shared reference, cyclic [[...]] in cbor2
        "d81d00",  # 29 alone
        "d81e820102",  # 30: rational
        "d8206161",  # 32: URI
        "d825500000000000000000000000000000000000",  # 37: UUID
        "d83d80",  # 61: CWT (only the COSE codec may strip it)
        "d28440a04040",  # 18: COSE_Sign1 (idem)
        "d9010280",  # 258: set
        "d9d9f700",  # 55799: self-described CBOR
        "d903e800",  # 1000: unassigned, reaches tag_hook
        "d9ffff00",  # 65535
        "dbffffffffffffffff00",  # the largest tag number
        "8201c11a514b67b0",  # a tag inside an array
        "a163657870c11a514b67b0",  # a tag as a map value
        "a1c10000",  # a tag as a map key
    ],
    ids=[
        "tag-0-datetime",
        "tag-1-epoch",
        "tag-2-bignum",
        "tag-3-negative-bignum",
        "tag-4-decimal",
        "tag-5-bigfloat",
        "tag-24-embedded",
        "tag-28-29-cyclic",
        "tag-29",
        "tag-30-rational",
        "tag-32-uri",
        "tag-37-uuid",
        "tag-61-cwt",
        "tag-18-cose",
        "tag-258-set",
        "tag-55799-self-describe",
        "tag-1000-unknown",
        "tag-65535",
        "tag-max",
        "tag-in-array",
        "tag-as-value",
        "tag-as-key",
    ],
)
def test_every_tag_is_refused(hex_data: str) -> None:
    assert _reason(hex_data) is Reason.ERR_CBOR_TAG


@pytest.mark.parametrize(
    "hex_data",
    [
        "d86400",  # 100: days since the epoch (RFC 8943) -> datetime.date
        "d903ec6a323032302d30312d3031",  # 1004: full-date string (RFC 8943) -> datetime.date
        "d9a7f882187b1901c8",  # 43000: complex number -> complex
        "8201d86400",  # inside an array
    ],
    ids=["tag-100-epoch-date", "tag-1004-date-string", "tag-43000-complex", "tag-100-nested"],
)
def test_tags_cbor2_decodes_natively_beyond_64_are_refused_as_tags(hex_data: str) -> None:
    assert _reason(hex_data) is Reason.ERR_CBOR_TAG


@pytest.mark.parametrize(
    "hex_data",
    [
        "a201000101",  # {1: 0, 1: 1}
        "a20126013824",  # {1: -7, 1: -37}, the COSE alg case of row D18
        "a2616100616101",  # {"a": 0, "a": 1}
        "a20100f500",  # {1: 0, true: 0}: equal in Python
        "a2f5000100",  # {true: 0, 1: 0}
        "a20100f93c0001",  # {1: 0, 1.0: 1}: equal in Python
        "8201a202000201",  # a duplicate inside an array
        "a101a204000401",  # a duplicate inside a map value
    ],
    ids=[
        "int-int",
        "cose-alg-twice",
        "text-text",
        "one-then-true",
        "true-then-one",
        "one-then-float-one",
        "nested-in-array",
        "nested-in-map",
    ],
)
def test_duplicate_map_keys_are_rejected(hex_data: str) -> None:
    assert _reason(hex_data) is Reason.ERR_DUPLICATE_KEY


@pytest.mark.parametrize(
    "hex_data",
    [
        # indefinite lengths
        "5f4101ff",
        "7f6161ff",
        "9f01ff",
        "9fff",
        "bf0100ff",
        "81bf0100ff",
        # declared lengths far beyond the input (row D21)
        "5bffffffffffffffff",
        "9bffffffffffffffff",
        "7bffffffffffffffff",
        "bbffffffffffffffff",
        "5b000000007fffffff41",
        "5affffffff",
        "9affffffff",
        # truncated or otherwise malformed
        "",
        "1a0000",
        "6261",
        "8201",
        "a101",
        "ff",
        "1c",
        "3d",
        "5e",
        "7e",
        "9c",
        "bc",
        "f818",  # two-byte simple value below 32
        # invalid UTF-8 in a text string
        "61ff",
        "63eda080",
        "62c0af",
        # undefined and simple values
        "f7",
        "f0",
        "f820",
        "f8ff",
        "8201f7",
        # non-finite floats
        "f97e00",
        "f97c00",
        "f9fc00",
        "fa7fc00000",
        "fa7f800000",
        "fb7ff8000000000000",
        "fb7ff0000000000000",
        "fbfff0000000000000",
        "a16165f97c00",
        # map keys that are neither integers nor text
        "a1f93c0000",
        "a1410100",
        "a1810100",
        "a1a000",
        "a1f600",
        "a1f500",
        "a1f400",
        "81a1f500",
    ],
    ids=[
        "indefinite-bstr",
        "indefinite-tstr",
        "indefinite-array",
        "indefinite-empty-array",
        "indefinite-map",
        "indefinite-nested",
        "huge-bstr-5b",
        "huge-array-9b",
        "huge-tstr-7b",
        "huge-map-bb",
        "2gib-bstr",
        "4gib-bstr-5a",
        "4g-items-9a",
        "empty",
        "truncated-uint",
        "truncated-tstr",
        "truncated-array",
        "truncated-map",
        "lone-break",
        "reserved-ai-28",
        "reserved-ai-29",
        "reserved-ai-30-bstr",
        "reserved-ai-30-tstr",
        "reserved-ai-28-array",
        "reserved-ai-28-map",
        "bad-simple-24",
        "invalid-utf8",
        "utf8-surrogate",
        "utf8-overlong",
        "undefined",
        "simple-16",
        "simple-32",
        "simple-255",
        "undefined-in-array",
        "nan-half",
        "inf-half",
        "minus-inf-half",
        "nan-single",
        "inf-single",
        "nan-double",
        "inf-double",
        "minus-inf-double",
        "inf-in-map",
        "float-key",
        "bstr-key",
        "array-key",
        "map-key",
        "null-key",
        "true-key",
        "false-key",
        "bool-key-nested",
    ],
)
def test_malformed_or_unsupported_cbor_is_rejected(hex_data: str) -> None:
    assert _reason(hex_data) is Reason.ERR_CBOR


@pytest.mark.parametrize(
    "hex_data",
    ["5bffffffffffffffff", "9bffffffffffffffff", "7bffffffffffffffff", "bbffffffffffffffff"],
    ids=["bstr-5b", "array-9b", "tstr-7b", "map-bb"],
)
def test_huge_declared_lengths_allocate_nothing_like_the_declared_size(hex_data: str) -> None:
    tracemalloc.start()
    try:
        assert _reason(hex_data) is Reason.ERR_CBOR
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.mark.parametrize(
    "data",
    [
        _nested(100_000),
        b"\xa1\x01" * 100_000 + b"\x00",
        b"\x82\x00" * 100_000 + b"\x00",
        _nested(DEPTH + 1),
        b"\xa1\x01" * (DEPTH + 1) + b"\x00",
        b"\x82\x00" + _nested(DEPTH),  # the second element of the top array is one too deep
    ],
    ids=[
        "100000-arrays",
        "100000-maps",
        "100000-pairs",
        "arrays-limit-plus-1",
        "maps-limit-plus-1",
        "deep-second-element",
    ],
)
def test_deep_nesting_is_too_deep(data: bytes) -> None:
    assert _reason(data) is Reason.ERR_TOO_DEEP


@pytest.mark.parametrize(
    ("hex_data", "expected"),
    [
        ("01", 1),
        ("40", b""),
        ("a0", {}),
        ("a10126", {1: -7}),
        ("a204416b0126", {4: b"k", 1: -7}),  # map key order is left as sent
        ("a2012604480102030405060708", {1: -7, 4: bytes(range(1, 9))}),
        ("1818", 24),
        ("3818", -25),
        ("5818" + "00" * 24, bytes(24)),
    ],
    ids=[
        "int",
        "bstr-empty",
        "map-empty",
        "alg-only",
        "unsorted-keys",
        "alg-and-kid",
        "uint-24",
        "nint-25",
        "bstr-24",
    ],
)
def test_preferred_serialization_is_accepted(hex_data: str, expected: Any) -> None:
    assert strictcbor.loads_preferred(bytes.fromhex(hex_data), max_depth=DEPTH) == expected


@pytest.mark.parametrize(
    "hex_data",
    [
        "1801",  # 1 in two bytes (row D19)
        "190001",
        "1a00000001",
        "1b0000000000000001",
        "3800",  # -1 in two bytes
        "a1180126",  # key 1 in two bytes
        "a1013806",  # alg -7 in two bytes
        "580100",  # length 1 in two bytes
        "780161",
        "980101",
        "b8010126",
        "bf0126ff",  # indefinite-length map (row D19)
        "5f4101ff",
        "7f6161ff",
        "9f01ff",
        "a1019f01ff",
    ],
    ids=[
        "uint-1-long",
        "uint-1-3-bytes",
        "uint-1-5-bytes",
        "uint-1-9-bytes",
        "nint-1-long",
        "key-long",
        "value-long",
        "bstr-length-long",
        "tstr-length-long",
        "array-length-long",
        "map-length-long",
        "indefinite-map",
        "indefinite-bstr",
        "indefinite-tstr",
        "indefinite-array",
        "indefinite-nested",
    ],
)
def test_non_preferred_serialization_is_rejected(hex_data: str) -> None:
    assert _reason(hex_data, preferred=True) is Reason.ERR_NONCANONICAL


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("a201260126", Reason.ERR_DUPLICATE_KEY),
        ("a1012600", Reason.ERR_TRAILING_DATA),
        ("c11a514b67b0", Reason.ERR_CBOR_TAG),
        ("f7", Reason.ERR_CBOR),
        ("5bffffffffffffffff", Reason.ERR_CBOR),
        ("bf01", Reason.ERR_CBOR),  # indefinite and truncated: malformed before non-canonical
    ],
    ids=["duplicate", "trailing", "tag", "undefined", "huge-length", "truncated-indefinite"],
)
def test_preferred_decoding_keeps_the_strict_reasons(hex_data: str, reason: Reason) -> None:
    assert _reason(hex_data, preferred=True) is reason


def test_preferred_serialization_of_floats_is_the_shortest_form():
    assert strictcbor.loads_preferred(bytes.fromhex("f93c00"), max_depth=DEPTH) == 1.0
    assert _reason("fb3ff0000000000000", preferred=True) is Reason.ERR_NONCANONICAL


def test_dumps_is_deterministic():
    assert strictcbor.dumps({"b": 1, 4: b"k", 1: -7}) == bytes.fromhex("a3012604416b616201")


_KEYS = st.integers(min_value=-(2**64), max_value=2**64 - 1) | st.text(max_size=8)


def _cbor_values(floats: bool) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64 - 1),
        st.binary(max_size=20),
        st.text(max_size=20),
    ]
    if floats:
        options.append(st.floats(allow_nan=False, allow_infinity=False))
    scalars = st.one_of(options)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4)
        ),
        max_leaves=20,
    )


@given(_cbor_values(floats=True))
def test_dumps_then_loads_round_trips(value: Any) -> None:
    assert strictcbor.loads(strictcbor.dumps(value), max_depth=64) == value


@given(_cbor_values(floats=False))
def test_preferred_encoding_is_accepted_by_loads_preferred(value: Any) -> None:
    assert strictcbor.loads_preferred(cbor2.dumps(value), max_depth=64) == value


_CBORISH = st.lists(
    st.sampled_from(
        [
            *(0x00, 0x18, 0x1B, 0x20, 0x41, 0x5F, 0x61, 0x7F, 0x81, 0x9F, 0xA1, 0xBF),
            *(0xC1, 0xD8, 0xD9, 0xF4, 0xF7, 0xF9, 0xFA, 0xFB, 0xFF, 0x1C, 0x3D),
        ]
    )
    | st.integers(min_value=0, max_value=255),
    max_size=40,
).map(bytes)


@given(st.one_of(st.binary(max_size=200), _CBORISH))
def test_arbitrary_bytes_raise_only_code_rejected(data: bytes) -> None:
    for decode in (strictcbor.loads, strictcbor.loads_preferred):
        with contextlib.suppress(CodeRejected):
            decode(data, max_depth=8)


@pytest.mark.parametrize(
    ("tagged", "read"),
    [
        pytest.param(cbor2.CBORTag(0, "2021-05-29T19:21:13Z"), "2021-05-29T19:21:13Z", id="tag-0"),
        pytest.param(cbor2.CBORTag(1, 1622316073), "2021-05-29T19:21:13Z", id="tag-1-int"),
        pytest.param(
            cbor2.CBORTag(1, 1622316073.25), "2021-05-29T19:21:13.250000Z", id="tag-1-float"
        ),
        pytest.param(cbor2.CBORTag(1, 0), "1970-01-01T00:00:00Z", id="tag-1-epoch"),
    ],
)
def test_date_tags_give_the_same_text_whichever_tag_the_issuer_chose(
    tagged: cbor2.CBORTag, read: str
) -> None:
    """EU DCC lets a sample time carry tag 0 (RFC 3339 text) or tag 1 (epoch seconds): both are
    read as RFC 3339 text in UTC, so one profile rule reads either."""
    data = cbor2.dumps({"sc": tagged})
    assert strictcbor.loads(data, max_depth=8, date_tags=True) == {"sc": read}
    with pytest.raises(CodeRejected) as refused:
        strictcbor.loads(data, max_depth=8)
    assert refused.value.reason is Reason.ERR_CBOR_TAG


@pytest.mark.parametrize(
    "tagged",
    [
        pytest.param(cbor2.CBORTag(1, float("nan")), id="nan"),
        pytest.param(cbor2.CBORTag(1, float("inf")), id="infinity"),
        pytest.param(cbor2.CBORTag(1, 10**15), id="beyond-year-9999"),
        pytest.param(cbor2.CBORTag(1, "1622316073"), id="text"),
        pytest.param(cbor2.CBORTag(1, True), id="boolean"),
        pytest.param(cbor2.CBORTag(0, 1622316073), id="tag-0-number"),
    ],
)
def test_date_tags_without_a_representable_time_are_refused(tagged: cbor2.CBORTag) -> None:
    with pytest.raises(CodeRejected) as refused:
        strictcbor.loads(cbor2.dumps({"sc": tagged}), max_depth=8, date_tags=True)
    assert refused.value.reason in {Reason.ERR_CBOR_TAG, Reason.ERR_CBOR}
