"""Turn the probe's stamps (sitecustomize.py) into a timeline of workload B: per Enqueue, each step's first
stamp after the Enqueue's handler was entered, as µs from the last `rx` (grpclib's data_received) before it;
medians and p90s over the cycles.

    python docs/bench-results/2026-12-01-grpcwake/probe/timeline.py /tmp/probe.txt
"""

import statistics
import sys

ORDER = ["rx", "rx.end", "h2.accept", "req_handler", "enq.handler", "rpc.unary", "trio.task", "admit.start", "admit.end", "group.unit", "store.insert_claim",
         "aio.unit", "pg.sent", "pg.answered", "store.back_in_trio", "waiter.deliver", "trio.send", "msg.build",
         "aio.send_all", "aio.send_all_end", "flush.job", "enq.reply_queued", "flush.reply"]


OPTIONAL = {"trio.send"}      # ProcessJobs' send (StreamJobs sends from its claim loop)


def main(path: str) -> None:
    stamps = [(n, int(t)) for n, t in (line.split() for line in open(path))]
    starts = [i for i, (n, _) in enumerate(stamps) if n == "enq.handler"]
    rows = []
    for k, i in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(stamps)
        # the Enqueue's request: the last `rx` before the call's accept (h2.accept) that precedes the handler
        acc = next((j for j in range(i - 1, -1, -1) if stamps[j][0] == "h2.accept"), None)
        if acc is None:
            continue
        rxi = next((j for j in range(acc - 1, -1, -1) if stamps[j][0] == "rx"), None)
        if rxi is None:
            continue
        seen: dict[str, int] = {}
        for n, t in stamps[rxi:end]:
            if n == "flush":
                if "aio.send_all" in seen and "flush.job" not in seen:
                    seen["flush.job"] = t
                if "enq.reply_queued" in seen and "flush.reply" not in seen:
                    seen["flush.reply"] = t
                continue
            seen.setdefault(n, t)
        if all(s in seen for s in ORDER if s not in OPTIONAL):
            rows.append(seen)
    rows = rows[20:]    # warm-up calls and the first jobs
    print(f"{len(rows)} cycles")
    print("| step | median µs from rx | p90 | median step |")
    print("|---|---:|---:|---:|")
    prev = None
    for s in ORDER:
        if not all(s in r for r in rows):
            continue
        xs = sorted((r[s] - r["rx"]) / 1000 for r in rows)
        step = statistics.median((r[s] - r[prev]) / 1000 for r in rows) if prev else 0.0
        print(f"| {s} | {statistics.median(xs):.0f} | {xs[int(len(xs) * 0.9)]:.0f} | {step:+.0f} |")
        prev = s


if __name__ == "__main__":
    main(sys.argv[1])
