"""The edge that asks online issuers about tokens (see :mod:`gateway.online` for the protocol).

Bounded in every direction: a total timeout per request, a cap on the answer's size, at most
``per_issuer`` requests in flight to one issuer, and a circuit breaker that fails fast for a
while after repeated failures, so that an issuer that is down or slow costs its own codes a
quick UNVERIFIABLE and never slows down anyone else's.

Questions go to the registered ``verify_url`` and nowhere else: redirects are never followed
(aiohttp follows them by default, re-sending a 307's or 308's body and headers, the hub's client
credentials included, to whatever ``Location`` says, and taking the answer from there).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from gateway.metrics import NO_OBSERVER, Observer, OnlineOutcome
from gateway.model import IssuerId
from gateway.online import (
    ANSWER_TYPE,
    CLIENT_HEADER,
    MAX_ANSWER_BYTES,
    SIGNATURE_HEADER,
    OnlineAnswer,
    request_body,
    request_signature,
)
from gateway.verify import Question

log = logging.getLogger(__name__)


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0

    def tripped(self, nonce: str, now: float) -> OnlineAnswer | None:
        """The fail-fast answer while the breaker is open, else None."""
        if self.open_until > now:
            return OnlineAnswer(nonce, failure="failing fast after repeated failures")
        return None


@dataclass
class OnlineClient:
    """Asks online issuers over HTTP. Create inside the event loop that uses it; ``close`` it."""

    timeout: float = 2.0
    per_issuer: int = 32
    breaker_failures: int = 5
    breaker_open_seconds: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    observer: Observer = NO_OBSERVER
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _limits: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False)
    _breakers: defaultdict[str, _Breaker] = field(
        default_factory=lambda: defaultdict(_Breaker), init=False
    )

    async def ask(self, question: Question, now: datetime) -> OnlineAnswer:
        issuer = question.issuer
        endpoint = issuer.online
        assert endpoint is not None
        nonce = secrets.token_urlsafe(18)
        breaker = self._breakers[issuer.id]
        if fast := breaker.tripped(nonce, self.monotonic()):
            self.observer.online_call(issuer.id, OnlineOutcome.FAST_FAILED)
            return fast
        body = request_body(question.token, nonce, now)
        headers = {
            "Content-Type": "application/json",
            CLIENT_HEADER: endpoint.client_id,
            SIGNATURE_HEADER: request_signature(endpoint.client_secret, body),
        }
        limit = self._limits.setdefault(issuer.id, asyncio.Semaphore(self.per_issuer))
        try:
            # The time budget covers the wait for one of the issuer's slots too: when the
            # issuer hangs, questions queued behind it fail within the budget instead of each
            # waiting for the ones before it. The breaker may have opened while this one waited.
            async with asyncio.timeout(self.timeout), limit:
                if fast := breaker.tripped(nonce, self.monotonic()):
                    self.observer.online_call(issuer.id, OnlineOutcome.FAST_FAILED)
                    return fast
                answer = await self._post(issuer.id, endpoint.verify_url, body, headers, nonce)
        except TimeoutError:
            answer = OnlineAnswer(nonce, failure=f"no answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as e:
            answer = OnlineAnswer(nonce, failure=f"connection failed ({type(e).__name__})")
        if answer.failure is None:
            breaker.failures = 0
            self.observer.online_call(issuer.id, OnlineOutcome.ANSWERED)
        else:
            breaker.failures += 1
            if breaker.failures >= self.breaker_failures:
                breaker.open_until = self.monotonic() + self.breaker_open_seconds
            self.observer.online_call(issuer.id, OnlineOutcome.FAILED)
        return answer

    def breakers(self) -> dict[IssuerId, bool]:
        """Whether each issuer asked so far fails fast now (its breaker is open); safe to call
        from another thread (the metrics endpoint's)."""
        now = self.monotonic()
        return {IssuerId(i): b.open_until > now for i, b in list(self._breakers.items())}

    async def _post(
        self, issuer: str, url: str, body: bytes, headers: dict[str, str], nonce: str
    ) -> OnlineAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            )
        # Never follow a redirect: the signed question and the credentials go to the registered
        # address only, and an answer from anywhere else is not asked for.
        async with self._session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                log.warning(
                    "online issuer %s answered HTTP %d, a redirect; not followed",
                    issuer,
                    response.status,
                )
                return OnlineAnswer(
                    nonce,
                    failure=f"it redirected the question (HTTP {response.status}), and "
                    "redirects are never followed",
                )
            if response.status != 200:
                return OnlineAnswer(nonce, failure=f"HTTP {response.status}")
            if response.content_type != ANSWER_TYPE:
                return OnlineAnswer(nonce, failure="the answer is not a signed answer")
            # read(n) returns what has arrived so far: read to the end, within the cap (and
            # within the request's total timeout, so a slow drip cannot hold us).
            data = b""
            while len(data) <= MAX_ANSWER_BYTES:
                chunk = await response.content.read(MAX_ANSWER_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            return OnlineAnswer(nonce, failure="the answer is too large")
        try:
            return OnlineAnswer(nonce, text=data.decode("ascii"))
        except UnicodeDecodeError:
            return OnlineAnswer(nonce, failure="the answer is not ASCII")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
