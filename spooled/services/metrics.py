"""Prometheus metrics of one server instance, served at `GET /metrics` (docs/operations.md "Metrics").

Three kinds of figures, each as cheap as its source allows:
- counted where they happen, in memory: jobs enqueued/claimed/completed/failed (services/jobs.py), claim waits
  and enqueue-to-start latencies, HTTP requests by route *template* (transports/http/edge.py) and gRPC calls by
  method (transports/grpc/server.py), loop runs (loops/periodic.py). A counter's child per label set is looked
  up once and kept (`_Series`), so the hot path pays a dict lookup and a locked add;
- read at scrape time from objects that already hold them: the loops' health, the connection pool, the LISTEN
  connection, realtime subscribers;
- job and worker counts from the **snapshot** (`run_once`, every `metrics_interval_secs`): never a table scan per
  scrape. One instance per interval recomputes it (the row lock of `metrics_snapshot`, SKIP LOCKED) and stores
  it; the others read the stored one, so N instances cost one count per interval (store/metrics.py).

Label cardinality is bounded: queue series (organization, queue) beyond `max_series` are counted under
`org="_other", queue="_other"`; HTTP routes are the app's route templates (or `unmatched`), methods the known
ones (or `other`); gRPC methods are the served ones.

Hooks for the parts built elsewhere:
- a background loop of another shape (the webhook dispatcher) reports its health with
  `health = metrics.loop("webhook dispatcher", interval)` then `health.ran(items=n, duration=secs)` after each
  pass and `health.failed()` on an error (or `with health.measure(): ...`);
- realtime streams count themselves in `metrics.realtime_subscribers.labels(kind="sse" | "websocket")` (`inc()`
  on open, `dec()` on close).
"""

from __future__ import annotations

import bisect
import contextlib
import time
from typing import Callable, Iterator

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from spooled.store.metrics import MetricsStore, Snapshot

OTHER = "_other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
CLAIM_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


@attrs.define
class LoopHealth:
    """How one background loop is doing (exported per loop; heartbeated into `server_instances.loops`)."""
    name: str
    interval: float
    started: float
    last_success: float | None = None     # Unix time of the last good pass
    last_error: float | None = None
    consecutive_errors: int = 0
    runs: int = 0
    errors: int = 0
    items: int = 0
    last_duration: float = 0.0

    def ran(self, *, items: int = 0, duration: float = 0.0, now: float | None = None) -> None:
        """A pass that succeeded (`items`: what it did, as counted by its result)."""
        self.last_success = time.time() if now is None else now
        self.consecutive_errors = 0
        self.runs += 1
        self.items += items
        self.last_duration = duration

    def failed(self, *, duration: float = 0.0, now: float | None = None) -> None:
        self.last_error = time.time() if now is None else now
        self.consecutive_errors += 1
        self.runs += 1
        self.errors += 1
        self.last_duration = duration

    @contextlib.contextmanager
    def measure(self, items: int = 0) -> Iterator[None]:
        """`with health.measure(): ...` records one pass: failed if the block raises (the error propagates)."""
        t0 = time.perf_counter()
        try:
            yield
        except BaseException:
            self.failed(duration=time.perf_counter() - t0)
            raise
        self.ran(items=items, duration=time.perf_counter() - t0)

    def lag(self, now: float) -> float:
        """Seconds past the time the next good pass was due (0 while on time)."""
        return max(0.0, now - (self.last_success or self.started) - self.interval)

    def report(self, now: float) -> dict:
        return {"interval_secs": self.interval, "last_success": self.last_success, "last_error": self.last_error,
                "consecutive_errors": self.consecutive_errors, "runs": self.runs, "errors": self.errors,
                "items": self.items, "lag_secs": round(self.lag(now), 3)}


def observe_many(h: Histogram, amounts: list[float]) -> None:
    """`h.observe(a)` for each amount, with one update of each bucket and of the sum (the claim path observes up
    to 100 latencies a call: per value, `observe` takes the histogram's locks once per bucket it touches).
    Reaches into prometheus_client's Histogram (`_upper_bounds`, `_buckets`, `_sum`; the version is pinned);
    tests/test_metrics.py checks it against `observe`."""
    if not amounts:
        return
    bounds = h._upper_bounds
    counts = [0] * len(bounds)
    for a in amounts:
        counts[bisect.bisect_left(bounds, a)] += 1     # the first bound >= a, as `observe` finds it
    h._sum.inc(sum(amounts))
    for bucket, n in zip(h._buckets, counts):
        if n:
            bucket.inc(n)


class _Series:
    """The counter children of one (organization, queue), looked up once."""
    __slots__ = ("enqueued", "claimed", "completed", "retried", "deadletter", "failed")

    def __init__(self, m: "Metrics", org: str, queue: str):
        self.enqueued = m.enqueued.labels(org, queue)
        self.claimed = m.claimed.labels(org, queue)
        self.completed = m.completed.labels(org, queue)
        self.retried = m.failed.labels(org, queue, "retry")
        self.deadletter = m.failed.labels(org, queue, "deadletter")
        self.failed = m.failed.labels(org, queue, "failed")


class Metrics:
    def __init__(self, store: MetricsStore | None, *, max_series: int = 1000, snapshot_secs: float = 15.0,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self.max_series = max_series
        self.snapshot_secs = snapshot_secs
        self.clock = clock
        self.registry = r = CollectorRegistry(auto_describe=False)
        self.enqueued = Counter("spooled_jobs_enqueued", "Jobs created (idempotent replays not counted)",
                                ("org", "queue"), registry=r)
        self.claimed = Counter("spooled_jobs_claimed", "Jobs leased to a worker", ("org", "queue"), registry=r)
        self.completed = Counter("spooled_jobs_completed", "Jobs completed by a worker", ("org", "queue"),
                                 registry=r)
        self.failed = Counter("spooled_jobs_failed", "Jobs failed by a worker, by what happened next",
                              ("org", "queue", "outcome"), registry=r)
        self.claim_wait = Histogram("spooled_claim_wait_seconds",
                                    "How long a claim (REST claim, gRPC Dequeue or stream) waited before it "
                                    "returned", ("outcome",), buckets=CLAIM_WAIT_BUCKETS, registry=r)
        self.queue_latency = Histogram("spooled_job_queue_latency_seconds",
                                       "From a job becoming due (enqueued, scheduled time or retry time) to its "
                                       "start", buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter("spooled_http_requests", "HTTP requests by route template and status",
                                     ("method", "route", "status"), registry=r)
        self.http_duration = Histogram("spooled_http_request_duration_seconds",
                                       "HTTP request durations by route template", ("method", "route"),
                                       buckets=REQUEST_BUCKETS, registry=r)
        self.grpc_requests = Counter("spooled_grpc_requests", "gRPC calls by method and status code",
                                     ("method", "status"), registry=r)
        self.grpc_duration = Histogram("spooled_grpc_request_duration_seconds", "gRPC call durations by method",
                                       ("method",), buckets=REQUEST_BUCKETS, registry=r)
        self.realtime_subscribers = Gauge("spooled_realtime_subscribers", "Open realtime streams (SSE, WebSocket)",
                                          ("kind",), registry=r)
        self.realtime_dropped = Counter("spooled_realtime_dropped", "Realtime subscribers dropped for falling "
                                        "behind (their buffer filled)", registry=r)
        self.webhook_deliveries = Counter("spooled_webhook_deliveries", "Webhook delivery attempts by outcome "
                                          "(delivered: a 2xx; failed: anything else, retried or given up)",
                                          ("outcome",), registry=r)
        self._waits = {True: self.claim_wait.labels("jobs"), False: self.claim_wait.labels("empty")}
        self._series: dict[tuple[str, str], _Series] = {}
        self._http: dict[tuple[str, str, int], tuple] = {}
        self._grpc: dict[tuple[str, str], tuple] = {}
        self.loops: dict[str, LoopHealth] = {}
        self.pool: Callable[[], object] | None = None        # () -> store.db.PoolStats
        self.listen: object | None = None                    # store.listen.ListenState
        self.snapshot: Snapshot | None = None
        r.register(_Collector(self))

    # -- counted on the hot paths -------------------------------------------------------------------------
    def series(self, org: str, queue: str) -> _Series:
        s = self._series.get((org, queue))
        if s is None:
            if len(self._series) >= self.max_series:
                key = (OTHER, OTHER)
                s = self._series.get(key) or _Series(self, *key)
            else:
                key = (org, queue)
                s = _Series(self, org, queue)
            self._series[key] = s
        return s

    def http(self, method: str, route: str, status: int, secs: float) -> None:
        if method not in HTTP_METHODS:
            method = "other"
        key = (method, route, status)
        pair = self._http.get(key)
        if pair is None:
            pair = self._http[key] = (self.http_requests.labels(method, route, str(status)),
                                      self.http_duration.labels(method, route))
        pair[0].inc()
        pair[1].observe(secs)

    def grpc(self, method: str, status: str, secs: float) -> None:
        pair = self._grpc.get((method, status))
        if pair is None:
            pair = self._grpc[(method, status)] = (self.grpc_requests.labels(method, status),
                                                   self.grpc_duration.labels(method))
        pair[0].inc()
        pair[1].observe(secs)

    def claim_waited(self, secs: float, got_jobs: bool) -> None:
        self._waits[got_jobs].observe(secs)

    def queued(self, secs: list[float]) -> None:
        """One claim's queue latencies (negative ones, a clock step, count as 0), observed as a batch."""
        observe_many(self.queue_latency, [s if s > 0 else 0.0 for s in secs])

    # -- loops --------------------------------------------------------------------------------------------
    def loop(self, name: str, interval: float) -> LoopHealth:
        """The health record of a background loop (created on first use; one per name)."""
        health = self.loops.get(name)
        if health is None:
            health = self.loops[name] = LoopHealth(name, interval, self.clock())
        return health

    def loops_report(self) -> dict:
        """Every loop's health, as heartbeated into `server_instances.loops` (read by `spooled status`)."""
        now = self.clock()
        return {name: h.report(now) for name, h in self.loops.items()}

    # -- the snapshot -------------------------------------------------------------------------------------
    async def run_once(self, now=None, limit: int = 0) -> "SnapshotResult":
        """Refresh the job and worker counts: recompute them if no instance did within `snapshot_secs`,
        else read the stored ones."""
        assert self._store is not None
        self.snapshot = await self._store.snapshot(self.snapshot_secs)
        return SnapshotResult(self.snapshot.recomputed)


@attrs.frozen
class SnapshotResult:
    recomputed: bool

    @property
    def total(self) -> int:
        return 0        # routine: nothing worth a log line

    def full(self, limit: int) -> bool:
        return False


class _Collector:
    """Figures read at scrape time: the snapshot's counts, loop health, the pool and the LISTEN connection."""

    def __init__(self, m: Metrics):
        self.m = m

    def describe(self):
        return []

    def collect(self):
        m, now = self.m, self.m.clock()
        yield from self._snapshot(m)
        last = GaugeMetricFamily("spooled_loop_last_success_timestamp_seconds",
                                 "Unix time of the loop's last good pass (0: none yet)", labels=("loop",))
        lag = GaugeMetricFamily("spooled_loop_lag_seconds",
                                "Seconds the loop's next good pass is overdue (0 while on time)", labels=("loop",))
        errs = GaugeMetricFamily("spooled_loop_consecutive_errors", "Failed passes since the last good one",
                                 labels=("loop",))
        dur = GaugeMetricFamily("spooled_loop_last_duration_seconds", "Duration of the loop's last pass",
                                labels=("loop",))
        runs = CounterMetricFamily("spooled_loop_runs", "Passes of the loop, by outcome", labels=("loop", "outcome"))
        items = CounterMetricFamily("spooled_loop_items", "What the loop's passes did (jobs reaped, schedules "
                                    "fired, ...)", labels=("loop",))
        for name, h in m.loops.items():
            last.add_metric([name], h.last_success or 0.0)
            lag.add_metric([name], h.lag(now))
            errs.add_metric([name], h.consecutive_errors)
            dur.add_metric([name], h.last_duration)
            runs.add_metric([name, "ok"], h.runs - h.errors)
            runs.add_metric([name, "error"], h.errors)
            items.add_metric([name], h.items)
        yield from (last, lag, errs, dur, runs, items)
        if m.pool is not None:
            p = m.pool()
            conns = GaugeMetricFamily("spooled_db_pool_connections", "Database pool connections by state",
                                      labels=("state",))
            conns.add_metric(["in_use"], p.in_use)
            conns.add_metric(["idle"], p.idle)
            yield conns
            yield GaugeMetricFamily("spooled_db_pool_max_connections", "Pool size limit", value=p.max_size)
            yield GaugeMetricFamily("spooled_db_pool_waiting", "Units of work waiting for a connection",
                                    value=p.waiting)
            yield CounterMetricFamily("spooled_db_connections_opened", "Connections opened", value=p.opened)
            yield CounterMetricFamily("spooled_db_connections_discarded",
                                      "Connections closed after an error or a cancellation", value=p.discarded)
        if m.listen is not None:
            s = m.listen
            yield GaugeMetricFamily("spooled_listen_connected", "1 while the LISTEN connection is up",
                                    value=1 if s.connected else 0)
            yield CounterMetricFamily("spooled_listen_reconnects", "LISTEN connections re-established",
                                      value=s.reconnects)
            yield CounterMetricFamily("spooled_listen_notifications", "Notifications received",
                                      value=s.notifications)

    def _snapshot(self, m: Metrics):
        snap = m.snapshot
        if snap is None:
            return
        jobs = GaugeMetricFamily("spooled_jobs", "Jobs by organization, queue and live state (cluster-wide, from "
                                 "the snapshot: every instance reports the same figures)",
                                 labels=("org", "queue", "state"))
        for org, queue, state, n in _capped(snap.counts, m.max_series):
            jobs.add_metric([org, queue, state], n)
        yield jobs
        workers = GaugeMetricFamily("spooled_workers", "Registered workers that are not offline, by status "
                                    "(cluster-wide, from the snapshot)", labels=("status",))
        for status, n in snap.workers:
            workers.add_metric([status], n)
        yield workers
        yield GaugeMetricFamily("spooled_metrics_snapshot_timestamp_seconds",
                                "When the job and worker counts were computed (Unix time)", value=snap.taken_at)


def _capped(counts: list[tuple[str, str, str, int]], max_series: int) -> list[tuple[str, str, str, int]]:
    """The biggest (organization, queue) series, the rest summed per state under `_other`."""
    totals: dict[tuple[str, str], int] = {}
    for org, queue, _state, n in counts:
        totals[(org, queue)] = totals.get((org, queue), 0) + n
    if len(totals) <= max_series:
        return counts
    keep = set(sorted(totals, key=totals.__getitem__, reverse=True)[:max_series])
    out, other = [], {}
    for org, queue, state, n in counts:
        if (org, queue) in keep:
            out.append((org, queue, state, n))
        else:
            other[state] = other.get(state, 0) + n
    return out + [(OTHER, OTHER, state, n) for state, n in sorted(other.items())]
