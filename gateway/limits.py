"""Named bounds on every untrusted input, with safe defaults (see docs/limits.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every code and request. All sizes are in characters or bytes.

    Attributes:
        max_code_chars: longest accepted code text. 7,089 is the capacity of the largest QR code
            (version 40, numeric mode); nothing longer can have been scanned from one QR code.
        max_prefixed_chars: longest ``PREFIX:`` + base45 text. 4,296 is the alphanumeric capacity of
            a version-40 QR code, the mode base45 was designed for.
        max_numeric_jws_chars: longest compact JWS in a numeric QR text (SMART Health Cards).
            1,195 is the most one version-22 QR code holds, the specification's bound for a
            single-QR card; chunked cards are refused, so nothing longer is a card.
        max_decompressed_bytes: cap on zlib / raw DEFLATE output (decompression bombs).
        max_header_bytes: cap on a decoded JWS header or COSE protected header.
        max_payload_bytes: cap on a decoded payload before parsing.
        max_depth: deepest nesting accepted in JSON or CBOR.
        max_kid_chars: longest key id accepted from a code.
        max_batch: most codes in one ``VerifyBatch`` call.
        max_message_bytes: largest gRPC message the server accepts.
        max_concurrent_rpcs: unary calls in flight at once; more are refused
            ``RESOURCE_EXHAUSTED`` at once. It bounds how long an admitted call can wait behind
            others (see docs/performance.md, "Latency and overload").
        max_concurrent_streams: streaming calls (``VerifyStream``, a replica's
            ``WatchTrustList``) open at once, counted apart from unary calls; more are refused
            ``RESOURCE_EXHAUSTED``.
        max_pending_calls: calls that reached the server but that its event loop has not taken
            up yet, held by gRPC's core; past this bound the core ends new calls at once
            (``CANCELLED``, without the gateway's error details), so that under overload no
            queue grows where the gateway cannot see it.
        leeway: tolerated issuer clock skew for "issued in the future" checks. Expiry gets no
            leeway: a code whose expiry has passed is expired (fail closed).
        stale_grace: how long codes are still judged on the last good trust snapshot after the
            registry stopped verifying (an edit outside the registry, a broken audit chain);
            after that every code is UNVERIFIABLE ``ERR_TRUST_STALE``.
    """

    max_code_chars: int = 7089
    max_prefixed_chars: int = 4296
    max_numeric_jws_chars: int = 1195
    max_decompressed_bytes: int = 64 * 1024
    max_header_bytes: int = 2048
    max_payload_bytes: int = 64 * 1024
    max_depth: int = 16
    max_kid_chars: int = 128
    max_batch: int = 100
    max_message_bytes: int = 1024 * 1024
    max_concurrent_rpcs: int = 64
    max_concurrent_streams: int = 256
    max_pending_calls: int = 64
    leeway: timedelta = timedelta(seconds=60)
    stale_grace: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        for name in (
            "max_code_chars",
            "max_prefixed_chars",
            "max_decompressed_bytes",
            "max_header_bytes",
            "max_payload_bytes",
            "max_depth",
            "max_kid_chars",
            "max_batch",
            "max_message_bytes",
            "max_concurrent_rpcs",
            "max_concurrent_streams",
            "max_pending_calls",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"limit {name} must be positive")
        if self.leeway < timedelta(0) or self.leeway > timedelta(minutes=10):
            raise ValueError("leeway must be between 0 and 10 minutes")
        if self.stale_grace < timedelta(0) or self.stale_grace > timedelta(hours=24):
            raise ValueError("stale_grace must be between 0 and 24 hours")
