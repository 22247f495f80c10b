"""The chaos runner's parts (`scripts/chaos`, and the bounded subset in tests/test_chaos.py): a throwaway
PostgreSQL it may crash (`pg`), server and worker processes (`servers`), a TCP proxy for network faults
(`proxy`), the recorded load (`load`), the checks against the database (`checks`), the scenarios and the table."""
