"""Server instances as real `python -m spooled` processes (loopback only), restartable on the same ports, and
worker subprocesses; every process started here is killed on the way out (also on errors and Ctrl-C)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import httpx
import trio

from tests.chaos.load import Target, now
from tests.procs import ROOT, clean_env

JWT_SECRET = "chaos-" + "s" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One instance: `start()` (again after a kill), `kill()` (SIGKILL), `terminate()` (SIGTERM)."""

    def __init__(self, name: str, dsn: str, workdir: Path, env: dict[str, str] | None = None):
        self.name, self.dsn = name, dsn
        self.http_port, self.grpc_port = free_port(), free_port()
        self.target = Target(f"http://127.0.0.1:{self.http_port}", f"127.0.0.1:{self.grpc_port}")
        self.data_dir = workdir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        # enterprise: no daily job quota, no active-jobs cap, a rate limit far above the load
        self.env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(self.data_dir), SPOOLED_JWT_SECRET=JWT_SECRET,
                             SPOOLED_DEFAULT_PLAN="enterprise", **(env or {}))
        self.proc: trio.Process | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    async def start(self, timeout: float = 60) -> float:
        """Start and wait until /health/ready answers 200; how long that took."""
        assert not self.alive
        t0 = now()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {self.starts} ====\n".encode())
            log.flush()
            self.proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "spooled", "serve", "--http", f"127.0.0.1:{self.http_port}",
                 "--grpc", f"127.0.0.1:{self.grpc_port}"],
                env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        await self.wait_ready(timeout)
        return now() - t0

    async def wait_ready(self, timeout: float = 60) -> None:
        async with httpx.AsyncClient(base_url=self.target.http, timeout=2) as client:
            with trio.fail_after(timeout):
                while True:
                    if not self.alive:
                        raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
                    try:
                        if (await client.get("/health/ready")).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.05)

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()

    def terminate(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit: its exit code (None if it did not within `timeout`)."""
        if self.proc is None:
            return None
        with trio.move_on_after(timeout):
            await self.proc.wait()
        return self.proc.poll()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            if self.alive:
                self.proc.kill()
            if self.proc is not None:
                with trio.move_on_after(10):
                    await self.proc.wait()


@contextlib.asynccontextmanager
async def processes() -> AsyncIterator[list]:
    """A list to register `Server`s and worker `trio.Process`es in; all are killed on exit."""
    procs: list = []
    try:
        yield procs
    finally:
        with trio.CancelScope(shield=True):
            for p in procs:
                if isinstance(p, Server):
                    await p.aclose()
                else:
                    if p.poll() is None:
                        p.kill()
                    with trio.move_on_after(10):
                        await p.wait()


async def start_worker_process(procs: list, target: Target, key: str, records: Path, *, transport: str,
                               name: str, queue: str, lease_secs: int, work_secs: float,
                               renew: bool = False) -> trio.Process:
    """A worker in its own process (`python -m tests.chaos worker`), recording to `records` line by line."""
    cmd = [sys.executable, "-m", "tests.chaos", "worker", "--http", target.http, "--grpc", target.grpc,
           "--key", key, "--records", str(records), "--transport", transport, "--name", name, "--queue", queue,
           "--lease", str(lease_secs), "--work", str(work_secs)] + (["--renew"] if renew else [])
    with open(records.with_suffix(".log"), "ab") as log:
        proc = await trio.lowlevel.open_process(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                env=clean_env())
    procs.append(proc)
    return proc
