"""The chaos scenarios. Each one starts its own server processes on a database of its own, runs the load
(`load.py`), injects its fault, keeps the load going, drains (producers stop; workers go on until every
acknowledged job is completed or the drain time runs out), and checks (`checks.py`).

`scripts/chaos` runs them all with the full profile; `tests/test_chaos.py` runs a few with the quick one.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Awaitable, Callable

import attrs
import httpx
import trio

from tests.chaos import checks, load
from tests.chaos.checks import Result
from tests.chaos.load import Grpc, Ledger, Stops, Target, WorkerSpec, now
from tests.chaos.pg import Cluster
from tests.chaos.proxy import Proxy, unix_socket, via_proxy
from tests.chaos.servers import Server, start_worker_process

QUEUE = "work"
REAPER_SECS = 1.0              # the server's lease reaper interval (Settings.reaper_interval_secs)
SHUTDOWN_GRACE_SECS = 5.0      # Settings.shutdown_grace_secs
STUCK_SLACK_SECS = 2.0         # a lease may be this late past expiry + reaper interval before it counts as stuck


@attrs.frozen
class Profile:
    load_secs: float = 6.0         # load before the fault
    after_secs: float = 6.0        # load after the fault ends
    outage_secs: float = 10.0      # PostgreSQL fast stop
    crash_secs: float = 3.0        # PostgreSQL immediate stop
    stall_secs: float = 8.0        # network stall between server and database
    refuse_secs: float = 3.0       # connections reset and refused
    lease_secs: int = 5
    rest_producers: int = 3
    grpc_producers: int = 1
    rest_workers: int = 2
    grpc_workers: int = 2
    interval: float = 0.03         # each producer, between acknowledged enqueues
    drain_secs: float = 40.0
    heartbeat_expiry: bool = True  # worker-silent waits for the heartbeat expirer (3 heartbeat intervals)


FULL = Profile()
QUICK = Profile(load_secs=2.0, after_secs=2.0, outage_secs=2.0, crash_secs=1.0, stall_secs=5.0, refuse_secs=2.0,
                rest_producers=2, grpc_producers=1, rest_workers=1, grpc_workers=1, interval=0.05,
                drain_secs=25.0, heartbeat_expiry=False)


@attrs.define
class Lab:
    """What scenarios share: a work dir (logs, records), the process registry (killed on exit), the cluster
    holding the scenario's database (needed by the PostgreSQL and network scenarios), the profile."""
    workdir: Path
    procs: list
    profile: Profile = FULL
    cluster: Cluster | None = None
    say: Callable[[str], None] = lambda text: None


class Run:
    """One scenario's state: ledger, phases, result, the overlap sampler's findings."""

    def __init__(self, lab: Lab, name: str, dsn: str):
        self.lab, self.name, self.dsn = lab, name, dsn
        self.p = lab.profile
        self.ledger = Ledger()
        self.stops = Stops()
        self.result = Result(name)
        self.overlaps: set[str] = set()
        self.started = now()
        self.key = ""

    def note(self, text: str) -> float:
        self.lab.say(f"  {now() - self.started:6.1f} s  {self.name}: {text}")
        return self.ledger.note(text)

    async def servers(self, n: int, *, dsn: str | None = None, env: dict | None = None) -> list[Server]:
        tag = self.name.replace(" ", "-")
        out = [Server(f"{tag}-{i}", dsn or self.dsn, self.lab.workdir, env) for i in range(n)]
        self.lab.procs.extend(out)
        async with trio.open_nursery() as nursery:
            for s in out:
                nursery.start_soon(s.start)
        if not self.key:
            self.key = await load.new_org(out[0].target, "chaos")
        return out

    def load(self, nursery: trio.Nursery, targets: list[Target], *, abandon: int = 0, queue: str = QUEUE) -> None:
        """Producers and workers spread over `targets`, plus the overlap sampler."""
        p, led, k, st = self.p, self.ledger, self.key, self.stops
        i = 0
        for j in range(p.rest_producers):
            nursery.start_soon(load.rest_producer, led, targets[i % len(targets)], k, f"rp{j}", queue, st, p.interval)
            i += 1
        for j in range(p.grpc_producers):
            nursery.start_soon(load.grpc_producer, led, targets[i % len(targets)], k, f"gp{j}", queue, st, p.interval)
            i += 1
        for j in range(p.rest_workers):
            spec = WorkerSpec(f"rw{j}", queue, p.lease_secs, abandon=abandon if j == 0 else 0, renew=j == 1)
            nursery.start_soon(load.rest_worker, led, targets[i % len(targets)], k, spec, st)
            i += 1
        for j in range(p.grpc_workers):
            spec = WorkerSpec(f"gw{j}", queue, p.lease_secs, abandon=abandon if j == 0 else 0, renew=j == 1)
            nursery.start_soon(load.grpc_worker, led, targets[i % len(targets)], k, spec, st)
            i += 1
        nursery.start_soon(checks.sample_overlaps, self.dsn, st.give_up, self.overlaps)

    async def drain(self) -> None:
        """Stop producing; let the workers finish every acknowledged job (or the drain time run out)."""
        self.note("draining")
        self.stops.produce.set()
        with trio.move_on_after(self.p.drain_secs):
            while True:
                ids = list(self.ledger.acked.values())
                try:
                    rows = await checks.fetch(self.dsn, "SELECT count(*) AS n FROM jobs WHERE id = ANY($1::uuid[]) "
                                                        "AND status = 'completed'", ids)
                    if rows[0]["n"] == len(ids):
                        break
                except Exception:
                    pass
                await trio.sleep(0.5)
        self.stops.work.set()
        self.stops.give_up.set()
        self.note("drained")

    async def verify(self, recover_from: float | None = None) -> Result:
        r = await checks.verify(self.result, self.dsn, self.ledger,
                                stuck_after_secs=REAPER_SECS + STUCK_SLACK_SECS, sampled_overlaps=self.overlaps)
        if recover_from is not None:
            r.recover_secs = checks.recover_after(self.ledger, recover_from)
            r.check("recovered", r.recover_secs is not None, "no acknowledged enqueue and complete after the fault")
        r.duration_secs = now() - self.started
        return r

    def calls_between(self, t0: float, t1: float) -> list[load.Call]:
        """Calls that were running at some moment in [t0, t1]."""
        return [c for c in self.ledger.calls if c.start <= t1 and c.end >= t0]


def server_up(r: Result, servers: list[Server]) -> None:
    down = [s.name for s in servers if not s.alive or s.starts != 1]
    r.check("server stayed up", not down, f"{', '.join(down)} exited or restarted")


def max_secs(calls: list[load.Call]) -> float:
    return max((c.secs for c in calls), default=0.0)


# -- long polls parked across a fault ------------------------------------------------------------------------
class Parked:
    """Long polls (REST claims and gRPC Dequeues) parked on an empty queue before a fault; after it, one job per
    poll is enqueued and each poll must get one (the LISTEN connection and the wakeups came back)."""

    def __init__(self, run: Run, target: Target, queue: str = "parked", rest: int = 2, grpc: int = 1,
                 wait_secs: float = 30.0):
        self.run, self.target, self.queue = run, target, queue
        self.n_rest, self.n_grpc, self.wait = rest, grpc, wait_secs
        self.got: list[list | None] = []

    async def park(self, nursery: trio.Nursery) -> None:
        for i in range(self.n_rest):
            nursery.start_soon(self._rest, i)
        for i in range(self.n_grpc):
            nursery.start_soon(self._grpc, i)
        await trio.sleep(0.5)      # parked (the queue is empty)

    def spec(self, name: str) -> WorkerSpec:
        return WorkerSpec(name, self.queue, lease_secs=30, batch=1, wait_secs=self.wait)

    async def _rest(self, i: int) -> None:
        async with load.rest_client(self.target, self.run.key, timeout=self.wait + 15) as client:
            calls = load.RestCalls(self.run.ledger, client)
            self.got.append(await load.work_round(self.run.ledger, calls, self.spec(f"park-r{i}"), self.run.stops))

    async def _grpc(self, i: int) -> None:
        async with Grpc(self.target, self.run.key) as g:
            calls = load.GrpcCalls(self.run.ledger, g)
            self.got.append(await load.work_round(self.run.ledger, calls, self.spec(f"park-g{i}"), self.run.stops))

    async def feed(self) -> None:
        """One job per parked poll (acknowledged like every other job)."""
        async with load.rest_client(self.target, self.run.key) as client:
            send = load.rest_enqueue(self.run.ledger, client, self.queue)
            with trio.fail_after(30):
                for i in range(self.n_rest + self.n_grpc):
                    await load.enqueue_acked(self.run.ledger, f"parked-{i}", send, self.run.stops)

    def check(self, r: Result) -> None:
        total = self.n_rest + self.n_grpc
        woken = sum(1 for g in self.got if g)
        r.check("parked long polls woke with a job", woken == total,
                f"{woken} of {total} got a job ({sum(1 for g in self.got if g is None)} failed, "
                f"{total - len(self.got)} still waiting)")


# -- scenarios -----------------------------------------------------------------------------------------------
async def server_kill(lab: Lab, dsn: str) -> Result:
    """kill -9 the server under load, restart it on the same database and ports."""
    run = Run(lab, "server kill -9", dsn)
    (srv,) = await run.servers(1)
    async with trio.open_nursery() as nursery:
        run.load(nursery, [srv.target])
        await trio.sleep(run.p.load_secs)
        run.note("kill -9")
        srv.kill()
        await srv.wait(10)
        await trio.sleep(1.0)
        t_restart = run.note("restart")
        took = await srv.start()
        run.result.figures["restart to ready"] = f"{took:.1f} s"
        await trio.sleep(run.p.after_secs)
        await run.drain()
    return await run.verify(t_restart)


async def worker_kill(lab: Lab, dsn: str) -> Result:
    """Two worker processes (REST and gRPC) killed with kill -9 in the middle of long jobs whose leases they
    keep renewing: the jobs come back once the leases run out, and other workers complete them."""
    run = Run(lab, "worker kill -9", dsn)
    (srv,) = await run.servers(1)
    files = {t: lab.workdir / f"worker-kill-{t}.jsonl" for t in ("rest", "grpc")}
    async with trio.open_nursery() as nursery:
        run.load(nursery, [srv.target])
        procs = [await start_worker_process(lab.procs, srv.target, run.key, files[t], transport=t, name=f"victim-{t}",
                                            queue=QUEUE, lease_secs=run.p.lease_secs, work_secs=600, renew=True)
                 for t in ("rest", "grpc")]
        with trio.fail_after(30):      # both hold jobs
            while not all(f.exists() and '"lease"' in f.read_text() for f in files.values()):
                await trio.sleep(0.1)
        await trio.sleep(run.p.load_secs)
        t_kill = run.note("kill -9 both workers")
        for proc in procs:
            proc.kill()
        await trio.sleep(run.p.after_secs)
        await run.drain()
    for f in files.values():
        run.ledger.load_records(f.read_text().splitlines())
    r = await run.verify()
    victims = {"victim-rest", "victim-grpc"}
    wall = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=now() - t_kill)    # t_kill, server clock
    held = {lease.job for lease in run.ledger.leases if lease.worker in victims and run.ledger.expiry(lease) > wall}
    by_others = {d.job: d.t for d in run.ledger.done if d.worker not in victims}
    back = [j for j in held if j in by_others]
    r.check("killed workers' jobs completed by others", held and len(back) == len(held),
            f"{len(back)} of {len(held)} jobs held (lease renewed) at the kill")
    if back:
        r.recover_secs = max(by_others[j] for j in back) - t_kill
    r.figures["jobs held at the kill"] = str(len(held))
    return r


async def worker_silent(lab: Lab, dsn: str) -> Result:
    """A worker that stops renewing its leases (its jobs come back when the lease runs out) and, when the
    profile allows the wait, a registered worker that stops heartbeating (its jobs come back at once when
    the heartbeat expirer declares it lost, long before its 120 s lease). Two instances, so two expirers and
    two reapers race. Afterwards both silent workers try to complete with their old leases: refused."""
    run = Run(lab, "worker stops heartbeating", dsn)
    servers = await run.servers(2)
    targets = [s.target for s in servers]
    silent: dict[str, list[load.Lease]] = {}
    told: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        run.load(nursery, targets)
        await trio.sleep(1.0)
        async with trio.open_nursery() as silence:
            silence.start_soon(_lease_silent, run, targets[0], silent, told)
            if run.p.heartbeat_expiry:
                silence.start_soon(_heartbeat_silent, run, targets[1], silent, told)
        run.stops.produce.set()    # no more jobs needed: the rest is waiting for the silent workers' jobs
        limit = 3 * 10 + 5 + 15 if run.p.heartbeat_expiry else run.p.lease_secs + 15
        with trio.move_on_after(limit):
            while not all(_completed_by_others(run.ledger, leases) for leases in silent.values()):
                await trio.sleep(0.2)
        stale = await _stale_completes(run, targets[0], silent)
        await run.drain()
    r = await run.verify()
    for who, leases in silent.items():
        back = _completed_by_others(run.ledger, leases)
        r.check(f"{who}: jobs completed by others", back, f"{len(leases)} jobs")
        if back:
            t = max(d.t for d in run.ledger.done if d.job in {lease.job for lease in leases}
                    and d.worker != leases[0].worker)
            r.figures[f"{who}: back and completed after"] = f"{t - told[who]:.1f} s"
    if "registered worker" in silent:
        jobs = {lease.job for lease in silent["registered worker"]}
        reasons = {x["reason"] for x in await checks.releases(dsn) if x["job_id"] in jobs}
        r.check("registered worker: released as 'worker lost' (before its lease ran out)",
                reasons == {"worker lost"}, f"release reasons {sorted(map(str, reasons))}")
    r.check("stale completes refused", stale == (0, sum(len(v) for v in silent.values())),
            f"{stale[0]} accepted, {stale[1]} refused")
    times = [float(v.split()[0]) for k, v in r.figures.items() if k.endswith("completed after")]
    r.recover_secs = max(times) if times else None
    return r


async def _claim_some(run: Run, client: httpx.AsyncClient, worker: str, lease_secs: int) -> list[load.Lease]:
    spec = WorkerSpec(worker, QUEUE, lease_secs=lease_secs, batch=3, wait_secs=2)
    with trio.fail_after(30):
        while not (leases := await load.RestCalls(run.ledger, client).claim(spec)):
            await trio.sleep(0.1)      # the claim long-polls; this only paces errors
    for lease in leases:
        run.ledger.leased(lease)
    return leases


async def _lease_silent(run: Run, target: Target, silent: dict, told: dict) -> None:
    async with load.rest_client(target, run.key) as client:
        leases = await _claim_some(run, client, "silent-lease", run.p.lease_secs)
        silent["lease renewer"] = leases
        expiry = max(lease.expires_at for lease in leases)
        calls = load.RestCalls(run.ledger, client)
        spec = WorkerSpec("silent-lease", QUEUE, lease_secs=run.p.lease_secs)
        for _ in range(2):         # renew twice, then fall silent
            await trio.sleep(run.p.lease_secs / 2.5)
            for lease in leases:
                at = await calls.renew(spec, lease)
                if at is not None:
                    run.ledger.extend(lease.job, lease.lease, at)
                    expiry = max(expiry, at)
        # measured from the expiry the server last told it (the server's clock is this machine's)
        told["lease renewer"] = now() + (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()
        run.note("lease renewer fell silent")


async def _heartbeat_silent(run: Run, target: Target, silent: dict, told: dict) -> None:
    async with load.rest_client(target, run.key) as client:
        worker = "silent-registered"
        outcome, data = await load.rest(run.ledger, client, "register", "POST", "/api/v1/workers/register",
                                        {"queue_name": QUEUE, "hostname": "chaos", "worker_id": worker})
        assert outcome == "ok", outcome
        leases = await _claim_some(run, client, worker, 120)
        silent["registered worker"] = leases
        for _ in range(2):
            await load.rest(run.ledger, client, "worker heartbeat", "POST", f"/api/v1/workers/{worker}/heartbeat",
                            {"current_jobs": len(leases)})
            await trio.sleep(2)
        told["registered worker"] = run.note("registered worker fell silent")


def _completed_by_others(ledger: Ledger, leases: list[load.Lease]) -> bool:
    jobs = {lease.job for lease in leases}
    worker = leases[0].worker if leases else ""
    return bool(jobs) and jobs <= {d.job for d in ledger.done if d.worker != worker}


async def _stale_completes(run: Run, target: Target, silent: dict) -> tuple[int, int]:
    """The silent workers wake up and complete with their old leases: (accepted, refused)."""
    accepted = refused = 0
    async with load.rest_client(target, run.key) as client:
        for leases in silent.values():
            for lease in leases:
                outcome, _ = await load.rest(run.ledger, client, "complete", "POST",
                                             f"/api/v1/jobs/{lease.job}/complete",
                                             {"worker_id": lease.worker, "lease_id": lease.lease})
                done = load.Done(lease.job, lease.lease, lease.worker, now())
                if outcome == "ok":
                    accepted += 1
                    run.ledger.completed(done, True)
                elif outcome == "http 409":
                    refused += 1
                    run.ledger.completed(done, False)
    return accepted, refused


async def pg_outage(lab: Lab, dsn: str, *, mode: str) -> Result:
    """PostgreSQL stopped under load (`fast`: a clean shutdown, down for the profile's outage; `immediate`: a
    crash, then crash recovery at start) and started again; the server is not restarted."""
    assert lab.cluster is not None, "the PostgreSQL scenarios need a cluster of their own"
    down_for = lab.profile.outage_secs if mode == "fast" else lab.profile.crash_secs
    run = Run(lab, f"PostgreSQL {mode} stop {down_for:g} s", dsn)
    (srv,) = await run.servers(1)
    parked = Parked(run, srv.target)
    async with trio.open_nursery() as nursery:
        run.load(nursery, [srv.target])
        nursery.start_soon(load.ready_poller, run.ledger, srv.target, run.stops.give_up)
        await trio.sleep(run.p.load_secs)
        await parked.park(nursery)
        t_stop = run.note(f"pg_ctl stop -m {mode}")
        await trio.to_thread.run_sync(lab.cluster.halt, mode)
        t_down = now()
        await trio.sleep(down_for)
        t_start = run.note("pg_ctl start")
        await trio.to_thread.run_sync(lab.cluster.start)
        run.result.figures["pg_ctl start took"] = f"{now() - t_start:.1f} s"
        await trio.sleep(1.0)
        await parked.feed()
        await trio.sleep(run.p.after_secs)
        await run.drain()
    r = await run.verify(t_start)
    server_up(r, [srv])
    parked.check(r)
    during = [c for c in run.calls_between(t_down + 0.5, t_start) if c.op != "ready" and not c.ok]
    wrong = sorted({c.outcome for c in during if c.outcome not in ("http 503", "grpc UNAVAILABLE")})
    r.check("requests during the outage: 503 / UNAVAILABLE", during and not wrong,
            f"{len(during)} failed calls; other outcomes: {', '.join(wrong) or 'none'}")
    quick = [c for c in during if c.op != "claim"]      # a claim long-polls (1 s) before it touches the database
    r.figures["slowest failed call during the outage (claims aside)"] = f"{max_secs(quick):.2f} s"
    r.check("fail fast (under the connect timeout)", max_secs(quick) < 5.0, f"slowest {max_secs(quick):.2f} s")
    ready = [c for c in run.ledger.calls if c.op == "ready"]
    down_ready = [c for c in ready if t_down < c.start < t_start and c.outcome == "http 503"]
    up_again = [c for c in ready if c.start > t_start and c.ok]
    r.check("/health/ready false during, true after", down_ready and up_again,
            f"{len(down_ready)} not-ready answers during, {len(up_again)} ready after")
    if up_again:
        r.figures["ready again after start"] = f"{min(c.end for c in up_again) - t_start:.1f} s"
    r.figures["stop took"] = f"{t_down - t_stop:.1f} s"
    return r


async def instances(lab: Lab, dsn: str, *, n: int) -> Result:
    """`n` server instances on one database under load; one worker abandons every 7th job so the reapers of
    all instances race over expired leases. Wakeups: a long poll parked on each instance is woken by an
    enqueue made through another instance."""
    run = Run(lab, f"{n} instances", dsn)
    servers = await run.servers(n)
    targets = [s.target for s in servers]
    woken: list[float | None] = []
    async with trio.open_nursery() as nursery:
        run.load(nursery, targets, abandon=7)
        run.note("load")
        await trio.sleep(run.p.load_secs + run.p.after_secs)
        run.note("wakeups across instances")
        async with trio.open_nursery() as wake:
            for i in range(n):
                wake.start_soon(_wakeup_across, run, targets[i], targets[(i + 1) % n], f"wake-{i}", woken)
        await run.drain()
    r = await run.verify()
    server_up(r, servers)
    got = [w for w in woken if w is not None]
    r.check("wakeups reach every instance", len(got) == n,
            f"{len(got)} of {n} long polls woken by an enqueue on another instance")
    if got:
        r.figures["cross-instance wakeup, slowest"] = f"{max(got) * 1000:.0f} ms"
    reaped = [x for x in await checks.releases(dsn) if x["reason"] == "lease expired"]
    r.figures["leases released by the reapers"] = str(len(reaped))
    r.check("reapers released the abandoned leases", reaped, "no lease was released")
    return r


async def _wakeup_across(run: Run, poll_at: Target, enqueue_at: Target, queue: str, woken: list) -> None:
    got: list = []

    async def poll():
        async with load.rest_client(poll_at, run.key, timeout=40) as client:
            spec = WorkerSpec(f"wake-{queue}", queue, lease_secs=30, batch=1, wait_secs=20)
            got.append(await load.work_round(run.ledger, load.RestCalls(run.ledger, client), spec, run.stops))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0.5)
        async with load.rest_client(enqueue_at, run.key) as client:
            t0 = now()
            with trio.fail_after(30):
                await load.enqueue_acked(run.ledger, f"{queue}-0", load.rest_enqueue(run.ledger, client, queue),
                                         run.stops)
    done = [d for d in run.ledger.done if d.worker == f"wake-{queue}"]
    woken.append(done[0].t - t0 if got and got[0] and done else None)


async def sigterm(lab: Lab, dsn: str) -> Result:
    """SIGTERM under load: calls in flight are answered, long polls end, the process exits 0 within its grace
    period; a new process on the same database finishes the work."""
    run = Run(lab, "SIGTERM under load", dsn)
    (srv,) = await run.servers(1)
    parked = Parked(run, srv.target, wait_secs=25)
    async with trio.open_nursery() as nursery:
        run.load(nursery, [srv.target])
        await trio.sleep(run.p.load_secs)
        await parked.park(nursery)
        t_sig = run.note("SIGTERM")
        srv.terminate()
        code = await srv.wait(SHUTDOWN_GRACE_SECS + 20)
        t_exit = now()
        await trio.sleep(0.5)
        t_restart = run.note("start again")
        await srv.start()
        await trio.sleep(run.p.after_secs)
        await run.drain()
    r = await run.verify(t_restart)
    r.check("exit code 0", code == 0, f"exit code {code}")
    r.check("exited within the grace period", t_exit - t_sig <= SHUTDOWN_GRACE_SECS + 2.0,
            f"{t_exit - t_sig:.1f} s (grace {SHUTDOWN_GRACE_SECS:g} s)")
    r.figures["SIGTERM to exit"] = f"{t_exit - t_sig:.2f} s"
    in_flight = [c for c in run.ledger.calls if c.start < t_sig - 0.05 and c.end > t_sig and c.op != "ready"]
    cut = [c for c in in_flight if c.outcome not in ("ok", "http 503", "grpc UNAVAILABLE")]
    r.check("calls in flight at SIGTERM answered", not cut,
            f"{len(in_flight)} in flight, {len(cut)} cut ({', '.join(sorted({c.outcome for c in cut}))})")
    r.figures["calls in flight at SIGTERM (long polls)"] = (
        f"{len(in_flight)} ({sum(1 for c in in_flight if c.op == 'claim')})")
    return r


CONNECT_TIMEOUT, STATEMENT_TIMEOUT = 2, 3


async def network(lab: Lab, dsn: str) -> Result:
    """A TCP proxy between the server and PostgreSQL stalls every connection (bytes stop, sockets stay open),
    then resets them all and refuses new ones for a while. With SPOOLED_DB_CONNECT_TIMEOUT_SECS=2 and
    SPOOLED_DB_STATEMENT_TIMEOUT_SECS=3 no call may take longer than those timeouts (plus the client-side
    grace of 1 s and 2 s of slack)."""
    run = Run(lab, "network stall + reset", dsn)
    proxy = Proxy(unix_socket(dsn))
    env = {"SPOOLED_DB_CONNECT_TIMEOUT_SECS": str(CONNECT_TIMEOUT),
           "SPOOLED_DB_STATEMENT_TIMEOUT_SECS": str(STATEMENT_TIMEOUT)}
    bound = CONNECT_TIMEOUT + STATEMENT_TIMEOUT + 1 + 2
    async with trio.open_nursery() as outer:
        port = await outer.start(proxy.serve)
        (srv,) = await run.servers(1, dsn=via_proxy(dsn, port), env=env)
        async with trio.open_nursery() as nursery:
            run.load(nursery, [srv.target])
            nursery.start_soon(load.ready_poller, run.ledger, srv.target, run.stops.give_up)
            await trio.sleep(run.p.load_secs)
            t_stall = run.note("stall")
            proxy.stall()
            await trio.sleep(run.p.stall_secs)
            t_resume = run.note("resume")
            proxy.resume()
            await trio.sleep(run.p.after_secs)
            t_drop = run.note("reset all, refuse new")
            dropped = proxy.drop(refuse=True)
            await trio.sleep(run.p.refuse_secs)
            t_accept = run.note("accept")
            proxy.accept()
            await trio.sleep(run.p.after_secs)
            await run.drain()
        outer.cancel_scope.cancel()
    r = await run.verify(t_accept)
    server_up(r, [srv])
    stalled = run.calls_between(t_stall, t_resume)
    slow = [c for c in stalled if c.secs > bound + (c.op == "claim") * 1.0]
    r.check(f"no call longer than the timeouts during the stall (bound {bound:g} s)", not slow,
            f"{len(slow)} slower: " + ", ".join(f"{c.op} {c.secs:.1f} s" for c in slow[:3]))
    r.figures["slowest call during the stall"] = f"{max_secs(stalled):.2f} s"
    r.figures["slowest call during the resets"] = f"{max_secs(run.calls_between(t_drop, t_accept)):.2f} s"
    failed = [c for c in run.calls_between(t_stall, t_accept) if not c.ok and c.op != "ready"]
    wrong = sorted({c.outcome for c in failed if c.outcome not in ("http 503", "grpc UNAVAILABLE", "http 409",
                                                                   "grpc FAILED_PRECONDITION")})
    r.check("failed calls are 503 / UNAVAILABLE", failed and not wrong,
            f"{len(failed)} failed; other outcomes: {', '.join(wrong) or 'none'}")
    after_stall = checks.recover_after(run.ledger, t_resume)
    r.figures["recovered after the stall"] = f"{after_stall:.1f} s" if after_stall is not None else "never"
    r.figures["connections reset"] = str(dropped)
    return r


SCENARIOS: dict[str, tuple[Callable[[Lab, str], Awaitable[Result]], bool]] = {
    # name -> (scenario, needs a cluster of its own)
    "server-kill": (server_kill, False),
    "worker-kill": (worker_kill, False),
    "worker-silent": (worker_silent, False),
    "pg-fast-stop": (functools.partial(pg_outage, mode="fast"), True),
    "pg-crash": (functools.partial(pg_outage, mode="immediate"), True),
    "instances-2": (functools.partial(instances, n=2), False),
    "instances-3": (functools.partial(instances, n=3), False),
    "sigterm": (sigterm, False),
    "network": (network, False),
}
