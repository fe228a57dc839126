"""Strict CBOR (RFC 8949) over cbor2.

cbor2's defaults keep the last duplicate key, accept indefinite lengths, ignore trailing bytes
and decode tags 1/2/28/29 (and others) natively without calling ``tag_hook``. Here every tag is
refused (the COSE tag on top is handled by the COSE codec before this decoder runs), duplicates,
indefinite lengths and trailing bytes are rejected, and the result is walked once to allow only
the data model the gateway understands.
"""

from __future__ import annotations

import io
import math
import struct
from datetime import UTC, datetime
from typing import Any, NoReturn

import cbor2

from gateway.errors import CodeRejected
from gateway.model import Reason


def _refuse_semantic(decoder: Any) -> NoReturn:
    raise CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag not allowed here")


def _refuse_tag(decoder: Any, tag: Any) -> NoReturn:
    raise CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag not allowed here")


class _RefuseEveryTag(dict[int, Any]):
    """Semantic decoders for every tag number: cbor2 decodes some tags natively (dates, bignums,
    shared references, 100, 1004, 43000, ...) without calling ``tag_hook``; answering every
    lookup with a refusal closes that door for all of them, present and future."""

    def get(self, key: object, default: object = None) -> Any:
        return _refuse_semantic

    def __getitem__(self, key: object) -> Any:
        return _refuse_semantic

    def __contains__(self, key: object) -> bool:
        return True


_SEMANTIC = _RefuseEveryTag()


def _date_text(value: Any, immutable: bool = False) -> Any:
    if not isinstance(value, str):
        raise CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag 0 must hold a date/time text")
    return value


def _epoch(value: Any, immutable: bool = False) -> Any:
    """Tag 1: seconds since the epoch, given back as the RFC 3339 text (UTC) tag 0 would hold,
    so that a profile reads a date/time the same way whichever tag the issuer chose."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag 1 must hold a number")
    try:
        instant = datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag 1 holds no representable time") from e
    return instant.isoformat().replace("+00:00", "Z")


class _DateTagsOnly(_RefuseEveryTag):
    """Tag 0 (a date/time text) and tag 1 (epoch seconds) are unwrapped to their content, which
    is checked for type; every other tag is refused. For payloads whose specification allows
    them (EU DCC test and sample dates)."""

    def get(self, key: object, default: object = None) -> Any:
        return {0: _date_text, 1: _epoch}.get(key, _refuse_semantic)  # type: ignore[call-overload]

    def __getitem__(self, key: object) -> Any:
        return self.get(key)


_DATE_TAGS = _DateTagsOnly()


def loads(data: bytes, *, max_depth: int, date_tags: bool = False) -> Any:
    """Decode exactly one CBOR data item from ``data``. With ``date_tags``, tags 0 and 1 are
    accepted and unwrapped (their content type-checked); no other tag ever is.

    Raises:
        CodeRejected: ``ERR_CBOR_TAG`` for any tag; ``ERR_DUPLICATE_KEY``; ``ERR_TOO_DEEP``;
            ``ERR_TRAILING_DATA`` when bytes follow the item; ``ERR_CBOR`` for anything else
            malformed (indefinite lengths, truncation, invalid UTF-8, simple values, map keys
            that are neither integers nor text).
    """
    return _decode(data, max_depth=max_depth, allow_indefinite=False, date_tags=date_tags)


def loads_preferred(data: bytes, *, max_depth: int) -> Any:
    """Like :func:`loads`, and also require preferred serialization (RFC 8949 section 4.1):
    definite lengths and the shortest encoding of every integer and length. Map key order is
    left as sent.

    Raises:
        CodeRejected: as :func:`loads`, plus ``ERR_NONCANONICAL`` for any other encoding.
    """
    value = _decode(data, max_depth=max_depth, allow_indefinite=True)
    _check_preferred(data)
    return value


def _decode(data: bytes, *, max_depth: int, allow_indefinite: bool, date_tags: bool = False) -> Any:
    fp = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        fp,
        tag_hook=_refuse_tag,
        semantic_decoders=_DATE_TAGS if date_tags else _SEMANTIC,
        max_depth=max_depth,
        allow_indefinite=allow_indefinite,
        allow_duplicate_keys=False,
    )
    try:
        value = decoder.decode()
    except CodeRejected:
        raise
    except cbor2.CBORDecodeError as e:
        raise _classify(e) from e
    except (ValueError, TypeError, OverflowError, MemoryError, RecursionError) as e:
        raise CodeRejected(Reason.ERR_CBOR, "malformed CBOR") from e
    if fp.tell() != len(data):
        raise CodeRejected(Reason.ERR_TRAILING_DATA, "bytes after the CBOR data item")
    _check_model(value)
    return value


def _classify(error: cbor2.CBORDecodeError) -> CodeRejected:
    cause = error.__cause__ or error.__context__
    if isinstance(cause, CodeRejected):
        return cause
    message = str(error)
    if "Duplicate map key" in message:
        return CodeRejected(Reason.ERR_DUPLICATE_KEY, "duplicate CBOR map key")
    if "nesting depth" in message:
        return CodeRejected(Reason.ERR_TOO_DEEP, "CBOR nesting too deep")
    if "semantic tag" in message:
        return CodeRejected(Reason.ERR_CBOR_TAG, "CBOR tag not allowed here")
    return CodeRejected(Reason.ERR_CBOR, "malformed CBOR")


_SCALARS = frozenset({type(None), bool, int, str, bytes})


def _check_model(value: Any) -> None:
    """Allow only null, booleans, integers, finite floats, text, bytes, arrays and maps whose
    keys are integers or text. Anything else (undefined, simple values) is refused. Types are
    compared exactly (cbor2 builds exactly these), which also keeps a boolean from passing as
    an integer map key."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list:
            extend(item)
        elif kind is dict:
            for key in item:
                if type(key) is not int and type(key) is not str:
                    raise CodeRejected(Reason.ERR_CBOR, "CBOR map key is not an integer or text")
            extend(item.values())
        elif kind is float:
            if not math.isfinite(item):
                raise CodeRejected(Reason.ERR_CBOR, "non-finite CBOR float")
        else:
            raise CodeRejected(Reason.ERR_CBOR, "CBOR value outside the supported data model")


def _check_preferred(data: bytes) -> None:
    """Walk the encoded items (already known to be well-formed) and refuse indefinite lengths,
    arguments not in their shortest form, and floats that a shorter float represents exactly."""
    pos, pending = 0, 1
    while pending:
        pending -= 1
        initial = data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info == 31:
            raise CodeRejected(Reason.ERR_NONCANONICAL, "indefinite length in CBOR")
        if info < 24:
            argument = info
        else:
            size = 1 << (info - 24)
            chunk = data[pos : pos + size]
            pos += size
            argument = int.from_bytes(chunk, "big")
            if major == 7:
                if info != 24 and not _shortest_float(chunk):
                    raise CodeRejected(Reason.ERR_NONCANONICAL, "CBOR float not in shortest form")
            elif argument < (24 if size == 1 else 1 << (4 * size)):
                raise CodeRejected(Reason.ERR_NONCANONICAL, "CBOR argument not in shortest form")
        if major in (2, 3):
            pos += argument
        elif major == 4:
            pending += argument
        elif major == 5:
            pending += 2 * argument
        elif major == 6:
            pending += 1


def _shortest_float(chunk: bytes) -> bool:
    """True if no shorter IEEE 754 width holds the same value (NaN only as half f97e00)."""
    value = struct.unpack({2: ">e", 4: ">f", 8: ">d"}[len(chunk)], chunk)[0]
    if math.isnan(value):
        return chunk == b"\x7e\x00"
    for fmt in {4: (">e",), 8: (">e", ">f")}.get(len(chunk), ()):
        try:
            if struct.unpack(fmt, struct.pack(fmt, value))[0] == value:
                return False
        except OverflowError:
            continue
    return True


def dumps(value: Any) -> bytes:
    """Deterministic CBOR encoding (RFC 8949 section 4.2.1): definite lengths, sorted map keys."""
    return cbor2.dumps(value, canonical=True)
