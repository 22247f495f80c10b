"""The web dashboard at /dashboard: its files as served, and real Chromium (Debian's, driven by Playwright)
signing in and acting on data made over REST, with every outcome checked again through the API.

The browser tests fail (never skip) when /usr/bin/chromium is missing: `.ci/run` installs it.
Set SPOOLED_SCREENSHOTS=docs/screenshots to refresh the committed screenshots (test_screenshots).
"""

from __future__ import annotations

import os
import re

from tests.browser.rig import browse
from tests.helpers import claim, enqueue, job, utc

ASSETS = re.compile(r'(?:src|href)="(/dashboard/[^"]+)"')


def key_of(api) -> str:
    return api.headers["Authorization"].split(" ", 1)[1]


async def dead_letter(api, queue: str, **fields) -> dict:
    """A job of `queue` that failed with no retries left (the queue must hold no other pending job)."""
    made = await enqueue(api, queue, max_retries=0, **fields)
    (leased,) = await claim(api, queue)
    assert leased["id"] == made["id"]
    r = await api.post(f"/api/v1/jobs/{made['id']}/fail", json={"lease_id": leased["lease_id"], "error": "boom"})
    assert r.json()["status"] == "deadletter", r.text
    return made


async def completed(api, queue: str, result: dict, **fields) -> dict:
    made = await enqueue(api, queue, **fields)
    (leased,) = await claim(api, queue)
    assert leased["id"] == made["id"]
    r = await api.post(f"/api/v1/jobs/{made['id']}/complete", json={"lease_id": leased["lease_id"], "result": result})
    assert r.status_code == 200, r.text
    return made


async def test_dashboard_files_are_served_from_the_package(client):
    r = await client.get("/dashboard")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assets = ASSETS.findall(r.text)
    assert "/dashboard/app.js" in assets and len(assets) == 4
    assert (await client.get("/dashboard/")).text == r.text
    kinds = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
    own = ["/dashboard/app.js", "/dashboard/api.js", "/dashboard/live.js"]
    for path in assets + own:
        a = await client.get(path)
        assert a.status_code == 200, path
        assert a.headers["content-type"].startswith(kinds[os.path.splitext(path)[1]]), (path, a.headers)
    for path in own + ["/dashboard"]:                       # nothing from another origin at run time
        assert not re.search(r"""(?:from|src=|href=|import\()\s*["']https?://""", (await client.get(path)).text)
    for missing in ("/dashboard/nope.js", "/dashboard/../pyproject.toml", "/dashboard/%2e%2e/app.py"):
        m = await client.get(missing)
        assert m.status_code == 404 and m.json()["code"] == "NOT_FOUND", missing


async def test_sign_in_and_see_queues_with_counts(server, client, api, tmp_path):
    for _ in range(4):
        await enqueue(api, "emails")
    first, second = await claim(api, "emails", limit=2)
    r = await api.post(f"/api/v1/jobs/{first['id']}/complete", json={"lease_id": first["lease_id"]})
    assert r.status_code == 200
    await dead_letter(api, "reports")
    await enqueue(api, "reports", scheduled_at=utc(hours=1).isoformat())
    bad_key = "sk_live_" + "x" * 43
    refused = await client.post("/api/v1/auth/login", json={"api_key": bad_key})
    assert refused.status_code == 401

    seen = await browse("sign_in_and_see_queues", server, tmp_path, key=key_of(api), bad_key=bad_key,
                        bad_key_message=refused.json()["message"],
                        expected={"emails": {"state": "active", "pending": 2, "processing": 1, "completed": 1,
                                             "deadletter": 0},
                                  "reports": {"pending": 0, "scheduled": 1, "failed": 1, "deadletter": 1}},
                        totals={"pending": 2, "scheduled": 1, "processing": 1, "completed": 1, "failed": 0,
                                "deadletter": 1, "cancelled": 0})
    assert seen["rows"] == 2 and seen["org"] == "Acme"
    assert seen["pause_buttons"] == 2                      # a full key may act
    stats = (await api.get("/api/v1/queues/emails/stats")).json()
    assert stats["pending_jobs"] == 2 and stats["processing_jobs"] == 1   # the page changed nothing


async def test_search_jobs_and_open_one(server, api, tmp_path):
    wanted = await completed(api, "search", {"sent": 12345678901234567890},
                             payload={"job_type": "send-needle-42", "to": "a@example.com", "n": 1.0})
    tagged = [(await enqueue(api, "search", tags={"team": "billing"}))["id"] for _ in range(2)]
    await enqueue(api, "search", tags={"team": "ops"})
    await enqueue(api, "other", tags={"team": "billing"})
    seen = await browse("search_and_open_job", server, tmp_path, key=key_of(api), queue="search",
                        tag="team:billing", text="needle-42", tagged=tagged, wanted=wanted["id"])
    # user JSON as stored: key order and the numbers as written (1.0, a 20-digit integer)
    assert seen["payload"] == '{\n  "job_type": "send-needle-42",\n  "to": "a@example.com",\n  "n": 1.0\n}'
    assert seen["result"] == '{\n  "sent": 12345678901234567890\n}'
    assert seen["error"] == "none"
    assert seen["events"][0] == "created" and "completed" in seen["events"], seen["events"]
    assert seen["retry_buttons"] == 0 and seen["cancel_buttons"] == 0   # a completed job offers neither


async def test_retry_dead_letters_from_the_ui(server, api, tmp_path):
    one = await dead_letter(api, "mail")
    in_queue = [(await dead_letter(api, "bulk"))["id"] for _ in range(2)]
    elsewhere = await dead_letter(api, "mail")
    await browse("retry_dead_letters", server, tmp_path, key=key_of(api), one=one["id"], queue="bulk",
                 in_queue=in_queue, elsewhere=elsewhere["id"])
    assert (await job(api, one["id"]))["status"] == "pending"
    assert [(await job(api, i))["status"] for i in in_queue] == ["pending", "pending"]
    assert (await job(api, elsewhere["id"]))["status"] == "deadletter"
    assert [j["id"] for j in (await api.get("/api/v1/jobs/dlq")).json()] == [elsewhere["id"]]


async def test_pause_and_resume_a_queue_from_the_ui(server, api, tmp_path):
    await enqueue(api, "hot")
    await enqueue(api, "cold")
    assert (await api.post("/api/v1/queues/cold/pause", json={})).status_code == 200
    await browse("pause_and_resume", server, tmp_path, key=key_of(api), to_pause="hot", to_resume="cold")
    assert (await api.get("/api/v1/queues/hot")).json()["paused"] is True
    assert (await api.get("/api/v1/queues/cold")).json()["paused"] is False
    assert await claim(api, "hot") == []                   # paused for real: nothing is handed out
    assert len(await claim(api, "cold")) == 1


async def test_an_action_the_server_refuses_shows_its_message(server, api, tmp_path):
    made = await enqueue(api, "c")
    (leased,) = await claim(api, "c")
    seen = await browse("cancel_shows_server_error", server, tmp_path, key=key_of(api), job_id=made["id"],
                        lease_id=leased["lease_id"])
    assert seen["message"]
    assert (await job(api, made["id"]))["status"] == "completed"


async def test_workers_with_status_and_current_jobs(server, api, tmp_path):
    r = await api.post("/api/v1/workers/register", json={"queue_name": "w", "hostname": "box-1",
                                                         "worker_id": "dash-worker-1"})
    assert r.status_code == 201, r.text
    made = await enqueue(api, "w")
    await claim(api, "w", worker="dash-worker-1")
    seen = await browse("workers_and_current_jobs", server, tmp_path, key=key_of(api), worker="dash-worker-1",
                        job_id=made["id"])
    assert "dash-worker-1" in seen["worker_cell"]


async def test_expired_access_token_is_refreshed_and_sign_out_revokes(server, client, api, tmp_path):
    seen = await browse("refresh_and_sign_out", server, tmp_path, key=key_of(api))
    assert seen["after"] not in (seen["before"], "not-a-token")
    assert (await client.post("/api/v1/auth/validate", json={"token": seen["after"]})).json()["valid"] is True
    assert seen["left"] == []
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": seen["refresh"]})
    assert r.status_code == 401                           # signing out revoked the session's refresh token


async def test_screenshots_of_each_main_page(server, api, tmp_path):
    out = os.environ.get("SPOOLED_SCREENSHOTS") or str(tmp_path / "screenshots")
    shown = await completed(api, "emails", {"message_id": "m-1"}, payload={"job_type": "receipt", "order": 1042},
                            tags={"team": "shop"})
    for i in range(3):
        await completed(api, "reports", {"rows": 10 * i}, payload={"job_type": "daily-report", "day": i})
    for i in range(3):
        await enqueue(api, "emails", payload={"job_type": "welcome", "to": f"user{i}@example.com"},
                      tags={"team": "growth"})
    await dead_letter(api, "webhooks", payload={"url": "https://example.com/hook"})
    await api.post("/api/v1/workers/register", json={"queue_name": "emails", "hostname": "worker-a",
                                                     "worker_id": "worker-a-1"})
    await claim(api, "emails", worker="worker-a-1")
    await api.post("/api/v1/queues/webhooks/pause", json={"reason": "endpoint down"})
    shots = await browse("screenshots", server, tmp_path, key=key_of(api), out=out, job_id=shown["id"])
    assert sorted(shots) == ["dead-letters", "job", "jobs", "queues", "sign-in", "workers"]
    for path in shots.values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_dashboard_file_is_package_data():
    """An installed (non-editable) server must carry the files: pyproject's package-data globs cover them all."""
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["spooled"]
    shipped = {p for g in globs for p in (root / "spooled").glob(g) if p.is_file()}
    files = {p for p in (root / "spooled/transports/http/dashboard").rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)
    assert {"index.html", "app.js", "api.js", "live.js", "style.css"} <= {p.name for p in files}
