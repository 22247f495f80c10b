-- name: schedule_create
INSERT INTO schedules (id, organization_id, name, description, cron_expression, timezone, queue_name,
                       payload_template, priority, max_retries, timeout_seconds, tags, metadata, catch_up, overlap,
                       is_active, next_run_at, created_at, updated_at)
VALUES ($id, $org, $name, $description, $cron_expression, $timezone, $queue_name, $payload_template::json,
        $priority, $max_retries, $timeout_seconds, $tags::json, $metadata::json, $catch_up, $overlap, $is_active,
        $next_run_at, coalesce($now::timestamptz, now()), coalesce($now::timestamptz, now()))
RETURNING *

-- name: schedule_get
-- A schedule of a queue outside the caller's scope (domain/scope.py) is not there, here and in every
-- statement a request reaches a schedule through.
SELECT * FROM schedules WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])

-- name: schedule_lock
SELECT * FROM schedules WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])
FOR UPDATE

-- name: schedule_update
-- Every mutable column from the caller's merged values (the caller holds the row lock: schedule_lock).
UPDATE schedules SET name = $name, description = $description, cron_expression = $cron_expression,
                     timezone = $timezone, queue_name = $queue_name, payload_template = $payload_template::json,
                     priority = $priority, max_retries = $max_retries, timeout_seconds = $timeout_seconds,
                     tags = $tags::json, metadata = $metadata::json, catch_up = $catch_up, overlap = $overlap,
                     is_active = $is_active, next_run_at = $next_run_at,
                     updated_at = coalesce($now::timestamptz, now())
WHERE id = $id AND organization_id = $org
RETURNING *

-- name: schedule_list
SELECT * FROM schedules
WHERE organization_id = $org AND ($queue_name::text IS NULL OR queue_name = $queue_name)
  AND $scope(queue_name = ANY ($queues::text[]))
  AND ($is_active::bool IS NULL OR is_active = $is_active)
ORDER BY created_at, id
LIMIT $limit OFFSET $offset

-- name: schedule_delete
DELETE FROM schedules WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])
RETURNING id

-- name: schedule_lock_due
-- Due schedules, oldest fire first, locked so that no other instance fires them meanwhile (SKIP LOCKED: each
-- instance takes different rows). `previous_active`: the overlap=skip schedule's latest fired run has no job yet,
-- or its job is still active.
SELECT s.*, t.now AS db_now,
       (s.overlap = 'skip' AND EXISTS (
            SELECT 1 FROM (SELECT r.job_id FROM schedule_runs r WHERE r.schedule_id = s.id AND r.state = 'fired'
                           ORDER BY r.started_at DESC, r.fire_time DESC, r.id DESC LIMIT 1) last
            LEFT JOIN jobs j ON j.id = last.job_id AND j.organization_id = s.organization_id
            WHERE last.job_id IS NULL OR j.status IN ('pending', 'scheduled', 'processing'))) AS previous_active
FROM schedules s, (SELECT coalesce($now::timestamptz, now()) AS now) t
WHERE s.is_active AND s.next_run_at <= t.now
ORDER BY s.next_run_at
LIMIT $limit
FOR UPDATE OF s SKIP LOCKED

-- name: schedule_record_fires
-- In the transaction holding the due rows' locks: advance each schedule and record its runs (fired ones are
-- promises to enqueue, see schema.sql). A fire time already recorded is not recorded again.
WITH s AS (
    UPDATE schedules sc SET next_run_at = x.next_run_at, last_run_at = coalesce(x.last_run_at, sc.last_run_at),
                            run_count = sc.run_count + x.fired
    FROM unnest($ids::uuid[], $next_run_ats::timestamptz[], $last_run_ats::timestamptz[], $fired::int[])
         AS x(id, next_run_at, last_run_at, fired)
    WHERE sc.id = x.id
    RETURNING sc.id
)
INSERT INTO schedule_runs (id, schedule_id, organization_id, fire_time, state, error_message, enqueue_after,
                           started_at, completed_at)
SELECT r.id, r.schedule_id, r.organization_id, r.fire_time, r.state,
       CASE WHEN r.state = 'skipped' THEN 'skipped: the previous run is still active' END,
       CASE WHEN r.state = 'fired' THEN t.now + make_interval(secs => $retry_secs::float8) END, t.now,
       CASE WHEN r.state = 'skipped' THEN t.now END
FROM unnest($run_ids::uuid[], $run_schedule_ids::uuid[], $run_orgs::uuid[], $fire_times::timestamptz[],
            $states::text[]) AS r(id, schedule_id, organization_id, fire_time, state),
     (SELECT coalesce($now::timestamptz, now()) AS now) t
WHERE r.schedule_id IN (SELECT id FROM s)
ON CONFLICT (schedule_id, fire_time) WHERE NOT manual DO NOTHING
RETURNING id

-- name: schedule_trigger
-- A manual fire: one run promised to enqueue a job, counted at once (also while the schedule is paused).
WITH s AS (
    UPDATE schedules SET run_count = run_count + 1, last_run_at = t.now
    FROM (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])
    RETURNING schedules.*, t.now AS fired_at
), r AS (
    INSERT INTO schedule_runs (id, schedule_id, organization_id, fire_time, manual, enqueue_after, started_at)
    SELECT $run_id, s.id, s.organization_id, s.fired_at, true,
           s.fired_at + make_interval(secs => $retry_secs::float8), s.fired_at
    FROM s
    RETURNING *
)
SELECT r.id AS run_id, r.schedule_id, r.organization_id, r.fire_time, r.manual, s.queue_name,
       s.payload_template::text AS payload_template, s.priority, s.max_retries, s.timeout_seconds,
       s.tags::text AS tags
FROM r JOIN s ON s.id = r.schedule_id

-- name: schedule_runs_unfilled
-- Fired runs whose job was never recorded (the instance that fired them died, or its enqueue failed) and whose
-- retry time has come: taken for another `retry_secs` so only one instance retries each at a time.
WITH pick AS (
    SELECT id FROM schedule_runs
    WHERE state = 'fired' AND job_id IS NULL AND enqueue_after <= coalesce($now::timestamptz, now())
    ORDER BY enqueue_after LIMIT $limit
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE schedule_runs r SET enqueue_after = coalesce($now::timestamptz, now())
                                               + make_interval(secs => $retry_secs::float8)
    FROM pick WHERE r.id = pick.id
    RETURNING r.*
)
SELECT u.id AS run_id, u.schedule_id, u.organization_id, u.fire_time, u.manual, s.queue_name,
       s.payload_template::text AS payload_template, s.priority, s.max_retries, s.timeout_seconds,
       s.tags::text AS tags
FROM u JOIN schedules s ON s.id = u.schedule_id

-- name: schedule_run_enqueued
-- The one place a run gets its job (the seam for a `schedule.triggered` event).
UPDATE schedule_runs SET job_id = $job_id, enqueue_after = NULL WHERE id = $run_id AND job_id IS NULL
RETURNING id

-- name: schedule_run_refused
UPDATE schedule_runs SET state = 'error', error_message = $error, enqueue_after = NULL,
                         completed_at = coalesce($now::timestamptz, now())
WHERE id = $run_id AND job_id IS NULL
RETURNING id

-- name: schedule_history
-- Newest first. A fired run's status is its job's, read here (no write on the job path keeps it in step).
SELECT r.id, r.schedule_id, r.job_id, r.fire_time, r.manual, r.started_at,
       CASE WHEN r.state = 'skipped' THEN 'skipped'
            WHEN r.state = 'error' THEN 'failed'
            WHEN r.job_id IS NULL THEN 'pending'
            WHEN j.id IS NULL THEN 'deleted'
            WHEN j.status IN ('pending', 'scheduled') THEN 'pending'
            WHEN j.status = 'processing' THEN 'running'
            WHEN j.status = 'completed' THEN 'completed'
            WHEN j.status = 'cancelled' THEN 'cancelled'
            ELSE 'failed' END AS status,
       coalesce(r.error_message, CASE WHEN j.status IN ('failed', 'deadletter', 'cancelled') THEN j.last_error END)
           AS error_message,
       coalesce(r.completed_at, j.completed_at) AS completed_at
FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id AND j.organization_id = r.organization_id
                                        AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
WHERE r.schedule_id = $id AND r.organization_id = $org
  AND $scope(EXISTS (SELECT 1 FROM schedules s WHERE s.id = $id AND s.organization_id = $org
                                                    AND ARRAY[s.queue_name] <@ $queues::text[]))
ORDER BY r.started_at DESC, r.fire_time DESC, r.id DESC
LIMIT $limit OFFSET $offset
