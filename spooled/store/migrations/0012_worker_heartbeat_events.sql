-- Migration 0012: `worker.heartbeat` events (the realtime `WorkerHeartbeat` frame). A heartbeat of a live worker
-- emits it through `spooled_emit` (no webhook subscribes to it, so only a NOTIFY, and only when some instance
-- listens for the org); a heartbeat that revives an offline worker is a `worker.registered` already.
CREATE FUNCTION spooled_worker_heartbeat_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM spooled_emit(NEW.organization_id, 'worker.heartbeat',
                         json_build_object('worker_id', NEW.id, 'queue_name', NEW.queue_names[1],
                                           'queue_names', NEW.queue_names, 'status', NEW.status,
                                           'current_jobs', NEW.current_jobs, 'last_heartbeat', NEW.last_heartbeat));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER workers_heartbeat_events AFTER UPDATE OF last_heartbeat ON workers
    FOR EACH ROW WHEN (OLD.status <> 'offline' AND NEW.status <> 'offline')
    EXECUTE FUNCTION spooled_worker_heartbeat_events();
