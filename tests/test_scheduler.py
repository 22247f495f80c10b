"""The scheduler pass (`Schedules.run_once`) against the real database with an explicit clock: exactly one job per
fire time with two instances racing, after faults injected between its steps (real PostgreSQL errors from
triggers), catch-up and overlap policies, and the run status following the job."""

from __future__ import annotations

import collections
import datetime as dt

import pytest
import trio

from spooled.convert import structure
from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.services.container import Services
from spooled.store.db import open_database
from spooled.store.schedules import RETRY_SECS

UTC = dt.timezone.utc
T0 = dt.datetime(2031, 3, 4, 10, 0, 0, tzinfo=UTC)   # a Tuesday


def spec(**fields) -> inputs.CreateSchedule:
    body = {"name": "s", "cron_expression": "* * * * *", "queue_name": "cron", "payload_template": {"k": "v"},
            **fields}
    return structure(body, inputs.CreateSchedule)


def mins(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


async def sql(svc: Services, query: str, *args):
    if args or not query.lstrip().upper().startswith("CREATE"):
        return await svc.db.run(lambda con: con.fetch(query, *args))
    return await svc.db.run(lambda con: con.execute(query))     # several statements: the simple protocol


async def runs_and_jobs(svc: Services) -> tuple[list, list]:
    runs = await sql(svc, "SELECT schedule_id, fire_time, state, job_id, manual FROM schedule_runs ORDER BY fire_time")
    jobs = await sql(svc, "SELECT id, idempotency_key, queue_name, payload::text AS payload, priority FROM jobs")
    return runs, jobs


async def inject_fault(svc: Services, name: str, when: str, message: str) -> None:
    """A real error raised by PostgreSQL: a trigger `name` running `when` (e.g. "BEFORE INSERT ON jobs")."""
    await sql(svc, f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{message}'; END $$;
        CREATE TRIGGER {name} {when} FOR EACH ROW EXECUTE FUNCTION {name}();""")


def assert_one_job_per_fire(runs, jobs) -> None:
    fired = [r for r in runs if r["state"] == "fired"]
    keys = collections.Counter((r["schedule_id"], r["fire_time"]) for r in runs if not r["manual"])
    assert all(n == 1 for n in keys.values()), "a fire time recorded twice"
    assert all(r["job_id"] is not None for r in fired), "a fired run without its job"
    assert len({r["job_id"] for r in fired}) == len(fired) == len(jobs), "runs and jobs differ"
    assert {r["job_id"] for r in fired} == {j["id"] for j in jobs}


@pytest.fixture
async def second(server, dsn):
    """A second server instance's services on the same database (its own pool)."""
    async with open_database(dsn, min_size=1, max_size=4) as db:
        yield Services.build(server.services.settings, db)


async def test_a_due_fire_enqueues_one_job_from_the_template(api, server):
    sch = server.services.schedules
    s = await sch.create(Scope(api.org_id), spec(cron_expression="*/5 * * * *", priority=7, max_retries=1,
                                          timeout_seconds=60, tags={"t": 1}), now=T0 + mins(1))
    assert s.next_run_at == T0 + mins(5)
    assert (await sch.run_once(now=T0 + mins(4))).total == 0            # not due yet
    r = await sch.run_once(now=T0 + mins(5) + dt.timedelta(seconds=0.3))
    assert (r.schedules, r.fired, r.skipped, r.retried) == (1, 1, 0, 0)
    runs, jobs = await runs_and_jobs(server.services)
    assert_one_job_per_fire(runs, jobs)
    (job,) = jobs
    assert job["queue_name"] == "cron" and job["payload"] == '{"k":"v"}' and job["priority"] == 7
    assert job["idempotency_key"].startswith(f"schedule:{s.id}:run:")
    got = await sch.get(Scope(api.org_id), str(s.id))
    assert got.run_count == 1 and got.last_run_at == T0 + mins(5) and got.next_run_at == T0 + mins(10)
    assert (await sch.run_once(now=T0 + mins(6))).total == 0            # the same fire never again


async def test_two_instances_racing_fire_each_fire_time_exactly_once(api, server, second):
    a, b = server.services.schedules, second.schedules
    for i in range(12):
        await a.create(Scope(api.org_id), spec(name=f"s{i}", cron_expression="*/20 * * * * *"), now=T0)
    results = []

    async def instance(sch, now):
        while True:
            r = await sch.run_once(now=now, limit=3)
            results.append(r)
            if not r.full(3):
                return

    with trio.fail_after(60):
        for step in range(1, 5):   # four fire times per schedule, both instances at each
            now = T0 + dt.timedelta(seconds=20 * step)
            async with trio.open_nursery() as n:
                n.start_soon(instance, a, now)
                n.start_soon(instance, b, now)
    runs, jobs = await runs_and_jobs(server.services)
    assert len(runs) == 12 * 4
    assert_one_job_per_fire(runs, jobs)
    assert sum(r.fired for r in results) == 48
    counts = await sql(server.services, "SELECT run_count FROM schedules")
    assert [c["run_count"] for c in counts] == [4] * 12


async def test_abort_after_the_enqueue_neither_loses_nor_doubles_the_fire(api, server, second):
    """The job is enqueued, then the statement recording it on the run fails (a real error raised by a trigger,
    as a crash there would leave it): the next pass, on another instance, finds the same job by its key."""
    sch = server.services.schedules
    s = await sch.create(Scope(api.org_id), spec(), now=T0)
    await inject_fault(server.services, "fail_fill", "BEFORE UPDATE OF job_id ON schedule_runs",
                       "injected crash before the run records its job")
    fire = T0 + mins(1)
    with pytest.raises(Exception, match="injected crash"):
        await sch.run_once(now=fire)
    runs, jobs = await runs_and_jobs(server.services)
    assert len(runs) == 1 and runs[0]["job_id"] is None and len(jobs) == 1       # the job exists, unrecorded
    await sql(server.services, "DROP TRIGGER fail_fill ON schedule_runs")
    assert (await second.schedules.run_once(now=fire + dt.timedelta(seconds=1))).retried == 0   # still taken
    r = await second.schedules.run_once(now=fire + dt.timedelta(seconds=RETRY_SECS + 1))
    assert r.retried == 1 and r.fired == 0
    runs, jobs = await runs_and_jobs(server.services)
    assert_one_job_per_fire(runs, jobs)
    assert len(jobs) == 1 and (await sch.get(Scope(api.org_id), str(s.id))).run_count == 1


async def test_failed_enqueue_is_retried_once_the_database_recovers(api, server, second):
    """The fire is recorded, then the enqueue fails: nothing is lost, the retry enqueues exactly one job."""
    sch = server.services.schedules
    await sch.create(Scope(api.org_id), spec(), now=T0)
    await inject_fault(server.services, "fail_insert", "BEFORE INSERT ON jobs", "injected enqueue failure")
    with pytest.raises(Exception, match="injected enqueue failure"):
        await sch.run_once(now=T0 + mins(1))
    runs, jobs = await runs_and_jobs(server.services)
    assert len(runs) == 1 and runs[0]["job_id"] is None and jobs == []
    await sql(server.services, "DROP TRIGGER fail_insert ON jobs")
    assert (await sch.run_once(now=T0 + mins(1.25))).total == 0     # recorded, not re-fired; retry not due
    async with trio.open_nursery() as n:                               # both instances retry at once
        for svc in (sch, second.schedules):
            n.start_soon(svc.run_once, T0 + mins(1) + dt.timedelta(seconds=RETRY_SECS + 1))
    runs, jobs = await runs_and_jobs(server.services)
    assert len(runs) == 1 and len(jobs) == 1
    assert_one_job_per_fire(runs, jobs)


async def test_aborted_fire_transaction_fires_on_the_next_pass(api, server):
    """Recording the runs fails inside the fire transaction: next_run_at is not advanced either, so the next
    pass fires the same fire time once."""
    sch = server.services.schedules
    s = await sch.create(Scope(api.org_id), spec(), now=T0)
    await inject_fault(server.services, "fail_run", "BEFORE INSERT ON schedule_runs", "injected crash mid-fire")
    with pytest.raises(Exception, match="injected crash mid-fire"):
        await sch.run_once(now=T0 + mins(1))
    assert (await sch.get(Scope(api.org_id), str(s.id))).next_run_at == T0 + mins(1)
    await sql(server.services, "DROP TRIGGER fail_run ON schedule_runs")
    assert (await sch.run_once(now=T0 + mins(1) + dt.timedelta(seconds=2))).fired == 1
    runs, jobs = await runs_and_jobs(server.services)
    assert [r["fire_time"] for r in runs] == [T0 + mins(1)]
    assert_one_job_per_fire(runs, jobs)


@pytest.mark.parametrize("catch_up,expected", [("latest", 1), ("all", 10), ("skip", 0)])
async def test_catch_up_after_downtime(api, server, catch_up, expected):
    sch = server.services.schedules
    s = await sch.create(Scope(api.org_id), spec(cron_expression="0 */5 * * * *", catch_up=catch_up), now=T0)
    now = T0 + mins(50) + dt.timedelta(seconds=90)        # down for 50 minutes: 10 fires missed
    r = await sch.run_once(now=now)
    assert r.fired == expected
    runs, jobs = await runs_and_jobs(server.services)
    assert_one_job_per_fire(runs, jobs)
    if catch_up == "latest":
        assert [x["fire_time"] for x in runs] == [T0 + mins(50)]
    if catch_up == "all":
        assert [x["fire_time"] for x in runs] == [T0 + mins(5 * i) for i in range(1, 11)]
    got = await sch.get(Scope(api.org_id), str(s.id))
    assert got.next_run_at == T0 + mins(55) and got.run_count == expected


async def test_catch_up_all_is_bounded_per_pass_and_finishes(api, server):
    sch = server.services.schedules
    await sch.create(Scope(api.org_id), spec(cron_expression="* * * * * *", catch_up="all"), now=T0)
    now = T0 + dt.timedelta(seconds=250)
    first = await sch.run_once(now=now)
    assert first.fired == 100 and first.full(100)
    while (await sch.run_once(now=now)).full(100):
        pass
    runs, jobs = await runs_and_jobs(server.services)
    assert len(runs) == 250 and [r["fire_time"] for r in runs][-1] == now
    assert_one_job_per_fire(runs, jobs)


async def test_overlap_skip_and_run_status_follows_the_job(api, server):
    sch, jobs = server.services.schedules, server.services.jobs
    s = await sch.create(Scope(api.org_id), spec(overlap="skip"), now=T0)
    sid = str(s.id)
    assert (await sch.run_once(now=T0 + mins(1))).fired == 1
    (run,) = await sch.history(Scope(api.org_id), sid)
    assert run.status == "pending" and run.job_id is not None
    r = await sch.run_once(now=T0 + mins(2))                       # the job is still pending: skipped
    assert (r.fired, r.skipped) == (0, 1)
    (claimed,) = await jobs.claim(Scope(api.org_id), inputs.Claim(queue_name="cron", worker_id="w"))
    assert [h.status for h in await sch.history(Scope(api.org_id), sid)] == ["skipped", "running"]
    assert (await sch.run_once(now=T0 + mins(3))).skipped == 1     # processing is still active
    await jobs.complete(Scope(api.org_id), str(claimed.id), str(claimed.lease_id), {"ok": True})
    assert (await sch.run_once(now=T0 + mins(4))).fired == 1
    hist = await sch.history(Scope(api.org_id), sid)
    assert [h.status for h in hist] == ["pending", "skipped", "skipped", "completed"]
    assert hist[3].completed_at is not None and hist[1].job_id is None
    assert (await sch.get(Scope(api.org_id), sid)).run_count == 2
    # a failed job fails its run, with the job's error
    (c2,) = await jobs.claim(Scope(api.org_id), inputs.Claim(queue_name="cron", worker_id="w"))
    await jobs.fail(Scope(api.org_id), str(c2.id), inputs.Fail(lease_id=str(c2.lease_id), error="boom", retry=False))
    latest = (await sch.history(Scope(api.org_id), sid, limit=1))[0]
    assert latest.status == "failed" and latest.error_message == "boom"


async def test_paused_schedules_do_not_fire_and_resume_from_now(api, server):
    sch = server.services.schedules
    s = await sch.create(Scope(api.org_id), spec(cron_expression="0 * * * *"), now=T0)
    paused = await sch.pause(Scope(api.org_id), str(s.id), now=T0)
    assert paused.is_active is False and paused.next_run_at is None
    assert (await sch.run_once(now=T0 + mins(600))).total == 0
    resumed = await sch.resume(Scope(api.org_id), str(s.id), now=T0 + mins(601))
    assert resumed.is_active and resumed.next_run_at == T0 + mins(660)   # missed fires are not caught up
    job_id, at = await sch.trigger(Scope(api.org_id), str(s.id), now=T0 + mins(602))
    assert at == T0 + mins(602) and (await sch.get(Scope(api.org_id), str(s.id))).run_count == 1
