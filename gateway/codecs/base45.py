"""Strict base45 (RFC 9285), the text encoding of EU DCC and of the Beijing and Macau codes.

Table-driven: the text is mapped to digit values with one ``bytes.translate`` call, which also
finds any character outside the 45-character alphabet, then decoded three digits at a time.
"""

from __future__ import annotations

import struct

from gateway.errors import CodeRejected
from gateway.model import Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
_TO_DIGIT = bytes(ALPHABET.index(chr(c)) if chr(c) in ALPHABET else _INVALID for c in range(256))
_FROM_DIGIT = ALPHABET.encode("ascii")


def decode(text: str) -> bytes:
    """Decode base45 text.

    Raises:
        CodeRejected: ``ERR_BASE45`` for a character outside the alphabet (lower case included),
            a length of 1 mod 3, a triple above 65,535 or a final pair above 255.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as e:
        raise CodeRejected(Reason.ERR_BASE45, "base45 text is not ASCII") from e
    digits = raw.translate(_TO_DIGIT)
    if _INVALID in digits:
        raise CodeRejected(Reason.ERR_BASE45, "character outside the base45 alphabet")
    n = len(digits)
    if n % 3 == 1:
        raise CodeRejected(Reason.ERR_BASE45, "base45 length is 1 mod 3")
    full = n - n % 3
    values = [
        a + b * 45 + c * 2025
        for a, b, c in zip(digits[0:full:3], digits[1:full:3], digits[2:full:3], strict=True)
    ]
    if values and max(values) > 0xFFFF:
        raise CodeRejected(Reason.ERR_BASE45, "base45 triple exceeds 65535")
    out = struct.pack(f">{len(values)}H", *values)
    if full != n:
        value = digits[full] + digits[full + 1] * 45
        if value > 0xFF:
            raise CodeRejected(Reason.ERR_BASE45, "base45 final pair exceeds 255")
        out += bytes((value,))
    return out


def encode(data: bytes) -> str:
    """Encode ``data`` as base45."""
    out = bytearray()
    for i in range(0, len(data) - 1, 2):
        value = data[i] * 256 + data[i + 1]
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        out += bytes((_FROM_DIGIT[c], _FROM_DIGIT[d], _FROM_DIGIT[e]))
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += bytes((_FROM_DIGIT[c], _FROM_DIGIT[d]))
    return out.decode("ascii")
