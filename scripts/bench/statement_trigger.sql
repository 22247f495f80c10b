-- The design not taken for job dependencies, priced for plain jobs: a statement-level trigger on `jobs` with a
-- transition table, which must run for every UPDATE statement of every queue even when it finds nothing to do.
--   .venv/bin/python scripts/bench/statement_cost.py --extra-sql scripts/bench/statement_trigger.sql --plans
-- (its "Trigger jobs_deps_stmt" lines). docs/benchmarks.md has the figures.
CREATE FUNCTION bench_statement_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM n WHERE dependency_mode IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_deps_stmt AFTER UPDATE ON jobs REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION bench_statement_trigger();
