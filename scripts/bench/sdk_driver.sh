#!/usr/bin/env sh
# The rig runs a "cmd" contestant as <driver> <common flags> <args>: run sdk_driver.py with the SDK venv's python
# (exported by scripts/bench/run.sh).
exec "${SPOOLED_SDK_PYTHON:?run through scripts/bench/run.sh}" "$(dirname "$0")/sdk_driver.py" "$@"
