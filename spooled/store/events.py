"""Which server instances have live realtime subscribers for which organizations (queries/events.sql). The event
triggers (schema.sql) send realtime NOTIFYs only for organizations listed here, so a server nobody watches
pays no NOTIFY at commit."""

from __future__ import annotations

import uuid

from spooled.store.db import Database
from spooled.store.sql import Q


class ListenerStore:
    def __init__(self, db: Database):
        self._db = db

    async def sync(self, instance: uuid.UUID, listening: list[uuid.UUID], gone: list[uuid.UUID],
                   ttl_secs: float) -> None:
        """Register (or extend for `ttl_secs`) `listening`, unregister `gone`, in one unit of work; rows that
        crashed instances left behind are swept too."""
        async def unit(con):
            if listening:
                await con.execute(Q.listener_register.sql, *Q.listener_register.args(
                    instance=instance, orgs=listening, ttl_secs=ttl_secs))
            if gone:
                await con.execute(Q.listener_unregister.sql, *Q.listener_unregister.args(instance=instance, orgs=gone))
            await con.execute(Q.listener_sweep.sql)
        await self._db.run(unit)
