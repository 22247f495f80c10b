"""The embedded local PostgreSQL used when DATABASE_URL is unset: the system's server binaries, a cluster in
the data directory, reachable only through a Unix socket inside it (so `create-org` finds a running server's
database through the same directory). As root, PostgreSQL runs as the `postgres` user (it refuses root)."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from spooled.settings import ConfigError

log = logging.getLogger(__name__)

DB_NAME = "spooled"
PORT = 5432
INSTALL_HINT = ("install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`) or set "
                "DATABASE_URL to a PostgreSQL database")


def find_bindir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres: $SPOOLED_PG_BIN, pg_config's, Debian's, or PATH."""
    candidates = []
    if os.environ.get("SPOOLED_PG_BIN"):
        candidates.append(os.environ["SPOOLED_PG_BIN"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             timeout=10).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
                         if p.split("/")[-2].isdigit() else 0, reverse=True)
    candidates += ["/usr/local/pgsql/bin"]
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for c in candidates:
        if c and all((Path(c) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    return None


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, bindir: Path | None = None):
        self.data_dir = data_dir
        self.pgdata = data_dir / "pg"
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise ConfigError(f"No DATABASE_URL is set and no PostgreSQL server was found: {INSTALL_HINT}.")
        self.as_postgres = os.geteuid() == 0
        self.started_here = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/{DB_NAME}?host={self.pgdata}&port={PORT}"

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else cmd

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(self._cmd(tool, *args), capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise ConfigError(f"{tool} failed: {(res.stderr or res.stdout).strip()[-500:]}")
        return res

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ConfigError("Running as root, the embedded PostgreSQL needs a `postgres` system user "
                                  f"(it refuses to run as root): {INSTALL_HINT}.") from None
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
            probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.pgdata)])
            if probe.returncode != 0:
                raise ConfigError(f"The postgres user cannot write {self.pgdata}: choose a SPOOLED_DATA_DIR whose "
                                  "parent directories it can enter (e.g. under /var/lib or /tmp).")

    def running(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self._run("pg_ctl", "status", "-D", str(self.pgdata),
                                                                  check=False).returncode == 0

    def start(self) -> str:
        """Initialise (first time), start unless already running, create the database; the DSN."""
        self._prepare_dirs()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL cluster in %s", self.pgdata)
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-instructions")
        if not self.running():
            opts = f"-k {self.pgdata} -c listen_addresses='' -p {PORT}"
            self._run("pg_ctl", "start", "-D", str(self.pgdata), "-w", "-t", "60", "-l",
                      str(self.pgdata / "server.log"), "-o", opts)
            self.started_here = True
        psql = ["-h", str(self.pgdata), "-p", str(PORT), "-U", "postgres", "-d", "postgres", "-tAc"]
        exists = self._run("psql", *psql, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").stdout.strip()
        if exists != "1":
            self._run("psql", *psql, f"CREATE DATABASE {DB_NAME}")
        return self.dsn

    def stop(self) -> None:
        if self.started_here:
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", check=False)
            self.started_here = False


@contextlib.contextmanager
def database(database_url: str | None, data_dir: Path, command: str = "serve") -> Iterator[str]:
    """The DSN to use: DATABASE_URL, else the embedded cluster in `data_dir`.

    One process owns the embedded cluster at a time: it holds `spooled.lock` in the data dir, starts the cluster
    (or adopts one left running by a process that died) and stops it on exit. A second `serve` on the same data
    dir is refused (sharing it silently meant that stopping the first server stopped the database under the
    second); a short-lived command (`create-org`, `migrate`) uses a running server's cluster and leaves it
    running."""
    if database_url:
        yield database_url
        return
    pg = EmbeddedPostgres(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "spooled.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = lock_path.read_text().strip() or "another process"
            if command == "serve":
                raise ConfigError(f"Another Spooled process ({owner}) is using the embedded PostgreSQL in "
                                  f"{data_dir}: stop it first, or give this server its own SPOOLED_DATA_DIR (or "
                                  "point both at one PostgreSQL with DATABASE_URL).") from None
            if not pg.running():
                raise ConfigError(f"Another Spooled process ({owner}) is starting or stopping the embedded "
                                  f"PostgreSQL in {data_dir}: try again in a moment.") from None
            yield pg.dsn
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, spooled {command}".encode())
        try:
            dsn = pg.start()
            pg.started_here = True     # ours now, even if a process that died had left it running
            yield dsn
        finally:
            pg.stop()
    finally:
        os.close(fd)
