"""The CPU cost of the operations instrumentation per request, in process (no HTTP, no database):
`.venv/bin/python scripts/bench/ops_cost.py`.

Times, per call (microseconds):
- the HTTP figures of one request (`Metrics.http`: a counter and a histogram by method, route template, status),
- one gRPC call's figures (`Metrics.grpc`),
- a claim's figures (claim wait, claimed counter, one enqueue-to-start latency) and a completion's counter,
- one access log line, text and JSON, through the real formatter and filter into a stream (an in-memory sink,
  so the cost is ours, not the terminal's), and the same call with the access logger off,
- the edge wrapper's timing and the quart hook's scope stamp (a dict write and a tuple).
"""

from __future__ import annotations

import io
import logging
import time

from spooled.services import logs
from spooled.services.metrics import Metrics

N = 100_000


def per_call(fn, n: int = N) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def access_logger(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logs.TextFormatter())
    handler.addFilter(logs.ContextFilter())
    log = logging.getLogger(f"bench.access.{fmt}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, sink


def main() -> None:
    m = Metrics(None)
    org, queue = "5b1f0c1e-0000-4000-8000-000000000000", "emails"
    http = per_call(lambda: m.http("POST", "/api/v1/jobs/claim", 200, 0.0012))
    grpc = per_call(lambda: m.grpc("/spooled.v1.QueueService/Complete", "OK", 0.0009))

    def claim() -> None:
        m.claim_waited(0.002, True)
        m.series(org, queue).claimed.inc(1)
        m.queued([0.01])
    claimed = per_call(claim)
    completed = per_call(lambda: m.series(org, queue).completed.inc())

    extra = {"request_id": "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "org": org, "method": "POST",
             "route": "/api/v1/jobs/claim", "path": "/api/v1/jobs/claim", "status": 200, "duration_ms": 1.2,
             "bytes": 512, "transport": "http"}
    lines = {}
    for fmt in ("text", "json"):
        log, sink = access_logger(fmt)
        lines[fmt] = per_call(lambda: log.info("%s %s %d %.2fms", "POST", "/api/v1/jobs/claim", 200, 1.2,
                                               extra=extra), N // 4)
        sample = sink.getvalue().splitlines()[0]
    off = logging.getLogger("bench.access.off")
    off.setLevel(logging.WARNING)
    disabled = per_call(lambda: off.isEnabledFor(logging.INFO))

    scope: dict = {}
    timing = per_call(lambda: (time.perf_counter(), time.perf_counter()))
    stamp = per_call(lambda: scope.__setitem__("spooled", ("/api/v1/jobs/claim", "rid", org)))

    print(f"per call, microseconds (N = {N}):")
    print(f"  HTTP request figures (counter + histogram)      {http:6.2f}")
    print(f"  gRPC call figures                                {grpc:6.2f}")
    print(f"  claim figures (wait, claimed, 1 latency)         {claimed:6.2f}")
    print(f"  completion counter                               {completed:6.2f}")
    print(f"  access line, text                                {lines['text']:6.2f}")
    print(f"  access line, json                                {lines['json']:6.2f}")
    print(f"  access log off (the level check)                 {disabled:6.2f}")
    print(f"  edge timing (two perf_counter calls)             {timing:6.2f}")
    print(f"  route/request id/org stamp into the scope        {stamp:6.2f}")
    print(f"  a JSON access line: {sample[:160]}")


if __name__ == "__main__":
    main()
