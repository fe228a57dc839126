"""Strict unpadded base64url (threats.md row B9): exactly the canonical encoding is accepted.

Python's ``base64.urlsafe_b64decode`` would accept most of the rejected cases below (it drops
characters outside the alphabet, accepts padding and ignores non-zero trailing bits).
"""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import base64url
from gateway.errors import CodeRejected
from gateway.model import Reason

ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("Zg", b"f"),  # RFC 4648 section 10 vectors, unpadded
        ("Zm8", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm9vYg", b"foob"),
        ("Zm9vYmE", b"fooba"),
        ("Zm9vYmFy", b"foobar"),
        ("eyJhIjoxfQ", b'{"a":1}'),
        ("-_8", b"\xfb\xff"),  # the two URL-safe characters
        ("----", b"\xfb\xef\xbe"),
        ("____", b"\xff\xff\xff"),
        ("AAAA", b"\x00\x00\x00"),
    ],
    ids=[
        "empty",
        "f",
        "fo",
        "foo",
        "foob",
        "fooba",
        "foobar",
        "json",
        "minus-underscore",
        "all-minus",
        "all-underscore",
        "zeros",
    ],
)
def test_canonical_text_decodes(text: str, expected: bytes) -> None:
    assert base64url.decode(text) == expected
    assert base64url.encode(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "eyJhIjoxfQ==",  # padding
        "Zg==",
        "Zm8=",
        "Zg=",
        "=",
        "Zm9v====",
        "+_8",  # standard-alphabet characters
        "-/8",
        "++++",
        "////",
        " eyJhIjoxfQ",  # whitespace anywhere
        "eyJhIjoxfQ ",
        "eyJh IjoxfQ",
        "eyJh\nIjoxfQ",
        "eyJhIjoxfQ\n",
        "eyJh\r\nIjoxfQ",
        "eyJh\tIjoxfQ",
        "eyJhIjoxfR",  # non-zero trailing bits: same bytes as eyJhIjoxfQ to a lax decoder
        "eyJhIjoxfS",
        "Zh",
        "Zm9",
        "__",
        "Z",  # length 1 mod 4
        "Zm9vY",
        "eyJhIjoxfQAAA",
        "eyJh!!!!IjoxfQ",  # python drops the '!'s and decodes it like eyJhIjoxfQ
        "eyJh!!!!IjoxfQ==",
        "eyJh.IjoxfQ",
        "Zm9v%3D",
        "Ｚｇ",  # fullwidth look-alikes
        "Zg\u200b",
        "Zé",
        "\x00\x00",
    ],
    ids=[
        "padding-json",
        "padding-two",
        "padding-one",
        "padding-short",
        "padding-only",
        "padding-block",
        "plus",
        "slash",
        "plus-only",
        "slash-only",
        "leading-space",
        "trailing-space",
        "inner-space",
        "inner-lf",
        "trailing-lf",
        "inner-crlf",
        "inner-tab",
        "trailing-bits-fR",
        "trailing-bits-fS",
        "trailing-bits-Zh",
        "trailing-bits-Zm9",
        "trailing-bits-underscores",
        "len-1",
        "len-5",
        "len-13",
        "python-lenient-bangs",
        "python-lenient-bangs-padded",
        "dot",
        "percent-escape",
        "fullwidth",
        "zero-width-space",
        "non-ascii",
        "nul",
    ],
)
def test_non_canonical_text_is_rejected(text: str) -> None:
    with pytest.raises(CodeRejected) as e:
        base64url.decode(text)
    assert e.value.reason is Reason.ERR_BASE64


def test_python_default_decoder_is_lenient_where_this_one_is_strict() -> None:
    """The pitfall from threats.md, kept so the rejections above stay meaningful."""
    assert base64.urlsafe_b64decode("eyJh!!!!IjoxfQ==") == b'{"a":1}'
    assert base64.urlsafe_b64decode("eyJhIjoxfR==") == b'{"a":1}'


@given(st.binary(max_size=300))
def test_encode_then_decode_round_trips(data: bytes) -> None:
    text = base64url.encode(data)
    assert "=" not in text
    assert set(text) <= set(ALPHABET)
    assert base64url.decode(text) == data


@given(st.one_of(st.text(max_size=60), st.text(alphabet=ALPHABET + "+/= \n!.", max_size=60)))
def test_decode_is_total(text: str) -> None:
    """Any text gives bytes or ``CodeRejected`` (never another exception)."""
    result: bytes | Reason
    try:
        result = base64url.decode(text)
    except CodeRejected as e:
        result = e.reason
    assert isinstance(result, bytes) or result is Reason.ERR_BASE64


def _has_nonzero_trailing_bits(text: str) -> bool:
    """An independent oracle: the bits of the last character that encode no data."""
    unused = {0: 0, 2: 4, 3: 2}.get(len(text) % 4, 0)
    return bool(text) and ALPHABET_VALUES[text[-1]] & ((1 << unused) - 1) != 0


ALPHABET_VALUES = {c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase)}
ALPHABET_VALUES.update({c: 52 + i for i, c in enumerate(string.digits + "-_")})


@given(st.text(alphabet=ALPHABET, max_size=60))
def test_every_accepted_text_is_canonical(text: str) -> None:
    """Alphabet text is accepted exactly when it is canonical, and then re-encodes to itself."""
    should_accept = len(text) % 4 != 1 and not _has_nonzero_trailing_bits(text)
    try:
        data = base64url.decode(text)
    except CodeRejected:
        assert not should_accept
        return
    assert should_accept
    assert base64url.encode(data) == text
