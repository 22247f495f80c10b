CREATE OR REPLACE FUNCTION spooled_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    completion boolean;
    ev spooled_job_event[];
BEGIN
    RETURN NULL;
END
$fn$;