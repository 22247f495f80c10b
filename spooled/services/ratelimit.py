"""Rate limiting (api.md "Rate limiting"): a token bucket per organization whose capacity and refill rate are
the plan's requests per second, and one per API key that has its own `rate_limit` (requests per minute, as
the official SDK documents it). A request takes one token from each bucket that applies, or is refused with
the seconds until one is back.

Everything is in memory: no database round trip per request, and a burst from one tenant touches only that
tenant's buckets (no shared lock, no waiting: a refusal is immediate).

Several instances: each instance holds its own buckets, sized by the number of live instances `n` (counted
through `server_instances`, heartbeated every few seconds by `Instances.run_once`): capacity and rate are
`limit / n` here, so behind a load balancer that spreads a tenant's requests the tenant gets about its limit in
total. Traffic pinned to one instance gets `limit / n` (a documented trade-off of never asking the database).
Headers report the organization-wide figures: `X-RateLimit-Limit` is the limit, `X-RateLimit-Remaining` this
instance's tokens times `n` (never above the limit), `X-RateLimit-Reset` when this instance's bucket is full.

Time comes from `clock` (Unix seconds; tests inject their own instead of sleeping).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from spooled.domain import errors

SCOPE_ORG = "organization"
SCOPE_KEY = "api_key"


class RateDecision:
    """What the X-RateLimit-* headers report for one request."""
    __slots__ = ("limit", "remaining", "reset", "scope")

    def __init__(self, limit: int, remaining: int, reset: int, scope: str):
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.scope = scope


class Throttled(errors.RateLimited):
    """A refusal, with the figures the response's headers report."""

    def __init__(self, retry_after: int, decision: RateDecision):
        super().__init__(retry_after)
        self.decision = decision


class _Bucket:
    __slots__ = ("tokens", "stamp", "capacity", "rate")

    def __init__(self, capacity: float, rate: float, now: float):
        self.tokens = capacity
        self.stamp = now
        self.capacity = capacity
        self.rate = rate

    def refill(self, capacity: float, rate: float, now: float) -> "_Bucket":
        if now > self.stamp:
            self.tokens += (now - self.stamp) * rate
            self.stamp = now
        self.capacity = capacity      # the instance count or the limit may have changed
        self.rate = rate
        if self.tokens > capacity:
            self.tokens = capacity
        return self

    def decision(self, limit: int, n: int, now: float, scope: str) -> RateDecision:
        remaining = min(limit, int(self.tokens * n)) if self.tokens > 0 else 0
        return RateDecision(limit, remaining, math.ceil(now + (self.capacity - self.tokens) / self.rate), scope)

    def refuse(self, limit: int, n: int, now: float, scope: str) -> Throttled:
        return Throttled(math.ceil((1.0 - self.tokens) / self.rate), self.decision(limit, n, now, scope))


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.instances = 1
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, name: str, capacity: float, rate: float, now: float) -> _Bucket:
        b = self._buckets.get(name)
        if b is None:
            b = self._buckets[name] = _Bucket(capacity, rate, now)
            return b
        return b.refill(capacity, rate, now)

    def take(self, org: str, per_sec: int, key_id: str | None = None, key_per_min: int | None = None
             ) -> RateDecision:
        """Take one token for a request of `org` (and of its key, when the key has its own per-minute limit);
        `Throttled` when a bucket is empty (nothing is taken then). The decision reports the tighter bucket."""
        now = self.clock()
        n = self.instances
        ob = self._bucket(org, max(1.0, per_sec / n), per_sec / n, now)
        kb = None
        if key_per_min is not None and key_id is not None:
            kb = self._bucket("k:" + key_id, max(1.0, key_per_min / n), key_per_min / 60.0 / n, now)
            if kb.tokens < 1.0:
                raise kb.refuse(key_per_min, n, now, SCOPE_KEY)
        if ob.tokens < 1.0:
            raise ob.refuse(per_sec, n, now, SCOPE_ORG)
        ob.tokens -= 1.0
        if kb is not None:
            kb.tokens -= 1.0
            if kb.tokens / kb.capacity < ob.tokens / ob.capacity:
                return kb.decision(key_per_min, n, now, SCOPE_KEY)  # type: ignore[arg-type]
        return ob.decision(per_sec, n, now, SCOPE_ORG)

    def evict_full(self) -> int:
        """Forget the buckets that have refilled completely (a missing bucket starts full: the same state)."""
        now = self.clock()
        full = [name for name, b in self._buckets.items() if b.tokens + (now - b.stamp) * b.rate >= b.capacity]
        for name in full:
            del self._buckets[name]
        return len(full)
