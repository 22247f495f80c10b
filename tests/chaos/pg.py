"""A throwaway PostgreSQL cluster the chaos scenarios may stop, crash and restart: Unix socket only (in its temp
dir), run as the `postgres` user when we are root (PostgreSQL refuses root), `synchronous_commit=on` so a crash
(`pg_ctl stop -m immediate`) loses no acknowledged commit; `fsync=off` is safe here because only PostgreSQL's
processes die, never the kernel holding its page cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from spooled.embedded_pg import find_bindir

PORT = 5432
SETTINGS = ("fsync=off", "synchronous_commit=on", "full_page_writes=off", "max_connections=200",
            "shared_buffers=32MB", "listen_addresses=''")


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    """initdb'd at construction; `start()`, `halt(mode)`, `stop()` (halt and delete)."""

    def __init__(self, prefix: str = "spooled-chaos-pg-") -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("No PostgreSQL server binaries found: apt-get install postgresql")
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.pgdata = self.dir / "data"
        self.log = self.dir / "log"
        self.running = False
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-instructions", "--no-sync")

    @property
    def version(self) -> str:
        return (self.pgdata / "PG_VERSION").read_text().strip()

    @property
    def socket(self) -> Path:
        """The Unix socket (what a proxy forwards to)."""
        return self.dir / f".s.PGSQL.{PORT}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.dir}&port={PORT}"

    def _run(self, tool: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        res = subprocess.run(as_postgres([str(self.bindir / tool), *args]), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {(res.stderr or res.stdout).strip()[-800:]}")
        return res

    def start(self) -> None:
        opts = f"-k {self.dir} -p {PORT} " + " ".join(f"-c {s}" for s in SETTINGS)
        self._run("pg_ctl", "start", "-D", str(self.pgdata), "-w", "-t", "120", "-l", str(self.log), "-o", opts)
        self.running = True

    def halt(self, mode: str) -> None:
        """`pg_ctl stop -m fast` (a clean shutdown) or `-m immediate` (a crash: recovery at the next start)."""
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60")
        self.running = False

    def stop(self) -> None:
        """Stop (immediately) and delete the cluster; safe to call twice and after errors."""
        if self.pgdata.exists():
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "immediate", "-w", "-t", "30", check=False)
        self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        self._run("psql", "-h", str(self.dir), "-p", str(PORT), "-U", "postgres", "-d", "postgres", "-qAtc",
                  f'CREATE DATABASE "{name}"')
        return self.dsn(name)
