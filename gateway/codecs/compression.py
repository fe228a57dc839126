"""zlib (RFC 1950) and raw DEFLATE (RFC 1951) with a hard cap on the decompressed size.

No container fallback: zlib means a zlib header and Adler-32 trailer (``wbits=15``, never the
auto-detecting 32+ or 16+ forms); raw means no header at all (``wbits=-15``). The stream must end
exactly at the end of the input.
"""

from __future__ import annotations

import zlib

from gateway.errors import CodeRejected
from gateway.model import Reason

ZLIB = 15
RAW = -15


def inflate(data: bytes, *, wbits: int, max_bytes: int) -> bytes:
    """Decompress one complete stream, producing at most ``max_bytes``.

    Raises:
        CodeRejected: ``ERR_DECOMPRESSED_TOO_LARGE`` as soon as the output would exceed the cap
            (at most ``max_bytes + 1`` bytes are ever produced); ``ERR_DECOMPRESS`` for a corrupt,
            truncated or wrongly framed stream or for bytes after its end.
    """
    if wbits not in (ZLIB, RAW):
        raise ValueError("wbits must be ZLIB or RAW")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise CodeRejected(Reason.ERR_DECOMPRESS, "corrupt compressed data") from e
    if len(out) > max_bytes:
        raise CodeRejected(
            Reason.ERR_DECOMPRESSED_TOO_LARGE, f"decompressed data exceeds {max_bytes} bytes"
        )
    if not inflater.eof:
        if inflater.unconsumed_tail:
            # Output stopped exactly at the cap with input left: it would grow past the cap.
            raise CodeRejected(
                Reason.ERR_DECOMPRESSED_TOO_LARGE, f"decompressed data exceeds {max_bytes} bytes"
            )
        raise CodeRejected(Reason.ERR_DECOMPRESS, "compressed stream is truncated")
    if inflater.unused_data:
        raise CodeRejected(Reason.ERR_DECOMPRESS, "bytes after the end of the compressed stream")
    return out


def deflate(data: bytes, *, wbits: int) -> bytes:
    """Compress ``data`` at level 9 (for issuers)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def deflate_head(data: bytes) -> bytes:
    """Raw DEFLATE of ``data`` as the start of a longer stream: its blocks end on a byte
    boundary (a full flush) and none is the last, so the raw DEFLATE of what follows, made
    apart by :func:`deflate`, may be appended to it and the two inflate as one stream (the part
    after refers to nothing before it)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, RAW)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
