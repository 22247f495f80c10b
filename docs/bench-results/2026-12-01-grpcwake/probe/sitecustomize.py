"""A throwaway timeline probe for workload B over gRPC (not part of the server; nothing of it is on main's path).

Put this directory on the server's PYTHONPATH with GRPCWAKE_PROBE=<file> set, e.g.

    .venv/bin/python scripts/bench/request_cost.py --shapes grpc-process-latency --durable \
        --env PYTHONPATH=docs/bench-results/2026-12-01-grpcwake/probe --env GRPCWAKE_PROBE=/tmp/probe.txt

and the server's process wraps a few functions with `time.perf_counter_ns` stamps (name, ns), written to the file
at exit; `timeline.py` turns them into the table of docs/benchmarks.md "fifth session, grpcwake". Without
GRPCWAKE_PROBE it does nothing."""

import os

OUT = os.environ.get("GRPCWAKE_PROBE")
if OUT:
    import atexit
    import functools
    import sys
    import time

    sys.path.insert(0, os.getcwd())
    ns = time.perf_counter_ns
    STAMPS: list = []
    add = STAMPS.append

    def dump() -> None:
        with open(OUT, "w") as f:
            for name, t in STAMPS:
                f.write(f"{name} {t}\n")
    atexit.register(dump)

    def sync(owner, attr, name, after=None):
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapped(*a, **k):
            add((name, ns()))
            try:
                return fn(*a, **k)
            finally:
                if after:
                    add((after, ns()))
        setattr(owner, attr, wrapped)

    def coro(owner, attr, name, after=None):
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        async def wrapped(*a, **k):
            add((name, ns()))
            try:
                return await fn(*a, **k)
            finally:
                if after:
                    add((after, ns()))
        setattr(owner, attr, wrapped)

    import asyncpg.connection
    import grpclib.protocol

    from spooled.services import jobs, wakeups
    from spooled.store import db, jobs as store_jobs
    from spooled.transports.grpc import calls, messages, queue_service, server, streams

    import grpclib.server
    sync(grpclib.protocol.H2Protocol, "data_received", "rx", "rx.end")
    sync(grpclib.server.Handler, "accept", "h2.accept")
    coro(grpclib.server, "request_handler", "req_handler")
    coro(calls.Rpc, "unary", "rpc.unary")
    coro(queue_service.QueueService, "Enqueue", "enq.handler", "enq.reply_queued")
    coro(calls.Rpc, "_call", "trio.task")
    coro(calls.Rpc, "principal", "admit.start", "admit.end")
    coro(jobs.Jobs, "_enqueue_group", "group.unit")
    coro(store_jobs.JobStore, "_insert_claim", "store.insert_claim", "store.back_in_trio")
    coro(db.Database if hasattr(db, "Database") else db.Pool, "_unit", "aio.unit")
    coro(asyncpg.connection.Connection, "fetch", "pg.sent", "pg.answered")
    sync(wakeups.Waiter, "deliver", "waiter.deliver")
    sync(messages, "job", "msg.build")
    coro(streams._Session, "send", "trio.send")
    coro(streams, "_send_all", "aio.send_all", "aio.send_all_end")
    sync(server._CoalescedWrites, "flush" if hasattr(server._CoalescedWrites, "flush") else "_flush", "flush")
    from spooled import island
    if hasattr(island, "_finish"):
        coro(island, "_finish", "run_here.suspended")
