-- name: reap_expired_jobs
-- pending/scheduled jobs whose expires_at passed -> cancelled ("expired").
WITH pick AS (
    SELECT id, status FROM jobs
    WHERE status IN ('pending', 'scheduled') AND expires_at IS NOT NULL AND expires_at <= coalesce($now::timestamptz, now())
    ORDER BY expires_at LIMIT $limit
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE jobs j SET status = 'cancelled', last_error = 'expired', completed_at = t.now, updated_at = t.now
    FROM pick, (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, pick.status AS old_status
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, details)
    SELECT id, organization_id, 'expired', old_status, 'cancelled', '{"error": "expired"}' FROM u
)
SELECT count(*) FROM u

-- name: reap_leases
-- processing jobs whose lease expired (or whose worker is gone, when $worker_ids is given) -> pending at once
-- while retries are left, else deadletter (failed when the queue does not dead-letter). The lease is released:
-- lease_id and assigned_worker_id are cleared (the worker stays in the history event).
WITH pick AS (
    SELECT j.id, j.assigned_worker_id AS holder, coalesce(q.dead_letter, true) AS dead_letter FROM jobs j
    LEFT JOIN queues q ON q.organization_id = j.organization_id AND q.name = j.queue_name
    WHERE j.status = 'processing'
      AND CASE WHEN $worker_ids::text[] IS NULL THEN j.lease_expires_at <= coalesce($now::timestamptz, now())
               ELSE j.organization_id = $org AND j.assigned_worker_id = ANY($worker_ids) END
    ORDER BY j.lease_expires_at LIMIT $limit
    FOR UPDATE OF j SKIP LOCKED
), u AS (
    UPDATE jobs j SET
        retry_count = j.retry_count + 1, last_error = $reason, lease_id = NULL, lease_expires_at = NULL,
        assigned_worker_id = NULL, updated_at = t.now,
        status = CASE WHEN j.retry_count < j.max_retries THEN 'pending'
                      WHEN pick.dead_letter THEN 'deadletter' ELSE 'failed' END::job_status,
        run_at = CASE WHEN j.retry_count < j.max_retries THEN t.now ELSE j.run_at END,
        completed_at = CASE WHEN j.retry_count < j.max_retries THEN NULL ELSE t.now END
    FROM pick, (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, j.queue_name, j.status, pick.holder AS worker_id
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, worker_id, details)
    SELECT id, organization_id, CASE WHEN status = 'pending' THEN 'lease_expired' ELSE status::text END,
           'processing', status, worker_id, json_build_object('error', $reason::text)
    FROM u
)
SELECT count(*) AS released FROM u

-- name: promote_scheduled
-- scheduled jobs that are due -> pending (the history trigger wakes the claimers of each queue touched).
WITH pick AS (
    SELECT id FROM jobs
    WHERE status = 'scheduled' AND run_at <= coalesce($now::timestamptz, now())
    ORDER BY run_at LIMIT $limit
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE jobs j SET status = 'pending', updated_at = coalesce($now::timestamptz, now())
    FROM pick WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, j.queue_name
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status)
    SELECT id, organization_id, 'ready', 'scheduled', 'pending' FROM u
)
SELECT count(*) AS promoted FROM u
