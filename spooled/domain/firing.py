"""Which fire times of a due schedule run now: the catch-up and overlap policies (docs/api-notes.md
"Schedules"). Pure: the scheduler passes the instant and what it knows of the previous run.

- A fire reached up to `GRACE` late is on time: it always runs (loop jitter or a short restart never drops or
  merges a per-second schedule's fires).
- Older due fires are *missed*. `catch_up`:
  - `latest` (default): they collapse into one run, for the latest due fire time, unless an on-time fire runs
    anyway;
  - `all`: every missed fire runs, oldest first, at most `MAX_FIRES` per schedule per pass (the scheduler comes
    back at once while some remain);
  - `skip`: they are dropped.
- `overlap`: `allow` (default) runs every fire; `skip` records a fire as skipped (no job) while the previous run's
  job is still pending, scheduled or processing; of several fires due together only the first can run.
"""

from __future__ import annotations

import datetime as dt

import attrs

from spooled.domain.cron import Cron

GRACE = dt.timedelta(seconds=60)
MAX_FIRES = 100
CATCH_UP = ("latest", "all", "skip")
OVERLAP = ("allow", "skip")


@attrs.frozen
class FirePlan:
    run: list[dt.datetime]          # fire times that enqueue a job, ascending
    skipped: list[dt.datetime]      # fire times recorded as skipped (overlap), ascending
    next_run_at: dt.datetime | None

    def still_due(self, now: dt.datetime) -> bool:
        """Fires remain due after this plan (catch_up=all hit MAX_FIRES)."""
        return self.next_run_at is not None and self.next_run_at <= now


def plan(cron: Cron, next_run_at: dt.datetime, now: dt.datetime, *, catch_up: str = "latest",
         overlap: str = "allow", previous_active: bool = False) -> FirePlan:
    """The fires of a schedule due at `next_run_at` (<= `now`) and the next fire time to wait for."""
    due: list[dt.datetime] = []
    if catch_up == "all":
        t: dt.datetime | None = next_run_at
    else:
        horizon = now - GRACE
        t = next_run_at if next_run_at >= horizon else cron.first_at_or_after(horizon)
    while t is not None and t <= now and len(due) < MAX_FIRES:
        due.append(t)
        t = cron.next_after(t)
    if catch_up == "latest" and not due:
        latest = cron.latest_at_or_before(now)
        due = [latest if latest is not None and latest >= next_run_at else next_run_at]
    if catch_up != "all":   # (with `all`, t is already the first fire not taken: due again at once if <= now)
        t = cron.next_after(now)
    if overlap == "skip":
        if previous_active:
            return FirePlan([], due, t)
        return FirePlan(due[:1], due[1:], t)
    return FirePlan(due, [], t)
