#!/bin/bash
# run.sh SRC_DIR TAG: export, probe, run 400 jobs, analyze
set -e
src=$1; tag=$2; d=/tmp/restwake-tl/$tag   # (throwaway: probe.py stamps an export, never the worktree)
rm -rf $d; mkdir -p $d
if [ -d $src/.git ] || [ -f $src/.git ]; then (cd $src && git ls-files -z | xargs -0 tar -c) | tar -x -C $d; else cp -r $src/. $d/; rm -rf $d/.venv; fi
python3 /tmp/restwake-tl/probe.py $d
cd $d
uptime
PROBE_CLIENT=$d/client.txt /work/wt/restwake/.venv/bin/python scripts/bench/request_cost.py --repo $d --shapes rest-longpoll --durable --latency-jobs ${JOBS:-400} --env PROBE_OUT=$d/server.txt ${SERVER_ENV:+--env $SERVER_ENV} 2>&1 | tail -1
python3 /tmp/restwake-tl/analyze.py $d/server.txt $d/client.txt
