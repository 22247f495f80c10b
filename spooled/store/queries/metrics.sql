-- The cluster-wide counts behind /metrics (services/metrics.py): computed by one instance per interval.

-- name: metrics_snapshot_take
-- Recompute and store the counts unless some instance did within $interval seconds; no row when they are fresh
-- or another instance is computing them right now (its row lock: SKIP LOCKED, so nobody waits or counts twice).
-- Only live states are counted, each through its partial index (so the cost follows the backlog, not the
-- history): pending and ready (jobs_ready_idx; jobs waiting for dependencies are not in it), scheduled (jobs_scheduled_idx), processing (jobs_lease_idx),
-- deadletter (jobs_deadletter_idx). Workers: those not offline (workers_heartbeat_idx).
WITH due AS (
    SELECT id FROM metrics_snapshot WHERE id = 1 AND taken_at <= now() - make_interval(secs => $interval)
    FOR UPDATE SKIP LOCKED
), counts AS (
    SELECT organization_id, queue_name, 'pending' AS state, count(*) AS n FROM jobs
    WHERE status = 'pending' AND dependencies_met
    GROUP BY organization_id, queue_name
    UNION ALL
    SELECT organization_id, queue_name, 'scheduled', count(*) FROM jobs WHERE status = 'scheduled'
    GROUP BY organization_id, queue_name
    UNION ALL
    SELECT organization_id, queue_name, 'processing', count(*) FROM jobs WHERE status = 'processing'
    GROUP BY organization_id, queue_name
    UNION ALL
    SELECT organization_id, queue_name, 'deadletter', count(*) FROM jobs WHERE status = 'deadletter'
    GROUP BY organization_id, queue_name
)
UPDATE metrics_snapshot s SET
    taken_at = now(),
    counts = (SELECT coalesce(json_agg(json_build_array(organization_id, queue_name, state, n)), '[]') FROM counts),
    workers = (SELECT coalesce(json_agg(json_build_array(status, n)), '[]')
               FROM (SELECT status, count(*) AS n FROM workers WHERE status <> 'offline' GROUP BY status) w)
FROM due WHERE s.id = due.id
RETURNING extract(epoch FROM s.taken_at)::float8 AS taken_at, s.counts::text AS counts, s.workers::text AS workers

-- name: metrics_snapshot_read
SELECT CASE WHEN taken_at = '-infinity' THEN 0 ELSE extract(epoch FROM taken_at)::float8 END AS taken_at,
       counts::text AS counts, workers::text AS workers
FROM metrics_snapshot WHERE id = 1
