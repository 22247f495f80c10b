#!/usr/bin/env sh
# The rig runs a "cmd" contestant as <driver> <common flags> <args>: run grpc_bulk_driver.py with the rig's venv.
exec "${BENCHDEPS:-/tmp/benchdeps}/venv/bin/python" "$(dirname "$0")/grpc_bulk_driver.py" "$@"
