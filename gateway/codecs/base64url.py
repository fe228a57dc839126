"""Strict unpadded base64url (RFC 4648 section 5, as used by JWS, RFC 7515 section 2).

Python's ``base64.urlsafe_b64decode`` discards characters outside the alphabet and accepts
padding and non-zero trailing bits; here the text must be exactly the canonical encoding
(decoded by ``binascii`` in strict mode, the trailing bits checked apart).
"""

from __future__ import annotations

import binascii

from gateway.errors import CodeRejected
from gateway.model import Reason

_VALUE = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
# Bits of the last character that carry no data, by length mod 4 (RFC 4648 section 3.5).
_UNUSED_BITS = {2: 0x0F, 3: 0x03}
# To the standard alphabet; '+', '/' and '=' (not base64url) become a character that strict
# decoding refuses, as it refuses anything else outside the alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = {0: b"", 2: b"==", 3: b"="}


def decode(text: str) -> bytes:
    """Decode canonical unpadded base64url.

    Raises:
        CodeRejected: ``ERR_BASE64`` for characters outside the alphabet, padding, a length of
            1 mod 4, or non-zero trailing bits (any text that would not re-encode identically).
    """
    tail = len(text) % 4
    if tail == 1 or not text.isascii():
        raise CodeRejected(Reason.ERR_BASE64, "not canonical unpadded base64url")
    try:
        data = binascii.a2b_base64(
            text.encode("ascii").translate(_TO_STANDARD) + _PADDING[tail], strict_mode=True
        )
    except binascii.Error as e:
        raise CodeRejected(Reason.ERR_BASE64, "not canonical unpadded base64url") from e
    if tail and _VALUE[text[-1]] & _UNUSED_BITS[tail]:
        raise CodeRejected(Reason.ERR_BASE64, "base64url has non-zero trailing bits")
    return data


def encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()
