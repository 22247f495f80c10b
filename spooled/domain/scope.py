"""What one caller may reach of its organization (docs/api-notes.md "Authentication", queue restriction).

A `Scope` is built once per request from the admitted principal and handed to every queue-scoped service method
(jobs, queues, workers, schedules, workflows, the dashboard), which hands `queues` to its statements. Data of a
queue outside the scope is treated exactly as another organization's: a 404 when addressed by id, left out of
listings, statistics and counts. Naming such a queue in a request is a 403 (`require`).

In SQL a scoped statement marks its restriction `$scope(...)`: `queue_name = ANY ($queues::text[])` where the
statement scans (counts, the DLQ, listings: the queue indexes serve it), `ARRAY[queue_name] <@ $queues::text[]`
where it reaches jobs by id (no index serves it, so the primary key drives), `queue_names <@ $queues` for workers
(every queue of the worker), no job outside `$queues` for workflows. store/sql.py compiles each statement twice:
an unrestricted caller runs it without the restriction (so it keeps the plan it had before), a restricted one
with it (tests/test_scope_plans.py).
"""

from __future__ import annotations

from typing import Iterable

import attrs

from spooled.domain import errors


@attrs.frozen(slots=True)
class Scope:
    org: str                                # the organization's id
    queues: tuple[str, ...] = ()            # empty: every queue of the organization

    @property
    def restricted(self) -> bool:
        return bool(self.queues)

    def allows(self, queue: str) -> bool:
        return not self.queues or queue in self.queues

    def allows_all(self, queues: Iterable[str]) -> bool:
        return not self.queues or all(q in self.queues for q in queues)

    def require(self, queue: str | None) -> None:
        """`Forbidden` unless this scope may use `queue` (None: nothing named, nothing to check)."""
        if queue is not None and not self.allows(queue):
            raise errors.Forbidden(f"This API key may not use queue {queue}")

