DROP TRIGGER jobs_updated ON jobs;
