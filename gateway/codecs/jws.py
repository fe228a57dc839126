"""Compact JWS (RFC 7515 section 7.1), parsed strictly, and signed for issuers.

Only what a health code needs is accepted in the protected header: ``alg``, ``kid``, ``typ``,
``cty`` and ``zip`` (SMART Health Cards). Header-supplied keys (``jwk``, ``jku``, ``x5u``,
``x5c``), ``crit``, ``b64`` and every other member are refused (RFC 8725 section 3.10): the
registry, not the code, supplies keys. The signature covers the exact ASCII of the first two
segments as received.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.codecs import base64url, strictjson
from gateway.codecs.algorithms import Algorithm, Signer
from gateway.codecs.remembered import Remembered
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

ALLOWED_HEADER = frozenset({"alg", "kid", "typ", "cty", "zip"})
_TEXT_MEMBERS = frozenset({"typ", "cty", "zip"})
# Headers that passed every check, by their exact text (bounded: emptied when full; each is
# at most the caller's header limit, checked on the text before any lookup).
MAX_REMEMBERED_HEADERS = 256
_HEADERS: Remembered[str, tuple[Mapping[str, Any], Algorithm, str | None]] = Remembered(
    MAX_REMEMBERED_HEADERS
)
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A structurally valid compact JWS; nothing in it is trusted yet."""

    header: Mapping[str, Any]
    algorithm: Algorithm
    kid: str | None
    signing_input: bytes
    payload: bytes
    signature: bytes


def _b64_len(max_bytes: int) -> int:
    return (max_bytes * 4 + 2) // 3


def parse(text: str, limits: Limits) -> CompactJws:
    """Split and decode a compact JWS without verifying it.

    Raises:
        CodeRejected: ``ERR_JWS_FORMAT`` unless there are exactly three segments with a
            non-empty header and signature; ``ERR_BASE64``; ``ERR_TOO_LARGE``; the strict JSON
            reasons for the header; ``ERR_HEADER`` for a header that is not an object, has a
            member outside the allowed set, or a malformed ``kid``/``typ``/``cty``/``zip``;
            ``ERR_ALG_NOT_ALLOWED`` for ``none`` or any algorithm this gateway does not verify.
    """
    parts = text.split(".")
    if len(parts) != 3:
        raise CodeRejected(
            Reason.ERR_JWS_FORMAT, f"compact JWS has 3 segments, this has {len(parts)}"
        )
    header_b64, payload_b64, signature_b64 = parts
    if not header_b64:
        raise CodeRejected(Reason.ERR_JWS_FORMAT, "empty JWS header")
    if len(header_b64) > _b64_len(limits.max_header_bytes):
        raise CodeRejected(Reason.ERR_TOO_LARGE, "JWS header over the size limit")
    # An issuer's header is the same text on every code it signs: a header that passed every
    # check below is remembered by its exact text (bounded), and only the limit on the key id,
    # which depends on the caller's limits, is checked again.
    header, algorithm, kid = _HEADERS.get(header_b64, _header)
    if kid is not None and len(kid) > limits.max_kid_chars:
        raise CodeRejected(Reason.ERR_HEADER, "JWS kid must be short printable ASCII text")
    if not signature_b64:
        raise CodeRejected(Reason.ERR_JWS_FORMAT, "empty JWS signature")
    if len(payload_b64) > _b64_len(limits.max_payload_bytes):
        raise CodeRejected(Reason.ERR_TOO_LARGE, "JWS payload over the size limit")
    payload = base64url.decode(payload_b64)
    signature = base64url.decode(signature_b64)
    signing_input = text[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    return CompactJws(header, algorithm, kid, signing_input, payload, signature)


def _header(header_b64: str) -> tuple[Mapping[str, Any], Algorithm, str | None]:
    """The checks of a header that depend on nothing but its text: JSON object, members, alg,
    kid, typ, cty and zip. The mapping returned is read-only (it is shared by every code with
    the same header)."""
    data = base64url.decode(header_b64)  # its length is bounded by the caller's limit
    header = strictjson.loads(data, max_bytes=len(data), max_depth=2)
    if not isinstance(header, dict):
        raise CodeRejected(Reason.ERR_HEADER, "JWS header is not a JSON object")
    if not ALLOWED_HEADER.issuperset(header):
        extra = set(header) - ALLOWED_HEADER
        raise CodeRejected(Reason.ERR_HEADER, f"JWS header member not allowed: {_names(extra)}")
    algorithm = _algorithm(header.get("alg"))
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not _PRINTABLE.fullmatch(kid)):
        raise CodeRejected(Reason.ERR_HEADER, "JWS kid must be short printable ASCII text")
    for name in _TEXT_MEMBERS.intersection(header):
        value = header[name]
        if not isinstance(value, str) or not 0 < len(value) <= 64:
            raise CodeRejected(Reason.ERR_HEADER, f"JWS header {name} must be short text")
    return MappingProxyType(header), algorithm, kid


def _algorithm(value: object) -> Algorithm:
    if not isinstance(value, str):
        raise CodeRejected(Reason.ERR_ALG_NOT_ALLOWED, "JWS header has no algorithm")
    algorithm = Algorithm.from_name(value)
    if algorithm is None:
        raise CodeRejected(Reason.ERR_ALG_NOT_ALLOWED, f"JWS algorithm {value[:16]!r} not allowed")
    return algorithm


def _names(names: set[str]) -> str:
    return ", ".join(sorted(repr(n[:16]) for n in names)[:4])


def sign(header: Mapping[str, Any], payload: bytes, key: Signer) -> str:
    """Serialize and sign a compact JWS (for issuers). ``header`` must name ``key``'s algorithm."""
    if header.get("alg") != key.algorithm.value:
        raise ValueError("header alg must match the signing key")
    signing_input = (
        base64url.encode(strictjson.dumps(dict(header))) + "." + base64url.encode(payload)
    )
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + base64url.encode(signature)
