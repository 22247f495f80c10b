#!/usr/bin/env bash
# Set up (first time) and run the whole test suite against a throwaway PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
exec .venv/bin/python -m pytest -q "$@"
