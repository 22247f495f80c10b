"""The chaos scenarios' PostgreSQL: the test rig's throwaway cluster (`tests/conftest.py`: Unix socket only, run
as the `postgres` user when we are root), with `synchronous_commit=on` so a crash (`pg_ctl stop -m immediate`)
loses no acknowledged commit; `fsync=off` stays safe because only PostgreSQL's processes die, never the kernel
holding its page cache."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cluster as _Cluster
from tests.conftest import _dsn_for, admin

PORT = 5432


class Cluster(_Cluster):
    """Started at construction; `halt(mode)`, `start()` again, `stop()` (halt and delete)."""

    def __init__(self) -> None:
        super().__init__("synchronous_commit=on")

    @property
    def version(self) -> str:
        return (Path(self.pgdata) / "PG_VERSION").read_text().strip()

    def create_database(self, name: str) -> str:
        admin(self.dsn, f'CREATE DATABASE "{name}"')
        return _dsn_for(self.dsn, name)
