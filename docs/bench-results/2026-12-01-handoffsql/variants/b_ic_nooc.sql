CREATE OR REPLACE FUNCTION spooled_insert_claim(p_org uuid, p_queue text, p_now timestamptz, p_ids uuid[], p_payloads text[],
                                     p_priorities int[], p_max_retries int[], p_timeouts int[], p_tags text[],
                                     p_idempotency_keys text[], p_webhooks text[], p_webhook_secrets text[],
                                     p_scheduled_ats timestamptz[], p_expires_ats timestamptz[],
                                     p_traceparents text[], p_tracestates text[], p_workers text[], p_limits int[],
                                     p_lease_secs float8[])
RETURNS TABLE (claimer int, job jobs, more boolean) LANGUAGE plpgsql ROWS 10
SET jit = off SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_max_retries int;
    v_timeout int;
BEGIN
    -- the queue's defaults; the queue created on first use (a statement of its own only then)
    SELECT q.max_retries, q.default_timeout INTO v_max_retries, v_timeout
    FROM queues q WHERE q.organization_id = p_org AND q.name = p_queue;
    IF NOT FOUND THEN
        INSERT INTO queues (organization_id, name) VALUES (p_org, p_queue)
        ON CONFLICT ON CONSTRAINT queues_name_key DO NOTHING
        RETURNING max_retries, default_timeout INTO v_max_retries, v_timeout;
    END IF;
    RETURN QUERY
        WITH ins AS (
            INSERT INTO jobs AS j (id, organization_id, queue_name, status, payload, priority, max_retries,
                              timeout_seconds, tags, idempotency_key, completion_webhook, completion_webhook_secret,
                              scheduled_at, run_at, expires_at, created_at, updated_at, traceparent, tracestate)
            SELECT i.id, p_org, p_queue,
                   CASE WHEN i.scheduled_at > v_now THEN 'scheduled' ELSE 'pending' END::job_status,
                   i.payload::json, i.priority, coalesce(i.max_retries, v_max_retries, 3),
                   coalesce(i.timeout_seconds, v_timeout, 300), i.tags::json, i.idempotency_key,
                   i.completion_webhook, i.webhook_secret, i.scheduled_at, coalesce(i.scheduled_at, v_now),
                   i.expires_at, v_now, v_now, i.traceparent, i.tracestate
            FROM unnest(p_ids, p_payloads, p_priorities, p_max_retries, p_timeouts, p_tags, p_idempotency_keys,
                        p_webhooks, p_webhook_secrets, p_scheduled_ats, p_expires_ats, p_traceparents,
                        p_tracestates)
                 AS i(id, payload, priority, max_retries, timeout_seconds, tags, idempotency_key,
                      completion_webhook, webhook_secret, scheduled_at, expires_at, traceparent, tracestate)
            RETURNING j
        )
        SELECT 0, ins.j, false FROM ins;
    RETURN QUERY
        SELECT c.claimer, c.job, c.more
        FROM spooled_claim_jobs_for(p_org, p_queue, v_now, p_workers, p_limits, p_lease_secs) AS c;
END
$fn$;