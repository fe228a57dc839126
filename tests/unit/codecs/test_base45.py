"""Strict base45 (RFC 9285): the RFC vectors, every violation of threats.md row B8, and the
properties that decoding is total (bytes or ``CodeRejected``) and canonical."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import base45
from gateway.errors import CodeRejected
from gateway.model import Reason

# RFC 9285 section 4.3 examples, both directions.
RFC_VECTORS = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


@pytest.mark.parametrize(("data", "text"), RFC_VECTORS, ids=["AB", "Hello!!", "base-45", "ietf!"])
def test_rfc9285_vectors_encode(data: bytes, text: str) -> None:
    assert base45.encode(data) == text


@pytest.mark.parametrize(("data", "text"), RFC_VECTORS, ids=["AB", "Hello!!", "base-45", "ietf!"])
def test_rfc9285_vectors_decode(data: bytes, text: str) -> None:
    assert base45.decode(text) == data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("00", b"\x00"),
        ("000", b"\x00\x00"),
        ("U5", b"\xff"),  # 30 + 5*45 = 255, the largest final pair
        ("FGW", b"\xff\xff"),  # 15 + 16*45 + 32*2025 = 65535, the largest triple
        ("FGWU5", b"\xff\xff\xff"),
        (" 0", b"$"),  # space is a base45 digit (36)
        ("./1:$0", b"\x0f\xa2\x06\xad"),  # symbol digits 42, 43, 44, 37
        ("+4", b"\xdc"),  # 40 + 4*45 = 220
    ],
    ids=[
        "empty",
        "pair-zero",
        "triple-zero",
        "max-pair",
        "max-triple",
        "max-both",
        "space-digit",
        "symbol-digits",
        "symbol-pair",
    ],
)
def test_boundary_values_decode(text: str, expected: bytes) -> None:
    assert base45.decode(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "bb8",  # lower case: base45 has upper-case letters only
        "BB8a",
        "Bb8",
        "BB!",  # '!' is not in the alphabet
        "!",
        "BB8=",
        "BB8_",
        "BB\x008",
        "BB8\n",
        "\tBB8",
        "A",  # length 1 mod 3
        "BB8A",
        "BB8BB8A",
        "GGW",  # 16 + 16*45 + 32*2025 = 65536 > 65535
        ":::",  # 44 * 2071 = 91124
        "   ",  # 36 * 2071 = 74556
        "BB8GGW",  # a bad triple after a good one
        "V5",  # final pair 31 + 5*45 = 256 > 255
        "::",  # final pair 44 + 44*45 = 2024
        "BB8V5",
        "ＢＢ８",  # fullwidth look-alikes
        "BB8é",
        "BB\u200b8",  # zero-width space
        "\u00bd\u00bd\u00bd",
    ],
    ids=[
        "lowercase",
        "lowercase-tail",
        "lowercase-middle",
        "bang",
        "bang-only",
        "equals",
        "underscore",
        "nul",
        "newline",
        "tab",
        "len-1",
        "len-4",
        "len-7",
        "GGW-over-65535",
        "triple-91124",
        "three-spaces-74556",
        "bad-triple-after-good",
        "final-pair-256",
        "final-pair-2024",
        "final-pair-after-triple",
        "fullwidth",
        "non-ascii-latin1",
        "zero-width-space",
        "non-ascii-fraction",
    ],
)
def test_invalid_text_is_rejected(text: str) -> None:
    with pytest.raises(CodeRejected) as e:
        base45.decode(text)
    assert e.value.reason is Reason.ERR_BASE45


@given(st.binary(max_size=300))
def test_encode_then_decode_round_trips(data: bytes) -> None:
    text = base45.encode(data)
    assert base45.decode(text) == data
    assert len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert set(text) <= set(base45.ALPHABET)


_NEAR_ALPHABET = st.text(alphabet=base45.ALPHABET + "abcz!=_\x00\n\u00e9\uff21", max_size=60)


@given(
    st.one_of(st.text(max_size=60), st.text(alphabet=base45.ALPHABET, max_size=60), _NEAR_ALPHABET)
)
def test_decode_is_total(text: str) -> None:
    """Any text gives bytes or ``CodeRejected`` (never another exception)."""
    result: bytes | Reason
    try:
        result = base45.decode(text)
    except CodeRejected as e:
        result = e.reason
    assert isinstance(result, bytes) or result is Reason.ERR_BASE45


@given(st.text(alphabet=base45.ALPHABET, max_size=60))
def test_every_accepted_text_is_canonical(text: str) -> None:
    """Whatever decodes re-encodes to exactly the same text: there is no second spelling."""
    try:
        data = base45.decode(text)
    except CodeRejected:
        return
    assert base45.encode(data) == text
