"""The listing table (migration 0016, docs/architecture.md "the listing table"): `job_list` holds exactly the jobs
(written with each insert, deleted with each delete, whatever deletes it), and the statement triggers that replace
the foreign keys onto organizations and workflows check and cascade as those did."""

from __future__ import annotations

import uuid

import asyncio

import asyncpg
import pytest
import trio

from spooled.domain import errors
from tests.helpers import enqueue

JOB = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, max_retries, timeout_seconds, run_at, "
       "created_at, updated_at, workflow_id) VALUES (gen_random_uuid(), $1, 'q', 'pending', '{}', 3, 30, now(), "
       "now(), now(), $2)")


async def sql(server, query: str, *args):
    return await server.services.db.run(lambda con: con.fetch(query, *args))


async def mismatches(server) -> int:
    """Jobs without their job_list row, and job_list rows without their job (or with other fields)."""
    rows = await sql(server, """SELECT count(*) AS n FROM jobs j FULL JOIN job_list l ON l.id = j.id
                                WHERE j.id IS NULL OR l.id IS NULL OR l.organization_id <> j.organization_id
                                   OR l.queue_name <> j.queue_name OR l.created_at <> j.created_at""")
    return rows[0]["n"]


async def test_job_list_follows_inserts_and_every_delete(api, other_api, server):
    with trio.fail_after(30):
        ids = [(await enqueue(api, queue="a"))["id"] for _ in range(3)]
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "b", "jobs": [{"payload": {}}] * 5})
        assert r.status_code in (200, 201), r.text
        await enqueue(other_api, queue="a")
        r = await api.post("/api/v1/workflows", json={"name": "wf", "jobs": [
            {"key": "x", "queue_name": "c", "payload": {}},
            {"key": "y", "queue_name": "c", "payload": {}, "depends_on": ["x"]}]})
        assert r.status_code == 201, r.text
        workflow = r.json()["workflow_id"]
        assert (await sql(server, "SELECT count(*) AS n FROM job_list"))[0]["n"] == 11
        assert await mismatches(server) == 0
        # the listing reads it: the organization's jobs, newest first, and a queue's
        listed = (await api.get("/api/v1/jobs", params={"queue_name": "a"})).json()
        assert [j["id"] for j in listed] == ids[::-1]
        assert len((await api.get("/api/v1/jobs")).json()) == 10
        # a queue deleted with its jobs
        r = await api.delete("/api/v1/queues/b")
        assert r.status_code == 409, r.text                     # active jobs: counted, not deleted
        assert "5 active jobs" in r.json()["message"]
        r = await api.delete("/api/v1/queues/b", params={"delete_jobs": "true"})
        assert r.status_code in (200, 204), r.text
        assert await mismatches(server) == 0
        assert (await sql(server, "SELECT count(*) AS n FROM job_list WHERE queue_name = 'b'"))[0]["n"] == 0
        # a workflow deleted: its jobs go (the cascade the foreign key made), and their job_list rows
        await sql(server, "DELETE FROM workflows WHERE id = $1::uuid", workflow)
        assert (await sql(server, "SELECT count(*) AS n FROM jobs WHERE queue_name = 'c'"))[0]["n"] == 0
        assert await mismatches(server) == 0
        # an organization deleted: its jobs go, the other organization's stay
        await sql(server, "DELETE FROM organizations WHERE id = $1::uuid", api.org_id)
        assert (await sql(server, "SELECT count(*) AS n FROM jobs"))[0]["n"] == 1
        assert await mismatches(server) == 0


async def test_a_job_of_a_missing_organization_or_workflow_is_refused(api, server):
    with trio.fail_after(30):
        org = uuid.UUID(api.org_id)
        for args in ((uuid.uuid4(), None), (org, uuid.uuid4())):
            with pytest.raises(errors.Conflict) as refused:     # the store maps integrity errors
                await sql(server, JOB, *args)
            assert isinstance(refused.value.__cause__, asyncpg.ForeignKeyViolationError), refused.value.__cause__
        assert (await sql(server, "SELECT count(*) AS n FROM jobs"))[0]["n"] == 0
        await sql(server, JOB, org, None)                       # the organization exists: inserted
        assert await mismatches(server) == 0


async def test_an_insert_holds_its_organization_until_it_commits(api, server):
    """The key-share lock a foreign key took: an organization being deleted waits for the insert's commit, then
    its cascade takes the new job too (no job is left without its organization)."""
    org = uuid.UUID(api.org_id)

    async def race(con):
        other = await asyncpg.connect(server.services.settings.database_url)
        try:
            tr = con.transaction()
            await tr.start()
            await con.execute(JOB, org, None)
            pid = await other.fetchval("SELECT pg_backend_pid()")
            deleting = asyncio.ensure_future(other.execute("DELETE FROM organizations WHERE id = $1", org))
            # the delete waits for this transaction's lock on the organization (no timing: its wait is seen)
            while await con.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) != "Lock":
                await asyncio.sleep(0.01)
            await tr.commit()
            await deleting
            return await con.fetchval("SELECT count(*) FROM jobs"), await con.fetchval(
                "SELECT count(*) FROM job_list")
        finally:
            await other.close()

    with trio.fail_after(30):
        assert await server.services.db.run(race) == (0, 0)
