#!/usr/bin/env bash
# Set up (first time) and run the server: scripts/run.sh [--http HOST:PORT] [--grpc HOST:PORT]
# With DATABASE_URL unset it starts an embedded PostgreSQL in $SPOOLED_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
exec .venv/bin/python -m spooled "$@"
