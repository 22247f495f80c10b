-- name: listener_register
-- This instance has live realtime subscribers for these organizations (the event triggers NOTIFY for them).
INSERT INTO event_listeners (organization_id, instance_id, expires_at)
SELECT o, $instance, now() + make_interval(secs => $ttl_secs::float8) FROM unnest($orgs::uuid[]) AS o
ON CONFLICT ON CONSTRAINT event_listeners_pk DO UPDATE SET expires_at = EXCLUDED.expires_at

-- name: listener_unregister
DELETE FROM event_listeners WHERE instance_id = $instance AND organization_id = ANY ($orgs::uuid[])

-- name: listener_sweep
-- Rows of instances that went away without unregistering (already ignored by the triggers once expired).
DELETE FROM event_listeners WHERE expires_at < now() - interval '10 minutes'
