DROP TRIGGER jobs_lease_ended ON jobs; DROP TRIGGER jobs_dependency_stage ON jobs;
