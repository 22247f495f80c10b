"""The heartbeat expirer: when, not what (the work is `Workers.expire`)."""

from __future__ import annotations

import logging

import trio

from spooled.domain.errors import Unavailable
from spooled.services.workers import Workers

log = logging.getLogger(__name__)


async def run(workers: Workers, interval: float, *, limit: int = 100,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Expire silent workers every `interval` seconds, at once again while batches come back full."""
    task_status.started()
    while True:
        try:
            result = await workers.expire(limit=limit)
        except Unavailable:
            log.warning("heartbeat expirer: database unavailable; retrying in %.1fs", interval)
            await trio.sleep(interval)
            continue
        if result.workers:
            log.info("heartbeat expirer: %d worker(s) offline, %d job(s) released", result.workers,
                     result.released)
        if result.workers < limit:
            await trio.sleep(interval)
