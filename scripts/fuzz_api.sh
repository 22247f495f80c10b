#!/usr/bin/env bash
# The long schemathesis run, for the record (docs/reliability.md, "Hostile clients: the OpenAPI fuzz"): the same
# test the suite runs (tests/test_openapi_fuzz.py, against a real server on a throwaway PostgreSQL), with more
# cases per operation. Prints schemathesis' summary; exits non-zero on any failure.
#
#   scripts/fuzz_api.sh                 # 50 cases per operation in the fuzzing phase
#   scripts/fuzz_api.sh 100 12345       # cases per operation, and a seed to repeat a run
#
# The full output goes to fuzz-api.log in a temp dir (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
log=$(mktemp -d)/fuzz-api.log
export SPOOLED_FUZZ_EXAMPLES=${1:-50} SPOOLED_FUZZ_LOG=$log
if [ -n "${2:-}" ]; then export SPOOLED_FUZZ_SEED=$2; fi
status=0
.venv/bin/python -m pytest -q -s tests/test_openapi_fuzz.py >/dev/null || status=$?
if [ -f "$log" ]; then
  sed -n '/=== SUMMARY ===/,/^FUZZ /p' "$log"
  echo "full output: $log"
fi
exit $status
