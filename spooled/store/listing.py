"""Job listing with filters and keyset (cursor) or offset pagination.

The statement is composed from whitelisted fragments (ORDER BY column and direction); every value is a bind
parameter. A cursor is the (sort value, id) of the last row of the page, so pages stay stable under inserts.
The cursor codec is the store's own: services pass the opaque string through `JobStore.list`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Sequence

from spooled.domain import errors
from spooled.domain.inputs import JOB_ORDER_COLUMNS, JobFilter

ORDER_COLUMNS = {"created_at": "timestamptz", "updated_at": "timestamptz", "priority": "int",
                 "scheduled_at": "timestamptz", "completed_at": "timestamptz"}
NULLABLE = {"scheduled_at", "completed_at"}
assert tuple(ORDER_COLUMNS) == JOB_ORDER_COLUMNS


def encode_cursor(value, job_id) -> str:
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps([value, str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, column: str) -> tuple[object, uuid.UUID]:
    try:
        value, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if ORDER_COLUMNS[column] == "timestamptz" and value is not None:
            value = dt.datetime.fromisoformat(value)
        elif ORDER_COLUMNS[column] == "int" and type(value) is not int:
            raise ValueError
        return value, uuid.UUID(job_id)
    except (ValueError, TypeError, KeyError):
        raise errors.invalid("cursor", "is not a cursor from this listing (keep order_by/order_dir)") from None


def list_jobs_sql(f: JobFilter, order_by: str, desc: bool, cursor: tuple | None, offset: int, limit: int,
                  org: uuid.UUID, queues: Sequence[str] = ()) -> tuple[str, list]:
    """(sql, args) fetching limit+1 rows (the extra one tells whether there is a next page); `queues`: only
    jobs of these queues (a restricted caller's scope; empty: every queue, and no clause at all). The text
    depends only on which filters are set, the order column (one of ORDER_COLUMNS) and the direction: every
    value is a bind parameter (tests/test_sql_params.py)."""
    if order_by not in ORDER_COLUMNS:
        raise errors.invalid("order_by", f"must be one of {', '.join(ORDER_COLUMNS)}")
    args: list = [org]

    def arg(v) -> str:
        args.append(v)
        return f"${len(args)}"

    where = ["l.organization_id = $1"]
    if f.queue_name is not None:
        where.append(f"l.queue_name = {arg(f.queue_name)}")
    if queues:
        where.append(f"l.queue_name = ANY({arg(list(queues))}::text[])")
    if f.statuses:
        where.append(f"j.status = ANY({arg(f.statuses)}::job_status[])")
    if f.tag is not None:
        key, sep, value = f.tag.partition(":")
        if sep:
            where.append(f"j.tags::jsonb ->> {arg(key)} = {arg(value)}")
        else:
            where.append(f"j.tags::jsonb ? {arg(key)}")
    if f.created_after is not None:
        where.append(f"l.created_at >= {arg(f.created_after)}")
    if f.created_before is not None:
        where.append(f"l.created_at < {arg(f.created_before)}")
    if f.job_type is not None:
        where.append(f"j.payload->>'job_type' = {arg(f.job_type)}")
    if f.q:
        like = f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        prefix, contains = arg(like + "%"), arg("%" + like + "%")
        # the payload's stored JSON text too (the dashboard's "search by payload text")
        where.append(f"(l.id::text ILIKE {prefix} OR l.queue_name ILIKE {contains} "
                     f"OR j.payload->>'job_type' ILIKE {contains} OR j.payload::text ILIKE {contains})")
    col, direction, cmp = order_by, ("DESC" if desc else "ASC"), ("<" if desc else ">")
    # created_at and id are job_list's (its index is the keyset's order); the other columns change, so jobs'
    qual = "l." if col == "created_at" else "j."
    # NULL sort values (scheduled_at/completed_at) sort as -infinity/0 so the keyset stays total
    key = f"coalesce(j.{col}, '-infinity'::timestamptz)" if col in NULLABLE else qual + col
    if cursor is not None:
        value, last_id = cursor
        cast = ORDER_COLUMNS[col]
        vexpr = f"coalesce({arg(value)}::{cast}, '-infinity'::timestamptz)" if col in NULLABLE else f"{arg(value)}::{cast}"
        where.append(f"({key}, l.id) {cmp} ({vexpr}, {arg(last_id)}::uuid)")
    # the organization's jobs through job_list (insert-only: claims and completions write no listing index),
    # each joined to its row by primary key (LATERAL ... OFFSET 0: with a selective filter a hash join would
    # read every organization's jobs)
    sql = (f"SELECT j.*, coalesce(j.payload->>'job_type', '') AS job_type FROM job_list l "
           f"CROSS JOIN LATERAL (SELECT * FROM jobs j WHERE j.id = l.id OFFSET 0) j "
           f"WHERE {' AND '.join(where)} ORDER BY {key} {direction}, l.id {direction} "
           f"LIMIT {arg(limit + 1)} OFFSET {arg(offset)}")
    return sql, args
