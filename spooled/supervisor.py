"""The single owner of the nurseries (design.md "Shape").

    trio_asyncio loop (opened by `run`, or by the test rig)
    └─ pool (closes last)
       └─ core nursery: LISTEN pump, lease reaper, heartbeat expirer, scheduler, instance heartbeat, quota sync,
          │             metrics snapshot, realtime listener registration, retention, mailer, webhook dispatcher
          └─ edge nursery: hypercorn (REST, SSE, WebSocket), gRPC server (grpclib)
Shutdown (the `shutting_down` event, set on SIGTERM/SIGINT): long polls end, realtime streams close (WebSocket
1001), hypercorn stops accepting and drains under `shutdown_grace_secs`, then the core loops are cancelled (a
delivery cut off mid-send is sent again once its lease runs out) and the pool closes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from functools import partial
from typing import Callable

import attrs
import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from spooled import island
from spooled.domain.errors import DomainError
from spooled.loops import dispatcher as dispatcher_loop
from spooled.loops import periodic
from spooled.services.container import Services
from spooled.settings import ConfigError, Settings
from spooled.store import listen
from spooled.store.db import open_database
from spooled.store.schema import ensure_schema
from spooled.transports.grpc import server as grpc_server
from spooled.transports.http import connections
from spooled.transports.http.app import create_app
from spooled.transports.http.connections import ConnectionLimits, Connections, GuardedConfig
from spooled.transports.http.edge import EdgeApp, http_observer, json_protocol_errors
from spooled.transports.http.fastpath import FastPath
from spooled.transports.http.lane import HotLane

log = logging.getLogger(__name__)


@attrs.frozen
class Running:
    """What `serve` reports once it is ready: the real addresses (port 0 resolved) and the services."""
    http_url: str
    grpc_address: str | None
    services: Services
    http_connections: Connections | None = None    # the REST server's open connections (limits, tests)


def _hypercorn_config(settings: Settings, conns: Connections) -> HypercornConfig:
    config = GuardedConfig()
    host = f"[{settings.http_host}]" if ":" in settings.http_host else settings.http_host
    config.bind = [f"{host}:{settings.http_port}"] if settings.listen_fds is None else [f"fd://{settings.listen_fds[0]}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = settings.shutdown_grace_secs
    config.keep_alive_timeout = settings.keep_alive_secs
    config.h11_max_incomplete_size = 64 * 1024
    config.backlog = 1024
    config.connections = conns
    return config


def _connection_limits(settings: Settings) -> Connections:
    return Connections(ConnectionLimits(max_connections=settings.max_connections,
                                        header_timeout_secs=settings.header_timeout_secs,
                                        body_timeout_secs=settings.body_timeout_secs))


def raise_open_files_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards `wanted` (within the hard limit): each connection holds one.
    Best effort: a limit that cannot be raised is logged, and connections past it wait in the backlog."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            if target < wanted:
                log.warning("open files are limited to %d (ulimit -n): fewer than SPOOLED_MAX_CONNECTIONS "
                            "allows", target)
    except (ImportError, ValueError, OSError) as exc:
        log.warning("could not raise the open files limit: %s", exc)


# Loggers that print request headers (credentials included) at DEBUG: hpack (under grpclib's h2) logs every
# decoded header, `x-api-key` and `authorization` among them. Kept at INFO whatever SPOOLED_LOG_LEVEL says.
HEADER_LOGGERS = ("hpack",)


async def serve(settings: Settings, dsn: str, *, shutdown: trio.Event | None = None,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run one server instance until `shutdown` is set. A trio_asyncio loop must already be open."""
    for name in HEADER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
    async with open_database(dsn, min_size=settings.pool_min_size, max_size=settings.pool_max_size,
                             connect_timeout=settings.db_connect_timeout_secs,
                             statement_timeout=settings.db_statement_timeout_secs) as db:
        applied = await db.run(ensure_schema)
        if applied.fresh:
            log.info("applied schema.sql to an empty database")
        elif applied:
            log.info("applied schema migrations %s", ", ".join(map(str, applied.applied)))
        svc = Services.build(settings, db)
        if shutdown is not None:
            svc.shutting_down = shutdown
        try:
            await _serve(settings, dsn, svc, task_status)
        finally:
            await svc.sender.aclose()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio.to_thread.run_sync(svc.tracing.shutdown, abandon_on_cancel=True)
    log.info("stopped (peak RSS %.0f MiB)", peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB); logged at exit for the benchmarks."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loops(settings: Settings, svc: Services) -> list[tuple[str, Callable, float, int]]:
    """The periodic loops: (name, run_once, interval, limit). Their health is `svc.metrics.loops[name]`."""
    return [
        ("lease reaper", svc.maintenance.run_once, settings.reaper_interval_secs, 1000),
        ("heartbeat expirer", svc.workers.expire, settings.heartbeat_check_interval_secs, 100),
        ("scheduler", svc.schedules.run_once, settings.scheduler_interval_secs, 100),
        ("instance heartbeat", svc.admission.run_once, settings.instance_heartbeat_secs, 1),
        ("quota sync", svc.quotas.run_once, settings.quota_sync_secs, 10_000),
        ("metrics snapshot", svc.metrics.run_once, settings.metrics_interval_secs, 1),
        ("realtime listener registration", svc.broadcaster.refresh, svc.broadcaster.ttl_secs / 4, 0),
        ("retention", svc.retention.run_once, settings.retention_interval_secs, 1000),
    ]


async def _serve(settings: Settings, dsn: str, svc: Services, task_status) -> None:
    async with trio.open_nursery() as core:
        state = svc.metrics.listen = listen.ListenState()
        await core.start(partial(listen.pump, dsn, {
            listen.JOBS: listen.Channel(svc.wakeups.handle, svc.wakeups.notify_all),
            listen.EVENTS: listen.Channel(svc.broadcaster.handle, svc.broadcaster.resync),
            listen.WEBHOOKS: listen.Channel(svc.dispatcher.wake, svc.dispatcher.wake),
        }, timeout=settings.db_connect_timeout_secs, state=state))
        for name, run_once, interval, limit in loops(settings, svc):
            await core.start(partial(periodic.run, name, run_once, interval, limit=limit,
                                     health=svc.metrics.loop(name, interval)))
        await core.start(svc.mailer.run)
        if settings.webhook_dispatcher:
            await core.start(partial(dispatcher_loop.run, svc.dispatcher, concurrency=settings.webhook_concurrency,
                                     interval=settings.webhook_interval_secs,
                                     health=svc.metrics.loop("webhook dispatcher", settings.webhook_interval_secs)))
        async with trio.open_nursery() as edge:
            json_protocol_errors()
            connections.install()
            conns = _connection_limits(settings)
            app = EdgeApp(HotLane.around(create_app(svc), svc), drain_bytes=2 * settings.max_request_bytes,
                          observe=http_observer(svc.metrics, access_log=settings.access_log),
                          drain_secs=settings.body_timeout_secs, connections=conns)
            config = _hypercorn_config(settings, conns)
            if settings.http_fast_path and not settings.cors_origins:     # CORS: the app stamps every response
                config.fast_path = FastPath(svc, observe=app.observe, max_body=settings.max_request_bytes,
                                            body_timeout=settings.body_timeout_secs, drain_bytes=app.drain_bytes,
                                            keep_alive=settings.keep_alive_secs,
                                            response_headers=partial(config.response_headers, "h11"))
            with binding("REST (--http)", settings.http_host, settings.http_port):
                binds = await edge.start(partial(hypercorn.trio.serve, app, config,
                                                 shutdown_trigger=svc.shutting_down.wait))
            with binding("gRPC (--grpc)", settings.grpc_host, settings.grpc_port):
                grpc_address = await edge.start(partial(
                    grpc_server.serve, svc, settings.grpc_host, settings.grpc_port, grace=settings.shutdown_grace_secs,
                    fd=settings.listen_fds[1] if settings.listen_fds is not None else None))
            task_status.started(Running(binds[0], grpc_address, svc, conns))
            await svc.shutting_down.wait()
            conns.stop()
            svc.wakeups.close()
            svc.broadcaster.close()
        await _leave(svc)
        core.cancel_scope.cancel()


async def _leave(svc: Services) -> None:
    """Drained: count the last jobs created here, stop counting this instance and drop its realtime listener rows
    (best effort, bounded: the rows expire on their own)."""
    with trio.move_on_after(5):
        for step in (svc.quotas.run_once, svc.admission.leave, svc.broadcaster.unregister_all):
            try:
                await step()
            except DomainError as exc:
                log.warning("at shutdown: %s", exc.message)


@contextlib.contextmanager
def binding(what: str, host: str, port: int):
    """A failure to listen (found inside Trio's exception groups) as one sentence naming the address."""
    try:
        yield
    except BaseException as exc:
        found = exc if isinstance(exc, OSError) else None
        if isinstance(exc, BaseExceptionGroup):
            match, _ = exc.split(OSError)
            while isinstance(match, BaseExceptionGroup):
                match = match.exceptions[0]
            found = match
        if found is None:
            raise
        reason = os.strerror(found.errno).lower() if found.errno else str(found)
        raise ConfigError(f"Cannot listen on {host}:{port} for {what}: {reason}") from exc


async def _watch_signals(shutdown: trio.Event, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                log.info("received %s: shutting down", signal.Signals(signum).name)
                shutdown.set()
            else:
                log.warning("second signal: stopping now")
                cancel_scope.cancel()


async def _watch_parent(fd: int, shutdown: trio.Event) -> None:
    """A copy started by `--processes`: its parent holds the pipe's only write end and never writes, so the end
    of the pipe means the parent is gone (even by SIGKILL): drain and stop as at SIGTERM."""
    async with trio.lowlevel.FdStream(fd) as parent:
        with contextlib.suppress(OSError, trio.BrokenResourceError):
            while await parent.receive_some(64):
                pass
    if not shutdown.is_set():
        log.info("the --processes parent is gone: shutting down")
        shutdown.set()


async def run(settings: Settings, dsn: str) -> None:
    """`python -m spooled`: open the one asyncio island, serve until SIGTERM/SIGINT, print where it listens."""
    shutdown = trio.Event()
    raise_open_files_limit(settings.max_connections + 1024)   # + the pool, the gRPC server, files
    async with island.open_loop():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, shutdown, nursery.cancel_scope)
            if settings.lifeline_fd is not None:
                nursery.start_soon(_watch_parent, settings.lifeline_fd, shutdown)
            running: Running = await nursery.start(_serve_then_stop, settings, dsn, shutdown, nursery.cancel_scope)
            grpc = f", gRPC on {running.grpc_address}" if running.grpc_address else ""
            print(f"Spooled listening: REST on {running.http_url}{grpc}", flush=True)
            tune_gc()


# The cyclic garbage collector's first generation runs after this many more allocations than frees (Python's
# default: 700). A batch of 100 claimed jobs allocates tens of thousands of short-lived containers (records,
# dicts, lists), nearly none of them in cycles: at the default every request ran several collections, and each
# older-generation pass walked every object of the process (~10 % of the server's CPU on the batched path,
# perf). docs/benchmarks.md "The batched path's cost per job".
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Once the server is up: what exists now (modules, the app, the services) lives until exit, so it goes to
    the permanent generation (no collection walks it again), and the young generation gets a larger budget."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def _serve_then_stop(settings: Settings, dsn: str, shutdown: trio.Event, scope: trio.CancelScope, *,
                           task_status=trio.TASK_STATUS_IGNORED) -> None:
    await serve(settings, dsn, shutdown=shutdown, task_status=task_status)
    scope.cancel()  # drained and closed: stop watching signals
