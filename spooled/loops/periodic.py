"""Background loops: when, not what. Each calls one service `run_once(limit=...)` (a bounded batch, safe with
several instances) every `interval` seconds, and at once again while batches come back full. The supervisor
runs the lease reaper (`Maintenance.run_once`) and the heartbeat expirer (`Workers.expire`) this way.

No failure ends a loop (nor so the process): the database being unavailable is logged as such, anything else
(a bug) with its traceback; both retry with a backoff that doubles from `interval` up to `MAX_BACKOFF_SECS`
and resets after a batch succeeds.

Each pass is recorded in the loop's `LoopHealth` (services/metrics.py: /metrics and `spooled status`)."""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable, Protocol

import trio

from spooled.domain.errors import Unavailable
from spooled.services.metrics import LoopHealth

log = logging.getLogger(__name__)

MAX_BACKOFF_SECS = 30.0


class BatchResult(Protocol):
    def full(self, limit: int) -> bool:
        """The batch hit `limit`: more work may be waiting."""

    @property
    def total(self) -> int: ...


async def run(name: str, run_once: Callable[..., Awaitable[BatchResult]], interval: float, *, limit: int,
              health: LoopHealth | None = None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    health = health if health is not None else LoopHealth(name, interval, time.time())
    task_status.started()
    delay = interval
    while True:
        t0 = time.perf_counter()
        try:
            result = await run_once(limit=limit)
        except Unavailable:
            health.failed(duration=time.perf_counter() - t0)
            log.warning("%s: database unavailable; retrying in %.1fs", name, delay)
        except Exception:
            health.failed(duration=time.perf_counter() - t0)
            log.exception("%s failed; restarting in %.1fs", name, delay)
        else:
            health.ran(items=result.total, duration=time.perf_counter() - t0)
            delay = interval
            if result.total:
                log.info("%s: %s", name, result)
            if not result.full(limit):
                await trio.sleep(interval)
            continue
        await trio.sleep(delay)
        delay = min(delay * 2, max(interval, MAX_BACKOFF_SECS))
