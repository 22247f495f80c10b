"""Background loops: when, not what. Each calls one service `run_once(limit=...)` (a bounded batch, safe with
several instances) every `interval` seconds, and at once again while batches come back full. The supervisor
runs the lease reaper (`Maintenance.run_once`) and the heartbeat expirer (`Workers.expire`) this way."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Protocol

import trio

from spooled.domain.errors import Unavailable

log = logging.getLogger(__name__)


class BatchResult(Protocol):
    def full(self, limit: int) -> bool:
        """The batch hit `limit`: more work may be waiting."""

    @property
    def total(self) -> int: ...


async def run(name: str, run_once: Callable[..., Awaitable[BatchResult]], interval: float, *, limit: int,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    while True:
        try:
            result = await run_once(limit=limit)
        except Unavailable:
            log.warning("%s: database unavailable; retrying in %.1fs", name, interval)
            await trio.sleep(interval)
            continue
        if result.total:
            log.info("%s: %s", name, result)
        if not result.full(limit):
            await trio.sleep(interval)
