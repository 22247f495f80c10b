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
    customer = await enqueue(api, "search", payload={"job_type": "invoice", "customer": {"name": "Zebulon Quux"}})
    found = (await api.get("/api/v1/jobs", params={"q": "zebulon q"})).json()
    assert [j["id"] for j in found] == [customer["id"]]      # a nested payload field, not job_type
    seen = await browse("search_and_open_job", server, tmp_path, key=key_of(api), queue="search",
                        tag="team:billing", text="needle-42", tagged=tagged, wanted=wanted["id"],
                        payload_text="zebulon q", payload_match=customer["id"])
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


async def schedule(api, name: str, **fields) -> dict:
    body = {"name": name, "cron_expression": "0 30 2 * * *", "timezone": "Europe/Berlin", "queue_name": "reports",
            "payload_template": {"job_type": "nightly-report", "n": 12345678901234567890}, **fields}
    r = await api.post("/api/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def diamond(name: str, queue: str) -> dict:
    return {"name": name, "description": "A -> (B, C) -> D", "jobs": [
        {"key": "A", "queue_name": queue, "payload": {"job_type": "extract"}},
        {"key": "B", "queue_name": queue, "payload": {"job_type": "transform-left"}, "depends_on": ["A"]},
        {"key": "C", "queue_name": queue, "payload": {"job_type": "transform-right"}, "depends_on": ["A"]},
        {"key": "D", "queue_name": queue, "payload": {"job_type": "load"}, "depends_on": ["B", "C"]},
    ]}


async def new_workflow(api, body: dict) -> tuple[str, dict[str, str]]:
    r = await api.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    return r.json()["workflow_id"], {m["key"]: m["job_id"] for m in r.json()["job_ids"]}


async def test_schedules_trigger_and_pause_from_the_ui(server, api, tmp_path):
    nightly = await schedule(api, "nightly")
    hourly = await schedule(api, "hourly", cron_expression="0 * * * *", timezone="UTC")
    assert (await api.post(f"/api/v1/schedules/{hourly['id']}/pause")).json()["is_active"] is False
    seen = await browse("schedules_trigger_and_pause", server, tmp_path, key=key_of(api), nightly=nightly,
                        paused=hourly)
    now = (await api.get(f"/api/v1/schedules/{nightly['id']}")).json()
    assert now["is_active"] is False and now["next_run_at"] is None and now["run_count"] == 2
    runs = (await api.get(f"/api/v1/schedules/{nightly['id']}/history")).json()
    assert [r["job_id"] for r in runs] == seen["jobs"] and seen["jobs"][1] == seen["first_job"]
    assert all(r["manual"] for r in runs)
    for job_id in seen["jobs"]:                           # each trigger enqueued the template, for real
        made = await job(api, job_id)
        assert made["queue_name"] == "reports" and made["status"] == "pending"
        assert made["payload"] == {"job_type": "nightly-report", "n": 12345678901234567890}
    assert (await api.get(f"/api/v1/schedules/{hourly['id']}")).json()["is_active"] is True


async def test_workflow_dag_and_its_actions(server, api, tmp_path):
    wid, ids = await new_workflow(api, diamond("diamond", "wf-dash"))
    deps = (await api.get(f"/api/v1/workflows/{wid}")).json()["dependencies"]
    want_edges = sorted([[ids["A"], ids["B"]], [ids["A"], ids["C"]], [ids["B"], ids["D"]], [ids["C"], ids["D"]]])
    assert sorted([d["parent_job_id"], d["child_job_id"]] for d in deps) == want_edges
    seen = await browse("workflow_dag_and_actions", server, tmp_path, key=key_of(api), workflow_id=wid,
                        name="diamond", queue="wf-dash", ids=ids)

    def states(dag, **want):
        assert dag["nodes"] == {ids[k]: list(v) for k, v in want.items()}, dag["nodes"]

    # [status, waiting for dependencies] per node, edges parent -> child as the API has them
    assert seen["first"]["edges"] == want_edges
    states(seen["first"], A=("pending", False), B=("pending", True), C=("pending", True), D=("pending", True))
    states(seen["second"], A=("completed", False), B=("processing", False), C=("pending", False),
           D=("pending", True))
    states(seen["cancelled"], A=("completed", False), B=("processing", False), C=("cancelled", False),
           D=("cancelled", False))
    states(seen["retried"], A=("completed", False), B=("processing", False), C=("pending", False),
           D=("pending", True))
    w = (await api.get(f"/api/v1/workflows/{wid}")).json()
    assert w["status"] == seen["status"] == "running"
    assert {j["id"]: j["status"] for j in w["jobs"]} == {ids["A"]: "completed", ids["B"]: "processing",
                                                         ids["C"]: "pending", ids["D"]: "pending"}
    history = (await api.get(f"/api/v1/jobs/{ids['D']}/history")).json()
    assert [h["event_type"] for h in history].count("cancelled") == 1      # the UI's cancel reached the server


async def test_a_read_only_key_sees_no_action_and_signs_out(server, client, api, tmp_path):
    pending = await enqueue(api, "ro")
    dead = await dead_letter(api, "ro-dead")
    r = await api.post("/api/v1/workers/register", json={"queue_name": "ro", "hostname": "h", "worker_id": "ro-w"})
    assert r.status_code == 201, r.text
    sched = await schedule(api, "ro-nightly")
    assert (await api.post(f"/api/v1/schedules/{sched['id']}/trigger")).status_code == 200
    running, _ = await new_workflow(api, diamond("ro-diamond", "ro-wf"))
    broken, _ = await new_workflow(api, {"name": "ro-broken", "jobs": [
        {"key": "x", "queue_name": "ro-wf-bad", "payload": {}, "max_retries": 0}]})
    (leased,) = await claim(api, "ro-wf-bad")
    r = await api.post(f"/api/v1/jobs/{leased['id']}/fail", json={"lease_id": leased["lease_id"], "error": "boom"})
    assert r.status_code == 200, r.text
    assert (await api.get(f"/api/v1/workflows/{broken}")).json()["status"] == "failed"
    r = await api.post("/api/v1/api-keys", json={"name": "viewer", "read_only": True})
    assert r.status_code == 201 and r.json()["read_only"] is True, r.text
    read_only_key = r.json()["key"]
    # [route, what shows once that very page has its data]: the page before may still be on screen just
    # after the hash changes, so the two job pages and the two workflow pages are told apart by id
    routes = [["/queues", "#queues tbody tr"], ["/jobs", "#jobs tbody tr"],
              [f"/jobs/{pending['id']}", f'#job[data-job-id="{pending["id"]}"]'],
              [f"/jobs/{dead['id']}", f'#job[data-job-id="{dead["id"]}"]'], ["/workers", "#workers tbody tr"],
              ["/dlq", "#jobs tbody tr"], ["/schedules", "#schedules tbody tr"],
              [f"/schedules/{sched['id']}", "#schedule"],
              ["/workflows", "#workflows tbody tr"],
              [f"/workflows/{running}", f'#workflow[data-workflow-id="{running}"] #dag .node'],
              [f"/workflows/{broken}", f'#workflow[data-workflow-id="{broken}"] #dag .node']]

    full = await browse("buttons_on_pages", server, tmp_path, key=key_of(api), routes=routes, read_only=False)
    # the same pages offer every action to a full key, so their absence below is the key's doing
    offered = {route: set(names) for route, names in full["buttons"].items()}
    assert {"Pause"} <= offered["/queues"] and "Cancel" in offered[f"/jobs/{pending['id']}"]
    assert "Retry" in offered[f"/jobs/{dead['id']}"] and "Retry" in offered["/dlq"]
    assert any(n.startswith("Retry all") for n in offered["/dlq"])
    assert {"Trigger now", "Pause"} <= offered["/schedules"] and {"Trigger now", "Pause"} <= offered[
        f"/schedules/{sched['id']}"]
    assert "Cancel workflow" in offered[f"/workflows/{running}"] and "Retry workflow" in offered[
        f"/workflows/{broken}"]

    seen = await browse("buttons_on_pages", server, tmp_path, key=read_only_key, routes=routes, read_only=True)
    assert sorted(seen["buttons"]) == sorted(r for r, _ in routes)
    actions = {n for names in seen["buttons"].values() for n in names} - {"Search", "Load more"}
    assert actions == set(), actions
    assert seen["left"] == []
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": seen["refresh"]})
    assert r.status_code == 401                           # sign-out revoked the read-only session's token
    assert (await job(api, pending["id"]))["status"] == "pending"


async def test_live_a_job_moves_on_every_open_page(server, api, tmp_path):
    made = await enqueue(api, "live", payload={"job_type": "render", "document": "quarterly-kumquat"})
    await enqueue(api, "live-other")
    seen = await browse("live_job_moves", server, tmp_path, key=key_of(api), queue="live", job_id=made["id"],
                        text="kumquat")
    assert (await job(api, made["id"]))["status"] == "completed"
    assert seen["events"][-1] == "completed" and "started" in seen["events"], seen["events"]


async def test_live_stream_reconnects_with_a_refreshed_token(server, client, api, tmp_path):
    seen = await browse("stream_refreshes_a_refused_token", server, tmp_path, key=key_of(api))
    states = seen["states"]
    # refused (disconnected after trying), then connected again, all after the reload
    first_try = states.index("connecting")
    assert "disconnected" in states[first_try + 1:] and states[-1] == "connected", states
    assert seen["token"] != "garbage"
    assert (await client.post("/api/v1/auth/validate", json={"token": seen["token"]})).json()["valid"] is True
    refused = await client.get("/api/v1/events", params={"token": "garbage"})
    assert refused.status_code == 401                      # what the stream met


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
    nightly = await schedule(api, "nightly-digest", queue_name="digests",
                             payload_template={"job_type": "digest", "audience": "all"})
    await schedule(api, "hourly-sync", queue_name="sync", cron_expression="0 * * * *", timezone="UTC")
    paused = await schedule(api, "weekly-cleanup", queue_name="cleanup", cron_expression="0 0 4 * * SUN")
    await api.post(f"/api/v1/schedules/{paused['id']}/pause")
    for _ in range(2):
        await api.post(f"/api/v1/schedules/{nightly['id']}/trigger")
    (run,) = await claim(api, "digests")
    await api.post(f"/api/v1/jobs/{run['id']}/complete", json={"lease_id": run["lease_id"]})
    done, _ = await new_workflow(api, {"name": "invoice-batch", "jobs": [
        {"key": "x", "queue_name": "pipeline-b", "payload": {"job_type": "bill"}}]})
    (only,) = await claim(api, "pipeline-b")
    await api.post(f"/api/v1/jobs/{only['id']}/complete", json={"lease_id": only["lease_id"]})
    wid, ids = await new_workflow(api, diamond("nightly-etl", "pipeline"))
    (a,) = await claim(api, "pipeline")
    await api.post(f"/api/v1/jobs/{a['id']}/complete", json={"lease_id": a["lease_id"]})
    await claim(api, "pipeline")
    shots = await browse("screenshots", server, tmp_path, key=key_of(api), out=out, job_id=shown["id"],
                         schedule_id=nightly["id"], workflow_id=wid)
    assert sorted(shots) == ["dead-letters", "job", "jobs", "queues", "schedule", "schedules", "sign-in",
                             "workers", "workflow", "workflows"]
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
