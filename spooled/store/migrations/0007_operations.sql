-- Migration 0007: operations. A job's W3C trace context (handed to the worker that claims it), each live
-- instance's loop health (read by `spooled status`), and the cluster-wide job-count snapshot behind /metrics.

ALTER TABLE jobs ADD COLUMN traceparent text;
ALTER TABLE jobs ADD COLUMN tracestate text;

ALTER TABLE server_instances ADD COLUMN version text;
ALTER TABLE server_instances ADD COLUMN loops json;

-- One row: the job counts by organization, queue and live state, recomputed by at most one instance per
-- interval (services/metrics.py); every instance's /metrics serves the stored counts in between.
CREATE TABLE metrics_snapshot (
    id                  int         NOT NULL DEFAULT 1,
    taken_at            timestamptz NOT NULL DEFAULT '-infinity',
    counts              json        NOT NULL DEFAULT '[]',
    workers             json        NOT NULL DEFAULT '[]',
    CONSTRAINT metrics_snapshot_pk PRIMARY KEY (id),
    CONSTRAINT metrics_snapshot_one_row CHECK (id = 1)
);
INSERT INTO metrics_snapshot (id) VALUES (1);

-- The metrics snapshot counts dead letters per queue without reading the organizations' finished history.
CREATE INDEX jobs_deadletter_idx ON jobs (organization_id, queue_name) WHERE status = 'deadletter';
