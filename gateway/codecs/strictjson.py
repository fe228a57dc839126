"""Strict JSON (RFC 8259) for signed payloads and headers.

``json.loads`` keeps the last of duplicate keys, accepts NaN and Infinity, and raises
``RecursionError`` on deep nesting; this decoder rejects duplicates and non-finite numbers,
bounds size, depth and integer length, and requires UTF-8 without a byte-order mark.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.errors import CodeRejected
from gateway.model import Reason

# Enough for any timestamp in milliseconds and any realistic identifier; far below the
# 4,300-digit limit at which Python's int() raises.
MAX_INT_DIGITS = 20


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a name given twice: the dict kept one
        raise CodeRejected(Reason.ERR_DUPLICATE_KEY, "duplicate JSON member name")
    return out


def _constant(name: str) -> Any:
    raise CodeRejected(Reason.ERR_CLAIMS, f"non-finite JSON number {name}")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise CodeRejected(Reason.ERR_CLAIMS, "JSON integer too long")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CodeRejected(Reason.ERR_CLAIMS, "JSON number out of range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int, parse_float=_float
)


def _plain(data: bytes, max_depth: int) -> bool:
    """True if the walk of :func:`_check` cannot refuse ``data``: no escaped surrogate (the only
    way to a lone one; an escaped ``\\u`` inside a string only sends the text the slow way),
    and no more opening brackets than the depth limit, so nesting cannot exceed it. The number
    hooks and the duplicate check run either way."""
    return (
        b"\\ud" not in data
        and b"\\uD" not in data
        and data.count(b"[") + data.count(b"{") <= max_depth
    )


def loads(data: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """Parse one JSON value from UTF-8 ``data``.

    Raises:
        CodeRejected: ``ERR_TOO_LARGE`` over ``max_bytes``; ``ERR_UTF8`` for invalid UTF-8 or a
            byte-order mark; ``ERR_DUPLICATE_KEY``; ``ERR_CLAIMS`` for NaN, Infinity or
            over-long numbers; ``ERR_TOO_DEEP`` beyond ``max_depth``; ``ERR_SCHEMA`` for
            anything else that is not exactly one JSON value.
    """
    if len(data) > max_bytes:
        raise CodeRejected(Reason.ERR_TOO_LARGE, "JSON text over the size limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CodeRejected(Reason.ERR_UTF8, "JSON text is not valid UTF-8") from e
    if text.startswith("\ufeff"):
        raise CodeRejected(Reason.ERR_UTF8, "JSON text starts with a byte-order mark")
    fast = _plain(data, max_depth)
    try:
        value = _DECODER.decode(text)
    except RecursionError as e:
        raise CodeRejected(Reason.ERR_TOO_DEEP, "JSON nesting too deep") from e
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise CodeRejected(Reason.ERR_SCHEMA, "not a single well-formed JSON value") from e
    if not fast:
        _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    """Refuse nesting beyond ``max_depth`` and text that is not valid Unicode: an escaped lone
    surrogate such as ``"\\ud800"`` parses, but can never be encoded again. The decoder builds
    exactly ``dict``, ``list``, ``str`` and scalars, so types are compared exactly."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, append = stack.pop, stack.append
    while stack:
        item, level = pop()
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _text(item)
        elif kind is dict or kind is list:
            if level >= max_depth:
                raise CodeRejected(Reason.ERR_TOO_DEEP, "JSON nesting too deep")
            if kind is dict:
                for key in item:
                    if not key.isascii():
                        _text(key)
                children = item.values()
            else:
                children = item
            level += 1
            for child in children:
                if type(child) in _CONTAINERS_OR_TEXT:
                    append((child, level))


_CONTAINERS_OR_TEXT = frozenset({dict, list, str})


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CodeRejected(Reason.ERR_UTF8, "JSON text holds a lone surrogate") from e


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as issuers sign it (no spaces, non-ASCII kept as UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )
