"""The online-verification protocol (Zhejiang style): the pure parts.

Some regions' codes are URLs carrying an opaque token; only the issuer can say what a token
means. The gateway asks the issuer's verification API and trusts the answer only because the
issuer signs it:

1. Request: ``POST verify_url`` with the JSON body ``{"token", "nonce", "at"}`` (``at`` in
   RFC 3339 UTC), and the headers ``X-Huren-Client: <client id>`` and
   ``X-Huren-Signature: base64url(HMAC-SHA-256(client secret, body))``. The issuer refuses
   requests with a bad signature or an ``at`` more than 60 s away from its clock.
2. Answer: ``200`` with a compact JWS (``application/jose``) signed with one of the issuer's
   registered keys. Its JSON payload echoes ``token`` and ``nonce`` (binding it to this request:
   an old answer cannot be replayed) and carries either the facts the profile translates or an
   ``error`` member. ``"error": "unknown-token"`` (the issuer never issued the token) makes the
   code REJECTED ``ERR_TOKEN_UNKNOWN``; any other ``error`` value (another word such as
   ``"suspended"``, a number, ``null``, a list) is one the protocol does not define, so the
   gateway cannot tell whether it is permanent, and the code is UNVERIFIABLE
   ``ERR_ISSUER_UNAVAILABLE``. An answer with an ``error`` member is never read for facts,
   whatever else it carries: it is never VALID (:func:`answer_error`).

Anything else (refused connection, timeout, a redirect, any other non-200, oversized or malformed
answer, a signature that does not verify, a wrong echo) makes the code UNVERIFIABLE, never green.
Redirects are never followed: the question and the hub's credentials go to ``verify_url`` only.
The network call itself lives at the edge (:mod:`gateway.clients.online`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.codecs import base64url, strictjson
from gateway.errors import CodeRejected
from gateway.model import Reason

CLIENT_HEADER = "X-Huren-Client"
SIGNATURE_HEADER = "X-Huren-Signature"
ANSWER_TYPE = "application/jose"
MAX_ANSWER_BYTES = 16 * 1024
REQUEST_WINDOW_SECONDS = 60
UNKNOWN_TOKEN = "unknown-token"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def token_of(code: str, code_prefix: str) -> str:
    """The token of an online code (``code_prefix`` + token, nothing else).

    Raises:
        CodeRejected: ``ERR_ENVELOPE`` for a missing or malformed token, a query or a fragment.
    """
    token = code[len(code_prefix) :]
    if not _TOKEN.fullmatch(token):
        raise CodeRejected(Reason.ERR_ENVELOPE, "the code URL does not end in a valid token")
    return token


def request_body(token: str, nonce: str, at: datetime) -> bytes:
    stamp = at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return strictjson.dumps({"token": token, "nonce": nonce, "at": stamp})


def request_signature(secret: bytes, body: bytes) -> str:
    return base64url.encode(hmac.digest(secret, body, hashlib.sha256))


def signature_matches(secret: bytes, body: bytes, signature: str) -> bool:
    """Constant-time check of a request signature (issuer side)."""
    return hmac.compare_digest(request_signature(secret, body), signature)


@dataclass(frozen=True, slots=True)
class OnlineAnswer:
    """What the edge got back for one question: the answer text, or why there is none."""

    nonce: str
    text: str | None = None
    failure: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.failure is None):
            raise ValueError("an answer has either text or a failure")


def unavailable(detail: str) -> CodeRejected:
    return CodeRejected(Reason.ERR_ISSUER_UNAVAILABLE, detail)


def answer_error(claims: Mapping[Any, Any], issuer: str) -> CodeRejected | None:
    """The refusal an authenticated answer's ``error`` member stands for, or None without one.

    Fail closed: whatever its value, an ``error`` member means the answer vouches for nothing.
    ``unknown-token`` is ``ERR_TOKEN_UNKNOWN`` (permanent); any other value is
    ``ERR_ISSUER_UNAVAILABLE`` (the protocol does not say what it means, so not permanent).
    The value is not quoted: it is the issuer's text, not the gateway's.
    """
    if "error" not in claims:
        return None
    if claims["error"] == UNKNOWN_TOKEN:
        return CodeRejected(Reason.ERR_TOKEN_UNKNOWN, f"issuer {issuer} does not know this code")
    return unavailable(
        f"issuer {issuer} answered with an error other than {UNKNOWN_TOKEN}, "
        "which says nothing this gateway can use"
    )
