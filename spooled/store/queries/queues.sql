-- name: queue_create
INSERT INTO queues (organization_id, name, max_retries, default_timeout, rate_limit, concurrency_limit, dead_letter,
                    backoff_base_secs, backoff_max_secs, settings, paused, paused_at)
VALUES ($org, $name, coalesce($max_retries::int, 3), coalesce($default_timeout::int, 300), $rate_limit,
        $concurrency_limit, coalesce($dead_letter::bool, true), coalesce($backoff_base::float8, 1),
        coalesce($backoff_max::float8, 3600), coalesce($settings::json, '{}'), $enabled::bool IS FALSE,
        CASE WHEN $enabled::bool IS FALSE THEN now() END)
ON CONFLICT ON CONSTRAINT queues_name_key DO NOTHING
RETURNING *

-- name: queue_update
-- Partial update: a NULL parameter keeps the column (rate_limit and concurrency_limit can be set to NULL);
-- enabled false pauses, true resumes (the queues trigger wakes claimers and emits queue.paused/resumed).
UPDATE queues q SET
    max_retries = coalesce($max_retries::int, q.max_retries),
    default_timeout = coalesce($default_timeout::int, q.default_timeout),
    rate_limit = CASE WHEN $set_rate_limit::bool THEN $rate_limit::int ELSE q.rate_limit END,
    concurrency_limit = CASE WHEN $set_concurrency_limit::bool THEN $concurrency_limit::int
                             ELSE q.concurrency_limit END,
    dead_letter = coalesce($dead_letter::bool, q.dead_letter),
    backoff_base_secs = coalesce($backoff_base::float8, q.backoff_base_secs),
    backoff_max_secs = coalesce($backoff_max::float8, q.backoff_max_secs),
    settings = coalesce($settings::json, q.settings),
    paused = coalesce(NOT $enabled::bool, q.paused),
    paused_at = CASE WHEN $enabled::bool IS NULL THEN q.paused_at WHEN $enabled::bool THEN NULL
                     ELSE coalesce(q.paused_at, now()) END,
    pause_reason = CASE WHEN $enabled::bool THEN NULL ELSE q.pause_reason END,
    updated_at = now()
WHERE q.organization_id = $org AND q.name = $name
RETURNING q.*

-- name: queue_get
SELECT * FROM queues WHERE organization_id = $org AND name = $name

-- name: queue_list
-- The queues of the caller's scope.
SELECT * FROM queues WHERE organization_id = $org AND $scope(name = ANY ($queues::text[]))
ORDER BY name

-- name: queue_active_jobs
-- Active jobs: the ready ones (jobs_ready_idx) and the rest (jobs_org_active_idx); each count names its index's
-- condition, so the planner can prove it.
SELECT (SELECT count(*) FROM jobs WHERE organization_id = $org AND queue_name = $name AND status = 'pending'
          AND dependencies_met)
       + (SELECT count(*) FROM jobs WHERE organization_id = $org AND queue_name = $name
          AND (status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met)))

-- name: queue_delete_jobs
-- The queue's jobs from the three partial indexes that hold every job (ready, other active, finished), each by
-- primary key (an array: no plan may hash-join the whole table); the jobs_deleted trigger deletes their job_list
-- rows.
DELETE FROM jobs WHERE id = ANY (ARRAY(
    SELECT id FROM jobs WHERE organization_id = $org AND queue_name = $name AND status = 'pending' AND dependencies_met
    UNION ALL
    SELECT id FROM jobs WHERE organization_id = $org AND queue_name = $name
      AND (status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met))
    UNION ALL
    SELECT id FROM jobs WHERE organization_id = $org AND queue_name = $name AND completed_at IS NOT NULL
      AND status IN ('completed', 'failed', 'deadletter', 'cancelled')))

-- name: queue_delete
DELETE FROM queues WHERE organization_id = $org AND name = $name RETURNING id

-- name: queue_pause
UPDATE queues SET paused = true, paused_at = coalesce(paused_at, now()), pause_reason = $reason, updated_at = now()
WHERE organization_id = $org AND name = $name
RETURNING name, paused, paused_at, pause_reason

-- name: queue_resume
-- (the queues trigger wakes the queue's claimers and emits queue.resumed)
WITH u AS (
    UPDATE queues q SET paused = false, paused_at = NULL, pause_reason = NULL, updated_at = now()
    FROM queues s
    WHERE q.organization_id = $org AND q.name = $name AND s.id = q.id
    RETURNING q.name, s.paused_at
)
SELECT u.name, extract(epoch FROM now() - u.paused_at) AS paused_secs FROM u

-- name: queue_stats
-- Each part from the partial index that holds its jobs (each names its index's condition, so the planner can
-- prove it; QueueStore.stats runs it with sequential scans off): the ready jobs (jobs_ready_idx), the other
-- active ones (jobs_org_active_idx), the finished ones (jobs_org_queue_finished_idx, with their times:
-- index-only).
SELECT r.pending + a.pending AS pending, a.scheduled, a.processing, f.completed, f.failed, f.deadletter,
       f.cancelled, r.pending + a.pending + a.scheduled + a.processing + f.completed + f.failed + f.deadletter
           + f.cancelled AS total,
       f.completed_24h, f.failed_24h, f.avg_ms,
       extract(epoch FROM now() - least(r.oldest, a.oldest))::float8 AS max_age_secs,
       (SELECT count(*) FROM workers w
        WHERE w.organization_id = $org AND $name = ANY(w.queue_names) AND w.status <> 'offline') AS active_workers
FROM (SELECT count(*) AS pending, min(run_at) AS oldest FROM jobs
      WHERE organization_id = $org AND queue_name = $name AND status = 'pending' AND dependencies_met) r,
     (SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
             count(*) FILTER (WHERE status = 'scheduled') AS scheduled,
             count(*) FILTER (WHERE status = 'processing') AS processing,
             min(run_at) FILTER (WHERE status = 'pending') AS oldest
      FROM jobs WHERE organization_id = $org AND queue_name = $name
        AND (status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met))) a,
     (SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'deadletter') AS deadletter,
             count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
             count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours')
                 AS completed_24h,
             count(*) FILTER (WHERE status IN ('failed', 'deadletter') AND completed_at > now() - interval '24 hours')
                 AS failed_24h,
             (avg(extract(epoch FROM completed_at - started_at) * 1000)
                 FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours'))::float8 AS avg_ms
      FROM jobs WHERE organization_id = $org AND completed_at IS NOT NULL
        AND status IN ('completed', 'failed', 'deadletter', 'cancelled') AND queue_name = $name) f

-- name: queue_throughput
-- Finished jobs per bucket of $bucket_secs since $since, by their current state (a retried dead letter no
-- longer counts). Reads the queue's finished jobs in jobs_org_queue_finished_idx (index-only).
SELECT to_timestamp(floor(extract(epoch FROM completed_at) / $bucket_secs) * $bucket_secs) AS start,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'deadletter')) AS failed
FROM jobs
WHERE organization_id = $org AND status IN ('completed', 'failed', 'deadletter') AND completed_at IS NOT NULL
  AND completed_at >= $since::timestamptz AND queue_name = $name
GROUP BY 1 ORDER BY 1
