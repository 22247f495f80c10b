ALTER FUNCTION spooled_ready_jobs(uuid, text, int, timestamptz) RESET ALL;
