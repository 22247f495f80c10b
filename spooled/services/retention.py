"""Retention: bounded growth of every table that records the past (docs/api-notes.md "Retention").

`run_once(now, limit)` (every `retention_interval_secs`, again at once while a batch came back full) deletes
one batch of at most `limit` rows per kind, each statement picking FOR UPDATE SKIP LOCKED (several instances
prune disjoint rows):

- schedule runs older than the organization's `history_retention_days` (never a fired run still waiting for
  its job, nor one whose job is active) — first, so their jobs become prunable in the same pass;
- finished jobs (completed, failed, cancelled) older than the plan's `job_retention_days`, dead letters older
  than the greater of that and `deadletter_days` (30 by default), each with its history (the jobs_deleted
  trigger); never an active job, a job a schedule run points at, or a workflow's job;
- finished workflows after the same windows (a failed one: the dead-letter window), with their jobs, once none
  of their jobs is active;
- webhook deliveries that are done (delivered, or failed for good) and the incoming webhook log, after the
  organization's `history_retention_days`;
- expired refresh tokens, email login codes older than a day, Stripe event ids older than 30 days, usage
  counters older than 35 days, workers offline for 7 days;
- whatever other parts register (`register(name, prune)`).

Stale `server_instances` rows are not here: the instance heartbeat (services/admission.py) forgets instances
silent for 5 minutes.
"""

from __future__ import annotations

import datetime as dt
from typing import Awaitable, Callable, Mapping

import attrs

from spooled.domain.plans import RetentionWindows, retention_windows
from spooled.store.retention import RetentionStore

Now = dt.datetime | None
# (windows, now, limit) -> rows deleted: one bounded batch, safe with several instances
Pruner = Callable[[RetentionWindows, Now, int], Awaitable[int]]


@attrs.frozen
class RetentionResult:
    deleted: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def full(self, limit: int) -> bool:
        return any(n >= limit for n in self.deleted.values())

    def __str__(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.deleted.items() if n) + " deleted"


class Retention:
    def __init__(self, store: RetentionStore, *, operator: Mapping | None = None, deadletter_days: int = 30):
        self._store = store
        self.windows = retention_windows(operator, deadletter_days)
        s = store
        self._pruners: dict[str, Pruner] = {
            "schedule_runs": s.schedule_runs, "jobs": s.jobs, "workflows": s.workflows,
            "webhook_deliveries": s.webhook_deliveries, "inbound_webhooks": s.inbound_webhooks,
            "refresh_tokens": _plain(s.refresh_tokens), "email_codes": _plain(s.email_codes),
            "stripe_events": _plain(s.stripe_events), "usage_days": _plain(s.usage_days),
            "workers": _plain(s.workers),
        }

    def register(self, name: str, prune: Pruner) -> None:
        """Add a kind of row to prune in every pass (after the built-in ones)."""
        if name in self._pruners:
            raise ValueError(f"a pruner named {name!r} is registered already")
        self._pruners[name] = prune

    async def run_once(self, now: Now = None, limit: int = 1000) -> RetentionResult:
        """One bounded batch of each kind; `now=None` means the database clock."""
        deleted = {}
        for name, prune in self._pruners.items():
            deleted[name] = await prune(self.windows, now, limit)
        return RetentionResult(deleted)


def _plain(delete: Callable[..., Awaitable[int]]) -> Pruner:
    async def prune(windows: RetentionWindows, now: Now, limit: int) -> int:
        return await delete(now=now, limit=limit)
    return prune
