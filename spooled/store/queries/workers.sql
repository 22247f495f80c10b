-- name: worker_register
-- Register a worker, or update it when the client re-registers the same id: the new description replaces
-- the old one and the worker is healthy again; its counters and registered_at are kept. A worker the caller
-- may not reach (registered for a queue outside its scope) is left as it is and no row comes back.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now)
INSERT INTO workers AS w (id, organization_id, queue_names, hostname, worker_type, version, max_concurrency,
                          metadata, heartbeat_interval_secs, lease_duration_secs, status, current_jobs,
                          last_heartbeat, registered_at)
SELECT $id, $org, $queue_names::text[], $hostname, $worker_type, $version, $max_concurrency,
       coalesce($metadata::json, '{}'), $heartbeat_interval_secs, $lease_duration_secs, 'healthy', 0, t.now, t.now
FROM t
ON CONFLICT ON CONSTRAINT workers_pk DO UPDATE SET
    queue_names = EXCLUDED.queue_names, hostname = EXCLUDED.hostname, worker_type = EXCLUDED.worker_type,
    version = EXCLUDED.version, max_concurrency = EXCLUDED.max_concurrency, metadata = EXCLUDED.metadata,
    heartbeat_interval_secs = EXCLUDED.heartbeat_interval_secs,
    lease_duration_secs = EXCLUDED.lease_duration_secs, status = 'healthy', current_jobs = 0,
    last_heartbeat = EXCLUDED.last_heartbeat, deregistered_at = NULL
    WHERE $scope(w.queue_names <@ $queues::text[])
RETURNING w.*, (w.xmax = 0) AS created

-- name: worker_list
-- A caller restricted to some queues reaches the workers all of whose queues it may use (those it could
-- have registered); here and in every statement below.
SELECT * FROM workers
WHERE organization_id = $org AND ($status::text IS NULL OR status = $status)
  AND ($queue::text IS NULL OR $queue = ANY(queue_names)) AND $scope(queue_names <@ $queues::text[])
ORDER BY registered_at, id

-- name: worker_get
SELECT * FROM workers WHERE organization_id = $org AND id = $id AND $scope(queue_names <@ $queues::text[])

-- name: worker_heartbeat
-- A heartbeat revives an offline worker. `draining` is sticky: only a re-register clears it, so a drain
-- request is not undone by the worker's next routine heartbeat.
UPDATE workers w SET
    last_heartbeat = t.now, current_jobs = $current_jobs, deregistered_at = NULL,
    status = CASE WHEN w.status = 'draining' THEN 'draining'
                  ELSE coalesce($status::text, CASE WHEN w.status = 'offline' THEN 'healthy' ELSE w.status END)
             END,
    metadata = coalesce($metadata::json, w.metadata)
FROM (SELECT coalesce($now::timestamptz, now()) AS now) t
WHERE w.organization_id = $org AND w.id = $id AND $scope(w.queue_names <@ $queues::text[])
RETURNING w.status

-- name: worker_deregister
UPDATE workers SET status = 'offline', current_jobs = 0, deregistered_at = coalesce($now::timestamptz, now())
WHERE organization_id = $org AND id = $id AND $scope(queue_names <@ $queues::text[])
RETURNING id

-- name: worker_expire
-- Workers silent for 3 heartbeat intervals -> offline (one bounded batch; rows another instance is expiring
-- are skipped). The caller releases their jobs in the same transaction.
WITH pick AS (
    SELECT w.organization_id, w.id FROM workers w
    WHERE w.status <> 'offline'
      AND w.last_heartbeat < coalesce($now::timestamptz, now()) - make_interval(secs => 3 * w.heartbeat_interval_secs)
    ORDER BY w.last_heartbeat LIMIT $limit
    FOR UPDATE OF w SKIP LOCKED
)
UPDATE workers w SET status = 'offline', current_jobs = 0
FROM pick WHERE w.organization_id = pick.organization_id AND w.id = pick.id
RETURNING w.organization_id, w.id
