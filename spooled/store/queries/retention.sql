-- Retention (services/retention.py): each statement deletes one bounded batch (`$limit` rows), picked
-- FOR UPDATE SKIP LOCKED, so any number of instances can run them at once. `$tiers` with `$job_days` /
-- `$history_days` are each plan's retention (operator overrides applied); spooled_retention_days (schema.sql)
-- gives each organization's, its own `custom_limits` overriding its plan's. `$now` NULL means the database clock. The oldest rows go first: each
-- probe walks its index range in time order from the start and stops at the limit.

-- name: retention_schedule_runs
-- Runs older than their organization's history retention, except a fired run still waiting for its job (a
-- promise to enqueue) and a run whose job is still pending, scheduled or processing.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
cut AS (
    SELECT s.id AS schedule_id, t.now - make_interval(days => o.days) AS before
    FROM spooled_retention_days($tiers::text[], $history_days::int[], 'history_retention_days') o
    JOIN schedules s ON s.organization_id = o.organization_id, t
),
pick AS (
    SELECT p.id FROM cut CROSS JOIN LATERAL (
        SELECT r.id FROM schedule_runs r
        WHERE r.schedule_id = cut.schedule_id AND r.started_at < cut.before
          AND NOT (r.state = 'fired' AND r.job_id IS NULL)
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id
                            AND j.status IN ('pending', 'scheduled', 'processing'))
        ORDER BY r.started_at
        LIMIT $limit
        FOR UPDATE OF r SKIP LOCKED
    ) p
    LIMIT $limit
), gone AS (
    DELETE FROM schedule_runs r USING pick WHERE r.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_jobs
-- Finished jobs (completed, failed, cancelled) finished longer ago than their organization's job retention,
-- dead letters longer ago than the greater of that and `$deadletter_days`; their history goes with them
-- (the jobs_deleted trigger). Never a pending, scheduled or processing job, a job a schedule run points at, or a job
-- of a workflow (those go with their workflow: retention_workflows). One probe of jobs_org_finished_idx per
-- organization and state, each stopping at `$limit`.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
cut AS (
    SELECT o.organization_id AS org, s.status,
           t.now - make_interval(days => CASE WHEN s.status = 'deadletter'
                                              THEN greatest(o.days, $deadletter_days::int) ELSE o.days END) AS before
    FROM spooled_retention_days($tiers::text[], $job_days::int[], 'job_retention_days') o, t,
         (VALUES ('completed'::job_status), ('failed'), ('cancelled'), ('deadletter')) AS s(status)
),
pick AS (
    SELECT p.id FROM cut CROSS JOIN LATERAL (
        SELECT j.id FROM jobs j
        WHERE j.organization_id = cut.org AND j.status = cut.status AND j.completed_at < cut.before
          AND j.workflow_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM schedule_runs r WHERE r.job_id = j.id)
        ORDER BY j.completed_at
        LIMIT $limit
        FOR UPDATE OF j SKIP LOCKED
    ) p
    LIMIT $limit
), gone AS (
    DELETE FROM jobs j USING pick WHERE j.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_workflows
-- Finished workflows (completed, failed, cancelled) finished longer ago than their organization's job retention
-- (a failed one: the dead-letter window, as its dead letters), with their jobs (jobs_workflow_fk cascades, and
-- their history with them). Never one with a job still pending, scheduled or processing (a cancelled workflow's
-- running jobs finish as they would).
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
cut AS (
    SELECT o.organization_id AS org, s.status,
           t.now - make_interval(days => CASE WHEN s.status = 'failed'
                                              THEN greatest(o.days, $deadletter_days::int) ELSE o.days END) AS before
    FROM spooled_retention_days($tiers::text[], $job_days::int[], 'job_retention_days') o, t,
         (VALUES ('completed'), ('failed'), ('cancelled')) AS s(status)
),
pick AS (
    SELECT p.id FROM cut CROSS JOIN LATERAL (
        SELECT w.id FROM workflows w
        WHERE w.organization_id = cut.org AND w.status = cut.status AND w.completed_at < cut.before
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id
                            AND j.status IN ('pending', 'scheduled', 'processing'))
        ORDER BY w.completed_at
        LIMIT $limit
        FOR UPDATE OF w SKIP LOCKED
    ) p
    LIMIT $limit
), gone AS (
    DELETE FROM workflows w USING pick WHERE w.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_webhook_deliveries
-- Outgoing webhook deliveries that are done (delivered, or failed for good) and older than their organization's
-- history retention (the product's sweep: free 1 day, starter 7, pro 30, enterprise 90). A pending delivery
-- (due, or being retried) stays whatever its age.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
cut AS (
    SELECT o.organization_id AS org, t.now - make_interval(days => o.days) AS before
    FROM spooled_retention_days($tiers::text[], $history_days::int[], 'history_retention_days') o, t
),
pick AS (
    SELECT p.id FROM cut CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.organization_id = cut.org AND d.status <> 'pending' AND d.created_at < cut.before
        ORDER BY d.created_at
        LIMIT $limit
        FOR UPDATE OF d SKIP LOCKED
    ) p
    LIMIT $limit
), gone AS (
    DELETE FROM webhook_deliveries d USING pick WHERE d.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_inbound_webhooks
-- The incoming webhook log past the history retention (a redelivery is still recognised: the provider's delivery
-- id is its job's idempotency key, which lives as long as the job).
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
cut AS (
    SELECT o.organization_id AS org, t.now - make_interval(days => o.days) AS before
    FROM spooled_retention_days($tiers::text[], $history_days::int[], 'history_retention_days') o, t
),
pick AS (
    SELECT p.id FROM cut CROSS JOIN LATERAL (
        SELECT i.id FROM inbound_webhooks i
        WHERE i.organization_id = cut.org AND i.created_at < cut.before
        ORDER BY i.created_at
        LIMIT $limit
        FOR UPDATE OF i SKIP LOCKED
    ) p
    LIMIT $limit
), gone AS (
    DELETE FROM inbound_webhooks i USING pick WHERE i.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_refresh_tokens
-- Expired refresh tokens (a revoked one is dead too, and expires within its 30 days).
WITH pick AS (
    SELECT jti FROM refresh_tokens WHERE expires_at < coalesce($now::timestamptz, now())
    LIMIT $limit FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM refresh_tokens r USING pick WHERE r.jti = pick.jti RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_email_codes
-- Login codes older than a day (a code lives 10 minutes; the hourly limit counts the last hour's).
WITH pick AS (
    SELECT id FROM email_login_codes WHERE created_at < coalesce($now::timestamptz, now()) - interval '1 day'
    LIMIT $limit FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM email_login_codes c USING pick WHERE c.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_stripe_events
-- Stripe event ids received more than 30 days ago (Stripe retries an event for 3 days; the order guard is the
-- organization's stripe_event_at, which stays).
WITH pick AS (
    SELECT id FROM stripe_events WHERE received_at < coalesce($now::timestamptz, now()) - interval '30 days'
    LIMIT $limit FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM stripe_events e USING pick WHERE e.id = pick.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_usage_days
-- Daily job counters older than 35 days (quotas read today's only).
WITH pick AS (
    SELECT organization_id, day FROM org_usage_daily
    WHERE day < (coalesce($now::timestamptz, now()) AT TIME ZONE 'UTC')::date - 35
    LIMIT $limit FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM org_usage_daily u USING pick WHERE u.organization_id = pick.organization_id AND u.day = pick.day
    RETURNING 1
)
SELECT count(*) FROM gone

-- name: retention_workers
-- Workers offline (deregistered, or lost) for more than 7 days: they hold no jobs.
WITH pick AS (
    SELECT organization_id, id FROM workers
    WHERE status = 'offline' AND last_heartbeat < coalesce($now::timestamptz, now()) - interval '7 days'
    LIMIT $limit FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM workers w USING pick WHERE w.organization_id = pick.organization_id AND w.id = pick.id
    RETURNING 1
)
SELECT count(*) FROM gone
