ALTER FUNCTION spooled_claim_jobs_for(uuid, text, timestamptz, text[], int[], float8[]) RESET ALL;
