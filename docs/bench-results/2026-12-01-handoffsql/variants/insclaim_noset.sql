ALTER FUNCTION spooled_insert_claim RESET ALL;
