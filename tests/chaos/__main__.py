"""`python -m tests.chaos` (what `scripts/chaos` runs): every scenario, or those named, with a table of results;
`python -m tests.chaos worker ...` is the worker process the worker-kill scenario starts."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio
import trio_asyncio

from tests.chaos import load, report, scenarios
from tests.chaos.checks import Result
from tests.chaos.pg import Cluster
from tests.chaos.servers import processes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/chaos", description="Spooled fault runner: scenarios under load, "
                                "checked against the database (loopback only, a throwaway PostgreSQL of its own)")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help=f"scenarios to run (default: all): {', '.join(scenarios.SCENARIOS)}")
    p.add_argument("--quick", action="store_true", help="the short profile the test suite uses")
    p.add_argument("--markdown", metavar="FILE", help="also write the results as Markdown to FILE (between its "
                   "result markers when it has them, as docs/reliability.md does)")
    p.add_argument("--budget", type=float, default=900, help="seconds for the whole run (default 900)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs, worker records)")
    return p


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return f", commit {head.stdout.strip()}" if head.returncode == 0 else ""


def _worker_parser() -> argparse.ArgumentParser:
    w = argparse.ArgumentParser(prog="python -m tests.chaos worker")
    for name in ("http", "grpc", "key", "records", "transport", "name", "queue"):
        w.add_argument(f"--{name}", required=True)
    w.add_argument("--lease", type=int, required=True)
    w.add_argument("--work", type=float, required=True)
    w.add_argument("--renew", action="store_true")
    return w


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return _worker(_worker_parser().parse_args(argv[1:]))
    args = _parser().parse_args(argv)
    unknown = [s for s in args.scenarios if s not in scenarios.SCENARIOS]
    if unknown:
        print(f"unknown scenario {', '.join(unknown)}; known: {', '.join(scenarios.SCENARIOS)}", file=sys.stderr)
        return 2
    names = args.scenarios or list(scenarios.SCENARIOS)
    profile = scenarios.QUICK if args.quick else scenarios.FULL
    workdir = Path(tempfile.mkdtemp(prefix="spooled-chaos-"))
    os.chmod(workdir, 0o755)
    cluster = None
    results: list[Result] = []
    pg_version = "?"
    try:
        cluster = Cluster()
        pg_version = cluster.version
        trio.run(_run_all, names, profile, cluster, workdir, args.budget, results)
    except KeyboardInterrupt:
        print("\ninterrupted: every process this run started was stopped", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    if not results:
        return 1
    print()
    print(report.text(results))
    if args.markdown:
        command = "scripts/chaos" + (" --quick" if args.quick else "") + "".join(f" {n}" for n in args.scenarios)
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + _commit()
        env = f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {pg_version}"
        write_markdown(Path(args.markdown), report.markdown(results, command=command, when=when, environment=env))
        print(f"\nwrote {args.markdown}")
    failed = not all(r.passed for r in results) or len(results) < len(names)
    if args.keep or failed:
        print(f"work dir (server logs, worker records): {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


BEGIN, END = "<!-- chaos results: written by scripts/chaos --markdown -->", "<!-- end of chaos results -->"


def write_markdown(path: Path, block: str) -> None:
    """Replace the results between the markers of an existing document (docs/reliability.md), else write
    the block alone."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")
    else:
        path.write_text(block + "\n")


async def _run_all(names: list[str], profile: scenarios.Profile, cluster: Cluster, workdir: Path, budget: float,
                   results: list[Result]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals, trio.move_on_after(budget) as overall:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
            async with trio_asyncio.open_loop():
                for name in names:
                    results.append(await run_one(name, profile, cluster, workdir))
                    print(report.text(results[-1:], details=False).splitlines()[-1], flush=True)
            nursery.cancel_scope.cancel()
    if overall.cancelled_caught:
        print(f"the run's budget of {budget:g} s ran out", file=sys.stderr)


async def _cancel_on_signal(signals, scope: trio.CancelScope) -> None:
    async for _ in signals:
        print("\nSIGTERM: stopping", file=sys.stderr)
        scope.cancel()


async def run_one(name: str, profile: scenarios.Profile, cluster: Cluster, workdir: Path) -> Result:
    """One scenario on a fresh database of `cluster`, its processes stopped afterwards whatever happens."""
    fn, _ = scenarios.SCENARIOS[name]
    dsn = await trio.to_thread.run_sync(cluster.create_database, name.replace("-", "_"))
    print(f"{name} ...", flush=True)
    async with processes() as procs:
        lab = scenarios.Lab(workdir, procs, profile, cluster, say=lambda text: print(text, flush=True))
        try:
            with trio.fail_after(300):
                return await fn(lab, dsn)
        except Exception as exc:   # the scenario itself broke: report it, stop its processes, go on
            logs = "\n".join(f"--- {p.name}\n{p.log_tail(1500)}" for p in procs if hasattr(p, "log_tail"))
            result = Result(name, error=f"{type(exc).__name__}: {exc}")
            print(f"{name} broke: {result.error}\n{logs}", file=sys.stderr)
            return result


def _worker(args) -> int:
    """A worker process: claims and completes until killed, writing every record to a line of `--records`."""
    out = open(args.records, "a", buffering=1)

    def sink(record: dict) -> None:
        out.write(json.dumps(record) + "\n")

    async def work():
        ledger = load.Ledger(sink)
        target = load.Target(args.http, args.grpc)
        spec = load.WorkerSpec(args.name, args.queue, lease_secs=args.lease, batch=3, work_secs=args.work,
                               renew=args.renew)
        fn = load.rest_worker if args.transport == "rest" else load.grpc_worker
        async with trio_asyncio.open_loop():
            await fn(ledger, target, args.key, spec, load.Stops())
    trio.run(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
