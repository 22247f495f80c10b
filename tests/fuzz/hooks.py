"""schemathesis hooks for fuzzing the running server (loaded in the schemathesis process through
SCHEMATHESIS_HOOKS=tests.fuzz.hooks; see tests/test_openapi_fuzz.py):

- `rejected_requests_change_nothing`: after every 4xx the database's change log (tests/fuzz/changes.py: a row
  trigger on every table the API can write) holds no row it did not hold after the previous request, so a
  rejected request changed nothing.
- `map_case` keeps the fuzz from locking itself out: a write (PUT/PATCH/DELETE/POST) whose path names the fuzzing
  organization or its own API key gets a fresh id instead (deleting the organization, suspending it or revoking
  the key would only turn every later case into a 401).

Environment: SPOOLED_FUZZ_DSN (the server's database, with changes.install run on it), SPOOLED_FUZZ_PROTECT
(comma-separated ids).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import asyncpg
import schemathesis

from tests.fuzz import changes

_lock = threading.Lock()
_loop = asyncio.new_event_loop()
_conn: asyncpg.Connection | None = None
_last: int | None = None
PROTECTED = {p for p in os.environ.get("SPOOLED_FUZZ_PROTECT", "").split(",") if p}


def _run(query, *args):
    global _conn
    with _lock:
        if _conn is None:
            _conn = _loop.run_until_complete(asyncpg.connect(os.environ["SPOOLED_FUZZ_DSN"]))
        return _loop.run_until_complete(query(_conn, *args))


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
        _last = _run(changes.last)


@schemathesis.check
def rejected_requests_change_nothing(ctx, response, case):
    """A 4xx leaves every table as the previous request left it."""
    global _last
    now = _run(changes.last)
    before, _last = _last, now
    if before is not None and now != before and 400 <= response.status_code < 500:
        raise AssertionError(f"a {response.status_code} changed the database: {_run(changes.since, before)}")
    return None
