-- Migration 0008: the indexes the retention loop (services/retention.py) reads its bounded batches through, and
-- the claim pinned to its primary-key join (spooled_claim_jobs).

-- A job a schedule run points at is kept while the run is (retention deletes the run first).
CREATE INDEX schedule_runs_job_idx ON schedule_runs (job_id) WHERE job_id IS NOT NULL;
-- Expired refresh tokens, old email login codes, old Stripe event ids, old usage days, long-offline workers.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX email_login_codes_created_idx ON email_login_codes (created_at);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);
CREATE INDEX org_usage_daily_day_idx ON org_usage_daily (day);
CREATE INDEX workers_offline_idx ON workers (last_heartbeat) WHERE status = 'offline';
-- Done webhook deliveries of an organization by time (pending ones are the dispatcher's).
CREATE INDEX webhook_deliveries_done_idx ON webhook_deliveries (organization_id, created_at) WHERE status <> 'pending';
-- Finished workflows of an organization by state and time (a bounded range probe per organization and state).
CREATE INDEX workflows_finished_idx ON workflows (organization_id, status, completed_at) WHERE completed_at IS NOT NULL;

-- The claim itself: lease the ready jobs spooled_ready_jobs picks and record their history, as one statement. A
-- function only to pin its plan: a prepared statement keeps the generic plan made when it was first run, and made
-- on a small (or never analyzed) jobs table that plan joined the picked ids to jobs with a sequential scan, read on
-- every claim once the table had grown (measured: 1,500 buffers and ~2 ms per claim at 20,000 rows, until an
-- autovacuum replanned it). With sequential scans off the join is by primary key whatever the statistics said
-- (and with JIT off: a plan costed by disabled scans must never pay for compiling itself).
CREATE FUNCTION spooled_claim_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz, p_worker text,
                                   p_lease_secs float8)
RETURNS SETOF jobs LANGUAGE plpgsql ROWS 10 SET enable_seqscan = off SET jit = off AS $fn$
BEGIN
    RETURN QUERY
        WITH c AS (
            SELECT id FROM spooled_ready_jobs(p_org, p_queue, p_limit, p_now) AS id
        ), u AS (
            UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid(),
                              lease_expires_at = p_now + make_interval(secs => p_lease_secs),
                              assigned_worker_id = p_worker, started_at = p_now, updated_at = p_now
            FROM c WHERE j.id = c.id
            RETURNING j.*
        ), h AS (
            INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, worker_id,
                                     created_at)
            SELECT u.id, u.organization_id, 'started', 'pending', 'processing', u.assigned_worker_id, u.started_at
            FROM u
        )
        SELECT * FROM u;
END
$fn$;

-- Retention (services/retention.py): each organization's retention in days under one plan limit (`p_limit`:
-- job_retention_days or history_retention_days), from its plan's (tier p_tiers[i] keeps p_days[i] days, the
-- operator's overrides applied by the caller) or its own custom_limits. Inlined into the retention statements.
CREATE FUNCTION spooled_retention_days(p_tiers text[], p_days int[], p_limit text)
RETURNS TABLE (organization_id uuid, days int) LANGUAGE sql STABLE AS $fn$
    SELECT o.id, coalesce((o.custom_limits->>p_limit)::int, d.days)
    FROM organizations o JOIN unnest(p_tiers, p_days) AS d(tier, days) ON d.tier = o.plan_tier
$fn$;
