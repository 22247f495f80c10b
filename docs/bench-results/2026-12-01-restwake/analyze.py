import sys, statistics
def load(p):
    return [(l.split()[0], int(l.split()[1])) for l in open(p)]
ev = sorted(load(sys.argv[1]) + load(sys.argv[2]), key=lambda e: e[1])
cycles, cur = [], None
for n, t in ev:
    if n == "c_sent":
        cur = {"_t0": t}; cycles.append(cur)
    elif cur is not None and n not in cur:
        cur[n] = t
order = ["p_read", "p_admitted", "p_parsed", "p_submit", "p_flush", "p_reserved", "p_store", "db_run", "db_slot", "db_aio", "p_aio_send", "notify",
         "p_aio_answer", "w_deliver", "p_trio_back", "w_got", "pass_on", "w_route_done", "w_body", "w_sending", "w_sent",
         "p_route_done", "p_body", "p_sending", "p_sent", "c_started", "c_answered", "w2_woken", "c_claim", "c_empty"]
cycles = cycles[len(cycles)//10:]    # drop the first tenth (warm-up)
print(f"{len(cycles)} cycles (after dropping the first tenth)")
print(f"{'stamp':14} {'n':>4} {'p50 ms':>7} {'p90 ms':>7}")
for k in order:
    v = sorted((c[k] - c["_t0"]) / 1e6 for c in cycles if k in c)
    if not v: continue
    print(f"{k:14} {len(v):4} {statistics.median(v):7.3f} {v[int(len(v)*0.9)]:7.3f}")
