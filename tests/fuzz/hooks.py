"""schemathesis hooks for fuzzing the running server (loaded in the schemathesis process through
SCHEMATHESIS_HOOKS=tests.fuzz.hooks; see tests/test_openapi_fuzz.py):

- `rejected_requests_change_nothing`: after every 4xx the database holds exactly what it held after the previous
  request (row count and a hash of every row of each table an API request can write), so a rejected request
  changed nothing. Two columns are left out of the hash, each a deliberate write: `api_keys.last_used_at` (bumped
  at most once a minute on any authenticated request) and `email_login_codes.attempts` (a wrong code counts
  against the code's five tries: that is the brute-force guard).
- `map_case` keeps the fuzz from locking itself out: a write (PUT/PATCH/DELETE/POST) whose path names the fuzzing
  organization or its own API key gets a fresh id instead (deleting the organization, suspending it or revoking
  the key would only turn every later case into a 401).

Environment: SPOOLED_FUZZ_DSN (the server's database), SPOOLED_FUZZ_PROTECT (comma-separated ids).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import asyncpg
import schemathesis

TABLES = ("organizations", "api_keys", "refresh_tokens", "queues", "workflows", "jobs", "job_history", "workers",
          "webhooks", "webhook_deliveries", "inbound_webhooks", "schedules", "schedule_runs", "job_dependencies",
          "org_usage_daily", "email_login_codes", "stripe_events")
VOLATILE = {"api_keys": ("last_used_at",), "email_login_codes": ("attempts",)}
SNAPSHOT = "SELECT " + ", ".join(
    f"(SELECT count(*)::text || ':' || coalesce(sum(hashtextextended((to_jsonb(t){''.join(f' - {c!r}' for c in VOLATILE.get(name, ()))})::text, 0)), 0)::text FROM {name} t) AS {name}"
    for name in TABLES)

_lock = threading.Lock()
_loop = asyncio.new_event_loop()
_conn: asyncpg.Connection | None = None
_last: dict[str, str] | None = None
PROTECTED = {p for p in os.environ.get("SPOOLED_FUZZ_PROTECT", "").split(",") if p}


def snapshot() -> dict[str, str]:
    global _conn
    with _lock:
        if _conn is None:
            _conn = _loop.run_until_complete(asyncpg.connect(os.environ["SPOOLED_FUZZ_DSN"]))
        row = _loop.run_until_complete(_conn.fetchrow(SNAPSHOT))
    return dict(row)


@schemathesis.hook
def map_case(context, case):
    if case.method.upper() != "GET" and case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            if str(value) in PROTECTED:
                case.path_parameters[name] = str(uuid.uuid4())
    return case


@schemathesis.hook
def before_call(context, case, kwargs):
    global _last
    if _last is None:
        _last = snapshot()


@schemathesis.check
def rejected_requests_change_nothing(ctx, response, case):
    """A 4xx leaves every table as the previous request left it."""
    global _last
    now = snapshot()
    before, _last = _last, now
    if before is not None and 400 <= response.status_code < 500:
        changed = {t: (before[t], now[t]) for t in TABLES if before[t] != now[t]}
        if changed:
            raise AssertionError(f"a {response.status_code} changed the database: {changed}")
    return None
