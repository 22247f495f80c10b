DROP TRIGGER jobs_inserted ON jobs;
