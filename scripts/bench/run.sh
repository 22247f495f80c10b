#!/usr/bin/env bash
# Benchmark this server side by side with the PostgreSQL queue peers, using the shared rig in ../shared/bench
# (throwaway PostgreSQL 15, same workloads for everyone). Results land in /tmp/bench-results/<timestamp>/.
#
#   scripts/bench/run.sh                                  # our contestants + the reference and best peer, 1 rep
#   scripts/bench/run.sh --reps 3 --only spooled-rest-claim100-batchcomplete,raw-asyncpg-batch
#
# Needs ../shared/bench/install.sh once per machine (deps under /tmp/benchdeps).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
RIG="${BENCH_RIG:-$ROOT/../shared/bench}"
cd "$ROOT"
. scripts/_venv.sh
export SPOOLED_PYTHON="$ROOT/.venv/bin/python" SPOOLED_ROOT="$ROOT"
# the official SDK's venv (tests/sdk/runner.py builds it once) for the SDK worker contestants
SPOOLED_SDK_PYTHON="$("$SPOOLED_PYTHON" -c 'from tests.sdk.runner import sdk_python; print(sdk_python())')"
export SPOOLED_SDK_PYTHON
if [ ! -x /tmp/benchdeps/venv/bin/python ]; then "$RIG/install.sh"; fi
ONLY="raw-asyncpg-batch,pgbench-batch,graphile-worker-batched,mock-spooled-rest-claim1,mock-spooled-grpc-dequeue1,spooled-rest-claim1,spooled-rest-claim100"
ONLY="$ONLY,spooled-rest-claim100-batchcomplete,spooled-grpc-dequeue1,spooled-grpc-process,spooled-grpc-process-hold"
ONLY="$ONLY,spooled-grpc-stream,spooled-sdk-worker,spooled-sdk-worker-defaults"
if [[ " $* " != *" --only "* ]]; then set -- --only "$ONLY" "$@"; fi
if [[ " $* " != *" --reps "* ]]; then set -- --reps 1 "$@"; fi
exec "$RIG/run.sh" --extra "$ROOT/scripts/bench/contestants.json" "$@"
