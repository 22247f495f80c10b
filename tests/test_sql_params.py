"""SQL is built only from parameters: no value is ever formatted into a statement.

- Every statement the store sends is static text: a named statement of the registry (`store/queries/*.sql`,
  `Q.<name>`), a string constant, or one of three reviewed exceptions (the schema and migration files, and the
  job listing). Checked by reading `spooled/store/` with `ast`: an f-string, `%`, `+` or `.format` reaching
  `execute`/`fetch*`/`prepare`/`cursor` fails.
- The job listing (`store/listing.py`, the one statement composed at run time) is text that depends only on
  which filters are present, the order column (from a fixed set) and the direction: two filters of the same
  shape with any values give the same SQL, and no value appears in it (a property over SQL metacharacters).
- Against the real server, listing filters full of SQL metacharacters match literally and never fail."""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooled.domain import errors
from spooled.domain.inputs import JOB_ORDER_COLUMNS, JobFilter
from spooled.store.listing import list_jobs_sql
from spooled.store.sql import Q
from tests.helpers import enqueue

STORE = Path(__file__).resolve().parent.parent / "spooled" / "store"
DB_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare", "cursor", "copy_to_table",
            "copy_records_to_table", "copy_from_query"}
# (module, first argument) that are dynamic by construction, and why that is safe
REVIEWED = {
    ("schema.py", "schema_sql()"): "schema.sql, a file of the package",
    ("schema.py", "m.sql"): "a migration file of the package",
    ("jobs.py", "sql"): "JobStore.list: listing.list_jobs_sql, checked by the properties below",
}


class Module:
    def __init__(self, path: Path):
        self.name = path.name
        self.tree = ast.parse(path.read_text())
        self.bound: dict[str, list[ast.AST]] = {}          # every value assigned to a name, anywhere
        self.statements: set[str] = set()                   # parameters annotated as Statement
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.bound.setdefault(target.id, []).append(node.value)
                    elif isinstance(target, ast.Tuple):       # a, b = x, y (else: unknown, so not static)
                        values = node.value.elts if isinstance(node.value, ast.Tuple) and \
                            len(node.value.elts) == len(target.elts) else [None] * len(target.elts)
                        for t, v in zip(target.elts, values):
                            if isinstance(t, ast.Name):
                                self.bound.setdefault(t.id, []).append(v if v is not None else ast.Constant(0))
            elif isinstance(node, ast.arg) and node.annotation is not None and \
                    ast.unparse(node.annotation) == "Statement":
                self.statements.add(node.arg)

    def static(self, e: ast.AST, seen: frozenset = frozenset()) -> bool:
        if isinstance(e, ast.Constant):
            return isinstance(e.value, str)
        text = ast.unparse(e)
        if text.startswith("Q.") and isinstance(e, ast.Attribute):
            return True                                     # Q.name or Q.name.sql: the registry
        if isinstance(e, ast.Attribute) and e.attr == "sql" and isinstance(e.value, ast.Name):
            return e.value.id in self.statements or self.static(e.value, seen)
        if isinstance(e, ast.Name):
            if e.id in seen or e.id not in self.bound:
                return False
            return all(self.static(v, seen | {e.id}) for v in self.bound[e.id])
        if isinstance(e, ast.Call):
            if ast.unparse(e.func) == "getattr" and e.args and ast.unparse(e.args[0]) == "Q":
                return True                                 # a statement of the registry, chosen by name
            if isinstance(e.func, ast.Attribute) and e.func.attr == "join" and isinstance(e.func.value,
                                                                                          ast.Constant):
                return all(self.static(a, seen) for a in e.args)
            return False
        if isinstance(e, ast.IfExp):
            return self.static(e.body, seen) and self.static(e.orelse, seen)
        if isinstance(e, (ast.Tuple, ast.List)):
            return all(self.static(x, seen) for x in e.elts)
        return False                                        # f-strings, %, +, .format, anything else


def db_calls(module: Module):
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DB_CALLS \
                and node.args:
            yield node


def test_every_statement_sent_is_static_text():
    dynamic, checked = [], 0
    for path in sorted(STORE.glob("*.py")):
        module = Module(path)
        for call in db_calls(module):
            checked += 1
            first = call.args[0]
            if module.static(first) or (module.name, ast.unparse(first)) in REVIEWED:
                continue
            dynamic.append(f"store/{module.name}:{call.lineno}: {ast.unparse(call)[:120]}")
    assert not dynamic, "SQL must come from the registry (store/queries/*.sql) with values as parameters:\n" + \
        "\n".join(dynamic)
    assert checked > 40


def test_the_checker_catches_formatted_sql():
    module = Module.__new__(Module)
    src = ("PLAN = ('SET a = 1', 'SET b = 2')\n"
           "async def f(con, name, stmt: Statement):\n"
           "    s = Q.job_get\n"
           "    await con.fetch(f'SELECT * FROM jobs WHERE queue_name = {name}')\n"
           "    await con.fetch('SELECT %s' % name)\n"
           "    await con.fetch('SELECT ' + name)\n"
           "    await con.fetch('SELECT {}'.format(name))\n"
           "    await con.fetch(s.sql)\n"
           "    await con.fetch(stmt.sql)\n"
           "    await con.execute('; '.join(PLAN))\n"
           "    await con.fetch(getattr(Q, 'usage_count_' + name))\n")
    path = Path("/nonexistent/x.py")
    module.name = path.name
    module.tree = ast.parse(src)
    module.bound, module.statements = {}, set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Assign):
            module.bound.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, ast.arg) and node.annotation is not None:
            module.statements.add(node.arg)
    verdicts = [module.static(c.args[0]) for c in db_calls(module)]
    assert verdicts == [False, False, False, False, True, True, True, True]


def test_registry_statements_use_only_named_parameters():
    """Each named statement's values are `$name` parameters compiled to `$1..$n` (no Python-style `%s` /
    `%(name)s` placeholders a caller could fill by formatting, no `$name` left uncompiled), and `args` refuses
    values it has no parameter for."""
    import re
    for stmt in Q.all():
        assert not re.search(r"%(s|\(\w+\)s)", stmt.sql), stmt.name
        assert not re.search(r"(?<![:$\w])\$[a-z_]", stmt.sql), stmt.name
        for i in range(1, len(stmt.params) + 1):
            assert f"${i}" in stmt.sql, (stmt.name, i)
    with pytest.raises(TypeError):
        Q.job_get.args(org=1, id=2, injected="x")


# -- the listing ---------------------------------------------------------------------------------------------
META = st.sampled_from(["'", "''", '"', ";", "--", "/*", "*/", "\\", "%", "_", "$1", "$$", "::text", ")", "(",
                        "' OR '1'='1", "'; DROP TABLE jobs; --", "\\'", "%' --", "é", "\u2028", ":", "a:b",
                        "' UNION SELECT * FROM api_keys --"])
VALUE = st.one_of(META, st.text(min_size=1, max_size=12), st.lists(META, min_size=1, max_size=4).map("".join))
SHAPES = st.fixed_dictionaries({}, optional={"queue_name": st.just(1), "statuses": st.just(1), "tag": st.just(1),
                                             "tag_value": st.just(1), "created_after": st.just(1),
                                             "created_before": st.just(1), "q": st.just(1), "job_type": st.just(1)})
LISTING = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))


def filter_of(shape: dict, draw) -> JobFilter:
    key = draw(VALUE).replace(":", "") or "k"
    tag = None
    if "tag" in shape:
        tag = f"{key}:{draw(VALUE)}" if "tag_value" in shape else key
    return JobFilter(queue_name=draw(VALUE) if "queue_name" in shape else None,
                     statuses=["pending", "completed"] if "statuses" in shape else None, tag=tag,
                     created_after=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) if "created_after" in shape
                     else None,
                     created_before=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc) if "created_before" in shape
                     else None,
                     q=draw(VALUE) if "q" in shape else None, job_type=draw(VALUE) if "job_type" in shape else None)


@LISTING
@given(shape=SHAPES, data=st.data(), order_by=st.sampled_from(JOB_ORDER_COLUMNS), desc=st.booleans(),
       cursor=st.booleans(), offset=st.integers(0, 10**6), limit=st.integers(1, 100))
def test_listing_sql_depends_only_on_the_filters_shape(shape, data, order_by, desc, cursor, offset, limit):
    org = uuid.uuid4()
    after = (None if order_by in ("scheduled_at", "completed_at") else
             (5 if order_by == "priority" else dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)),
             uuid.uuid4()) if cursor else None
    f1, f2 = filter_of(shape, data.draw), filter_of(shape, data.draw)
    sql1, args1 = list_jobs_sql(f1, order_by, desc, after, offset, limit, org)
    sql2, _ = list_jobs_sql(f2, order_by, desc, after, offset + 1, limit, uuid.uuid4())
    assert sql1 == sql2                                      # the values are not in the text
    # ... they are parameters, as given (q as a LIKE pattern with its metacharacters escaped)
    for v in (f1.queue_name, f1.job_type, *(f1.tag.partition(":")[::2] if f1.tag and ":" in f1.tag else
                                            [f1.tag] if f1.tag else [])):
        if v is not None:
            assert v in args1, (v, args1)
    if f1.q:
        like = f1.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        assert "%" + like + "%" in args1 and like + "%" in args1
    assert args1[0] == org


def test_the_listing_refuses_an_order_column_it_does_not_know():
    for bad in ("id; DROP TABLE jobs", "payload", "created_at DESC, (SELECT 1)"):
        with pytest.raises(errors.ValidationFailed):
            list_jobs_sql(JobFilter(), bad, True, None, 0, 10, uuid.uuid4())


NASTY = ["'; DROP TABLE jobs; --", "' OR '1'='1", "a%b_c\\d", '"quoted"', "$1::text", "x) OR (1=1",
         "/* c */", "' UNION SELECT key_hash FROM api_keys --"]


async def test_listing_filters_with_sql_metacharacters_match_literally(api):
    ids = {}
    for i, nasty in enumerate(NASTY):
        j = await enqueue(api, queue=f"q{i}", payload={"job_type": nasty, "text": nasty}, tags={"k": nasty})
        ids[nasty] = j["id"]
    plain = await enqueue(api, queue="plain", payload={"job_type": "plain"}, tags={"k": "plain"})

    def listed(params: dict) -> list[str]:
        r = sync.get("/api/v1/jobs", params={**params, "limit": 100})
        assert r.status_code == 200, (params, r.text)
        return [j["id"] for j in r.json()]

    def check():
        for i, nasty in enumerate(NASTY):
            assert listed({"tag": f"k:{nasty}"}) == [ids[nasty]], nasty
            assert listed({"job_type": nasty}) == [ids[nasty]], nasty
            assert listed({"q": nasty}) == [ids[nasty]], nasty
            assert listed({"queue_name": nasty}) == []
            assert listed({"tag": nasty}) == []              # no job has a tag key named like that
            for key in ("order_by", "order_dir", "status", "created_after", "cursor"):
                r = sync.get("/api/v1/jobs", params={key: nasty})
                assert r.status_code == 422 and r.json()["details"]["field"] == key, (key, nasty, r.text)
        assert len(listed({})) == len(NASTY) + 1 and plain["id"] in listed({})

    with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=30) as sync:
        with trio.fail_after(120):
            await trio.to_thread.run_sync(check)
    # and the table is whole
    assert (await api.get("/api/v1/jobs/stats")).json()["total"] == len(NASTY) + 1
