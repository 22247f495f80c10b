"""`spooled serve --processes N`: N server processes on one REST and one gRPC listening socket.

This process binds the two sockets (so port 0 resolves once and a busy port is one sentence, as with one
process), then starts N copies of `python -m spooled serve` that inherit them (`SPOOLED_LISTEN_FDS`) and accept
from them side by side: the kernel hands each new connection to one of them. Each copy is a whole instance (its
pool, its loops, its LISTEN connection), exactly like instances on several machines sharing the database, so
nothing new has to be safe: every loop already is with N instances.

It prints the listening line once every copy has printed its own, restarts a copy that dies (after 1 s, doubling
to 30 s while they keep dying at once), and on SIGTERM/SIGINT passes one SIGTERM to each copy and waits for them
to drain (their grace period, plus 10 s before SIGKILL). The copies run in their own session, so a terminal's
Ctrl-C reaches only this process, which forwards it once. If this process dies, even by SIGKILL, the copies drain
and stop as at SIGTERM: each holds the read end of a pipe whose only write end is this process's
(`SPOOLED_LIFELINE_FD`), and sees it close. (Not PR_SET_PDEATHSIG: Linux sends that when the *thread* that started
the copy exits, and Trio starts processes from its worker threads, which exit after 10 s idle.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import trio

from spooled.settings import ConfigError, Settings
from spooled.supervisor import binding
from spooled.transports.grpc import server as grpc_server

log = logging.getLogger("spooled.processes")

READY = b"Spooled listening:"
RESTART_MIN_SECS, RESTART_MAX_SECS = 1.0, 30.0


def http_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """The REST listening socket: made like the gRPC one (`grpc_server.bind`), plus TCP_NODELAY, which accepted
    connections inherit (hypercorn sets it on the sockets it makes itself; here it serves an inherited one)."""
    sock = grpc_server.bind(host, port, backlog=backlog)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Copy:
    """One server process: started (again) by `keep`, told to stop by `stop`."""

    def __init__(self, index: int, env: dict[str, str], fds: tuple[int, ...], grace: float):
        self.index = index
        self.env = env
        self.fds = fds
        self.grace = grace
        self.proc: trio.Process | None = None
        self.stopping = False
        self.returncode: int | None = None

    async def _start(self) -> trio.Process:
        return await trio.lowlevel.open_process(
            [sys.executable, "-m", "spooled", "serve"], env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, pass_fds=self.fds, start_new_session=True)

    async def _ready(self, proc: trio.Process) -> bool:
        """Read the copy's stdout until its listening line (False: it exited first)."""
        seen = bytearray()
        while READY not in seen:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                return False
            seen.extend(chunk)
        return True

    async def keep(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run this copy until `stop`; started once its first process listens. A first process that exits
        before listening (a configuration problem it has already told on stderr) is a ConfigError."""
        delay = RESTART_MIN_SECS
        first = True
        while True:
            proc = self.proc = await self._start()
            began = time.monotonic()
            if not await self._ready(proc):
                code = await proc.wait()
                if first:
                    raise ConfigError(f"server process {self.index} exited with code {code} before listening")
            else:
                log.info("server process %d listening (pid %d)", self.index, proc.pid)
                if first:
                    first = False
                    task_status.started()
                async with trio.open_nursery() as drain:     # keep its stdout flowing (it prints nothing else)
                    drain.start_soon(_discard, proc.stdout)
                    code = await proc.wait()
                    drain.cancel_scope.cancel()
            if self.stopping:
                self.returncode = code
                return
            delay = RESTART_MIN_SECS if time.monotonic() - began > 60 else delay
            log.error("server process %d (pid %d) exited with code %s; starting another in %.0f s",
                      self.index, proc.pid, code, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_SECS)
            if self.stopping:
                return

    def signal(self, signum: int) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not drained within its grace period plus 10 s."""
        self.signal(signal.SIGTERM)
        if self.proc is None:
            return
        with trio.move_on_after(self.grace + 10) as waited:
            await self.proc.wait()
        if waited.cancelled_caught:
            log.error("server process %d (pid %d) did not stop in time: killing it", self.index, self.proc.pid)
            self.signal(signal.SIGKILL)
            await self.proc.wait()


async def _discard(stream) -> None:
    while await stream.receive_some(4096):
        pass


async def run(settings: Settings, dsn: str) -> int:
    """Serve with `settings.processes` copies until SIGTERM/SIGINT; 0 when every copy stopped cleanly."""
    with binding("REST (--http)", settings.http_host, settings.http_port):
        http = http_socket(settings.http_host, settings.http_port)
    with binding("gRPC (--grpc)", settings.grpc_host, settings.grpc_port):
        grpc = grpc_server.bind(settings.grpc_host, settings.grpc_port, backlog=1024)
    lifeline, held = os.pipe()          # both close-on-exec: a copy inherits only the read end (pass_fds)
    fds = (http.fileno(), grpc.fileno(), lifeline)
    env = {**os.environ, "DATABASE_URL": dsn, "SPOOLED_LISTEN_FDS": f"{fds[0]},{fds[1]}",
           "SPOOLED_LIFELINE_FD": str(lifeline), "SPOOLED_PROCESSES": "1"}
    copies = [Copy(i, env, fds, settings.shutdown_grace_secs) for i in range(settings.processes)]
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, shutdown, copies)
            for copy in copies:
                await nursery.start(copy.keep)
            host, port = http.getsockname()[:2]
            rest = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            print(f"Spooled listening: REST on {rest}, gRPC on {grpc_server.address_of(grpc)} "
                  f"({len(copies)} processes)", flush=True)
            await shutdown.wait()
            async with trio.open_nursery() as stopping:
                for copy in copies:
                    stopping.start_soon(copy.stop)
            nursery.cancel_scope.cancel()
    finally:
        http.close()
        grpc.close()
        for copy in copies:         # an error on the way (a copy that could not start): leave none behind
            copy.signal(signal.SIGKILL)
        os.close(lifeline)
        os.close(held)
    log.info("stopped")
    return 0 if all(copy.returncode == 0 for copy in copies) else 1


async def _watch_signals(shutdown: trio.Event, copies: list[Copy]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                log.info("received %s: stopping %d server processes", signal.Signals(signum).name, len(copies))
                shutdown.set()
            else:
                log.warning("second signal: passing it on (the processes stop now)")
                for copy in copies:
                    copy.signal(signal.SIGTERM)
