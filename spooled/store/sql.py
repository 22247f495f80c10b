"""Named SQL statements: `-- name: x` blocks in `queries/*.sql`, `$named` parameters compiled to `$1..$n`.

Every statement is a module-level constant reachable as `Q.<name>`; `Q.<name>.args(**values)` orders the values
as the compiled statement expects and fails loudly on a missing or unknown one.

Scoped statements (a caller's queue restriction, domain/scope.py): `$scope(<condition on $queues>)` marks what
only a restricted caller needs, e.g. `AND $scope(j.queue_name = ANY ($queues::text[]))`. Such a statement is
compiled twice: for an unrestricted caller every `$scope(...)` is `true` and `$queues` is not a parameter (the
statement, and so its plan, is what it would be without the restriction: a predicate true for every row would
still skew the planner's row estimates), and for a restricted one each condition stands as written (an index
can serve it). `bind(queues=..., **values)` picks the text and orders the values; `args` refuses such a statement
(a caller that forgot its scope would see every queue).
"""

from __future__ import annotations

import re
from pathlib import Path

_PARAM = re.compile(r"(?<![:$\w])\$([a-z_][a-z0-9_]*)")
_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.M)


_SCOPE = "$scope("


def _scope_variants(text: str) -> tuple[str, str]:
    """(the text for an unrestricted caller, the text for a restricted one) of a statement with `$scope(...)`."""
    plain, scoped, i = [], [], 0
    while (start := text.find(_SCOPE, i)) >= 0:
        depth, end = 1, start + len(_SCOPE)
        while depth:
            if end == len(text):
                raise ValueError(f"unbalanced {_SCOPE}...) in {text[:60]!r}")
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        plain += [text[i:start], "true"]
        scoped += [text[i:start], "(", text[start + len(_SCOPE):end - 1], ")"]
        i = end
    return "".join(plain + [text[i:]]), "".join(scoped + [text[i:]])


class Statement:
    __slots__ = ("name", "sql", "params", "scoped")

    def __init__(self, name: str, text: str):
        self.name = name
        self.scoped: Statement | None = None      # the restricted callers' text (statements with `$scope(...)`)
        if _SCOPE in text:
            text, restricted = _scope_variants(text)
            self.scoped = Statement(f"{name} (restricted)", restricted)
            if "$queues" in text or "queues" not in self.scoped.params:
                raise ValueError(f"statement {name}: $queues belongs inside $scope(...), and in every one")
        self.params: list[str] = []
        def number(m: re.Match) -> str:
            if m.group(1) not in self.params:
                self.params.append(m.group(1))
            return f"${self.params.index(m.group(1)) + 1}"
        self.sql = _PARAM.sub(number, text.strip())

    def args(self, **values) -> list:
        """Positional arguments for this statement from keyword values (all required, none extra)."""
        if self.scoped is not None:
            raise TypeError(f"{self.name} is scoped: bind(queues=..., ...) chooses its text")
        return self._ordered(values)

    def bind(self, **values) -> tuple:
        """(sql, *positional arguments): `con.fetch(*Q.x.bind(...))`. A scoped statement needs `queues` (the
        caller's; empty: every queue)."""
        if self.scoped is None:
            return self.sql, *self._ordered(values)
        queues = values.pop("queues")
        if not queues:
            return self.sql, *self._ordered(values)
        return self.scoped.sql, *self.scoped._ordered({**values, "queues": list(queues)})

    def _ordered(self, values: dict) -> list:
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


async def pinned(con, stmt: Statement, fetch: str = "fetchval", **values):
    """(asyncio) `con.<fetch>` of one statement in its own transaction with sequential scans and JIT off, so its
    plan walks the indexes whatever the statistics say (a generic plan made while a table was small, or an
    organization that is most of the table, would read the table whole); `values` as for `Statement.bind`."""
    async with con.transaction():
        await con.execute("SET LOCAL enable_seqscan = off; SET LOCAL jit = off")
        return await getattr(con, fetch)(*stmt.bind(**values))
