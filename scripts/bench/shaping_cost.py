"""The server's Python work per job of the batched path, outside the server: this process's CPU per job for what
the REST claim, the batch completion and a bulk enqueue do between the wire and the database, one checkout at a
time, alternating:

    .venv/bin/python scripts/bench/shaping_cost.py --repo /tmp/main-export --repo . --rounds 2

For each round and checkout (its own `spooled` package imported in a fresh interpreter, on a database of a
throwaway cluster with its schema, garbage collection set as the server sets it, `supervisor.tune_gc`):

  claim     `JobStore.claim` of 100 for one claimer (the statement, the driver decoding the rows, the store
            building the `Job`s), then the claim answer's JSON (`views.jobs`, or `views.job` per job where the
            checkout has no `views.jobs`) as `hot.dumps` writes it
  complete  `hot.complete_batch` of the 100 jobs just claimed (body read with `convert.parse_json`, the service's
            checks, the statement, the answer's JSON)
  insert    `JobStore.insert` of 100 plain jobs (ids only back, as a bulk call asks)

Reported: microseconds of this process's CPU per job (the driver's work included; the database's is not:
scripts/bench/statement_cost.py measures that), the median of --batches batches per round. Where
request_cost.py measures a whole server among the machine's noise, this isolates the per-job Python a change
touches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import asyncio, gc, json, sys, time, types, uuid
bench, repo, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, bench)
import statement_cost as sc                      # the throwaway cluster and the schema loading
for m in [m for m in sys.modules if m == "spooled" or m.startswith("spooled.")]:
    del sys.modules[m]                           # then the checkout's own package
sys.path.insert(0, repo)
from pathlib import Path
import orjson
import spooled
from spooled.convert import parse_json
from spooled.domain.scope import Scope
from spooled.services.jobs import Jobs
from spooled.store import jobs as store_jobs
from spooled.transports.http import hot, views
assert spooled.__file__.startswith(repo), spooled.__file__


class Db:                                        # the store's Database, on one connection, without the island
    def __init__(self, con):
        self.con = con

    async def fetch(self, stmt, **kw):
        if getattr(stmt, "scoped", None) is not None or "queues" in kw:
            sql, *args = stmt.bind(**kw)
        else:
            sql, args = stmt.sql, stmt.args(**kw)
        return await self.con.fetch(sql, *args)

    async def run(self, unit):
        return await unit(self.con)


async def main():
    cluster = sc.Cluster()
    try:
        con, org, _ = await sc.organization_database(cluster.dsn, Path(repo))
        await con.execute(sc.FILL, org, "big", 100 * (batches + 5))
        store = store_jobs.JobStore(Db(con))
        svc = types.SimpleNamespace(jobs=Jobs(store, None, quotas=None, streams=None))
        principal = types.SimpleNamespace(scope=Scope(str(org)))
        view = getattr(views, "jobs", None) or (lambda js: [views.job(j) for j in js])
        none = [None] * 100
        gc.collect(); gc.freeze(); gc.set_threshold(50_000, 20, 100)    # as supervisor.tune_gc
        out = {"claim": [], "complete": [], "insert": []}
        for i in range(batches + 5):
            c0 = time.process_time()
            (claimed,) = await store.claim(org, "big", [("w", 100, 30.0)])
            hot.dumps({"jobs": view(claimed.jobs)})
            c1 = time.process_time()
            body = orjson.dumps({"worker_id": "w", "completions": [
                {"job_id": str(j.id), "lease_id": str(j.lease_id)} for j in claimed.jobs]})
            c2 = time.process_time()
            _, answer = await hot.complete_batch(svc, principal, parse_json(body), None)
            hot.dumps(answer)
            c3 = time.process_time()
            assert len(claimed.jobs) == 100 and all(r["success"] for r in answer["results"])
            new = store_jobs.NewJobs(
                ids=[uuid.uuid4() for _ in range(100)], payloads=['{"n": 1}'] * 100, priorities=[0] * 100,
                max_retries=none, timeouts=none, tags=none, idempotency_keys=none, webhooks=none,
                webhook_secrets=none, parents=none, scheduled_ats=none, expires_ats=none, traceparents=none,
                tracestates=none)
            c4 = time.process_time()
            inserted = await store.insert(org, "fill", new, queues=[], rows=False)
            c5 = time.process_time()
            assert len(inserted.inserted) == 100
            if i >= 5:                           # the first batches prepare the statements
                out["claim"].append((c1 - c0) * 1e4)
                out["complete"].append((c3 - c2) * 1e4)
                out["insert"].append((c5 - c4) * 1e4)
        print(json.dumps(out))
    finally:
        cluster.stop()

asyncio.run(main())
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, action="append", help="a checkout to measure (repeat to compare)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batches", type=int, default=200, help="batches of 100 per round and checkout")
    a = p.parse_args()
    repos = [r.resolve() for r in (a.repo or [ROOT])]
    results: dict[Path, dict[str, list[float]]] = {r: {} for r in repos}
    for n in range(a.rounds):
        for repo in repos:
            got = json.loads(subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT / "scripts" / "bench"), str(repo), str(a.batches)],
                check=True, capture_output=True, text=True).stdout)
            line = []
            for part, values in got.items():
                median = statistics.median(values)
                results[repo].setdefault(part, []).append(median)
                line.append(f"{part} {median:5.2f}")
            print(f"round {n + 1} {repo}: " + ", ".join(line) + " us/job", flush=True)
    for repo, parts in results.items():
        print(f"== {repo}: " + ", ".join(f"{part} {statistics.median(v):5.2f} (min {min(v):5.2f})"
                                        for part, v in parts.items()) + " us/job, medians over the rounds")


if __name__ == "__main__":
    main()
