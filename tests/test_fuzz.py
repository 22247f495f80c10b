"""A bounded property-based fuzz (hypothesis) of the job create, bulk, claim and complete bodies and of the job
listing's query strings, against the real server: never a 5xx; every 4xx carries the error body; a refused
create writes nothing.

Hypothesis runs synchronously in a worker thread with a blocking httpx client while the server runs on the
test's Trio loop. Derandomized, so every run of the suite tries the same examples (no flaky CI)."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

# -- strategies ---------------------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "\udfff", "\ud83d\ude00", "é", "\u2028",
                              "q" * 101, "w" * 129, "../etc", "%00", "null", "0", "-1", "1e309", "NaN"])
TEXT = st.one_of(st.text(max_size=20), NASTY_TEXT)
NUMBER = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
                   st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 0.5, 1e308]))
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)


def json_values(max_leaves: int = 12):
    return st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(TEXT, inner, max_size=4)),
                        max_leaves=max_leaves)


def deep(depth: int):
    return st.just("[" * depth + "]" * depth)


ANY = json_values()
QUEUE = st.one_of(st.sampled_from(["fuzz", "fuzz.q", "a:b-c_d"]), TEXT, ANY)
INT_FIELD = st.one_of(st.integers(min_value=-200, max_value=200), NUMBER, ANY)
TIME = st.one_of(st.sampled_from(["2030-01-01T00:00:00Z", "2020-01-01T00:00:00+02:00", "2030-13-01", "now",
                                  "2030-01-01T00:00:00"]), ANY)


def maybe(fields: dict) -> st.SearchStrategy[dict]:
    """Dicts with any subset of `fields`, plus a stray unknown key now and then."""
    return st.fixed_dictionaries({}, optional={**fields, "unknown_field": ANY})


JOB_FIELDS = {"payload": st.one_of(st.dictionaries(TEXT, ANY, max_size=4), ANY), "priority": INT_FIELD,
              "max_retries": INT_FIELD, "timeout_seconds": INT_FIELD, "scheduled_at": TIME, "expires_at": TIME,
              "idempotency_key": st.one_of(TEXT, ANY), "tags": ANY, "completion_webhook": st.one_of(TEXT, ANY)}
CREATE = maybe({"queue_name": QUEUE, "queue": QUEUE, **JOB_FIELDS})
BULK = maybe({"queue_name": QUEUE, "jobs": st.one_of(st.lists(st.one_of(maybe(JOB_FIELDS), ANY), max_size=4),
                                                       ANY),
              "default_priority": INT_FIELD, "default_max_retries": INT_FIELD,
              "default_timeout_seconds": INT_FIELD})
# wait_secs never a valid positive wait: a parked claim would only slow the fuzz down
CLAIM = maybe({"queue_name": QUEUE, "queue": QUEUE, "worker_id": st.one_of(TEXT, ANY), "limit": INT_FIELD,
               "lease_duration_secs": INT_FIELD,
               "wait_secs": st.one_of(st.just(0), st.sampled_from([-1, 31, 1e9, "1", None, [], {}]))})
COMPLETE = maybe({"lease_id": st.one_of(TEXT, ANY), "worker_id": st.one_of(TEXT, ANY), "result": ANY})
BATCH = maybe({"completions": st.one_of(st.lists(maybe({"job_id": st.one_of(TEXT, ANY),
                                                        "lease_id": st.one_of(TEXT, ANY), "result": ANY}),
                                                 max_size=3), ANY)})


@st.composite
def encoded(draw, bodies):
    """A body as bytes: JSON (ASCII-escaped or raw UTF-8 with surrogates passed through), sometimes mangled,
    sometimes a whole other JSON value, sometimes far too deep."""
    kind = draw(st.sampled_from(["json", "json", "json", "raw-utf8", "mangled", "other", "deep"]))
    if kind == "other":
        return json.dumps(draw(ANY)).encode()
    if kind == "deep":
        return ('{"queue_name": "fuzz", "payload": {"d": %s}}' % draw(deep(draw(st.integers(60, 3000))))).encode()
    body = draw(bodies)
    if kind == "raw-utf8":
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    text = json.dumps(body).encode()
    if kind == "mangled" and text:
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(max_size=4)) + text[at + draw(st.integers(0, 3)):]
    return text


LIST_KEYS = ["limit", "offset", "cursor", "status", "queue_name", "queue", "tag", "q", "job_type", "order_by",
             "order_dir", "created_after", "created_before"]
QUERY_VALUE = st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
                        st.integers(min_value=-(2**70), max_value=2**70).map(str),
                        st.sampled_from(["\x00", "-1", "0", "100", "101", "9223372036854775807",
                                         "9223372036854775808", "1e3", "pending,bogus", "pending,completed",
                                         "asc", "desc", "priority", "bogus", "a:b", "2030-01-01T00:00:00Z",
                                         "eyJ4IjoxfQ", "!!"]))
PAGING = st.tuples(st.sampled_from(["limit", "offset"]),
                   st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), QUERY_VALUE))
QUERY = st.lists(st.one_of(st.tuples(st.sampled_from(LIST_KEYS), QUERY_VALUE), PAGING), max_size=5)

# -- checks -------------------------------------------------------------------------------------------------


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, r.request.url, r.request.content[:300], r.status_code, r.text)
    body = r.json()
    if r.status_code >= 400:
        assert {"error", "code", "message", "status"} <= set(body), body
        assert body["status"] == r.status_code and isinstance(body["message"], str), body


def total(c: httpx.Client) -> int:
    r = c.get("/api/v1/jobs/stats")
    assert r.status_code == 200, r.text
    return r.json()["total"]


async def fuzz(api: httpx.AsyncClient, body) -> None:
    """Run the synchronous property `body(client)` in a worker thread against the running server."""
    def run():
        with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=30) as c:
            body(c)
    with trio.fail_after(300):
        await trio.to_thread.run_sync(run)


HEADERS = {"Content-Type": "application/json"}


def created_one(body: dict) -> int:
    return 1 if body.get("created") else 0


def created_bulk(body: dict) -> int:
    return sum(1 for s in body["succeeded"] if s["created"])


@pytest.mark.parametrize("path,bodies,created", [("/api/v1/jobs", CREATE, created_one),
                                                 ("/api/v1/jobs/bulk", BULK, created_bulk)])
async def test_fuzz_create_and_bulk(api, path, bodies, created):
    def prop(c: httpx.Client):
        @FUZZ
        @given(data=encoded(bodies))
        def one(data: bytes):
            before = total(c)
            r = c.post(path, content=data, headers=HEADERS)
            check(r)
            assert total(c) == before + (0 if r.status_code >= 400 else created(r.json())), r.text
        one()
    await fuzz(api, prop)


async def test_fuzz_claim_and_complete(api):
    def prop(c: httpx.Client):
        for _ in range(5):
            assert c.post("/api/v1/jobs", json={"queue_name": "fuzz", "payload": {"n": 1}}).status_code == 201
        job_id = c.get("/api/v1/jobs").json()[0]["id"]

        @FUZZ
        @given(claim=encoded(CLAIM), complete=encoded(COMPLETE), batch=encoded(BATCH))
        def one(claim: bytes, complete: bytes, batch: bytes):
            check(c.post("/api/v1/jobs/claim", content=claim, headers=HEADERS))
            check(c.post(f"/api/v1/jobs/{job_id}/complete", content=complete, headers=HEADERS))
            check(c.post("/api/v1/jobs/complete", content=batch, headers=HEADERS))
        one()
    await fuzz(api, prop)


async def test_fuzz_listing_query(api):
    def prop(c: httpx.Client):
        for i in range(3):
            c.post("/api/v1/jobs", json={"queue_name": "fuzz", "payload": {"job_type": f"t{i}"}, "tags": {"a": i}})

        @FUZZ
        @given(query=QUERY, dlq=st.booleans())
        def one(query, dlq):
            r = c.get("/api/v1/jobs/dlq" if dlq else "/api/v1/jobs", params=query)
            check(r)
            if r.status_code == 200:
                assert isinstance(r.json(), list)
        one()
    await fuzz(api, prop)
