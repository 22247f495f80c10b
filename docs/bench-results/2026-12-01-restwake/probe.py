"""Throwaway: add perf_counter_ns stamps to an exported checkout DIR (never committed)."""
import sys, os
D = sys.argv[1]
open(os.path.join(D, "spooled/_probe.py"), "w").write('''import atexit, os, time
T = []
_ns = time.perf_counter_ns
def s(name):
    T.append((name, _ns()))
def _dump():
    out = os.environ.get("PROBE_OUT")
    if out:
        with open(out, "w") as f:
            for n, t in T:
                f.write(f"{n} {t}\\n")
atexit.register(_dump)
''')
def patch(path, old, new, count=1):
    path = os.path.join(D, path)
    src = open(path).read()
    if src.count(old) != count:
        print("MISSING", path, repr(old[:60]), src.count(old)); return
    open(path, "w").write(src.replace(old, new))
imp = "from spooled import _probe\n"
fp = "spooled/transports/http/fastpath.py"
patch(fp, "from spooled.domain import errors\n", "from spooled.domain import errors\n" + imp)
patch(fp, "            path, route, job_id, fields, close = parsed\n",
      "            path, route, job_id, fields, close = parsed\n            _pc = route.run is hot.create_job\n            if _pc: _probe.s('p_read')\n")
patch(fp, "await send_bounded(stream, b\"\".join(head), stall, shield=False)",
      "await _psend(route, stream, b\"\".join(head), stall)")
patch(fp, "def _may_wait(", """async def _psend(route, stream, data, stall):
    c = 'p_' if route.run is hot.create_job else 'w_' if route.run is hot.claim else 'x_'
    _probe.s(c + 'sending')
    ok = await send_bounded(stream, data, stall, shield=False)
    _probe.s(c + 'sent')
    return ok


def _may_wait(""")
hp = "spooled/transports/http/hot.py"
patch(hp, "from spooled.services import admission, logs\n", "from spooled.services import admission, logs\n" + imp)
patch(hp, "        logs.org.set(principal.organization_id)\n", "        logs.org.set(principal.organization_id)\n        if route.run is create_job: _probe.s('p_admitted')\n")
patch(hp, "        status, obj = await route.run(svc, principal, data, req)\n        body = dumps(obj)\n",
      "        if route.run is create_job: _probe.s('p_parsed')\n        status, obj = await route.run(svc, principal, data, req)\n        _probe.s('p_route_done' if route.run is create_job else 'w_route_done' if route.run is claim else 'x_route_done')\n        body = dumps(obj)\n        _probe.s('p_body' if route.run is create_job else 'w_body' if route.run is claim else 'x_body')\n")
jp = "spooled/services/jobs.py"
patch(jp, "from spooled.services.grouping import Grouper\n", "from spooled.services.grouping import Grouper\n" + imp)
patch(jp, "            return [await self._enqueues.submit(key, rows[0])]\n",
      "            _probe.s('p_submit')\n            return [await self._enqueues.submit(key, rows[0])]\n")
patch(jp, "        try:\n            return await self._insert(key, rows, bulk=False)\n",
      "        _probe.s('p_flush')\n        try:\n            return await self._insert(key, rows, bulk=False)\n")
patch(jp, "                        queues=queues, now=now, rows=not bulk, claimers=[w.handoff.claimer for w in takers])\n",
      "                        queues=queues, now=now, rows=not bulk, claimers=[w.handoff.claimer for w in takers])\n                _probe.s('p_trio_back' if takers else 'p_trio_back_plain')\n")
patch(jp, "                        handed=partial(_deliver, takers) if takers else None)\n",
      "                        handed=partial(_deliver, takers) if takers else None)\n                _probe.s('p_trio_back' if takers else 'p_trio_back_plain')\n")
patch(jp, "            return w.handoff.claimed\n", "            _probe.s('w_got')\n            return w.handoff.claimed\n")
patch(jp, "                claimed = await self._claims.submit(group, claimer)\n",
      "                _probe.s('c_claim')\n                claimed = await self._claims.submit(group, claimer)\n                _probe.s('c_claimed' if claimed.jobs else 'c_empty')\n")
patch(jp, "                self._wakeups.notify(org, queue)\n            m = self._metrics", "                _probe.s('pass_on')\n                self._wakeups.notify(org, queue)\n            m = self._metrics")
sp = "spooled/store/jobs.py"
patch(sp, "from spooled.store.sql import Q, pinned\n", "from spooled.store.sql import Q, pinned\n" + imp)
patch(sp, "            got = await con.fetch(sql, *args)\n            inserted = {}\n",
      "            _probe.s('p_aio_send')\n            got = await con.fetch(sql, *args)\n            _probe.s('p_aio_answer')\n            inserted = {}\n")
wp = "spooled/services/wakeups.py"
patch(wp, "import trio\n", "import trio\n" + imp)
patch(wp, "        if h is not None and not h.done.is_set():\n", "        _probe.s('w_deliver')\n        if h is not None and not h.done.is_set():\n")
patch(wp, "        parts = payload.split(\" \")\n", "        _probe.s('notify')\n        parts = payload.split(\" \")\n")
dp = "spooled/store/db.py"
patch(dp, "from spooled.store.sql import Statement\n", "from spooled.store.sql import Statement\n" + imp)
patch(dp, "            holder = [self._take()]\n", "            _probe.s('db_slot')\n            holder = [self._take()]\n")
patch(dp, "        if holder[0] is None:\n            holder[0] = await self._connect()\n",
      "        _probe.s('db_aio')\n        if holder[0] is None:\n            holder[0] = await self._connect()\n")
rp = "scripts/bench/request_cost.py"
patch(rp, "                started[j[\"payload\"][\"seq\"]] = time.perf_counter()\n",
      "                started[j[\"payload\"][\"seq\"]] = time.perf_counter()\n                CLIENT.append(('c_started', time.perf_counter_ns()))\n")
patch(rp, "        sent[seq] = time.perf_counter()\n        await producer.post(\"/api/v1/jobs\", {\"queue_name\": queue, \"payload\": {\"seq\": seq}})\n",
      "        sent[seq] = time.perf_counter()\n        CLIENT.append(('c_sent', time.perf_counter_ns()))\n        await producer.post(\"/api/v1/jobs\", {\"queue_name\": queue, \"payload\": {\"seq\": seq}})\n        CLIENT.append(('c_answered', time.perf_counter_ns()))\n")
patch(rp, "    lat = [(started[s] - sent[s]) * 1000 for s in sent if s in started]\n",
      "    lat = [(started[s] - sent[s]) * 1000 for s in sent if s in started]\n    with open(os.environ['PROBE_CLIENT'], 'w') as f:\n        for k, t in CLIENT: f.write(f'{k} {t}\\n')\n")
patch(rp, "EMPTY = [0]", "CLIENT = []\nEMPTY = [0]")

patch(jp, "                      else self._wakeups.reserve(org, queue, _due(batch)))\n", "                      else self._wakeups.reserve(org, queue, _due(batch)))\n            _probe.s('p_reserved')\n")
patch(sp, "        assert not any(new.parents), \"a handoff inserts no job with a parent\"\n", "        _probe.s('p_store')\n        assert not any(new.parents), \"a handoff inserts no job with a parent\"\n")
patch(dp, "        async with self._slots:\n            holder", "        _probe.s('db_run')\n        async with self._slots:\n            holder")
