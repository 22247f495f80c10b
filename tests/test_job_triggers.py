"""The jobs table's statement triggers after migration 0018 (docs/architecture.md "Events"): a one-organization,
one-queue insert (every enqueue) takes the trigger's short path, any other statement the general one, and both
check and lock the organizations, write the listing rows, wake each queue with its count of claimable jobs and
emit the events of the organizations that listen or subscribe; a job created scheduled gets exactly one `created`
history row on every insert path (the trigger writes it now); an update emits the started events of each
organization that wants them and nothing for an update of no row."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import asyncpg
import pytest
import trio

from spooled.store.jobs import NewJobs
from tests.helpers import enqueue
from tests.test_claim_group import rows

LATER = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)

# jobs of (organization, queue, status) in one statement
INSERT = """INSERT INTO jobs (id, organization_id, queue_name, status, payload, max_retries, timeout_seconds, run_at,
                              created_at, updated_at)
            SELECT gen_random_uuid(), o, q, s::job_status, '{}', 3, 30, now(), now(), now()
            FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(o, q, s)
            RETURNING id, organization_id, queue_name, status"""


async def listened(server, channel: str, statements: list[tuple], expect: int) -> tuple[list[str], list]:
    """Run each (sql, *args) on a connection of its own while another listens on `channel`: the payloads
    received (`expect` of them; each statement commits on its own) and each statement's rows or the error."""
    async def run(_con):
        listener = await asyncpg.connect(server.services.settings.database_url)
        other = await asyncpg.connect(server.services.settings.database_url)
        got: list[str] = []
        results: list = []
        try:
            await listener.add_listener(channel, lambda *a: got.append(a[3]))
            for sql, *args in statements:
                try:
                    results.append(await other.fetch(sql, *args))
                except asyncpg.PostgresError as e:
                    results.append(e)
            while len(got) < expect:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)               # (and nothing more: counted by the caller)
            return got, results
        finally:
            await listener.close()
            await other.close()
    return await server.services.db.run(run)


async def test_an_insert_of_several_organizations_and_queues_checks_and_wakes_each(api, other_api, server):
    a, b = uuid.UUID(api.org_id), uuid.UUID(other_api.org_id)
    with trio.fail_after(30):
        wakes, (several, one_org, missing) = await listened(server, "spooled_jobs", [
            (INSERT, [a, a, b, a, a], ["q1", "q2", "q1", "q1", "q1"],
             ["pending", "pending", "pending", "pending", "scheduled"]),
            (INSERT, [a, a], ["q3", "q4"], ["pending", "pending"]),
            (INSERT, [a, uuid.uuid4()], ["q5", "q5"], ["pending", "pending"]),
        ], expect=5)
    assert sorted(wakes) == sorted([f"{a} q1 2", f"{a} q2 1", f"{b} q1 1", f"{a} q3 1", f"{a} q4 1"])
    assert len(several) == 5 and len(one_org) == 2
    assert isinstance(missing, asyncpg.ForeignKeyViolationError), missing
    listed = await rows(server, "SELECT l.id FROM job_list l JOIN jobs j USING (id, organization_id, queue_name)")
    assert {r["id"] for r in listed} == {r["id"] for r in several + one_org}
    assert (await rows(server, "SELECT count(*) AS n FROM jobs WHERE queue_name = 'q5'"))[0]["n"] == 0


async def test_each_organization_gets_the_events_of_its_own_jobs_from_one_statement(api, other_api, server):
    """The other organization subscribes a webhook, this one listens (realtime): one insert and one update of
    jobs of both emit the created and started events of each one's jobs to each one's channel only."""
    a, b = uuid.UUID(api.org_id), uuid.UUID(other_api.org_id)
    r = await other_api.post("/api/v1/outgoing-webhooks", json={
        "name": "all", "url": "https://example.com/hook", "events": ["job.created", "job.started"]})
    assert r.status_code == 201, r.text
    await rows(server, "INSERT INTO event_listeners (organization_id, instance_id, expires_at)"
                       " VALUES ($1, gen_random_uuid(), now() + interval '1 hour')", a)
    claim = """UPDATE jobs SET status = 'processing', lease_id = gen_random_uuid(),
                                lease_expires_at = now() + interval '1 minute', assigned_worker_id = 'w',
                                last_worker_id = 'w', started_at = now(), updated_at = now()
               WHERE queue_name = 'both' AND status = 'pending'"""
    with trio.fail_after(30):
        events, (inserted, claimed, none) = await listened(server, "spooled_events", [
            (INSERT, [a, b], ["both", "both"], ["pending", "pending"]),
            (claim + " RETURNING id",),
            (claim + " RETURNING id",),                  # no row left: no event, no outbox row
        ], expect=2)
    assert len(inserted) == 2 and len(claimed) == 2 and none == []
    ours = next(r["id"] for r in inserted if r["organization_id"] == a)
    theirs = next(r["id"] for r in inserted if r["organization_id"] == b)
    sent = [(e["org"], e["event"], e["job_id"]) for payload in events for e in json.loads(payload)]
    assert sorted(sent) == sorted([(str(a), "created", str(ours)), (str(a), "started", str(ours))])
    hooks = await rows(server, "SELECT organization_id, event, payload->>'job_id' AS job FROM webhook_deliveries")
    assert sorted((h["organization_id"], h["event"], h["job"]) for h in hooks) == [    # (ids are random uuids)
        (b, "job.created", str(theirs)), (b, "job.started", str(theirs))]


def new_jobs(ids: list[uuid.UUID], scheduled: list[dt.datetime | None]) -> NewJobs:
    def none() -> list:
        return [None] * len(ids)
    return NewJobs(ids=ids, payloads=["{}"] * len(ids), priorities=[0] * len(ids), max_retries=none(),
                   timeouts=none(), tags=none(), idempotency_keys=none(), webhooks=none(), webhook_secrets=none(),
                   parents=none(), scheduled_ats=scheduled, expires_ats=none(), traceparents=none(),
                   tracestates=none())


@pytest.mark.parametrize("path", ["rest", "bulk", "handoff"])
async def test_a_job_created_scheduled_has_one_created_history_row(api, server, path):
    """REST's single enqueue, a bulk enqueue and the handoff's insert-and-claim statement (with a due job beside
    it, which the claimer gets): the scheduled job's history is its one `created` row, the due job's is empty,
    and both show `created` once in GET /jobs/{id}/history."""
    org = uuid.UUID(api.org_id)
    with trio.fail_after(30):
        if path == "rest":
            later = (await enqueue(api, "sched", scheduled_at=LATER.isoformat()))["id"]
            due = (await enqueue(api, "sched"))["id"]
        elif path == "bulk":
            r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "sched", "jobs": [
                {"payload": {}, "scheduled_at": LATER.isoformat()}, {"payload": {}}]})
            assert r.status_code in (200, 201), r.text
            got = await rows(server, "SELECT id, status FROM jobs WHERE queue_name = 'sched'")
            later = next(str(r["id"]) for r in got if r["status"] == "scheduled")
            due = next(str(r["id"]) for r in got if r["status"] == "pending")
        else:
            ids = [uuid.uuid4(), uuid.uuid4()]
            outcome = await server.services.jobs._store.insert(org, "sched", new_jobs(ids, [LATER, None]),
                                                               queues=[], claimers=[("w", 5, 30.0)])
            assert set(outcome.inserted) == set(ids)
            assert [j.id for j in outcome.claimed[0].jobs] == [ids[1]]    # the due one only
            later, due = str(ids[0]), str(ids[1])
        history = await rows(server, "SELECT job_id, event_type, old_status, new_status FROM job_history"
                                     " WHERE organization_id = $1", org)
        assert [(str(h["job_id"]), h["event_type"], h["old_status"], h["new_status"]) for h in history] == [
            (later, "created", None, "scheduled")]
        for job_id, status in ((later, "scheduled"), (due, "processing" if path == "handoff" else "pending")):
            shown = (await api.get(f"/api/v1/jobs/{job_id}/history")).json()
            assert [e["event_type"] for e in shown].count("created") == 1, shown
            assert (await api.get(f"/api/v1/jobs/{job_id}")).json()["status"] == status


async def test_the_handoffs_insert_takes_the_queues_defaults_and_creates_a_missing_queue(api, server):
    """spooled_insert_claim reads the queue's defaults and inserts the queue only when it is missing (migration
    0018): a queue with its own defaults gives them to a job that sets none, a job's own values win, and a queue
    that does not exist is created (the column defaults) with the job claimed as before."""
    org = uuid.UUID(api.org_id)
    store = server.services.jobs._store
    r = await api.post("/api/v1/queues", json={"name": "tuned", "max_retries": 9, "default_timeout": 999})
    assert r.status_code == 201, r.text
    with trio.fail_after(30):
        plain, own = uuid.uuid4(), uuid.uuid4()
        jobs = new_jobs([plain, own], [None, None])
        jobs.max_retries[1], jobs.timeouts[1] = 2, 20
        outcome = await store.insert(org, "tuned", jobs, queues=[], claimers=[("w", 2, 30.0)])
        got = {j.id: (j.max_retries, j.timeout_seconds) for j in outcome.claimed[0].jobs}
        assert got == {plain: (9, 999), own: (2, 20)}
        fresh = uuid.uuid4()
        outcome = await store.insert(org, "brand-new", new_jobs([fresh], [None]), queues=[],
                                     claimers=[("w", 1, 30.0)])
        assert [(j.id, j.max_retries, j.timeout_seconds) for j in outcome.claimed[0].jobs] == [(fresh, 3, 300)]
        queue = (await api.get("/api/v1/queues/brand-new")).json()
        assert (queue["max_retries"], queue["default_timeout"]) == (3, 300), queue
