"""schemathesis against the running server, from the served OpenAPI document: every check (no 5xx, every status,
content type, header and body as documented, invalid data rejected, valid data accepted) plus
`rejected_requests_change_nothing` (tests/fuzz/hooks.py; settings in tests/fuzz/schemathesis.toml), authenticated with a real API key, the operator's key
and the organization's webhook token.

A bounded run here (CI); `scripts/fuzz_api.sh` runs the same test with more cases (SPOOLED_FUZZ_EXAMPLES, the
cases per operation) and docs/reliability.md holds its last figures. Left out of the fuzz, and why:
- the realtime streams (`/events…` SSE, `/ws`, `/events/ws`): an accepted request never ends (SSE) or is a
  WebSocket upgrade; their refusals are checked in tests/test_openapi.py and tests/test_realtime.py;
- `POST …/{id}/test` of an outgoing webhook: it sends a real HTTP request to the URL the fuzzer made up, and
  nothing may leave this machine;
- an operation marked `x-undeclared` (a route with no `@op` yet): the document says nothing to check it against,
  and tests/test_openapi.py fails until it does.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time

import asyncpg

import httpx
import pytest
import trio

from tests.access import ADMIN_KEY, settings_with_admin
from tests.conftest import ROOT
from tests.fuzz import changes

EXCLUDED_PATHS = r"^/api/v1/(events(/.*)?|ws|(outgoing-)?webhooks/\{webhook_id\}/test)$"
EXAMPLES = int(os.environ.get("SPOOLED_FUZZ_EXAMPLES", "4"))
SEED = os.environ.get("SPOOLED_FUZZ_SEED")


@pytest.fixture
def settings(tmp_path, dsn):
    # the change log goes in before the server starts (tests/fuzz/changes.py)
    asyncio.run(changes.install(dsn))
    # no background loop writes while the fuzz runs (the state check compares consecutive requests: the reaper,
    # scheduler, heartbeat expirer and quota sync wait an hour, the webhook dispatcher does not run) and nothing
    # is sent out: Stripe is configured, its API on a closed loopback port (the fuzz org has no Stripe customer,
    # so the portal answers 400 before any call)
    return settings_with_admin(tmp_path, dsn, webhook_dispatcher=False, heartbeat_check_interval_secs=3600.0,
                               stripe_secret_key="sk_test_fuzz", stripe_webhook_secret="whsec_fuzz",
                               stripe_api_base="http://127.0.0.1:9")


async def _rejected_write(dsn: str) -> tuple[dict[str, int], dict[str, int]]:
    """What the change log sees of a real write and of an update of a volatile column alone."""
    conn = await asyncpg.connect(dsn)
    try:
        mark = await changes.last(conn)
        await conn.execute("INSERT INTO organizations (name, slug) VALUES ('Probe', 'probe-fuzz-log')")
        await conn.execute("UPDATE organizations SET name = name WHERE slug = 'probe-fuzz-log'")
        written = await changes.since(conn, mark)
        mark = await changes.last(conn)
        await conn.execute("UPDATE api_keys SET last_used_at = now()")
        return written, await changes.since(conn, mark)
    finally:
        await conn.close()


def test_the_change_log_sees_every_write_but_the_volatile_columns(dsn):
    tables = asyncio.run(changes.install(dsn))
    assert {"jobs", "job_history", "organizations", "api_keys", "webhook_deliveries"} <= set(tables)
    assert not set(tables) & set(changes.SERVER_OWNED)
    written, volatile = asyncio.run(_rejected_write(dsn))
    assert written == {"organizations INSERT": 1} and volatile == {}


def _summary(out: str) -> dict[str, int]:
    """The figures of schemathesis' summary ("Tested: 119", "Test cases: 6107 generated, 6107 passed")."""
    figures = {}
    m = re.search(r"Test cases:\s*([\d,]+) generated(?:, ([\d,]+) found (\d+) unique failures)?(?:, ([\d,]+) "
                  r"passed)?", out)
    if m:
        figures["generated"] = int(m.group(1).replace(",", ""))
        figures["passed"] = int((m.group(4) or "0").replace(",", ""))
    m = re.search(r"API Operations:\s*Selected: (\d+)/(\d+)\s*Tested: (\d+)", out)
    if m:
        figures.update(selected=int(m.group(1)), total=int(m.group(2)), operations=int(m.group(3)))
    return figures


async def test_schemathesis_finds_nothing(server, client, dsn, tmp_path):
    timeout = max(300, EXAMPLES * 120)
    with trio.fail_after(timeout + 60):
        r = await client.post("/api/v1/organizations", json={"name": "Fuzz", "billing_email": "fuzz@example.com"})
        org, key = r.json()["organization"]["id"], r.json()["api_key"]["key"]
        auth = {"Authorization": f"Bearer {key}"}
        key_id = (await client.get("/api/v1/auth/me", headers=auth)).json()["api_key_id"]
        token = (await client.get("/api/v1/organizations/webhook-token", headers=auth)).json()["webhook_token"]
        # one pending job keeps the organization from being deletable (409), whatever the fuzz learns
        assert (await client.post("/api/v1/jobs", headers=auth, json={"queue_name": "keep", "payload": {}})
                ).status_code == 201
        report = tmp_path / "report"
        argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests/fuzz/schemathesis.toml"),
                "run", f"{server.http_url}/api/v1/openapi.json",
                "--max-examples", str(EXAMPLES), "--workers", "1",
                "--exclude-path-regex", EXCLUDED_PATHS, "--exclude-by", "/x-undeclared == true",
                "-H", f"Authorization: Bearer {key}", "-H", f"X-Admin-Key: {ADMIN_KEY}",
                "-H", f"X-Webhook-Token: {token}",
                "--request-timeout", "30", "--suppress-health-check", "all",
                "--report", "junit", "--report-dir", str(report)]
        if SEED:
            argv += ["--seed", SEED]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "SPOOLED_FUZZ_DSN": dsn,
               "SPOOLED_FUZZ_PROTECT": f"{org},{key_id}", "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        done = await trio.run_process(argv, cwd=str(tmp_path), env=env, capture_stdout=True, capture_stderr=True,
                                      check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    figures = {**_summary(out), "seconds": round(time.monotonic() - started)}
    if os.environ.get("SPOOLED_FUZZ_LOG"):
        with open(os.environ["SPOOLED_FUZZ_LOG"], "w") as f:
            f.write(f"{out}\nFUZZ {figures}\n")
    print(out[-4000:])
    print("FUZZ", figures)
    assert done.returncode == 0, out[-20000:]
    assert figures.get("operations", 0) >= 100 and figures.get("generated", 0) >= EXAMPLES * 100, figures
    assert figures["passed"] == figures["generated"], figures
    # the server is still whole: the fuzzing organization still works, and the probes are green
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth, timeout=30) as api:
        assert (await api.get("/api/v1/jobs/stats")).status_code == 200
        assert (await api.get("/health/ready")).status_code == 200
