CREATE OR REPLACE FUNCTION spooled_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    ev spooled_job_event[];
    v_org text;           -- the statement's organization (and queue) when it has one: min = max
    v_org_last text;
    v_queue text;
    v_queue_last text;
    ready bigint;
    scheduled bigint;
    orgs int;
    flows int;
    locked int;
BEGIN
    RETURN NULL;
END
$fn$;