"""The dashboard summary (GET /dashboard), cheap to poll: per scope (an organization, or the queues of a
restricted key, domain/scope.py), one computation at a time (singleflight) whose result every caller shares for
`ttl` seconds, so any number of pollers cost one set of bounded queries per scope per `ttl`."""

from __future__ import annotations

import trio

from spooled.domain.ids import parse_id
from spooled.domain.models import Summary
from spooled.domain.scope import Scope
from spooled.store.dashboard import DashboardStore

MAX_CACHED = 10_000   # scopes kept; expired entries are dropped past this


class Dashboard:
    def __init__(self, store: DashboardStore, *, ttl: float = 1.0):
        self._store = store
        self._ttl = ttl
        self._cache: dict[Scope, tuple[float, Summary]] = {}
        self._inflight: dict[Scope, trio.Event] = {}
        self.computed = 0    # summaries read from the database (observability; tests)

    async def summary(self, scope: Scope, *, now: float | None = None) -> Summary:
        """The summary of the scope's queues, at most `ttl` seconds old (`now`: the Trio clock, for tests)."""
        org_id = parse_id(scope.org)
        while True:
            at = trio.current_time() if now is None else now
            hit = self._cache.get(scope)
            if hit is not None and hit[0] > at:
                return hit[1]
            running = self._inflight.get(scope)
            if running is not None:
                await running.wait()   # then read what it cached (or, if it failed, try ourselves)
                continue
            done = self._inflight[scope] = trio.Event()
            try:
                summary = await self._store.summary(org_id, scope.queues)
                self.computed += 1
                if len(self._cache) >= MAX_CACHED:
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > at}
                self._cache[scope] = (at + self._ttl, summary)
                return summary
            finally:
                del self._inflight[scope]
                done.set()
