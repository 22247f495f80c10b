#!/usr/bin/env bash
# A session with curl: enqueue a job, claim it as a worker would, complete it with its lease, read it back,
# look at the queue, and retry a dead letter. Needs curl and python3 (to read fields out of the JSON).
#
#   SPOOLED_URL=http://127.0.0.1:8080 SPOOLED_API_KEY=sk_live_... bash examples/curl_session.sh
#
# (make a key with `python -m spooled create-org Acme` or `python -m spooled api-keys create --org ORG_ID`)
set -euo pipefail
URL="${SPOOLED_URL:-http://127.0.0.1:8080}"
QUEUE="${SPOOLED_QUEUE:-curl-demo}"
AUTH="Authorization: Bearer ${SPOOLED_API_KEY:?set SPOOLED_API_KEY}"

api() {   # api METHOD PATH [JSON]: the response body; a 4xx/5xx ends the script with the server's error body
  curl -sS --fail-with-body -X "$1" "$URL/api/v1$2" -H "$AUTH" -H "Content-Type: application/json" ${3:+-d "$3"}
}
field() {  # field EXPR: evaluate a Python expression on the JSON read from stdin (as `j`)
  python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"
}

echo "== enqueue (with a W3C traceparent: the worker gets it back with the job)"
JOB=$(curl -sS --fail-with-body -X POST "$URL/api/v1/jobs" -H "$AUTH" \
      -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" \
      -d "{\"queue_name\": \"$QUEUE\", \"payload\": {\"to\": \"a@example.com\"}, \"max_retries\": 2}")
JOB_ID=$(echo "$JOB" | field 'j["id"]')
echo "job $JOB_ID is $(echo "$JOB" | field 'j["status"]')"

echo "== claim (a long poll: waits up to 5 s for work) under a 60 s lease"
CLAIMED=$(api POST /jobs/claim "{\"queue_name\": \"$QUEUE\", \"worker_id\": \"curl-worker\", \"limit\": 1,
                                 \"wait_secs\": 5, \"lease_duration_secs\": 60}")
LEASE_ID=$(echo "$CLAIMED" | field 'j["jobs"][0]["lease_id"]')
echo "leased $(echo "$CLAIMED" | field 'j["jobs"][0]["id"]') with lease $LEASE_ID," \
     "trace $(echo "$CLAIMED" | field 'j["jobs"][0]["traceparent"]')"

echo "== complete it with its lease"
api POST "/jobs/$JOB_ID/complete" "{\"worker_id\": \"curl-worker\", \"lease_id\": \"$LEASE_ID\",
                                    \"result\": {\"sent\": true}}" | field '"success: %s" % j["success"]'
echo "job $JOB_ID: $(api GET "/jobs/$JOB_ID" | field '"%s, result %s" % (j["status"], j["result"])')"

echo "== a job that fails for good lands in the dead-letter queue; retry it from there"
BAD=$(api POST /jobs "{\"queue_name\": \"$QUEUE\", \"payload\": {\"to\": \"nobody\"}, \"max_retries\": 0}" \
      | field 'j["id"]')
LEASE_ID=$(api POST /jobs/claim "{\"queue_name\": \"$QUEUE\", \"worker_id\": \"curl-worker\"}" \
           | field 'j["jobs"][0]["lease_id"]')
api POST "/jobs/$BAD/fail" "{\"worker_id\": \"curl-worker\", \"lease_id\": \"$LEASE_ID\", \"error\": \"bad address\"}" \
  | field '"failed: now %s" % j["status"]'
api POST /jobs/dlq/retry "{\"queue_name\": \"$QUEUE\"}" | field '"retried %d dead letter(s)" % j["retried_count"]'

echo "== the queue"
api GET "/queues/$QUEUE/stats" | field '"pending %d, processing %d, dead letters %d" % (j["pending_jobs"],
                                        j["processing_jobs"], j["deadletter_jobs"])'
api DELETE "/jobs/$BAD" >/dev/null
echo "cancelled $BAD; done"
