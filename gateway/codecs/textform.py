"""The ``PREFIX + base45(zlib(bytes))`` text form.

Used by EU DCC (``HC1:``) and the Beijing (``BJ1:``) and Macau (``MO1:``) codes.
"""

from __future__ import annotations

from gateway.codecs import base45, compression
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason


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
