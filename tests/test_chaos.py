"""The bounded subset of the chaos runner (`scripts/chaos`, tests/chaos/): real server processes under a
recorded load (REST and gRPC producers and workers), one fault each, then the database checked against what
the clients were told. Each asserts 0 lost, 0 completed twice, 0 stuck, no overlapping leases, plus the
scenario's own checks (see `Result.checks`). The full runner and its last figures: docs/reliability.md."""

from __future__ import annotations

import pytest
import trio

from tests.chaos import scenarios
from tests.chaos.checks import Result
from tests.chaos.pg import Cluster
from tests.chaos.servers import processes


@pytest.fixture
async def lab(aio_loop, tmp_path):
    async with processes() as procs:
        yield scenarios.Lab(tmp_path, procs, scenarios.QUICK)


@pytest.fixture
async def cluster(lab):
    """A PostgreSQL cluster of this test's own (the test stops and crashes it), not the session's."""
    c = await trio.to_thread.run_sync(Cluster)
    try:
        lab.cluster = c
        yield c
    finally:
        await trio.to_thread.run_sync(c.stop)


def assert_clean(r: Result) -> None:
    assert r.acknowledged > 50 and r.completed == r.acknowledged, (r.acknowledged, r.completed)
    assert (r.lost, r.double, r.stuck, r.overlaps) == (0, 0, 0, 0), r.examples
    assert r.passed, "\n".join(r.failures)


async def test_server_killed_under_load_and_restarted_loses_nothing(lab, dsn):
    with trio.fail_after(150):
        r = await scenarios.server_kill(lab, dsn)
    assert_clean(r)
    assert r.checks["recovered"][0]


async def test_postgres_crash_and_restart_under_load_loses_nothing(lab, cluster):
    dsn = await trio.to_thread.run_sync(cluster.create_database, "chaos")
    with trio.fail_after(150):
        r = await scenarios.pg_outage(lab, dsn, mode="immediate")
    assert_clean(r)
    for check in ("server stayed up", "requests during the outage: 503 / UNAVAILABLE",
                  "/health/ready false during, true after", "parked long polls woke with a job"):
        assert r.checks[check][0], (check, r.checks[check])


async def test_two_instances_under_load_never_share_a_job(lab, dsn):
    with trio.fail_after(150):
        r = await scenarios.instances(lab, dsn, n=2)
    assert_clean(r)
    assert r.checks["wakeups reach every instance"][0]
    assert r.checks["reapers released the abandoned leases"][0]


async def test_sigterm_under_load_answers_in_flight_calls_and_exits_cleanly(lab, dsn):
    with trio.fail_after(150):
        r = await scenarios.sigterm(lab, dsn)
    assert_clean(r)
    for check in ("exit code 0", "exited within the grace period", "calls in flight at SIGTERM answered"):
        assert r.checks[check][0], (check, r.checks[check])
