"""Text forms of codes: ``PREFIX + base45(zlib(bytes))`` (EU DCC ``HC1:``, Beijing ``BJ1:``,
Macau ``MO1:``) and the numeric form of SMART Health Cards (``shc:/`` + digits).
"""

from __future__ import annotations

from gateway.codecs import base45, compression
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

_DIGIT_VALUE = bytes((c - 0x30) % 256 for c in range(256))  # only '0'-'9' reach it
_OVER_77 = 0xFF
_PAIR_CHAR = bytes(v + 45 if v <= 77 else _OVER_77 for v in range(256))
"""A pair's value (00 to 77) to its character ('-' to 'z'); anything above marks the text."""


def decode(text: str, prefix: str, limits: Limits) -> bytes:
    """Strip ``prefix`` (exact, case-sensitive), then base45-decode and inflate within limits.

    Raises:
        CodeRejected: ``ERR_FORMAT_UNKNOWN`` without the prefix, ``ERR_TOO_LARGE`` over
            ``max_prefixed_chars``, then the base45 and zlib reasons.
    """
    if not text.startswith(prefix):
        raise CodeRejected(Reason.ERR_FORMAT_UNKNOWN, f"code does not start with {prefix!r}")
    if len(text) > limits.max_prefixed_chars:
        raise CodeRejected(Reason.ERR_TOO_LARGE, f"{prefix} code over the size limit")
    compressed = base45.decode(text[len(prefix) :])
    return compression.inflate(
        compressed, wbits=compression.ZLIB, max_bytes=limits.max_decompressed_bytes
    )


def encode(prefix: str, data: bytes) -> str:
    """The text form of ``data`` (for issuers)."""
    return prefix + base45.encode(compression.deflate(data, wbits=compression.ZLIB))


def decode_numeric(text: str, prefix: str, max_chars: int) -> str:
    """The compact JWS inside a numeric QR text (SMART Health Cards): ``prefix`` then two
    digits per character, each pair ``ord(c) - 45``.

    Chunked codes (``shc:/2/3/...``) are refused: the specification deprecated them, and one
    presentation carries one whole code here.

    Raises:
        CodeRejected: ``ERR_FORMAT_UNKNOWN`` without the prefix, ``ERR_CHUNKS`` for a chunked
            code, ``ERR_TOO_LARGE`` for more than ``max_chars`` characters, ``ERR_NUMERIC`` for
            anything but pairs of digits from 00 to 77.
    """
    if not text.startswith(prefix):
        raise CodeRejected(Reason.ERR_FORMAT_UNKNOWN, f"code does not start with {prefix!r}")
    digits = text[len(prefix) :]
    if "/" in digits:
        raise CodeRejected(
            Reason.ERR_CHUNKS, "chunked numeric codes are deprecated; present the whole card"
        )
    if len(digits) > 2 * max_chars:
        raise CodeRejected(
            Reason.ERR_TOO_LARGE, f"numeric code holds more than {max_chars} characters"
        )
    if not digits or len(digits) % 2 or not digits.isascii() or not digits.isdigit():
        raise CodeRejected(Reason.ERR_NUMERIC, "numeric code is not pairs of decimal digits")
    # All pairs at once: tens and units as the bytes of two big integers, so that one
    # multiplication and one addition give every pair's value (at most 99: no byte carries).
    raw = digits.encode("ascii")
    count = len(raw) // 2
    tens = int.from_bytes(raw[0::2].translate(_DIGIT_VALUE), "big")
    units = int.from_bytes(raw[1::2].translate(_DIGIT_VALUE), "big")
    values = (10 * tens + units).to_bytes(count, "big")
    chars = values.translate(_PAIR_CHAR)
    if _OVER_77 in chars:
        raise CodeRejected(Reason.ERR_NUMERIC, "numeric code has a pair above 77")
    return chars.decode("ascii")


def encode_numeric(prefix: str, text: str) -> str:
    """The numeric QR text of a compact JWS (for issuers and tests)."""
    return prefix + "".join(f"{ord(c) - 45:02d}" for c in text)
