-- name: job_insert
-- Bulk enqueue into one queue (one row per array element), creating the queue on first use. Ids are made by
-- the caller, so the rows that came back tell which inputs were inserted; the rest hit an idempotency key.
-- Each inserted job comes back as its id and, when $rows, its whole row (`job`, of the table's row type); a
-- bulk call needs only the ids (decoding 100 rows it does not show was ~15 % of its server CPU).
-- Events (wakeups, realtime, webhooks), the listing row and a job created scheduled's `created` history row come
-- from the jobs_inserted trigger.
WITH q0 AS (
    SELECT max_retries, default_timeout FROM queues WHERE organization_id = $org AND name = $queue
), qi AS (
    INSERT INTO queues (organization_id, name)
    SELECT $org, $queue WHERE NOT EXISTS (SELECT 1 FROM q0)
    ON CONFLICT ON CONSTRAINT queues_name_key DO NOTHING
    RETURNING max_retries, default_timeout
), q AS (
    SELECT coalesce((SELECT max_retries FROM q0), (SELECT max_retries FROM qi), 3) AS max_retries,
           coalesce((SELECT default_timeout FROM q0), (SELECT default_timeout FROM qi), 300) AS default_timeout,
           coalesce($now::timestamptz, now()) AS now
), ins AS (
    INSERT INTO jobs AS j (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds,
                      tags, idempotency_key, completion_webhook, completion_webhook_secret, parent_job_id,
                      scheduled_at, run_at, expires_at, created_at, updated_at, traceparent, tracestate)
    SELECT i.id, $org, $queue,
           CASE WHEN i.scheduled_at > q.now THEN 'scheduled' ELSE 'pending' END::job_status,
           i.payload::json, i.priority, coalesce(i.max_retries, q.max_retries),
           coalesce(i.timeout_seconds, q.default_timeout), i.tags::json, i.idempotency_key, i.completion_webhook,
           i.webhook_secret, i.parent_job_id, i.scheduled_at, coalesce(i.scheduled_at, q.now), i.expires_at, q.now,
           q.now, i.traceparent, i.tracestate
    FROM unnest($ids::uuid[], $payloads::text[], $priorities::int[], $max_retries::int[], $timeouts::int[],
                $tags::text[], $idempotency_keys::text[], $webhooks::text[], $webhook_secrets::text[],
                $parents::uuid[], $scheduled_ats::timestamptz[], $expires_ats::timestamptz[],
                $traceparents::text[], $tracestates::text[])
         AS i(id, payload, priority, max_retries, timeout_seconds, tags, idempotency_key, completion_webhook,
              webhook_secret, parent_job_id, scheduled_at, expires_at, traceparent, tracestate), q
    ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING j.id, CASE WHEN $rows::bool THEN j END AS job
)
SELECT id, job FROM ins

-- name: job_insert_claim
-- job_insert (no parents) and then job_claim_group for this instance's idle claimers of the queue, in one
-- statement and one commit (spooled_insert_claim in schema.sql; JobStore.insert with claimers). Rows: claimer 0,
-- each inserted job's row; claimer k >= 1, a job claimer k got, and whether ready jobs were left (`more`).
SELECT claimer, job, more
FROM spooled_insert_claim($org, $queue, $now::timestamptz, $ids::uuid[], $payloads::text[], $priorities::int[],
                          $max_retries::int[], $timeouts::int[], $tags::text[], $idempotency_keys::text[],
                          $webhooks::text[], $webhook_secrets::text[], $scheduled_ats::timestamptz[],
                          $expires_ats::timestamptz[], $traceparents::text[], $tracestates::text[],
                          $workers::text[], $limits::int[], $lease_secs::float8[])

-- name: job_missing_parents
-- The parent_job_ids given at enqueue that are not jobs of this organization (in the caller's scope).
SELECT p.id FROM unnest($ids::uuid[]) AS p(id)
WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = p.id AND j.organization_id = $org
                                        AND $scope(ARRAY[j.queue_name] <@ $queues::text[]))

-- name: job_ids_by_idempotency_key
SELECT id, idempotency_key FROM jobs WHERE organization_id = $org AND idempotency_key = ANY($keys::text[])

-- name: job_claim_group
-- One claim for several concurrent claimers of one queue (spooled_claim_jobs_for in schema.sql): the rules of
-- job_claim, jobs handed claimer after claimer in the order given. The columns are the Job model's fields in its
-- order, then how long the job waited from becoming due (run_at) to its start, in seconds, the row's claimer
-- (1-based) and whether ready jobs are left (`more`), as JobStore.claim reads them by position
-- (tests/test_foundation.py checks the order). `updated_at` is NULL: the claim sets it to the claim's time, as it
-- sets started_at, and JobStore.claim takes started_at's value (a timestamp costs the driver ~0.5 us a value to
-- decode, ~2 us of the ~4 us a claimed row cost; run_at is not decoded either).
SELECT id, organization_id, queue_name, status, payload, result, priority, max_retries, retry_count,
       timeout_seconds, last_error, tags, idempotency_key, completion_webhook, scheduled_at, started_at,
       completed_at, expires_at, lease_id, lease_expires_at, assigned_worker_id, created_at,
       NULL::timestamptz AS updated_at, parent_job_id, workflow_id, dependency_mode, dependencies_met, traceparent,
       tracestate, extract(epoch FROM started_at - run_at)::float8 AS queued_secs, claimer, more
FROM (SELECT c.claimer, c.more, (c.job).* FROM spooled_claim_jobs_for($org, $queue, coalesce($now::timestamptz, now()),
                                                                   $workers::text[], $limits::int[],
                                                                   $lease_secs::float8[]) AS c) AS g
ORDER BY claimer, priority DESC, run_at, id

-- name: job_claim
-- Lease up to the limit of pending jobs of one queue in claim order, skipping rows other claimers hold
-- (spooled_claim_jobs and spooled_ready_jobs in schema.sql). A paused queue hands out nothing; a job past its
-- expires_at is left for the reaper to cancel. The job row records the claim (started_at, last_worker_id): no
-- history row; its `started` events come from the jobs_updated trigger.
-- The columns are the Job model's fields in its order, then run_at (as job_claim_group's, which JobStore.claim
-- reads by position; tests/test_foundation.py checks the order).
SELECT id, organization_id, queue_name, status, payload, result, priority, max_retries, retry_count,
       timeout_seconds, last_error, tags, idempotency_key, completion_webhook, scheduled_at, started_at,
       completed_at, expires_at, lease_id, lease_expires_at, assigned_worker_id, created_at, updated_at,
       parent_job_id, workflow_id, dependency_mode, dependencies_met, traceparent, tracestate, run_at
FROM spooled_claim_jobs($org, $queue, $limit, coalesce($now::timestamptz, now()), $worker_id,
                        $lease_secs::float8)
ORDER BY priority DESC, run_at, id

-- name: job_complete
-- Complete each item in one statement, each fenced by its own lease (api.md "Lease fencing"): a given lease
-- must be the job's current unexpired one; an item without a lease is fenced by its worker (the job must be
-- processing, assigned to that worker, unexpired). An item succeeds only if the row was updated under ITS
-- fence: u is joined back on (id, lease or worker), never on the job id alone, so a stale and a current
-- completion of one job in one batch cannot both report success. `p` is the pre-statement snapshot of each
-- item's job (every part of one statement reads the same snapshot): it tells a missing job, a stale lease and
-- an idempotent replay apart, so it is read only for the items that were not completed (`u.id IS NULL`: a
-- one-time filter, no second primary-key lookup per completed job). A completed job keeps the lease that
-- completed it (completed_lease_id) and its last worker (last_worker_id), never shown, for replays (a job
-- completed before migration 0010 has its worker in its `completed` history row). The row records the completion: no history row (events: jobs_updated).
-- Plan: the jobs are found by primary key only, whatever the statistics say. No condition here names a column
-- another index leads with or a status a partial index is defined by (`processing` is implied by an unexpired
-- lease: jobs_processing_lease_check), and the organization is checked on the row, not in the join: with stale
-- statistics an `organization_id = $org` or `status = 'processing'` condition made the planner read every job
-- of the organization (or every processing job) per batch.
-- A job outside the caller's scope (domain/scope.py) is neither updated nor in `p`: NOT_FOUND, as another
-- organization's.
-- The arrays reach unnest through `a` so that no plan sees their length: a plan for one id (a custom plan,
-- which sees the values) would look cheaper than the generic plan (which assumes 10), and a connection whose
-- first five completions were single ones would then plan this statement again on every call (~0.4 ms of
-- PostgreSQL CPU, more than it takes to run; scripts/bench/scope_cost.py prints the plan counts).
-- The columns are CompleteOutcome's fields in its order (JobStore.complete builds each by position), in item order.
WITH a AS MATERIALIZED (
    SELECT $ids::uuid[] AS ids, $leases::uuid[] AS leases, $workers::text[] AS workers, $results::text[] AS results
), c AS (
    SELECT c.* FROM a, unnest(a.ids, a.leases, a.workers, a.results) WITH ORDINALITY AS c(id, lease, worker, result, ord)
), t AS MATERIALIZED (
    SELECT coalesce($now::timestamptz, now()) AS now
), u AS (
    UPDATE jobs j SET status = 'completed', result = c.result::json, completed_at = t.now,
                      completed_lease_id = j.lease_id, lease_id = NULL, lease_expires_at = NULL,
                      assigned_worker_id = NULL, updated_at = t.now
    FROM c, t
    WHERE j.id = c.id AND j.lease_expires_at > t.now AND (j.organization_id = $org) IS TRUE
      AND (j.lease_id = c.lease OR (c.lease IS NULL AND j.assigned_worker_id = c.worker))
      AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
    RETURNING j.id, j.organization_id, j.completed_lease_id AS lease, j.last_worker_id AS worker_id,
              j.completed_at, j.queue_name
), w AS (
    UPDATE workers wk SET jobs_processed = wk.jobs_processed + x.n
    FROM (SELECT worker_id, count(*) AS n FROM u GROUP BY 1) x
    WHERE wk.organization_id = $org AND wk.id = x.worker_id
)
SELECT (u.id IS NOT NULL) AS done, p.status AS prior_status,
       CASE WHEN u.id IS NOT NULL OR p.status IS DISTINCT FROM 'completed' THEN false
            WHEN c.lease IS NOT NULL THEN coalesce(p.completed_lease_id = c.lease, false)
            WHEN p.last_worker_id IS NOT NULL THEN p.last_worker_id = c.worker
            ELSE EXISTS (SELECT 1 FROM job_history hh WHERE hh.job_id = c.id AND hh.event_type = 'completed'
                                                        AND hh.worker_id = c.worker)
       END AS replay, u.queue_name
FROM c LEFT JOIN u ON u.id = c.id AND (u.lease = c.lease OR (c.lease IS NULL AND u.worker_id = c.worker))
       LEFT JOIN LATERAL (SELECT j.status, j.completed_lease_id, j.last_worker_id FROM jobs j
                          WHERE u.id IS NULL AND j.id = c.id AND (j.organization_id = $org) IS TRUE
                            AND $scope(ARRAY[j.queue_name] <@ $queues::text[]) OFFSET 0) p ON true
ORDER BY c.ord

-- name: job_fail
-- Fail the job held by $lease (or, without one, by $worker): retry later with backoff (scheduled), or
-- dead-letter / fail for good. The lease is released either way.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
d AS (
    SELECT j.id, j.assigned_worker_id AS holder, (j.retry_count < j.max_retries AND $retry::bool) AS will_retry,
           coalesce(q.dead_letter, true) AS dead_letter,
           least(coalesce(q.backoff_base_secs, 1) * power(2, least(j.retry_count, 62)),
                 coalesce(q.backoff_max_secs, 3600)) AS dmax
    FROM jobs j LEFT JOIN queues q ON q.organization_id = j.organization_id AND q.name = j.queue_name, t
    WHERE j.id = $id AND j.organization_id = $org AND j.status = 'processing' AND j.lease_expires_at > t.now
      AND (j.lease_id = $lease OR ($lease::uuid IS NULL AND j.assigned_worker_id = $worker::text))
      AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
), e AS (
    SELECT d.*, CASE WHEN d.will_retry THEN d.dmax / 2 + random() * d.dmax / 2 END AS delay FROM d
), u AS (
    UPDATE jobs j SET
        retry_count = j.retry_count + 1, last_error = $error, lease_id = NULL, lease_expires_at = NULL,
        assigned_worker_id = NULL, updated_at = t.now,
        status = CASE WHEN e.will_retry THEN 'scheduled' WHEN e.dead_letter THEN 'deadletter' ELSE 'failed'
                 END::job_status,
        run_at = CASE WHEN e.will_retry THEN t.now + make_interval(secs => e.delay) ELSE j.run_at END,
        scheduled_at = CASE WHEN e.will_retry THEN t.now + make_interval(secs => e.delay) ELSE j.scheduled_at END,
        completed_at = CASE WHEN e.will_retry THEN NULL ELSE t.now END
    FROM e, t
    WHERE j.id = e.id AND j.status = 'processing' AND j.lease_expires_at > t.now
      AND (j.lease_id = $lease OR ($lease::uuid IS NULL AND j.assigned_worker_id = $worker::text))
    RETURNING j.id, j.organization_id, j.status, j.retry_count, e.holder AS worker_id, e.will_retry, e.delay,
              j.queue_name
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, worker_id, details)
    SELECT id, organization_id, CASE WHEN will_retry THEN 'failed' ELSE status::text END, 'processing', status,
           worker_id, json_build_object('error', $error::text, 'retry_count', retry_count,
                                        'next_retry_delay_secs', delay)
    FROM u
), w AS (
    UPDATE workers wk SET jobs_failed = wk.jobs_failed + 1
    FROM u WHERE wk.organization_id = $org AND wk.id = u.worker_id
)
SELECT (u.id IS NOT NULL) AS done, u.status, u.will_retry, u.delay, s.status AS prior_status, u.queue_name
FROM (SELECT 1) one LEFT JOIN u ON true
     LEFT JOIN jobs s ON s.id = $id AND s.organization_id = $org
                     AND $scope(ARRAY[s.queue_name] <@ $queues::text[])

-- name: job_heartbeat
-- Extend the lease held by $lease (or, without one, by $worker).
WITH u AS (
    UPDATE jobs j SET lease_expires_at = t.now + make_interval(secs => $lease_secs::float8), updated_at = t.now
    FROM (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = $id AND j.organization_id = $org AND j.status = 'processing' AND j.lease_expires_at > t.now
      AND (j.lease_id = $lease OR ($lease::uuid IS NULL AND j.assigned_worker_id = $worker::text))
      AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
    RETURNING j.id, j.lease_expires_at
)
SELECT (u.id IS NOT NULL) AS done, u.lease_expires_at, s.status AS prior_status
FROM (SELECT 1) one LEFT JOIN u ON true
     LEFT JOIN jobs s ON s.id = $id AND s.organization_id = $org
                     AND $scope(ARRAY[s.queue_name] <@ $queues::text[])

-- name: job_get
-- Every statement that reads or moves jobs by id is scoped like this one: a job outside the caller's queues
-- (a restricted key's; domain/scope.py, store/sql.py) is not there. By id the scope is `ARRAY[queue_name] <@`,
-- which no index serves, so the primary key drives the lookup (as `queue_name = ANY`, a queue the statistics
-- have not seen yet made the planner read the whole queue through a queue index instead); the
-- statements that scan (counts, the DLQ) use `queue_name = ANY`, which the queue indexes serve.
SELECT * FROM jobs WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])

-- name: job_retry
-- Manual retry of a terminal failed/dead-lettered/cancelled job: back to pending with a fresh retry budget. Not
-- a job whose dependencies can never be met any more (one of its `all` dependencies, or every `any` one, ended
-- without completing): it would only be cancelled again (the dependency triggers, schema.sql).
WITH u AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, run_at = t.now, scheduled_at = NULL,
                      completed_at = NULL, result = NULL, lease_id = NULL, lease_expires_at = NULL,
                      assigned_worker_id = NULL, started_at = NULL, cancelled_by_dependency = false,
                      dependencies_met = j.dependency_mode IS NULL
                          OR (spooled_dependency_state(j.id, j.dependency_mode)).state = 'met',
                      updated_at = t.now
    FROM (SELECT coalesce($now::timestamptz, now()) AS now) t, jobs s
    WHERE j.id = $id AND j.organization_id = $org AND s.id = j.id AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
      AND j.status IN ('failed', 'deadletter', 'cancelled')
      AND (j.dependency_mode IS NULL OR (spooled_dependency_state(j.id, j.dependency_mode)).state <> 'failed')
    RETURNING j.*, s.status AS old_status
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status)
    SELECT id, organization_id, 'retried', old_status, 'pending' FROM u
)
SELECT * FROM u

-- name: job_cancel
WITH u AS (
    UPDATE jobs j SET status = 'cancelled', completed_at = t.now, lease_id = NULL, lease_expires_at = NULL,
                      assigned_worker_id = NULL, updated_at = t.now
    FROM (SELECT coalesce($now::timestamptz, now()) AS now) t, jobs s
    WHERE j.id = $id AND j.organization_id = $org AND s.id = j.id AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
      AND j.status IN ('pending', 'scheduled', 'processing')
    RETURNING j.id, j.organization_id, s.status AS old_status
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status)
    SELECT id, organization_id, 'cancelled', old_status, 'cancelled' FROM u
)
SELECT id FROM u

-- name: job_set_priority
UPDATE jobs j SET priority = $priority, updated_at = now()
FROM jobs s
WHERE j.id = $id AND j.organization_id = $org AND s.id = j.id AND j.status IN ('pending', 'scheduled', 'processing')
  AND $scope(ARRAY[j.queue_name] <@ $queues::text[])
RETURNING s.priority AS old_priority, j.priority AS new_priority

-- name: job_status_of
SELECT status FROM jobs WHERE id = $id AND organization_id = $org AND $scope(ARRAY[queue_name] <@ $queues::text[])

-- name: job_statuses
SELECT id, status, queue_name, retry_count, created_at, completed_at FROM jobs
WHERE organization_id = $org AND id = ANY($ids::uuid[]) AND $scope(ARRAY[queue_name] <@ $queues::text[])

-- name: job_history
-- The job's history rows and the events its row records (the job_events view, schema.sql), oldest first.
SELECT id, job_id, event_type, old_status, new_status, worker_id, details::text AS details, created_at
FROM job_events WHERE job_id = $id AND organization_id = $org
  AND $scope(EXISTS (SELECT 1 FROM jobs j WHERE j.id = $id AND j.organization_id = $org
                                          AND ARRAY[j.queue_name] <@ $queues::text[]))
ORDER BY CASE WHEN $desc::bool THEN -part ELSE part END, CASE WHEN $desc::bool THEN -seq ELSE seq END
LIMIT $limit OFFSET $offset

-- name: job_counts
-- The organization's jobs by state, each part from the partial index that holds it (each names its index's
-- condition, so the planner can prove it): the ready ones (jobs_ready_idx), the other active ones
-- (jobs_org_active_idx), the finished ones (jobs_org_finished_idx, or jobs_org_queue_finished_idx for some
-- queues: index-only).
SELECT status, sum(n)::bigint AS n FROM (
    SELECT 'pending'::job_status AS status, count(*) AS n FROM jobs
    WHERE organization_id = $org AND status = 'pending' AND dependencies_met
      AND $scope(queue_name = ANY ($queues::text[]))
    UNION ALL
    SELECT status, count(*) FROM jobs
    WHERE organization_id = $org AND (status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met))
      AND $scope(queue_name = ANY ($queues::text[]))
    GROUP BY status
    UNION ALL
    SELECT status, count(*) FROM jobs
    WHERE organization_id = $org AND completed_at IS NOT NULL AND status IN ('completed', 'failed', 'deadletter', 'cancelled')
      AND $scope(queue_name = ANY ($queues::text[]))
    GROUP BY status
) c
WHERE n > 0
GROUP BY status

-- name: dlq_retry
WITH pick AS (
    SELECT id FROM jobs
    WHERE organization_id = $org AND status = 'deadletter'
      AND ($queue::text IS NULL OR queue_name = $queue) AND $scope(queue_name = ANY ($queues::text[]))
      AND ($ids::uuid[] IS NULL OR id = ANY($ids))
    ORDER BY completed_at, id LIMIT $limit
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, run_at = now(), scheduled_at = NULL,
                      completed_at = NULL, lease_id = NULL, assigned_worker_id = NULL, started_at = NULL,
                      updated_at = now()
    FROM pick WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, j.queue_name
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status)
    SELECT id, organization_id, 'retried', 'deadletter', 'pending' FROM u
)
SELECT id FROM u

-- name: dlq_count
-- Dead letters of an organization (one queue, or all), through jobs_deadletter_idx.
SELECT count(*) FROM jobs
WHERE organization_id = $org AND status = 'deadletter' AND ($queue::text IS NULL OR queue_name = $queue)
  AND $scope(queue_name = ANY ($queues::text[]))

-- name: dlq_purge
WITH pick AS (
    SELECT id FROM jobs
    WHERE organization_id = $org AND status = 'deadletter'
      AND ($queue::text IS NULL OR queue_name = $queue) AND $scope(queue_name = ANY ($queues::text[]))
      AND ($older_than::timestamptz IS NULL OR completed_at < $older_than)
    ORDER BY completed_at, id LIMIT $limit
    FOR UPDATE SKIP LOCKED
)
DELETE FROM jobs j USING pick WHERE j.id = pick.id RETURNING j.id

-- name: job_release_unsent
-- Jobs a stream leased but could not deliver go back to pending as if never claimed (no retry counted, same
-- place in the claim order); guarded by the lease, so a job completed or re-leased meanwhile is untouched (only a
-- processing job has a lease). Found by primary key only, like job_complete's jobs.
WITH c AS (
    SELECT * FROM unnest($ids::uuid[], $leases::uuid[]) AS c(id, lease)
), u AS (
    UPDATE jobs j SET status = 'pending', lease_id = NULL, lease_expires_at = NULL, assigned_worker_id = NULL,
                      started_at = NULL, updated_at = t.now
    FROM c, (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = c.id AND (j.organization_id = $org) IS TRUE AND j.lease_id = c.lease
    RETURNING j.id, j.organization_id, j.queue_name
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, details)
    SELECT id, organization_id, 'released', 'processing', 'pending', '{"reason": "not delivered"}' FROM u
)
SELECT count(*) AS released FROM u

-- name: job_leases_held
-- Which of these (job, lease) pairs still hold an unexpired lease (by primary key only, like job_complete).
SELECT c.id FROM unnest($ids::uuid[], $leases::uuid[]) AS c(id, lease)
JOIN jobs j ON j.id = c.id AND (j.organization_id = $org) IS TRUE AND j.lease_id = c.lease
           AND j.lease_expires_at > now()
