"""The schema and its migrations.

- `schema.sql` is the squashed current schema; it ends by recording the migration versions it contains.
- `store/migrations/NNNN_name.sql` are the versioned steps from the first released schema (0001) onwards. Never
  edit a released migration: add the next number, and make the same change in `schema.sql`
  (`tests/test_migrations.py` proves the two agree, catalog object by catalog object).
- `ensure_schema` runs at every start (and as `python -m spooled migrate`) under one advisory lock, so several
  instances starting at once apply each step once: an empty database gets `schema.sql`; a Spooled database gets
  every migration it has not recorded, in number order, all in one transaction (a failed upgrade changes
  nothing). A migration is applied when its version is missing, not when it is above the highest one, so steps
  developed side by side may land in any order. Migrations must therefore be transactional (no
  `CREATE INDEX CONCURRENTLY`) and must not depend on each other beyond their numbering.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg
import attrs

LOCK_KEY = 7431001
# A migration may rewrite a big table: neither the connection's statement_timeout nor its client-side wait apply.
MIGRATION_TIMEOUT_SECS = 24 * 3600
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str


@attrs.frozen
class SchemaResult:
    """What `ensure_schema` did: `fresh` when it applied schema.sql to an empty database; the versions
    it applied now (all of them when fresh)."""
    fresh: bool
    applied: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.applied)


class SchemaMismatch(Exception):
    """The database holds tables that are not Spooled's schema, or a newer schema than this server knows."""


def schema_sql() -> str:
    return resources.files("spooled").joinpath("schema.sql").read_text()


def migrations() -> list[Migration]:
    """Every migration shipped with this server, in version order."""
    out = []
    for entry in resources.files("spooled").joinpath("store/migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return out


async def _recorded(con: asyncpg.Connection) -> set[int] | None:
    if not await con.fetchval("SELECT to_regclass('public.spooled_schema') IS NOT NULL"):
        return None
    return {r[0] for r in await con.fetch("SELECT version FROM spooled_schema")}


async def pending(con: asyncpg.Connection) -> list[Migration] | None:
    """The migrations this database has not applied yet (None: not a Spooled database yet)."""
    have = await _recorded(con)
    if have is None:
        return None
    return [m for m in migrations() if m.version not in have]


async def ensure_schema(con: asyncpg.Connection) -> SchemaResult:
    """Bring the database to this server's schema; what was applied (falsy when it already was current)."""
    known = migrations()
    async with con.transaction():
        await con.execute("SET LOCAL statement_timeout = 0")
        await con.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY, timeout=MIGRATION_TIMEOUT_SECS)
        have = await _recorded(con)
        if have is None:
            others = await con.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1 LIMIT 5")
            if others:
                names = ", ".join(r[0] for r in others)
                raise SchemaMismatch(f"the database is not empty and has no Spooled schema (tables: {names}); "
                                     "point DATABASE_URL at an empty database")
            await con.execute(schema_sql(), timeout=MIGRATION_TIMEOUT_SECS)
            recorded = await _recorded(con) or set()
            if recorded != {m.version for m in known}:
                raise RuntimeError(f"schema.sql records versions {sorted(recorded)}, the migrations are "
                                   f"{[m.version for m in known]}")
            return SchemaResult(True, tuple(sorted(recorded)))
        newer = sorted(have - {m.version for m in known})
        if newer:
            raise SchemaMismatch(f"the database has Spooled schema version {newer[-1]}, newer than this server "
                                 f"knows (up to {known[-1].version}): upgrade the server")
        todo = [m for m in known if m.version not in have]
        for m in todo:
            await con.execute(m.sql, timeout=MIGRATION_TIMEOUT_SECS)
            await con.execute("INSERT INTO spooled_schema (version) VALUES ($1)", m.version)
        return SchemaResult(False, tuple(m.version for m in todo))
