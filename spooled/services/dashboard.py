"""The dashboard summary (GET /dashboard), cheap to poll: per organization, one computation at a time
(singleflight) whose result every caller shares for `ttl` seconds, so any number of pollers cost one set of
bounded queries per organization per `ttl`."""

from __future__ import annotations

import trio

from spooled.domain.ids import parse_id
from spooled.domain.models import Summary
from spooled.store.dashboard import DashboardStore

MAX_CACHED = 10_000   # organizations kept; expired entries are dropped past this


class Dashboard:
    def __init__(self, store: DashboardStore, *, ttl: float = 1.0):
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Summary]] = {}
        self._inflight: dict[str, trio.Event] = {}
        self.computed = 0    # summaries read from the database (observability; tests)

    async def summary(self, org: str, *, now: float | None = None) -> Summary:
        """The organization's summary, at most `ttl` seconds old (`now`: the Trio clock, for tests)."""
        org_id = parse_id(org)
        while True:
            at = trio.current_time() if now is None else now
            hit = self._cache.get(org)
            if hit is not None and hit[0] > at:
                return hit[1]
            running = self._inflight.get(org)
            if running is not None:
                await running.wait()   # then read what it cached (or, if it failed, try ourselves)
                continue
            done = self._inflight[org] = trio.Event()
            try:
                summary = await self._store.summary(org_id)
                self.computed += 1
                if len(self._cache) >= MAX_CACHED:
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > at}
                self._cache[org] = (at + self._ttl, summary)
                return summary
            finally:
                del self._inflight[org]
                done.set()
