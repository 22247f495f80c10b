"""Applying `schema.sql`: on an empty database only, refusing to touch one that holds something else."""

from __future__ import annotations

from importlib import resources

import asyncpg

SCHEMA_VERSION = 1


def schema_sql() -> str:
    return resources.files("spooled").joinpath("schema.sql").read_text()


class SchemaMismatch(Exception):
    """The database holds tables that are not Spooled's schema (or another version of it)."""


async def ensure_schema(con: asyncpg.Connection) -> bool:
    """Apply the schema when the database is empty; True if it was applied now. Idempotent; safe when several
    instances start at once (an advisory lock serialises them)."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock(7431001)")
        has_ours = await con.fetchval("SELECT to_regclass('public.spooled_schema') IS NOT NULL")
        if has_ours:
            version = await con.fetchval("SELECT max(version) FROM spooled_schema")
            if version != SCHEMA_VERSION:
                raise SchemaMismatch(f"the database has Spooled schema version {version}, this server needs "
                                     f"{SCHEMA_VERSION}")
            return False
        others = await con.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1 LIMIT 5")
        if others:
            names = ", ".join(r[0] for r in others)
            raise SchemaMismatch(f"the database is not empty and has no Spooled schema (tables: {names}); "
                                 "point DATABASE_URL at an empty database")
        await con.execute(schema_sql())
        return True
