"""The connection pool and the single trio->asyncio crossing per unit of work.

triopg wraps every asyncpg call in its own crossing (~0.1 ms each). A unit of work here (one or a few statements
on one connection) is one asyncio coroutine run with one `aio_as_trio` crossing; triopg serves the LISTEN
connection (`store/listen.py`). asyncpg errors become domain errors here and nowhere else; rows go up as
read-only mappings (asyncpg Records).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import attrs
import trio
import trio_asyncio

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

DEADLOCK_ATTEMPTS = 3

# How much longer than `statement_timeout` the client waits for an answer (PostgreSQL's own cancellation
# normally comes first).
CLIENT_GRACE_SECS = 1.0

# The database cannot serve now: the connection is gone or in an unknown state (driver errors such as
# InternalClientError "another operation is in progress"), or the server is shutting down, starting up, in
# recovery (57P*), out of resources (53*), failing I/O (58*), or read-only (a standby after a failover).
UNAVAILABLE = (OSError, ConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError,
               asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
               asyncpg.InsufficientResourcesError, asyncpg.PostgresSystemError,
               asyncpg.ReadOnlySQLTransactionError)
ARGUMENT_BUG = asyncpg.exceptions._base.DataError   # asyncpg could not encode an argument: our bug, a 500
# Text PostgreSQL cannot hold (a NUL in a text value, `\u0000` read from json as text): the request is bad.
BAD_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def translate(exc: BaseException) -> BaseException:
    """An asyncpg/driver exception as the domain error it means (or itself when it is a bug)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        name = getattr(exc, "constraint_name", None) or ""
        kind, message = CONSTRAINTS.get(name, (errors.Conflict, "The request conflicts with existing data"))
        if kind is errors.ValidationFailed:
            return errors.ValidationFailed(message, {name: message})
        return kind(message)
    if isinstance(exc, BAD_TEXT):
        return errors.ValidationFailed("Text must not contain NUL characters", {"body": "must not contain NUL"})
    if isinstance(exc, asyncpg.QueryCanceledError):   # statement_timeout
        return errors.Unavailable("The database did not answer in time")
    if isinstance(exc, UNAVAILABLE) and not isinstance(exc, ARGUMENT_BUG):
        return errors.Unavailable("The database is unavailable")
    return exc


@attrs.frozen
class PoolStats:
    """The pool as /metrics shows it."""
    max_size: int
    in_use: int         # units of work holding a slot
    idle: int           # open connections waiting in the free list
    waiting: int        # units of work waiting for a slot
    opened: int         # connections opened since start
    discarded: int      # connections terminated after an error or a cancellation


class Database:
    """A pool of asyncpg connections managed on the Trio side. Every method is one crossing into asyncio.

    Why not asyncpg's (or triopg's) pool: its acquire/release costs ~0.17 ms of CPU per unit of work here
    (measured: 0.31 ms for a pooled `SELECT 1` against 0.14 ms on a held connection), more than most queries.
    Here a free connection is taken from a list under a Trio semaphore; one that saw anything but a clean result
    or a server-side error (cancellation, a broken socket) is terminated, and a new one is opened on demand.

    Timeouts: connecting gives up after `connect_timeout` seconds; a statement runs at most `statement_timeout`
    seconds (PostgreSQL's `statement_timeout` cancels it), and the client stops waiting for an answer shortly
    after that (a stalled network answers nothing): either way the unit fails as unavailable."""

    def __init__(self, dsn: str, max_size: int = 10, *, connect_timeout: float = 5.0,
                 statement_timeout: float = 30.0):
        self.dsn = dsn
        self.max_size = max_size
        self._slots = trio.Semaphore(max_size)
        self._idle: list[asyncpg.Connection] = []
        self.opened = 0
        self.discarded = 0
        self.deadlocks = 0          # units PostgreSQL aborted to break a deadlock (and that ran again)
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout

    async def _connect(self) -> asyncpg.Connection:
        con = await asyncpg.connect(
            self.dsn, timeout=self._connect_timeout, command_timeout=self._statement_timeout + CLIENT_GRACE_SECS,
            server_settings={"statement_timeout": str(max(1, round(self._statement_timeout * 1000)))})
        self.opened += 1
        return con

    def stats(self) -> PoolStats:
        return PoolStats(self.max_size, self.max_size - self._slots.value, len(self._idle),
                         self._slots.statistics().tasks_waiting, self.opened, self.discarded)

    async def _unit(self, holder: list, fn: Callable[..., Awaitable[Any]], args: tuple) -> Any:
        if holder[0] is None:
            holder[0] = await self._connect()
        return await fn(holder[0], *args)

    def _take(self) -> asyncpg.Connection | None:
        while self._idle:
            con = self._idle.pop()
            if not con.is_closed():
                return con
        return None

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `fn(connection, *args)` (an asyncio coroutine function) on a pooled connection. A free slot is taken
        without a scheduler pass (`Semaphore.acquire` yields even then, and whatever else is runnable runs first: on
        the single enqueue's path, the statement is sent that much later)."""
        await trio.lowlevel.checkpoint_if_cancelled()       # (no scheduler pass unless cancelled)
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await self._slots.acquire()
        try:
            holder = [self._take()]
            healthy = False
            try:
                result = await trio_asyncio.aio_as_trio(self._unit)(holder, fn, args)
                healthy = True
                return result
            except Exception as exc:
                healthy = isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, UNAVAILABLE)
                mapped = translate(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
            finally:
                con = holder[0]
                if con is not None:
                    if healthy and not con.is_closed() and not con.is_in_transaction():
                        self._idle.append(con)
                    else:
                        con.terminate()
                        self.discarded += 1
        finally:
            self._slots.release()

    async def open(self, n: int) -> None:
        """Open `n` connections now (fail fast on a bad DSN; warm the pool). A failure is `Unavailable` with one
        sentence naming the database and the problem."""
        async def connect_all():
            return [await self._connect() for _ in range(n)]
        try:
            self._idle.extend(await trio_asyncio.aio_as_trio(connect_all)())
        except Exception as exc:
            raise errors.Unavailable(f"Cannot connect to the database at {describe_dsn(self.dsn)}: "
                                     f"{_connect_problem(exc)}") from exc

    async def aclose(self) -> None:
        """Close the free connections (units still running close theirs when they finish)."""
        idle, self._idle = self._idle, []

        async def close_all():
            for con in idle:
                try:
                    await con.close(timeout=2)
                except Exception:
                    con.terminate()
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(close_all)()

    async def whole(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """`run` for a unit that is all or nothing (one statement, or one transaction). When PostgreSQL breaks a
        deadlock by aborting it (nothing of it was kept) it runs again, up to DEADLOCK_ATTEMPTS times. Locks are
        taken in one order everywhere (jobs by id before workflows by id), so this is a safety net for the rare
        interleaving that order cannot rule out (docs/architecture.md "Job dependencies")."""
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return await self.run(fn, *args)
            except asyncpg.DeadlockDetectedError:
                self.deadlocks += 1
                log.warning("deadlock broken by PostgreSQL (attempt %d of %d)", attempt, DEADLOCK_ATTEMPTS)
        raise errors.Unavailable("The database is busy: try again")

    async def transaction(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Like `run`, inside one transaction (retried after a deadlock: `whole`)."""
        async def tx(con, *a):
            async with con.transaction():
                return await fn(con, *a)
        return await self.whole(tx, *args)

    async def fetch(self, stmt: Statement, **values: Any) -> list:
        sql, *args = stmt.bind(**values)
        return await self.whole(lambda con: con.fetch(sql, *args))

    async def fetchrow(self, stmt: Statement, **values: Any):
        sql, *args = stmt.bind(**values)
        return await self.whole(lambda con: con.fetchrow(sql, *args))

    async def fetchval(self, stmt: Statement, **values: Any):
        sql, *args = stmt.bind(**values)
        return await self.whole(lambda con: con.fetchval(sql, *args))

    async def execute(self, stmt: Statement, **values: Any) -> str:
        sql, *args = stmt.bind(**values)
        return await self.whole(lambda con: con.execute(sql, *args))

    async def ping(self) -> bool:
        try:
            return await self.run(lambda con: con.fetchval("SELECT true", timeout=2))
        except errors.Unavailable:
            return False


def describe_dsn(dsn: str) -> str:
    """`user@host:port/database` of a DSN (no password), for messages."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "localhost"])[0]
        port = query.get("port", [str(parts.port or 5432)])[0]
        database = parts.path.lstrip("/") or query.get("dbname", [parts.username or "postgres"])[0]
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "(an unreadable DATABASE_URL)"
    return f"{user}{host}:{port}/{database}"


def _connect_problem(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running and listening there?)"
    if isinstance(exc, FileNotFoundError):
        return "no PostgreSQL socket there (is PostgreSQL running?)"
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def orphans_logged() -> Iterator[None]:
    """While the pool is open, an error that reaches the asyncio loop's exception handler is logged, not raised.

    Only errors nobody awaits get there (every call into asyncio here awaits its result), and trio_asyncio's
    default handler raises them into the loop's nursery, which ends the whole process. asyncpg leaves such
    orphans when a connection attempt is cut: a connect timing out during the SSL negotiation of a TCP DSN
    leaves a future failed with "unexpected connection_lost() call" (found by scripts/chaos, network).
    """
    loop = trio_asyncio.current_loop.get()
    previous = loop.get_exception_handler()

    def handler(_loop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError):   # ConnectionError, TimeoutError: a connection that went away
            log.warning("asyncio: %s (%s)", context.get("message", "unhandled error"), exc)
        else:
            log.error("asyncio: %s", context.get("message", "unhandled error"), exc_info=exc)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


@contextlib.asynccontextmanager
async def open_database(dsn: str, *, min_size: int = 2, max_size: int = 16, connect_timeout: float = 5.0,
                        statement_timeout: float = 30.0) -> AsyncIterator[Database]:
    """`async with open_database(dsn) as db` (inside the one trio_asyncio loop): `min_size` connections opened
    at once, up to `max_size` on demand; all closed on exit. Timeouts in seconds (see `Database`)."""
    db = Database(dsn, max_size, connect_timeout=connect_timeout, statement_timeout=statement_timeout)
    with orphans_logged():
        try:
            await db.open(min_size)
            yield db
        finally:
            await db.aclose()
