"""Per-client rate limits for the web edge: a token bucket per client address."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` requests at once, then one more every ``1 / per_second`` seconds."""

    per_second: float
    burst: int


class RateLimiter:
    """Token buckets by client address, at most ``max_clients`` of them (the least recently
    seen is forgotten first, so a flood of addresses cannot grow memory without bound)."""

    def __init__(
        self,
        rate: Rate,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self._max, self._clock = rate, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if ``client`` may go on now (a token is spent), else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.pop(client, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - then) * self.rate.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate.per_second
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait
