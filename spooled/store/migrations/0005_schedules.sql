-- Migration 0005: cron schedules and their runs; the finished-jobs index behind the dashboard summary.

-- A cron schedule: each fire enqueues one job from the template (services/schedules.py). `next_run_at` is the
-- next fire time to wait for (NULL while paused); the scheduler takes due rows FOR UPDATE SKIP LOCKED and
-- advances it in the same transaction that records the fire's run.
CREATE TABLE schedules (
    id                  uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    name                text        NOT NULL,
    description         text,
    cron_expression     text        NOT NULL,
    timezone            text        NOT NULL DEFAULT 'UTC',
    queue_name          text        NOT NULL,
    payload_template    json        NOT NULL,
    priority            int         NOT NULL DEFAULT 0,
    max_retries         int         NOT NULL DEFAULT 3,
    timeout_seconds     int         NOT NULL DEFAULT 300,
    tags                json,
    metadata            json,
    catch_up            text        NOT NULL DEFAULT 'latest',
    overlap             text        NOT NULL DEFAULT 'allow',
    is_active           boolean     NOT NULL DEFAULT true,
    last_run_at         timestamptz,
    next_run_at         timestamptz,
    run_count           bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_pk PRIMARY KEY (id),
    CONSTRAINT schedules_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT schedules_catch_up_check CHECK (catch_up IN ('latest', 'all', 'skip')),
    CONSTRAINT schedules_overlap_check CHECK (overlap IN ('allow', 'skip')),
    CONSTRAINT schedules_priority_check CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT schedules_max_retries_check CHECK (max_retries BETWEEN 0 AND 100),
    CONSTRAINT schedules_timeout_check CHECK (timeout_seconds BETWEEN 1 AND 86400)
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE is_active;
CREATE INDEX schedules_org_idx ON schedules (organization_id, created_at, id);

-- One row per fire (or manual trigger). state 'fired' is a promise to enqueue exactly one job: it is written in
-- the transaction that advances next_run_at, and job_id is filled once the job exists (the enqueue carries the
-- run's id in its idempotency key, so retrying an unfilled run after a crash cannot enqueue twice; another
-- instance retries it once enqueue_after passes). 'skipped' (overlap policy) and 'error' (the enqueue was
-- refused) have no job. A fired run's status as clients see it follows its job.
CREATE TABLE schedule_runs (
    id                  uuid        NOT NULL,
    schedule_id         uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    fire_time           timestamptz NOT NULL,
    manual              boolean     NOT NULL DEFAULT false,
    state               text        NOT NULL DEFAULT 'fired',
    job_id              uuid,
    error_message       text,
    enqueue_after       timestamptz,
    started_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    CONSTRAINT schedule_runs_pk PRIMARY KEY (id),
    CONSTRAINT schedule_runs_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT schedule_runs_state_check CHECK (state IN ('fired', 'skipped', 'error'))
);
-- Each cron fire time of a schedule is recorded at most once.
CREATE UNIQUE INDEX schedule_runs_fire_key ON schedule_runs (schedule_id, fire_time) WHERE NOT manual;
CREATE INDEX schedule_runs_history_idx ON schedule_runs (schedule_id, started_at DESC, fire_time DESC, id DESC);
CREATE INDEX schedule_runs_unfilled_idx ON schedule_runs (enqueue_after) WHERE state = 'fired' AND job_id IS NULL;

-- Dashboard summary: finished jobs of an organization by state and time (counts over the last hour/day and the
-- dead-letter count read a bounded range of it instead of the organization's whole history).
CREATE INDEX jobs_org_finished_idx ON jobs (organization_id, status, completed_at) WHERE completed_at IS NOT NULL;
