"""Strict base45 (RFC 9285), the text encoding of EU DCC and of the Beijing and Macau codes.

Table-driven and in bulk: the text is mapped to digit values with one ``bytes.translate`` call,
which also finds any character outside the 45-character alphabet, and every triple is then
decoded at once with big-integer arithmetic (no Python step per character).
"""

from __future__ import annotations

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
    count = full // 3
    # Each triple's value c + 45 d + 2025 e, for all triples at once: the digits are spread into
    # 3-byte lanes of one big integer per position, so three multiplications and two additions
    # compute every value (at most 91,124 < 2**24: no lane carries into the next).
    lanes = bytearray(3 * count)
    total = 0
    for offset, weight in ((0, 1), (1, 45), (2, 2025)):
        lanes[2::3] = digits[offset:full:3]
        total += weight * int.from_bytes(lanes, "big")
    values = total.to_bytes(3 * count, "big")
    if values[0::3].count(0) != count:  # a lane's high byte is set: a value above 65,535
        raise CodeRejected(Reason.ERR_BASE45, "base45 triple exceeds 65535")
    out = bytearray(2 * count)
    out[0::2] = values[1::3]
    out[1::2] = values[2::3]
    if full != n:
        value = digits[full] + digits[full + 1] * 45
        if value > 0xFF:
            raise CodeRejected(Reason.ERR_BASE45, "base45 final pair exceeds 255")
        out.append(value)
    return bytes(out)


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
