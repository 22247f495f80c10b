"""Spooled: a self-hostable job-queue service (REST + gRPC) on PostgreSQL, in one Trio program."""

__version__ = "0.1.0"
