"""Strict unpadded base64url (RFC 4648 section 5, as used by JWS, RFC 7515 section 2).

Python's ``base64.urlsafe_b64decode`` discards characters outside the alphabet and accepts
padding and non-zero trailing bits; here the text must be exactly the canonical encoding.
"""

from __future__ import annotations

import base64
import binascii
import re

from gateway.errors import CodeRejected
from gateway.model import Reason

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_VALUE = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
# Bits of the last character that carry no data, by length mod 4 (RFC 4648 section 3.5).
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def decode(text: str) -> bytes:
    """Decode canonical unpadded base64url.

    Raises:
        CodeRejected: ``ERR_BASE64`` for characters outside the alphabet, padding, a length of
            1 mod 4, or non-zero trailing bits (any text that would not re-encode identically).
    """
    tail = len(text) % 4
    if not _ALPHABET.fullmatch(text) or tail == 1:
        raise CodeRejected(Reason.ERR_BASE64, "not canonical unpadded base64url")
    if tail and _VALUE[text[-1]] & _UNUSED_BITS[tail]:
        raise CodeRejected(Reason.ERR_BASE64, "base64url has non-zero trailing bits")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-tail % 4))
    except (binascii.Error, ValueError) as e:  # pragma: no cover - excluded by the checks above
        raise CodeRejected(Reason.ERR_BASE64, "not canonical unpadded base64url") from e


def encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
