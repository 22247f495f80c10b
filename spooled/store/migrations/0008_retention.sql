-- Migration 0008: the indexes the retention loop (services/retention.py) reads its bounded batches through.

-- A job a schedule run points at is kept while the run is (retention deletes the run first).
CREATE INDEX schedule_runs_job_idx ON schedule_runs (job_id) WHERE job_id IS NOT NULL;
-- Expired refresh tokens, old email login codes, old Stripe event ids, old usage days, long-offline workers.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX email_login_codes_created_idx ON email_login_codes (created_at);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);
CREATE INDEX org_usage_daily_day_idx ON org_usage_daily (day);
CREATE INDEX workers_offline_idx ON workers (last_heartbeat) WHERE status = 'offline';
