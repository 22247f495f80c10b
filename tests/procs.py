"""`python -m spooled` as a real subprocess: for what only a whole process shows (exit codes, what it prints,
surviving its database going away)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import trio

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without any Spooled setting, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOLED_") and k != "DATABASE_URL"}
    env.update(overrides)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spooled", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class ServerProcess:
    def __init__(self, proc: trio.Process):
        self.proc = proc
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.url = ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.stderr.decode(errors="replace")

    async def wait_for_log(self, pattern: str) -> re.Match:
        """The first match of `pattern` in what the server logged (bound the wait with trio.fail_after)."""
        while (m := re.search(pattern, self.log())) is None:
            assert self.alive, f"server exited ({self.proc.returncode}):\n{self.log()[-3000:]}"
            await trio.sleep(0.05)
        return m


async def _drain(stream, into: bytearray) -> None:
    while chunk := await stream.receive_some(65536):
        into.extend(chunk)


@contextlib.asynccontextmanager
async def spooled_server(env: dict[str, str], *args: str, python: tuple[str, ...] = ("-m", "spooled")
                         ) -> AsyncIterator[ServerProcess]:
    """Start `python -m spooled serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 *args`, yield once it prints where it
    listens; SIGTERM (then SIGKILL) on the way out. Organizations it creates are on the enterprise plan unless
    `env` says otherwise (these tests exercise faults, not the free plan's 5 requests/s). `python`: what the
    interpreter runs instead of `-m spooled` (e.g. `-c` and a launcher whose argv[1:] are the command)."""
    env = {"SPOOLED_DEFAULT_PLAN": "enterprise", **env}
    cmd = [sys.executable, *python, "serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", *args]
    proc = await trio.lowlevel.open_process(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server = ServerProcess(proc)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, proc.stdout, server.stdout)
        nursery.start_soon(_drain, proc.stderr, server.stderr)
        try:
            with trio.fail_after(90):
                while (m := re.search(rb"REST on (http://[^\s,]+)", server.stdout)) is None:
                    assert server.alive, f"server exited ({proc.returncode}):\n{server.log()[-3000:]}"
                    await trio.sleep(0.05)
            server.url = m.group(1).decode()
            yield server
        finally:
            with trio.CancelScope(shield=True):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(30):
                        await proc.wait()
                if proc.poll() is None:
                    proc.kill()
                    await proc.wait()
                with trio.move_on_after(5):
                    while nursery.child_tasks:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
