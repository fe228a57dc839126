"""COSE_Sign1 (RFC 9052 section 4.2), parsed strictly, and signed for issuers.

Accepted: an untagged COSE_Sign1 array, or one under tag 18, optionally inside the CWT tag 61.
The protected header must be in preferred serialization. One of the buckets must carry ``alg``
(an integer; the protected one wins), and they may carry ``kid`` (label 4) and content type
(label 3). ``kid`` is read from the protected bucket first and from the unprotected one
otherwise (EU DCC rule: a different unprotected ``kid`` is ignored); any other label present in
both buckets with different values, ``crit`` and unknown labels are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import cbor2

from gateway.codecs import strictcbor
from gateway.codecs.algorithms import Algorithm, Signer
from gateway.codecs.remembered import Remembered
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

ALG, CRIT, CONTENT_TYPE, KID = 1, 2, 3, 4
ALLOWED_LABELS = frozenset({ALG, CONTENT_TYPE, KID})
_TAG_SIGN1 = b"\xd2"
_TAG_CWT = b"\xd8\x3d"
MAX_REMEMBERED_HEADERS = 256
_PROTECTED: Remembered[bytes, Mapping[int, Any]] = Remembered(MAX_REMEMBERED_HEADERS)


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A structurally valid COSE_Sign1; nothing in it is trusted yet."""

    protected_raw: bytes
    protected: Mapping[int, Any]
    unprotected: Mapping[int, Any]
    algorithm: Algorithm
    kid: bytes | None
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        """The Sig_structure over the exact protected bytes received (RFC 9052 section 4.4)."""
        return _sig_structure(self.protected_raw, self.payload)


def _sig_structure(protected_raw: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected_raw, b"", payload])


def parse(data: bytes, limits: Limits) -> CoseSign1:
    """Decode a COSE_Sign1 without verifying it.

    Raises:
        CodeRejected: ``ERR_CBOR_TAG`` for a top-level tag other than 61/18; the strict CBOR
            reasons; ``ERR_COSE_STRUCTURE`` unless it is a 4-array of (bstr, map, bstr, bstr);
            ``ERR_NONCANONICAL`` for a protected header not in preferred serialization;
            ``ERR_HEADER`` for missing/ill-typed ``alg`` or ``kid``, ``crit``, unknown labels or
            conflicting buckets; ``ERR_ALG_NOT_ALLOWED`` for an algorithm not verified here.
    """
    body = data
    if body.startswith(_TAG_CWT):
        body = body[len(_TAG_CWT) :]
        if not body.startswith(_TAG_SIGN1):
            # RFC 8392 section 6: the CWT tag is prefixed to the COSE tag, never to a bare array.
            raise CodeRejected(Reason.ERR_CBOR_TAG, "CWT tag 61 must wrap a tagged COSE_Sign1")
    if body.startswith(_TAG_SIGN1):
        body = body[len(_TAG_SIGN1) :]
    if body[:1] and body[0] >> 5 == 6:  # another tag (major type 6) on top
        raise CodeRejected(Reason.ERR_CBOR_TAG, "COSE message under an unexpected tag")
    item = strictcbor.loads(body, max_depth=limits.max_depth)
    if not isinstance(item, list) or len(item) != 4:
        raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE_Sign1 is not a 4-element array")
    protected_raw, unprotected, payload, signature = item
    if not isinstance(protected_raw, bytes):
        raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE protected header is not a bstr")
    if not isinstance(unprotected, dict):
        raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE payload is not a bstr")
    if not isinstance(signature, bytes):
        raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE signature is not a bstr")
    if len(protected_raw) > limits.max_header_bytes:
        raise CodeRejected(Reason.ERR_TOO_LARGE, "COSE protected header over the size limit")
    # A signer's protected header is the same bytes on every code it signs: one that passed its
    # own checks is remembered by its exact bytes (bounded; each within the size limit above).
    protected = _PROTECTED.get(protected_raw, _protected)
    _check_bucket(unprotected)
    for label in protected.keys() & unprotected.keys() if unprotected else ():
        if label != KID and protected[label] != unprotected[label]:
            raise CodeRejected(Reason.ERR_HEADER, f"COSE header {label} differs between buckets")
    # The protected bucket first; an unprotected alg is accepted (EU DCC test data, CO20) since
    # the registered key's algorithm decides anyway and must agree with whatever is named here.
    alg = protected.get(ALG, unprotected.get(ALG))
    if alg is None:
        raise CodeRejected(Reason.ERR_HEADER, "COSE message names no alg")
    if isinstance(alg, bool) or not isinstance(alg, int | str):
        raise CodeRejected(Reason.ERR_HEADER, "COSE alg must be an integer or text")
    algorithm = Algorithm.from_cose(alg) if isinstance(alg, int) else None
    if algorithm is None:
        raise CodeRejected(Reason.ERR_ALG_NOT_ALLOWED, "COSE algorithm not allowed")
    kid = protected.get(KID, unprotected.get(KID))
    if kid is not None and (not isinstance(kid, bytes) or not 0 < len(kid) <= limits.max_kid_chars):
        raise CodeRejected(Reason.ERR_HEADER, "COSE kid must be a short byte string")
    return CoseSign1(protected_raw, protected, unprotected, algorithm, kid, payload, signature)


def _protected(raw: bytes) -> Mapping[int, Any]:
    """The protected header's checks that depend on nothing but its bytes (read-only result)."""
    protected: Any = {}
    if raw:
        protected = strictcbor.loads_preferred(raw, max_depth=4)
        if not isinstance(protected, dict):
            raise CodeRejected(Reason.ERR_COSE_STRUCTURE, "COSE protected header is not a map")
    _check_bucket(protected)
    return MappingProxyType(protected)


def _check_bucket(bucket: Mapping[Any, Any]) -> None:
    if CRIT in bucket:
        raise CodeRejected(Reason.ERR_HEADER, "COSE crit header is not supported")
    if not ALLOWED_LABELS.issuperset(bucket):
        raise CodeRejected(Reason.ERR_HEADER, "COSE header label not allowed")


def sign(payload: bytes, key: Signer, kid: bytes, *, tagged: bool = True) -> bytes:
    """Build and sign a COSE_Sign1 with ``alg`` and ``kid`` in the protected header (issuers)."""
    protected_raw = cbor2.dumps({ALG: key.algorithm.cose_id, KID: kid})
    signature = key.sign(_sig_structure(protected_raw, payload))
    message = cbor2.dumps([protected_raw, {}, payload, signature])
    return _TAG_SIGN1 + message if tagged else message
