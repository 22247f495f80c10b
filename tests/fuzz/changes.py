"""A change log of the fuzzed database, for `rejected_requests_change_nothing` (tests/fuzz/hooks.py): a row
trigger on every table records each committed insert, delete and real update in `fuzz_changes`, so "did this
request change anything?" is one index read (`max(id)`), however large the tables grow. A rolled-back write
leaves no row (the log is a table, not a sequence). Every table is watched, a new one included, except those
the server itself writes on its own (`SERVER_OWNED`: heartbeats, the metrics snapshot); an update that changes
only a `VOLATILE` column is not a change (each is a deliberate write: `api_keys.last_used_at` is bumped at most
once a minute on any authenticated request, `email_login_codes.attempts` counts a wrong code against the code's
five tries, which is the brute-force guard).

Installed before the server starts (`install`), so no prepared statement of the server predates the triggers.
"""

from __future__ import annotations

import asyncpg

SERVER_OWNED = ("spooled_schema", "event_listeners", "server_instances", "metrics_snapshot", "fuzz_changes")
VOLATILE = {"api_keys": ("last_used_at",), "email_login_codes": ("attempts",)}

FUNCTION = """
CREATE TABLE fuzz_changes (id bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL);
CREATE FUNCTION fuzz_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    volatile text[] := coalesce(TG_ARGV, '{}'::text[]);
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - volatile) = (to_jsonb(NEW) - volatile) THEN
        RETURN NULL;
    END IF;
    INSERT INTO fuzz_changes (tbl, op) VALUES (TG_TABLE_NAME, TG_OP);
    RETURN NULL;
END $$;
"""

LAST = "SELECT coalesce(max(id), 0) FROM fuzz_changes"
SINCE = "SELECT tbl, op, count(*) AS n FROM fuzz_changes WHERE id > $1 GROUP BY tbl, op ORDER BY tbl, op"


async def install(dsn: str) -> list[str]:
    """Create the log and a trigger on every watched table; returns the tables watched."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(FUNCTION)
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
                if r["tablename"] not in SERVER_OWNED]
            for t in tables:
                args = ", ".join(f"'{c}'" for c in VOLATILE.get(t, ()))
                await conn.execute(f'CREATE TRIGGER fuzz_record AFTER INSERT OR UPDATE OR DELETE ON "{t}" '
                                   f"FOR EACH ROW EXECUTE FUNCTION fuzz_record({args})")
        return tables
    finally:
        await conn.close()


async def last(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(LAST)


async def since(conn: asyncpg.Connection, mark: int) -> dict[str, int]:
    return {f"{r['tbl']} {r['op']}": r["n"] for r in await conn.fetch(SINCE, mark)}
