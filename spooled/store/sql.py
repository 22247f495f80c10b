"""Named SQL statements: `-- name: x` blocks in `queries/*.sql`, `$named` parameters compiled to `$1..$n`.

Every statement is a module-level constant reachable as `Q.<name>`; `Q.<name>.args(**values)` orders the values
as the compiled statement expects and fails loudly on a missing or unknown one.
"""

from __future__ import annotations

import re
from pathlib import Path

_PARAM = re.compile(r"(?<![:$\w])\$([a-z_][a-z0-9_]*)")
_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.M)


class Statement:
    __slots__ = ("name", "sql", "params")

    def __init__(self, name: str, text: str):
        self.name = name
        self.params: list[str] = []
        def number(m: re.Match) -> str:
            if m.group(1) not in self.params:
                self.params.append(m.group(1))
            return f"${self.params.index(m.group(1)) + 1}"
        self.sql = _PARAM.sub(number, text.strip())

    def args(self, **values) -> list:
        """Positional arguments for this statement from keyword values (all required, none extra)."""
        extra = values.keys() - set(self.params)
        if extra:
            raise TypeError(f"{self.name}: unknown parameters {sorted(extra)}")
        return [values[p] for p in self.params]


def load(directory: Path) -> dict[str, Statement]:
    """All named statements of the `.sql` files in `directory`."""
    out: dict[str, Statement] = {}
    for path in sorted(directory.glob("*.sql")):
        parts = _BLOCK.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2]):
            if name in out:
                raise ValueError(f"statement {name} defined twice")
            out[name] = Statement(name, body)
    return out


class _Queries:
    def __init__(self, statements: dict[str, Statement]):
        self.__dict__.update(statements)

    def all(self) -> list[Statement]:
        return list(self.__dict__.values())


Q = _Queries(load(Path(__file__).with_name("queries")))
