"""Per-token rate limits: a token bucket each, refilled continuously.

>>> limiter = RateLimiter(rate=1.0, burst=2)
>>> limiter.check("a"); limiter.check("a")
>>> limiter.check("a")                   # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlwright.errors.LimitExceededError: Rate limit of 1 requests/s (burst 2) exceeded ...
"""

from __future__ import annotations

import time

from mlwright.errors import LimitExceededError


class RateLimiter:
    """``rate`` requests per second per key, with bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def check(self, key: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise LimitExceededError(f"Rate limit of {self.rate:g} requests/s (burst "
                                     f"{self.burst:g}) exceeded for token '{key}'; slow down and "
                                     "retry.", 429)
        self._buckets[key] = (tokens - 1.0, now)
