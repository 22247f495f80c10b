#!/usr/bin/env python3
"""Apply Spooled's schema.sql to a PostgreSQL database: `python scripts/setup_db.py --database-url DSN`
(or DATABASE_URL). Idempotent; refuses a database that holds other tables or another schema version."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg

from spooled.store.schema import SchemaMismatch, ensure_schema


async def main(dsn: str) -> int:
    con = await asyncpg.connect(dsn)
    try:
        applied = await ensure_schema(con)
    except SchemaMismatch as exc:
        print(f"setup_db: refusing: {exc}", file=sys.stderr)
        return 2
    finally:
        await con.close()
    print("schema applied" if applied else "schema already present (nothing to do)")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    a = p.parse_args()
    if not a.database_url:
        p.error("give --database-url or set DATABASE_URL")
    raise SystemExit(asyncio.run(main(a.database_url)))
