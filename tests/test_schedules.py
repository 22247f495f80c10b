"""Schedules over REST, end to end: create/list/get/update/delete, pause/resume, trigger, history, validation,
tenancy, and the scheduler loop under the real supervisor firing a due schedule."""

from __future__ import annotations

import datetime as dt
from functools import partial

import httpx
import pytest
import trio

from spooled.supervisor import serve
from tests.conftest import make_settings, new_org
from tests.helpers import claim, parse

BODY = {"name": "nightly", "cron_expression": "0 30 2 * * *", "timezone": "Europe/Berlin", "queue_name": "reports",
        "payload_template": {"report": "daily", "n": 12345678901234567890}, "priority": 5, "max_retries": 2,
        "timeout_seconds": 600, "tags": {"team": "bi"}, "metadata": {"owner": "ana"}}


async def create(api, **fields) -> dict:
    r = await api.post("/api/v1/schedules", json={**BODY, **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list(api):
    s = await create(api, description="every night")
    assert s["name"] == "nightly" and s["cron_expression"] == "0 30 2 * * *" and s["timezone"] == "Europe/Berlin"
    assert s["is_active"] is True and s["run_count"] == 0 and s["last_run_at"] is None
    assert s["organization_id"] == api.org_id and s["catch_up"] == "latest" and s["overlap"] == "allow"
    nxt = parse(s["next_run_at"])
    assert nxt > dt.datetime.now(dt.timezone.utc) and nxt.utcoffset() == dt.timedelta(0)
    assert nxt.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).strftime("%H:%M:%S") == "02:30:00"
    got = (await api.get(f"/api/v1/schedules/{s['id']}")).json()
    assert got == s
    r = await api.get(f"/api/v1/schedules/{s['id']}")
    assert b'"n":12345678901234567890' in r.content      # big integers intact
    await create(api, name="other", queue_name="emails", cron_expression="*/5 * * * *", timezone="UTC")
    listed = (await api.get("/api/v1/schedules")).json()
    assert [x["name"] for x in listed] == ["nightly", "other"]
    assert [x["name"] for x in (await api.get("/api/v1/schedules?queue_name=emails")).json()] == ["other"]
    assert [x["name"] for x in (await api.get("/api/v1/schedules?limit=1&offset=1")).json()] == ["other"]
    await api.post(f"/api/v1/schedules/{s['id']}/pause")
    assert [x["name"] for x in (await api.get("/api/v1/schedules?is_active=false")).json()] == ["nightly"]
    assert [x["name"] for x in (await api.get("/api/v1/schedules?is_active=true")).json()] == ["other"]
    assert (await api.get("/api/v1/schedules?is_active=maybe")).status_code == 422


@pytest.mark.parametrize("fields,field", [
    ({"cron_expression": "61 * * * *"}, "cron_expression"),
    ({"cron_expression": "* * *"}, "cron_expression"),
    ({"cron_expression": "0 0 30 2 *"}, "cron_expression"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"queue_name": "has space"}, "queue_name"),
    ({"priority": 101}, "priority"),
    ({"payload_template": "text"}, "payload_template"),
    ({"catch_up": "sometimes"}, "catch_up"),
    ({"overlap": "never"}, "overlap"),
    ({"name": ""}, "name")])
async def test_invalid_input_is_422_naming_the_field_and_stores_nothing(api, fields, field):
    r = await api.post("/api/v1/schedules", json={**BODY, **fields})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR" and body["details"]["field"] == field
    assert (await api.get("/api/v1/schedules")).json() == []


async def test_missing_fields_are_422(api):
    r = await api.post("/api/v1/schedules", json={"name": "x"})
    assert r.status_code == 422 and set(r.json()["details"]["fields"]) >= {"cron_expression", "queue_name",
                                                                           "payload_template"}


async def test_update_is_partial_and_recomputes_next_run(api):
    s = await create(api)
    r = await api.put(f"/api/v1/schedules/{s['id']}", json={"name": "renamed", "priority": -3})
    assert r.status_code == 200
    u = r.json()
    assert u["name"] == "renamed" and u["priority"] == -3 and u["cron_expression"] == s["cron_expression"]
    assert u["next_run_at"] == s["next_run_at"] and u["payload_template"] == s["payload_template"]
    assert parse(u["updated_at"]) >= parse(s["updated_at"])
    u = (await api.put(f"/api/v1/schedules/{s['id']}", json={"timezone": "America/New_York"})).json()
    ny = parse(u["next_run_at"]).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert u["timezone"] == "America/New_York" and ny.strftime("%H:%M") in ("02:30", "03:00")
    u = (await api.put(f"/api/v1/schedules/{s['id']}", json={"cron_expression": "*/10 * * * *",
                                                           "payload_template": {"v": 2}, "catch_up": "all"})).json()
    nxt = parse(u["next_run_at"])
    assert nxt.minute % 10 == 0 and nxt - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=10)
    assert u["payload_template"] == {"v": 2} and u["catch_up"] == "all"
    # invalid updates change nothing
    for bad, field in (({"cron_expression": "nope"}, "cron_expression"), ({"timezone": "Nowhere/X"}, "timezone"),
                       ({"max_retries": -1}, "max_retries")):
        r = await api.put(f"/api/v1/schedules/{s['id']}", json=bad)
        assert r.status_code == 422 and r.json()["details"]["field"] == field
    assert (await api.get(f"/api/v1/schedules/{s['id']}")).json() == u


async def test_pause_resume_trigger_history(api):
    s = await create(api, cron_expression="0 0 1 1 *")
    sid = s["id"]
    r = await api.post(f"/api/v1/schedules/{sid}/pause", headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["next_run_at"] is None
    r = await api.post(f"/api/v1/schedules/{sid}/trigger")           # also while paused
    assert r.status_code == 200
    t = r.json()
    assert set(t) == {"job_id", "triggered_at"}
    job = (await api.get(f"/api/v1/jobs/{t['job_id']}")).json()
    assert job["queue_name"] == "reports" and job["payload"] == BODY["payload_template"] and job["priority"] == 5
    assert job["max_retries"] == 2 and job["timeout_seconds"] == 600 and job["tags"] == {"team": "bi"}
    got = (await api.get(f"/api/v1/schedules/{sid}")).json()
    assert got["run_count"] == 1 and got["last_run_at"] == t["triggered_at"] and got["is_active"] is False
    r = await api.post(f"/api/v1/schedules/{sid}/resume")
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert parse(r.json()["next_run_at"]) > dt.datetime.now(dt.timezone.utc)
    t2 = (await api.post(f"/api/v1/schedules/{sid}/trigger")).json()
    hist = (await api.get(f"/api/v1/schedules/{sid}/history")).json()
    assert [h["job_id"] for h in hist] == [t2["job_id"], t["job_id"]]          # newest first
    assert all(h["status"] == "pending" and h["schedule_id"] == sid and h["manual"] for h in hist)
    (claimed,) = await claim(api, queue="reports")
    await api.post(f"/api/v1/jobs/{claimed['id']}/complete", json={"lease_id": claimed["lease_id"]})
    by_job = {h["job_id"]: h for h in (await api.get(f"/api/v1/schedules/{sid}/history?limit=10")).json()}
    assert by_job[claimed["id"]]["status"] == "completed" and by_job[claimed["id"]]["completed_at"]
    assert len((await api.get(f"/api/v1/schedules/{sid}/history?limit=1")).json()) == 1


async def test_delete(api):
    s = await create(api)
    await api.post(f"/api/v1/schedules/{s['id']}/trigger")
    assert (await api.delete(f"/api/v1/schedules/{s['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/schedules/{s['id']}")).status_code == 404
    assert (await api.delete(f"/api/v1/schedules/{s['id']}")).status_code == 404
    assert (await api.get(f"/api/v1/schedules/{s['id']}/history")).status_code == 404


async def test_another_orgs_schedule_is_404(api, other_api):
    s = await create(api)
    sid = s["id"]
    for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"),
                         ("POST", "/trigger"), ("GET", "/history")):
        r = await other_api.request(method, f"/api/v1/schedules/{sid}{path}", json={} if method == "PUT" else None)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (method, path)
    assert (await other_api.get("/api/v1/schedules")).json() == []
    assert (await api.get(f"/api/v1/schedules/{sid}")).json() == s           # untouched
    assert (await api.get("/api/v1/schedules/not-a-uuid")).status_code == 404


async def test_the_supervisor_runs_the_scheduler(aio_loop, tmp_path, dsn, client):
    """A real instance with a short scheduler interval fires a per-second schedule on its own."""
    settings = make_settings(tmp_path, dsn, scheduler_interval_secs=0.1)
    shutdown = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
            async with httpx.AsyncClient(base_url=running.http_url, timeout=10) as c:
                _, headers = await new_org(c)
                c.headers.update(headers)
                s = (await c.post("/api/v1/schedules", json={**BODY, "cron_expression": "* * * * * *",
                                                             "timezone": "UTC"})).json()
                while not (hist := [h for h in (await c.get(f"/api/v1/schedules/{s['id']}/history")).json()
                                    if h["job_id"]]):
                    await trio.sleep(0.1)
                job = (await c.get(f"/api/v1/jobs/{hist[-1]['job_id']}")).json()
                assert job["payload"] == BODY["payload_template"] and hist[-1]["manual"] is False
                assert parse(hist[-1]["fire_time"]).microsecond == 0
            shutdown.set()
