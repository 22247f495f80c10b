"""The load of a chaos scenario: producers that record every acknowledged enqueue, workers that record every
claim and every acknowledged complete (with its lease), over REST (httpx) and gRPC (grpclib, in the one
trio_asyncio loop). Every call is recorded in the `Ledger` with its outcome and duration; the checks compare
the ledger with the database afterwards.

Producers send an idempotency key with every job and resend the same key after any error until it is
acknowledged, so a retried enqueue never makes a second job. Workers retry a complete after an error with the
same lease (a replay is idempotent) until the lease has surely run out; a complete refused because the lease
expired is recorded as such (the job comes back to another worker).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, Callable

import attrs
import httpx
import trio
import trio_asyncio
from google.protobuf import struct_pb2
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub

MAX_RETRIES = 25       # jobs survive many lost leases in a scenario instead of dead-lettering
BACKOFF_MAX = 1.0


def now() -> float:
    """One clock for the runner and its worker subprocesses (CLOCK_MONOTONIC is system-wide)."""
    return time.monotonic()


@attrs.frozen
class Target:
    """Where clients talk to: one server instance."""
    http: str          # http://127.0.0.1:port
    grpc: str          # 127.0.0.1:port


@attrs.frozen
class Call:
    op: str            # enqueue, claim, complete, heartbeat, ready, ...
    transport: str     # rest, grpc
    start: float
    end: float
    outcome: str       # "ok", "http 503", "grpc UNAVAILABLE", "ConnectError", ...
    target: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def secs(self) -> float:
        return self.end - self.start


@attrs.frozen
class Lease:
    job: str
    lease: str
    worker: str
    t: float                       # runner clock, when the claim was answered
    started_at: dt.datetime        # server clock (job_history 'started' created_at)
    expires_at: dt.datetime        # server clock, as told to the worker (heartbeats extend it)


@attrs.frozen
class Done:
    job: str
    lease: str
    worker: str
    t: float


EXPECTED = {"ok", "http 409"}      # 409: a complete refused because the lease expired (fencing at work)


def unexpected(outcome: str) -> bool:
    """A response no fault may cause: a 5xx other than 503, another 4xx, INTERNAL/UNKNOWN... (connection
    errors and 503/UNAVAILABLE are what faults are allowed to cause)."""
    if outcome.startswith("http "):
        code = int(outcome.split()[1])
        return code not in (200, 201, 409, 503)
    if outcome.startswith("grpc "):
        return outcome.split()[1] not in ("UNAVAILABLE", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED")
    return outcome.startswith("bad ")


class Ledger:
    """Everything the clients saw. `sink`, when given, also receives every claim/complete record as a dict (a
    worker subprocess writes them to a file, line by line, so a kill -9 loses only what was never acked)."""

    def __init__(self, sink: Callable[[dict], None] | None = None):
        self.acked: dict[str, str] = {}            # idempotency key -> job id
        self.acked_at: dict[str, float] = {}       # job id -> when first acknowledged
        self.key_conflicts: list[tuple[str, str, str]] = []
        self.leases: list[Lease] = []
        self.extended: dict[tuple[str, str], dt.datetime] = {}   # (job, lease) -> latest acked expiry
        self.done: list[Done] = []
        self.refused: list[Done] = []              # completes refused: lease expired
        self.calls: list[Call] = []
        self.notes: list[tuple[float, str]] = []   # fault markers
        self.sink = sink

    # -- recording -----------------------------------------------------------------------------------
    def call(self, op: str, transport: str, start: float, outcome: str, target: str = "") -> None:
        self.calls.append(Call(op, transport, start, now(), outcome, target))

    def note(self, text: str) -> float:
        t = now()
        self.notes.append((t, text))
        return t

    def enqueued(self, key: str, job_id: str) -> None:
        old = self.acked.get(key)
        if old is not None and old != job_id:
            self.key_conflicts.append((key, old, job_id))
            return
        self.acked[key] = job_id
        self.acked_at.setdefault(job_id, now())

    def leased(self, lease: Lease) -> None:
        self.leases.append(lease)
        if self.sink:
            self.sink({"k": "lease", "job": lease.job, "lease": lease.lease, "worker": lease.worker, "t": lease.t,
                       "started_at": lease.started_at.isoformat(), "expires_at": lease.expires_at.isoformat()})

    def extend(self, job: str, lease: str, expires_at: dt.datetime) -> None:
        key = (job, lease)
        if key not in self.extended or self.extended[key] < expires_at:
            self.extended[key] = expires_at
        if self.sink:
            self.sink({"k": "extend", "job": job, "lease": lease, "expires_at": expires_at.isoformat()})

    def completed(self, d: Done, accepted: bool) -> None:
        (self.done if accepted else self.refused).append(d)
        if self.sink:
            self.sink({"k": "done" if accepted else "refused", "job": d.job, "lease": d.lease, "worker": d.worker,
                       "t": d.t})

    def load_records(self, lines: list[str]) -> None:
        """Merge what a worker subprocess wrote (its claims, extensions and completes)."""
        for line in lines:
            try:
                r = json.loads(line)
            except ValueError:
                continue    # a line cut by kill -9
            if r["k"] == "lease":
                self.leases.append(Lease(r["job"], r["lease"], r["worker"], r["t"],
                                         dt.datetime.fromisoformat(r["started_at"]),
                                         dt.datetime.fromisoformat(r["expires_at"])))
            elif r["k"] == "extend":
                key = (r["job"], r["lease"])
                at = dt.datetime.fromisoformat(r["expires_at"])
                if key not in self.extended or self.extended[key] < at:
                    self.extended[key] = at
            elif r["k"] in ("done", "refused"):
                d = Done(r["job"], r["lease"], r["worker"], r["t"])
                (self.done if r["k"] == "done" else self.refused).append(d)

    # -- reading -------------------------------------------------------------------------------------
    def expiry(self, lease: Lease) -> dt.datetime:
        return max(lease.expires_at, self.extended.get((lease.job, lease.lease), lease.expires_at))

    def first_ok_after(self, op: str, t: float) -> float | None:
        times = [c.end for c in self.calls if c.op == op and c.ok and c.start >= t]
        return min(times) if times else None


# -- REST ----------------------------------------------------------------------------------------------------
def rest_client(target: Target, key: str, timeout: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=target.http, headers={"Authorization": f"Bearer {key}"},
                             timeout=httpx.Timeout(timeout, connect=3.0))


async def rest(ledger: Ledger, client: httpx.AsyncClient, op: str, method: str, path: str,
               body: Any = None, timeout: float | None = None) -> tuple[str, Any]:
    """One REST call, recorded: (outcome, parsed body or None)."""
    start = now()
    kw: dict = {"json": body} if body is not None else {}
    if timeout is not None:
        kw["timeout"] = httpx.Timeout(timeout, connect=3.0)
    try:
        r = await client.request(method, path, **kw)
    except (httpx.HTTPError, OSError) as exc:
        outcome, data = type(exc).__name__, None
    else:
        outcome = "ok" if r.status_code in (200, 201) else f"http {r.status_code}"
        try:
            data = r.json()
        except ValueError:
            outcome, data = f"bad {r.status_code} not JSON", None
    ledger.call(op, "rest", start, outcome, str(client.base_url))
    return outcome, data


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- gRPC ----------------------------------------------------------------------------------------------------
class Grpc:
    """A grpclib channel to one instance (reconnects by itself after the server comes back)."""

    def __init__(self, target: Target, key: str):
        self.target, self.md = target, {"x-api-key": key}
        self.channel: Channel | None = None
        self.stub: QueueServiceStub | None = None

    async def __aenter__(self) -> "Grpc":
        host, port = self.target.grpc.rsplit(":", 1)

        async def make():
            return Channel(host, int(port))
        self.channel = await trio_asyncio.aio_as_trio(make)()
        self.stub = QueueServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.channel is not None:
            channel = self.channel

            async def close():
                channel.close()
            with trio.CancelScope(shield=True):
                await trio_asyncio.aio_as_trio(close)()

    async def call(self, ledger: Ledger, op: str, method: str, request, timeout: float = 10.0):
        start = now()
        try:
            reply = await trio_asyncio.aio_as_trio(getattr(self.stub, method))(request, metadata=self.md,
                                                                               timeout=timeout)
        except GRPCError as exc:
            outcome, reply = f"grpc {exc.status.name}", None
        except Exception as exc:   # connection refused/reset, stream terminated, asyncio.TimeoutError
            outcome, reply = type(exc).__name__, None
        else:
            outcome = "ok"
        ledger.call(op, "grpc", start, outcome, self.target.grpc)
        return outcome, reply


def struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


# -- producers -----------------------------------------------------------------------------------------------
@attrs.define
class Stops:
    """Phases of a scenario's load: producers stop at `produce`; workers at `work`; retries give up at `give_up`."""
    produce: trio.Event = attrs.Factory(trio.Event)
    work: trio.Event = attrs.Factory(trio.Event)
    give_up: trio.Event = attrs.Factory(trio.Event)


async def _backoff(delay: float) -> float:
    await trio.sleep(delay)
    return min(delay * 2, BACKOFF_MAX)


async def enqueue_acked(ledger: Ledger, ikey: str, send, stops: Stops) -> str | None:
    """`send(ikey)` (the job id, or None after an error) until acknowledged, resending the same idempotency key
    with backoff; the acknowledged id (None once `stops.give_up` is set first)."""
    delay = 0.05
    while not stops.give_up.is_set():
        job_id = await send(ikey)
        if job_id is not None:
            ledger.enqueued(ikey, job_id)
            return job_id
        delay = await _backoff(delay)
    return None


async def _produce(ledger: Ledger, name: str, stops: Stops, interval: float, send) -> None:
    n = 0
    while not stops.produce.is_set():
        await enqueue_acked(ledger, f"{name}-{n}", send, stops)
        n += 1
        await trio.sleep(interval)


def rest_enqueue(ledger: Ledger, client: httpx.AsyncClient, queue: str):
    """A `send` for `enqueue_acked` over REST."""
    async def send(ikey: str) -> str | None:
        outcome, data = await rest(ledger, client, "enqueue", "POST", "/api/v1/jobs", {
            "queue_name": queue, "payload": {"key": ikey}, "idempotency_key": ikey, "max_retries": MAX_RETRIES})
        return data["id"] if outcome == "ok" else None
    return send


async def rest_producer(ledger: Ledger, target: Target, key: str, name: str, queue: str, stops: Stops,
                        interval: float) -> None:
    async with rest_client(target, key) as client:
        await _produce(ledger, name, stops, interval, rest_enqueue(ledger, client, queue))


async def grpc_producer(ledger: Ledger, target: Target, key: str, name: str, queue: str, stops: Stops,
                        interval: float) -> None:
    async with Grpc(target, key) as g:
        async def send(ikey: str) -> str | None:
            outcome, reply = await g.call(ledger, "enqueue", "Enqueue", pb.EnqueueRequest(
                queue_name=queue, payload=struct({"key": ikey}), idempotency_key=ikey, max_retries=MAX_RETRIES))
            return reply.job_id if outcome == "ok" else None
        await _produce(ledger, name, stops, interval, send)


# -- workers -------------------------------------------------------------------------------------------------
@attrs.frozen
class WorkerSpec:
    name: str
    queue: str
    lease_secs: int = 5
    batch: int = 5
    work_secs: float = 0.01        # per job
    wait_secs: float = 1.0         # long poll of each claim
    abandon: int = 0               # every n-th job is claimed and never completed (its lease must run out)
    renew: bool = False            # renew the lease while working (see _work)


class RestCalls:
    """A worker's calls over REST (claim with a long poll, renew, complete), each recorded in the ledger."""

    def __init__(self, ledger: Ledger, client: httpx.AsyncClient):
        self.ledger, self.client = ledger, client

    async def claim(self, spec: WorkerSpec) -> list[Lease] | None:
        outcome, data = await rest(self.ledger, self.client, "claim", "POST", "/api/v1/jobs/claim", {
            "queue_name": spec.queue, "worker_id": spec.name, "limit": spec.batch,
            "wait_secs": spec.wait_secs, "lease_duration_secs": spec.lease_secs})
        if outcome != "ok":
            return None
        return [Lease(j["id"], j["lease_id"], spec.name, now(), parse_time(j["started_at"]),
                      parse_time(j["lease_expires_at"])) for j in data["jobs"]]

    async def renew(self, spec: WorkerSpec, lease: Lease) -> dt.datetime | None:
        outcome, data = await rest(self.ledger, self.client, "heartbeat", "POST",
                                   f"/api/v1/jobs/{lease.job}/heartbeat",
                                   {"worker_id": spec.name, "lease_id": lease.lease,
                                    "lease_duration_secs": spec.lease_secs})
        return parse_time(data["lease_expires_at"]) if outcome == "ok" else None

    async def complete(self, spec: WorkerSpec, lease: Lease) -> str:
        outcome, _ = await rest(self.ledger, self.client, "complete", "POST", f"/api/v1/jobs/{lease.job}/complete",
                                {"worker_id": spec.name, "lease_id": lease.lease, "result": {"by": spec.name}})
        return outcome


class GrpcCalls:
    """The same over gRPC: Dequeue (held up to the wait), RenewLease, Complete."""

    def __init__(self, ledger: Ledger, g: Grpc):
        self.ledger, self.g = ledger, g

    async def claim(self, spec: WorkerSpec) -> list[Lease] | None:
        outcome, reply = await self.g.call(self.ledger, "claim", "Dequeue", pb.DequeueRequest(
            queue_name=spec.queue, worker_id=spec.name, lease_duration_secs=spec.lease_secs,
            batch_size=spec.batch, wait_ms=int(spec.wait_secs * 1000)), timeout=spec.wait_secs + 10)
        if outcome != "ok":
            return None
        return [Lease(j.id, j.lease_id, spec.name, now(), j.started_at.ToDatetime(dt.timezone.utc),
                      j.lease_expires_at.ToDatetime(dt.timezone.utc)) for j in reply.jobs]

    async def renew(self, spec: WorkerSpec, lease: Lease) -> dt.datetime | None:
        outcome, reply = await self.g.call(self.ledger, "heartbeat", "RenewLease", pb.RenewLeaseRequest(
            job_id=lease.job, worker_id=spec.name, lease_id=lease.lease, extension_secs=spec.lease_secs))
        return reply.new_expires_at.ToDatetime(dt.timezone.utc) if outcome == "ok" and reply.success else None

    async def complete(self, spec: WorkerSpec, lease: Lease) -> str:
        outcome, _ = await self.g.call(self.ledger, "complete", "Complete", pb.CompleteRequest(
            job_id=lease.job, worker_id=spec.name, lease_id=lease.lease, result=struct({"by": spec.name})))
        return outcome


async def work_round(ledger: Ledger, calls: RestCalls | GrpcCalls, spec: WorkerSpec, stops: Stops,
                     seen: list[int] | None = None) -> list[Lease] | None:
    """One claim (a long poll of `spec.wait_secs`) and the work and complete of each job it got; the leases
    (None when the claim failed)."""
    leases = await calls.claim(spec)
    if leases is None:
        return None
    for lease in leases:
        ledger.leased(lease)
    for lease in leases:
        if _abandoned(spec, seen, stops):
            continue
        await _work(spec, lambda: _renew(ledger, calls, spec, lease))
        await _complete(ledger, lease, spec, stops, lambda: calls.complete(spec, lease))
    return leases


async def _renew(ledger: Ledger, calls: RestCalls | GrpcCalls, spec: WorkerSpec, lease: Lease) -> None:
    expires = await calls.renew(spec, lease)
    if expires is not None:
        ledger.extend(lease.job, lease.lease, expires)


async def _work_loop(ledger: Ledger, calls: RestCalls | GrpcCalls, spec: WorkerSpec, stops: Stops) -> None:
    seen = [0]
    delay = 0.05
    while not stops.work.is_set():
        if await work_round(ledger, calls, spec, stops, seen) is None:
            delay = await _backoff(delay)
        else:
            delay = 0.05


async def rest_worker(ledger: Ledger, target: Target, key: str, spec: WorkerSpec, stops: Stops) -> None:
    async with rest_client(target, key, timeout=spec.wait_secs + 10) as client:
        await _work_loop(ledger, RestCalls(ledger, client), spec, stops)


async def grpc_worker(ledger: Ledger, target: Target, key: str, spec: WorkerSpec, stops: Stops) -> None:
    async with Grpc(target, key) as g:
        await _work_loop(ledger, GrpcCalls(ledger, g), spec, stops)


def _abandoned(spec: WorkerSpec, seen: list[int] | None, stops: Stops) -> bool:
    """Whether to abandon this job (only while jobs are produced: the drain needs no more expired leases)."""
    if seen is None or not spec.abandon or stops.produce.is_set():
        return False
    seen[0] += 1
    return seen[0] % spec.abandon == 0


async def _work(spec: WorkerSpec, renew) -> None:
    """Work on a job for `spec.work_secs`; a renewing worker renews the lease halfway (short jobs) or every
    third of a lease (long ones)."""
    if not spec.renew:
        await trio.sleep(spec.work_secs)
        return
    deadline = now() + spec.work_secs
    step = spec.lease_secs / 3
    await trio.sleep(min(spec.work_secs / 2, step))
    await renew()
    while now() + step < deadline:
        await trio.sleep(step)
        await renew()
    await trio.sleep(max(0.0, deadline - now()))


async def _complete(ledger: Ledger, lease: Lease, spec: WorkerSpec, stops: Stops, send) -> None:
    """Send the complete until it is acknowledged or refused; after errors, resend with the same lease until
    the lease has surely run out (then the job is someone else's)."""
    give_up = now() + spec.lease_secs + 2      # the lease was taken or renewed at most that long ago
    delay = 0.05
    while True:
        outcome = await send()
        if outcome == "ok":
            ledger.completed(Done(lease.job, lease.lease, spec.name, now()), True)
            return
        if outcome in ("http 409", "grpc FAILED_PRECONDITION"):
            ledger.completed(Done(lease.job, lease.lease, spec.name, now()), False)
            return
        if now() > give_up or stops.give_up.is_set():
            return
        delay = await _backoff(delay)


# -- probes --------------------------------------------------------------------------------------------------
async def ready_poller(ledger: Ledger, target: Target, stop: trio.Event, interval: float = 0.2) -> None:
    """GET /health/ready every `interval` (recorded as op "ready")."""
    async with httpx.AsyncClient(base_url=target.http, timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        while not stop.is_set():
            await rest(ledger, client, "ready", "GET", "/health/ready")
            await trio.sleep(interval)


async def new_org(target: Target, name: str) -> str:
    """Create an organization (open registration): its API key."""
    async with httpx.AsyncClient(base_url=target.http, timeout=10) as client:
        r = await client.post("/api/v1/organizations", json={"name": name})
        r.raise_for_status()
        return r.json()["api_key"]["key"]
