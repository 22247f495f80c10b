"""The triopg pool and the single trio->asyncio crossing per unit of work.

triopg wraps every asyncpg call in its own crossing (~0.1 ms each). A unit of work here (acquire, one or a few
statements, release) is one asyncio coroutine run with one `aio_as_trio` crossing. asyncpg errors become domain
errors here and nowhere else; rows go up as read-only mappings (asyncpg Records).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import asyncpg
import trio_asyncio
import triopg

from spooled.domain import errors
from spooled.store.sql import Statement

log = logging.getLogger(__name__)

# constraint name -> (domain error, message)
CONSTRAINTS: dict[str, tuple[type[errors.DomainError], str]] = {
    "organizations_slug_key": (errors.Conflict, "An organization with this slug already exists"),
    "queues_name_key": (errors.Conflict, "A queue with this name already exists"),
    "organizations_plan_check": (errors.ValidationFailed, "plan_tier is not a known plan"),
    "queues_backoff_check": (errors.ValidationFailed,
                             "retry_backoff_max_secs must be at least retry_backoff_base_secs"),
}

UNAVAILABLE = (OSError, ConnectionError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
               asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError)


async def _no_reset(con) -> None:
    """Pool connections carry no session state of ours (LISTEN has its own connection): skip the reset
    query asyncpg runs on every release, one round trip per unit of work."""


def translate(exc: BaseException) -> BaseException:
    """An asyncpg/driver exception as the domain error it means (or itself when it is a bug)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        name = getattr(exc, "constraint_name", None) or ""
        kind, message = CONSTRAINTS.get(name, (errors.Conflict, "The request conflicts with existing data"))
        if kind is errors.ValidationFailed:
            return errors.ValidationFailed(message, {name: message})
        return kind(message)
    if isinstance(exc, UNAVAILABLE):
        return errors.Unavailable("The database is unavailable")
    return exc


class Database:
    """The pool. Every method is one crossing into asyncio."""

    def __init__(self, pool: triopg._triopg.TrioPoolProxy, dsn: str):
        self.pool = pool
        self.dsn = dsn

    @property
    def _apool(self) -> asyncpg.Pool:
        return self.pool._asyncpg_pool  # triopg keeps the asyncpg pool here; we cross once per unit of work

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `fn(connection, *args)` (an asyncio coroutine function) on a pooled connection."""
        async def unit():
            async with self._apool.acquire() as con:
                return await fn(con, *args)
        try:
            return await trio_asyncio.aio_as_trio(unit)()
        except Exception as exc:
            mapped = translate(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def transaction(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Like `run`, inside one transaction."""
        async def tx(con, *a):
            async with con.transaction():
                return await fn(con, *a)
        return await self.run(tx, *args)

    async def fetch(self, stmt: Statement, **values: Any) -> list:
        args = stmt.args(**values)
        return await self.run(lambda con: con.fetch(stmt.sql, *args))

    async def fetchrow(self, stmt: Statement, **values: Any):
        args = stmt.args(**values)
        return await self.run(lambda con: con.fetchrow(stmt.sql, *args))

    async def fetchval(self, stmt: Statement, **values: Any):
        args = stmt.args(**values)
        return await self.run(lambda con: con.fetchval(stmt.sql, *args))

    async def execute(self, stmt: Statement, **values: Any) -> str:
        args = stmt.args(**values)
        return await self.run(lambda con: con.execute(stmt.sql, *args))

    async def ping(self) -> bool:
        try:
            return await self.run(lambda con: con.fetchval("SELECT true", timeout=2))
        except errors.Unavailable:
            return False


def open_pool(dsn: str, *, min_size: int = 2, max_size: int = 16) -> triopg._triopg.TrioPoolProxy:
    """`async with open_pool(dsn) as pool`: a triopg pool (inside the one trio_asyncio loop)."""
    return triopg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_no_reset,
                              max_inactive_connection_lifetime=300, command_timeout=60)
