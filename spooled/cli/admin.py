"""The operator's commands (docs/operations.md "Admin CLI"): on the server's own settings (DATABASE_URL, else the
embedded PostgreSQL of the data dir) and through the same services the server uses, so every rule holds.

    spooled status [--org ORG]                      queues with counts, workers, instances and their loops
    spooled orgs list                               organizations (their ids are what --org takes)
    spooled jobs list|get|retry|cancel --org ORG
    spooled queues pause|resume --org ORG QUEUE
    spooled dlq retry --org ORG [--queue Q] [--limit N] [--batch N]   bounded batches, progress on stderr
    spooled api-keys list|create|revoke --org ORG

Every command prints a readable table (or a sentence), or with `--json` one JSON document on stdout (the
REST API's shapes where there is one). Errors are one sentence on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from typing import Any, Awaitable, Callable

import attrs

from spooled.convert import structure
from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.domain.states import JobStatus

MAX_DLQ_BATCH = 1000            # one statement per batch (the REST route's own limit)


@attrs.frozen
class Output:
    data: Any                   # what --json prints
    text: str                   # what a person reads


Command = Callable[[Any, argparse.Namespace], Awaitable[Output]]


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the admin commands on the top-level subparsers; each sets `run` (a Command)."""
    def command(parent, name: str, run: Command, help: str, org: bool = True) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        if org:
            p.add_argument("--org", required=True, help="the organization's id or slug (see `spooled orgs list`)")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    def group(name: str, help: str) -> argparse._SubParsersAction:
        p = sub.add_parser(name, help=help, description=help)
        g = p.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
        g.required = True
        return g

    p = command(sub, "status", status, "queues with job counts, workers, server instances and their loops",
                org=False)
    p.add_argument("--org", help="only this organization's queues and workers (id or slug)")

    orgs = group("orgs", "organizations")
    p = command(orgs, "list", orgs_list, "list organizations with their ids", org=False)
    p.add_argument("--plan", choices=["free", "starter", "pro", "enterprise"])

    jobs = group("jobs", "jobs of an organization")
    p = command(jobs, "list", jobs_list, "list jobs, newest first")
    p.add_argument("--queue")
    p.add_argument("--status", help="a state or a comma list of states (" + ", ".join(s.value for s in JobStatus)
                   + ")")
    p.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    for name, run, what in (("get", jobs_get, "show a job and its history"),
                            ("retry", jobs_retry, "retry a failed, dead-lettered or cancelled job"),
                            ("cancel", jobs_cancel, "cancel a pending, scheduled or processing job")):
        command(jobs, name, run, what).add_argument("job_id")

    queues = group("queues", "queues of an organization")
    p = command(queues, "pause", queues_pause, "stop handing out a queue's jobs")
    p.add_argument("queue")
    p.add_argument("--reason")
    command(queues, "resume", queues_resume, "hand out a paused queue's jobs again").add_argument("queue")

    dlq = group("dlq", "dead letters of an organization")
    p = command(dlq, "retry", dlq_retry, "send dead letters back to pending, in bounded batches")
    p.add_argument("--queue", help="only this queue's (default: every queue's)")
    p.add_argument("--limit", type=int, help="at most this many (default: all there are when it starts)")
    p.add_argument("--batch", type=int, default=MAX_DLQ_BATCH,
                   help=f"jobs per statement (1-{MAX_DLQ_BATCH}, default {MAX_DLQ_BATCH})")

    keys = group("api-keys", "API keys of an organization")
    command(keys, "list", keys_list, "list API keys (never their secrets)")
    p = command(keys, "create", keys_create, "create an API key and print it (shown only this once)")
    p.add_argument("--name", default="default")
    p.add_argument("--queues", help="comma list of the queues it may use (default: all)")
    p.add_argument("--read-only", action="store_true", help="reads only")
    p.add_argument("--rate-limit", type=int, help="its own limit, requests per minute")
    p.add_argument("--expires-at", help="RFC 3339 time it stops working")
    command(keys, "revoke", keys_revoke, "revoke an API key (its tokens stop working too)").add_argument("key_id")


# -- output ---------------------------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Columns padded to their widest cell; `-` for None."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _ago(epoch: float | None, now: float) -> str:
    if not epoch:
        return "never"
    secs = max(0.0, now - epoch)
    return f"{secs:.0f}s ago" if secs < 3600 else f"{secs / 3600:.1f}h ago"


def _views():
    from spooled.transports.http import views     # the REST API's shapes, for --json
    return views


async def _org(svc, args) -> str:
    """The organization named by --org (its id or slug), checked to exist (one sentence otherwise)."""
    return str((await svc.admin.find(args.org)).id)


async def _whole(svc, args) -> Scope:
    """All of that organization (the operator is not restricted to some queues)."""
    return Scope(await _org(svc, args))


# -- status ---------------------------------------------------------------------------------------------------
async def status(svc, args) -> Output:
    org = await _org(svc, args) if args.org else None
    svc.metrics.snapshot_secs = 0                     # count now (this is also the next /metrics snapshot)
    await svc.metrics.run_once()
    snap = svc.metrics.snapshot
    by_queue: dict[tuple[str, str], dict[str, int]] = {}
    for o, q, state, n in snap.counts:
        if org is None or o == org:
            by_queue.setdefault((o, q), {})[state] = n
    states = ("pending", "scheduled", "processing", "deadletter")
    queues = [{"org": o, "queue": q, **{s: c.get(s, 0) for s in states}} for (o, q), c in sorted(by_queue.items())]
    now = time.time()
    instances = []
    for inst in await svc.admission.instances():
        instances.append({"id": str(inst.id), "hostname": inst.hostname, "version": inst.version,
                          "started_at": inst.started_at.isoformat(), "heartbeat_at": inst.heartbeat_at.isoformat(),
                          "alive": now - inst.heartbeat_at.timestamp() <= 15, "loops": json.loads(inst.loops)})
    data: dict[str, Any] = {"queues": queues, "instances": instances,
                            "counted_at": dt.datetime.fromtimestamp(snap.taken_at, dt.timezone.utc).isoformat()}
    if org is None:
        data["workers"] = dict(snap.workers)
    else:
        data["workers"] = [_views().worker(w) for w in await svc.workers.list(Scope(org))]
    parts = [f"Queues ({'live jobs' if queues else 'no live jobs'}, counted {data['counted_at']}):"]
    if queues:
        parts.append(table(["ORG", "QUEUE", *(s.upper() for s in states)],
                           [[q["org"], q["queue"], *(q[s] for s in states)] for q in queues]))
    if org is None:
        parts.append("\nWorkers (not offline): " + (", ".join(f"{n} {s}" for s, n in sorted(snap.workers))
                                                    or "none"))
    else:
        parts.append("\nWorkers:")
        parts.append(table(["ID", "QUEUES", "STATUS", "JOBS", "LAST HEARTBEAT"],
                           [[w["id"], ",".join(w["queue_names"]), w["status"], w["current_jobs"],
                             w["last_heartbeat"]] for w in data["workers"]]) if data["workers"] else "none")
    parts.append("\nServer instances:" if instances else "\nServer instances: none heard from (is a server running?)")
    for inst in instances:
        state = "alive" if inst["alive"] else "silent"
        parts.append(f"{inst['hostname']} {inst['id']} (spooled-server {inst['version'] or '?'}, {state}, "
                     f"started {inst['started_at'][:19]}Z)")
        parts.append(table(["  LOOP", "LAST SUCCESS", "LAG", "ERRORS IN A ROW", "RUNS", "ERRORS"],
                           [["  " + name, _ago(h["last_success"], now), f"{h['lag_secs']:.1f}s",
                             h["consecutive_errors"], h["runs"], h["errors"]]
                            for name, h in sorted(inst["loops"].items())]))
    return Output(data, "\n".join(parts))


# -- organizations --------------------------------------------------------------------------------------------
async def orgs_list(svc, args) -> Output:
    views = _views()
    found, offset = [], 0
    while True:
        page, total = await svc.admin.list(plan=args.plan, limit=100, offset=offset)
        found += page
        offset += len(page)
        if not page or offset >= total:
            break
    data = [views.org_summary(o) | {"suspended": o.suspended_at is not None} for o in found]
    return Output(data, table(["ID", "SLUG", "NAME", "PLAN", "SUSPENDED", "CREATED"],
                              [[o.id, o.slug, o.name, o.plan_tier, "yes" if o.suspended_at else "no", o.created_at]
                               for o in found]) if found else "no organizations")


# -- jobs -----------------------------------------------------------------------------------------------------
async def jobs_list(svc, args) -> Output:
    org = await _whole(svc, args)
    statuses = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else None
    known = {s.value for s in JobStatus}
    bad = [s for s in statuses or () if s not in known]
    if bad:
        from spooled.domain import errors
        raise errors.invalid("status", f"unknown status {bad[0]!r}; one of {', '.join(sorted(known))}")
    jobs, more = await svc.jobs.list(org, inputs.JobFilter(queue_name=args.queue, statuses=statuses),
                                     limit=min(max(args.limit, 1), 100))
    views = _views()
    text = table(["ID", "QUEUE", "STATUS", "PRIORITY", "RETRIES", "CREATED", "LAST ERROR"],
                 [[j.id, j.queue_name, j.status, j.priority, f"{j.retry_count}/{j.max_retries}", j.created_at,
                   (j.last_error or "")[:40] or None] for j in jobs]) if jobs else "no jobs"
    return Output([views.job(j) for j in jobs], text + ("\n(more: raise --limit or filter)" if more else ""))


def _job_text(j, history=None) -> str:
    lines = [f"{k}: {_cell(v)}" for k, v in (
        ("id", j.id), ("queue", j.queue_name), ("status", j.status), ("priority", j.priority),
        ("retries", f"{j.retry_count}/{j.max_retries}"), ("created", j.created_at), ("started", j.started_at),
        ("completed", j.completed_at), ("worker", j.assigned_worker_id), ("last error", j.last_error),
        ("payload", j.payload), ("result", j.result), ("traceparent", j.traceparent))
        if v is not None]
    if history:
        lines.append("history:")
        lines.append(table(["  TIME", "EVENT", "FROM", "TO", "WORKER"],
                           [["  " + _cell(h.created_at), h.event_type, h.old_status, h.new_status, h.worker_id]
                            for h in history]))
    return "\n".join(lines)


async def jobs_get(svc, args) -> Output:
    org = await _whole(svc, args)
    j = await svc.jobs.get(org, args.job_id)
    history = await svc.jobs.history(org, args.job_id, limit=100)
    views = _views()
    return Output(views.job(j) | {"history": [views.history(h) for h in history]}, _job_text(j, history))


async def jobs_retry(svc, args) -> Output:
    j = await svc.jobs.retry(await _whole(svc, args), args.job_id)
    return Output(_views().job(j), f"job {j.id} is {j.status} again")


async def jobs_cancel(svc, args) -> Output:
    await svc.jobs.cancel(await _whole(svc, args), args.job_id)
    return Output({"id": args.job_id, "status": "cancelled"}, f"job {args.job_id} cancelled")


# -- queues ---------------------------------------------------------------------------------------------------
async def queues_pause(svc, args) -> Output:
    p = await svc.queues.pause(await _org(svc, args), args.queue, args.reason)
    return Output({"queue_name": p.name, "paused": True, "paused_at": p.paused_at.isoformat(),
                   "reason": p.pause_reason}, f"queue {p.name} paused")


async def queues_resume(svc, args) -> Output:
    secs = await svc.queues.resume(await _org(svc, args), args.queue)
    return Output({"queue_name": args.queue, "resumed": True, "paused_duration_secs": round(secs, 3)},
                  f"queue {args.queue} resumed" + (f" after {secs:.0f}s paused" if secs else " (it was not paused)"))


# -- dead letters ---------------------------------------------------------------------------------------------
async def dlq_retry(svc, args, *, progress=None) -> Output:
    """Retry up to --limit dead letters (default: as many as there are when it starts, so jobs that die again
    meanwhile are not retried in a loop), --batch per statement, with a progress line on stderr per batch."""
    org = await _whole(svc, args)
    batch = args.batch
    if not 1 <= batch <= MAX_DLQ_BATCH:
        from spooled.domain import errors
        raise errors.invalid("batch", f"must be between 1 and {MAX_DLQ_BATCH}")
    there = await svc.jobs.dlq_count(org, args.queue)
    goal = min(there, args.limit) if args.limit is not None else there
    progress = progress or _Progress(goal)
    done, t0 = 0, time.monotonic()
    while done < goal:
        spec = structure({"queue_name": args.queue, "limit": min(batch, goal - done)} if args.queue
                         else {"limit": min(batch, goal - done)}, inputs.DlqRetry)
        ids = await svc.jobs.dlq_retry(org, spec)
        if not ids:
            break                           # fewer left than counted (another operator, a purge)
        done += len(ids)
        progress(done)
    secs = time.monotonic() - t0
    return Output({"retried_count": done, "dead_letters_at_start": there, "seconds": round(secs, 3)},
                  f"retried {done} dead letter{'s' if done != 1 else ''}"
                  + (f" of queue {args.queue}" if args.queue else "") + f" in {secs:.1f}s")


class _Progress:
    """`dlq retry: 3000/100000 (3%), 1500 jobs/s` on stderr, at most twice a second and once at the end."""

    def __init__(self, goal: int, stream=None):
        self.goal, self.stream = goal, stream or sys.stderr
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and done < self.goal:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6)
        pct = 100 * done // self.goal if self.goal else 100
        print(f"dlq retry: {done}/{self.goal} ({pct}%), {rate:.0f} jobs/s", file=self.stream, flush=True)


# -- API keys -------------------------------------------------------------------------------------------------
async def keys_list(svc, args) -> Output:
    keys = await svc.orgs.list_keys(await _org(svc, args))
    views = _views()
    return Output([views.api_key(k) for k in keys],
                  table(["ID", "NAME", "PREFIX", "QUEUES", "READ ONLY", "ACTIVE", "LAST USED"],
                        [[k.id, k.name, k.key_prefix, ",".join(k.queues) or "all", "yes" if k.read_only else "no",
                          "yes" if k.is_active else "no", k.last_used_at] for k in keys]) if keys else "no API keys")


async def keys_create(svc, args) -> Output:
    org = await _org(svc, args)
    given: dict[str, Any] = {"name": args.name, "read_only": args.read_only}
    if args.queues:
        given["queues"] = [q.strip() for q in args.queues.split(",") if q.strip()]
    if args.rate_limit is not None:
        given["rate_limit"] = args.rate_limit
    if args.expires_at:
        given["expires_at"] = args.expires_at
    key, secret = await svc.admin.create_key(org, structure(given, inputs.CreateApiKey))
    return Output(_views().new_key(key, secret),
                  f"API key {key.name} ({key.id}) for organization {org}\n"
                  f"key (shown only this once): {secret}")


async def keys_revoke(svc, args) -> Output:
    await svc.orgs.revoke_key(await _org(svc, args), args.key_id)
    return Output({"id": args.key_id, "revoked": True}, f"API key {args.key_id} revoked")


async def run(settings, dsn: str, command: Command, args: argparse.Namespace) -> Output:
    """Open the database (applying the schema like the server), build the services, run the command."""
    import trio_asyncio

    from spooled.services.container import Services
    from spooled.store.db import open_database
    from spooled.store.schema import ensure_schema

    settings = attrs.evolve(settings, otel_exporter=None)     # an operator's command makes no spans
    async with trio_asyncio.open_loop():
        async with open_database(dsn, min_size=1, max_size=2, connect_timeout=settings.db_connect_timeout_secs,
                                 statement_timeout=settings.db_statement_timeout_secs) as db:
            await db.run(ensure_schema)
            return await command(Services.build(settings, db), args)
