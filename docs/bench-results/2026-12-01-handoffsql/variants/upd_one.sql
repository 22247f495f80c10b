CREATE OR REPLACE FUNCTION spooled_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    completion boolean;
    ev spooled_job_event[];
BEGIN
    SELECT EXISTS (SELECT 1 FROM event_listeners l
                   WHERE l.organization_id = ANY (array_agg(n.organization_id)) AND l.expires_at > now()),
           EXISTS (SELECT 1 FROM webhooks w WHERE w.organization_id = ANY (array_agg(n.organization_id)) AND w.enabled),
           coalesce(bool_or(n.status = 'completed' AND n.completion_webhook IS NOT NULL), false)
    INTO listening, subscribed, completion
    FROM new_rows n;
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
