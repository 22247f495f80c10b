"""GET /jobs: filters, cursor (keyset) and offset pagination, page headers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.helpers import claim, enqueue, utc


async def test_filters(api):
    a = await enqueue(api, queue="a", tags={"team": "red"})
    b = await enqueue(api, queue="b", tags={"team": "blue", "vip": True})
    c = await enqueue(api, queue="a")
    await claim(api, queue="a")  # a is processing
    ids = lambda r: {j["id"] for j in r.json()}  # noqa: E731
    assert ids(await api.get("/api/v1/jobs?queue_name=a")) == {a["id"], c["id"]}
    assert ids(await api.get("/api/v1/jobs?queue=b")) == {b["id"]}
    assert ids(await api.get("/api/v1/jobs?status=processing")) == {a["id"]}
    assert ids(await api.get("/api/v1/jobs?status=pending,processing")) == {a["id"], b["id"], c["id"]}
    assert ids(await api.get("/api/v1/jobs?tag=vip")) == {b["id"]}
    assert ids(await api.get("/api/v1/jobs?tag=team:red")) == {a["id"]}
    assert ids(await api.get(f"/api/v1/jobs?created_after={utc(minutes=1).isoformat().replace('+', '%2B')}")) == set()
    assert len(ids(await api.get(f"/api/v1/jobs?created_before={utc(minutes=1).isoformat().replace('+', '%2B')}"))) == 3
    r = await api.get("/api/v1/jobs?status=bogus")
    assert r.status_code == 422 and r.json()["details"]["field"] == "status"
    assert (await api.get("/api/v1/jobs?order_by=payload")).status_code == 422
    assert (await api.get("/api/v1/jobs?limit=abc")).status_code == 422
    assert (await api.get("/api/v1/jobs?cursor=garbage")).status_code == 422


async def test_cursor_pages_are_stable_under_inserts(api):
    created = [(await enqueue(api))["id"] for _ in range(25)]
    seen = []
    url = "/api/v1/jobs?limit=10&queue_name=q"
    pages = 0
    while url:
        r = await api.get(url)
        assert r.status_code == 200
        seen += [j["id"] for j in r.json()]
        pages += 1
        if pages == 1:
            for _ in range(5):  # new jobs land before the cursor (newest first): never repeat or shift pages
                await enqueue(api)
        if r.headers["x-has-more"] == "true":
            cursor = r.headers["x-next-cursor"]
            link = r.headers["link"]
            assert link.endswith('; rel="next"')
            query = parse_qs(urlsplit(link[1:link.index(">")]).query)
            assert query["cursor"] == [cursor] and query["queue_name"] == ["q"] and query["limit"] == ["10"]
            url = f"/api/v1/jobs?limit=10&queue_name=q&cursor={cursor}"
        else:
            assert "x-next-cursor" not in r.headers
            url = None
    assert pages == 3
    assert seen == list(reversed(created))  # newest first, each exactly once


async def test_ascending_order_and_offset(api):
    created = [(await enqueue(api, priority=i % 3))["id"] for i in range(6)]
    r = await api.get("/api/v1/jobs?order_dir=asc&limit=4")
    assert [j["id"] for j in r.json()] == created[:4] and r.headers["x-has-more"] == "true"
    r2 = await api.get(f"/api/v1/jobs?order_dir=asc&limit=4&cursor={r.headers['x-next-cursor']}")
    assert [j["id"] for j in r2.json()] == created[4:] and r2.headers["x-has-more"] == "false"
    r = await api.get("/api/v1/jobs?order_dir=asc&limit=2&offset=2")
    assert [j["id"] for j in r.json()] == created[2:4]
    r = await api.get("/api/v1/jobs?order_by=priority&order_dir=desc&limit=3")
    assert [j["priority"] for j in r.json()] == [2, 2, 1]
    nxt = (await api.get(f"/api/v1/jobs?order_by=priority&order_dir=desc&limit=3&cursor={r.headers['x-next-cursor']}")).json()
    assert [j["priority"] for j in nxt] == [1, 0, 0]
    assert not {j["id"] for j in nxt} & {j["id"] for j in r.json()}


async def test_limit_is_clamped(api):
    for _ in range(3):
        await enqueue(api)
    assert len((await api.get("/api/v1/jobs?limit=1000")).json()) == 3
    assert len((await api.get("/api/v1/jobs?limit=0")).json()) == 1
    assert (await api.get("/api/v1/jobs?offset=-1")).status_code == 422


async def test_search_and_job_type_filters(api):
    a = await enqueue(api, queue="mail-out", payload={"job_type": "send_email"})
    b = await enqueue(api, queue="reports", payload={"job_type": "build_report"})
    c = await enqueue(api, queue="reports", payload={"x": 1})
    ids = lambda r: {j["id"] for j in r.json()}  # noqa: E731
    assert ids(await api.get("/api/v1/jobs?job_type=send_email")) == {a["id"]}
    assert ids(await api.get("/api/v1/jobs?q=REPORT")) == {b["id"], c["id"]}   # queue name, case-insensitive
    assert ids(await api.get("/api/v1/jobs?q=email")) == {a["id"]}              # payload.job_type
    assert ids(await api.get(f"/api/v1/jobs?q={c['id'][:13]}")) == {c["id"]}    # id prefix
    assert ids(await api.get("/api/v1/jobs?q=%25")) == set()                    # LIKE wildcards are literal
    rows = {j["id"]: j for j in (await api.get("/api/v1/jobs")).json()}
    assert rows[a["id"]]["job_type"] == "send_email" and rows[c["id"]]["job_type"] == ""
