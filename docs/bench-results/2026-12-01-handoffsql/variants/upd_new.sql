CREATE OR REPLACE FUNCTION spooled_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    completion boolean;
    v_org text;
    v_org_last text;
    ev spooled_job_event[];
BEGIN
    SELECT min(n.organization_id::text), max(n.organization_id::text),
           coalesce(bool_or(n.status = 'completed' AND n.completion_webhook IS NOT NULL), false)
    INTO v_org, v_org_last, completion
    FROM new_rows n;
    IF v_org IS NULL THEN       -- no row updated (a claim that found nothing)
        RETURN NULL;
    ELSIF v_org = v_org_last THEN
        SELECT EXISTS (SELECT 1 FROM event_listeners l WHERE l.organization_id = v_org::uuid AND l.expires_at > now()),
               EXISTS (SELECT 1 FROM webhooks w WHERE w.organization_id = v_org::uuid AND w.enabled)
        INTO listening, subscribed;
    ELSE
        SELECT EXISTS (SELECT 1 FROM event_listeners l
                       WHERE l.organization_id IN (SELECT n.organization_id FROM new_rows n) AND l.expires_at > now()),
               EXISTS (SELECT 1 FROM webhooks w
                       WHERE w.organization_id IN (SELECT n.organization_id FROM new_rows n) AND w.enabled)
        INTO listening, subscribed;
    END IF;
    IF listening OR subscribed OR completion THEN
        SELECT array_agg(ROW(x.seq, x.id, x.organization_id, x.queue_name,
                             CASE WHEN x.status = 'processing' THEN 'started' ELSE 'completed' END,
                             x.old_status, x.status, x.last_worker_id, x.retry_count, NULL, x.result, x.last_error,
                             x.completion_webhook, x.completion_webhook_secret,
                             CASE WHEN x.status = 'processing' THEN x.started_at ELSE x.completed_at END
                             )::spooled_job_event ORDER BY x.seq)
        INTO ev
        FROM (SELECT n.*, o.status AS old_status, row_number() OVER () AS seq
              FROM new_rows n JOIN old_rows o ON o.id = n.id
              WHERE (o.status = 'pending' AND n.status = 'processing')
                 OR (o.status = 'processing' AND n.status = 'completed')) x;
        PERFORM spooled_publish_job_events(ev, listening, subscribed) WHERE ev IS NOT NULL;
    END IF;
    RETURN NULL;
END
$fn$;
