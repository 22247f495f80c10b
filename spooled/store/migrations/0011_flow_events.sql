-- Migration 0011: schedule and workflow events (the SDK's `schedule.triggered`, `workflow.completed`,
-- `workflow.failed` webhook events; docs/architecture.md "Events"). Both go through `spooled_emit` like the queue
-- and worker events: outbox rows for the subscribed webhooks, a NOTIFY when some instance listens for the org.

-- A workflow's status change (called once per change, in that transaction, by spooled_workflow_refresh):
-- reaching completed or failed is an event; the other moves (pending -> running, cancelled) are not.
CREATE OR REPLACE FUNCTION spooled_workflow_changed(p_workflow uuid, p_org uuid, p_old text, p_new text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_new IN ('completed', 'failed') THEN
        PERFORM spooled_emit(p_org, 'workflow.' || p_new,
            json_build_object('workflow_id', p_workflow, 'name', (SELECT w.name FROM workflows w WHERE w.id = p_workflow),
                              'status', p_new, 'old_status', p_old));
    END IF;
END
$fn$;

-- A schedule run gets its job (schedule_run_enqueued: cron fires and manual triggers alike): schedule.triggered.
CREATE FUNCTION spooled_schedule_run_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM spooled_emit(NEW.organization_id, 'schedule.triggered',
        (SELECT json_build_object('schedule_id', NEW.schedule_id, 'name', s.name, 'run_id', NEW.id,
                                  'job_id', NEW.job_id, 'queue_name', s.queue_name, 'fire_time', NEW.fire_time,
                                  'manual', NEW.manual)
         FROM schedules s WHERE s.id = NEW.schedule_id));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER schedule_runs_events AFTER UPDATE OF job_id ON schedule_runs
    FOR EACH ROW WHEN (OLD.job_id IS NULL AND NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION spooled_schedule_run_events();
