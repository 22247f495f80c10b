"""`python -m spooled [serve] [--http HOST:PORT] [--grpc HOST:PORT]`, `create-org NAME`, `migrate`, and the
operator's commands (`status`, `orgs`, `jobs`, `queues`, `dlq`, `api-keys`: spooled/cli/admin.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import trio

from spooled.settings import ConfigError, from_env


def _parser() -> argparse.ArgumentParser:
    from spooled import __version__
    p = argparse.ArgumentParser(prog="spooled", description="Spooled job-queue server")
    p.add_argument("--version", action="version", version=f"spooled-server {__version__}")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the server (the default)")
    for target in (p, serve):
        target.add_argument("--http", help="REST bind HOST:PORT (env SPOOLED_HTTP_BIND, default 127.0.0.1:8080)")
        target.add_argument("--grpc", help="gRPC bind HOST:PORT (env SPOOLED_GRPC_BIND, default 127.0.0.1:50051)")
        target.add_argument("--processes", type=int, help="server processes sharing the ports (env SPOOLED_PROCESSES, "
                                                          "default 1; docs/deployment.md)")
    org = sub.add_parser("create-org", help="create an organization and print its first API key")
    org.add_argument("name")
    org.add_argument("--plan", choices=["free", "starter", "pro", "enterprise"],
                     help="the plan (default: SPOOLED_DEFAULT_PLAN, else free)")
    org.add_argument("--billing-email", help="the organization's billing email (email login goes to it)")
    org.add_argument("--slug")
    org.add_argument("--json", action="store_true", help="print JSON")
    mig = sub.add_parser("migrate", help="apply the schema migrations this database lacks (the server also does "
                                         "this at start)")
    mig.add_argument("--status", action="store_true", help="only list the migrations not applied yet")
    mig.add_argument("--json", action="store_true", help="print JSON")
    from spooled.cli import admin
    admin.add_commands(sub)
    return p


async def _create_org(settings, dsn: str, name: str, plan: str | None, slug: str | None, email: str | None):
    """The new organization as POST /organizations answers it (the SDK's CreateOrganizationResponse)."""
    import trio_asyncio

    from spooled.convert import structure
    from spooled.domain import inputs
    from spooled.services.container import Services
    from spooled.store.db import open_database
    from spooled.store.schema import ensure_schema
    from spooled.transports.http.routes_orgs import created_view

    given = {"name": name, "plan": plan, "slug": slug, "billing_email": email}
    spec = structure({k: v for k, v in given.items() if v is not None}, inputs.CreateOrg)
    async with trio_asyncio.open_loop():
        async with open_database(dsn, min_size=1, max_size=1, connect_timeout=settings.db_connect_timeout_secs,
                                 statement_timeout=settings.db_statement_timeout_secs) as db:
            await db.run(ensure_schema)
            return created_view(await Services.build(settings, db).orgs.create(spec))


async def _migrate(settings, dsn: str, status_only: bool) -> dict:
    import trio_asyncio

    from spooled.store.db import open_database
    from spooled.store.schema import ensure_schema, migrations, pending

    async with trio_asyncio.open_loop():
        async with open_database(dsn, min_size=1, max_size=1, connect_timeout=settings.db_connect_timeout_secs,
                                 statement_timeout=settings.db_statement_timeout_secs) as db:
            if status_only:
                todo = await db.run(pending)
                versions = [m.version for m in migrations()] if todo is None else [m.version for m in todo]
                return {"empty_database": todo is None, "pending": versions}
            result = await db.run(ensure_schema)
            return {"fresh": result.fresh, "applied": list(result.applied)}


def _print_migrate(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    elif "pending" in result:
        what = "empty database: schema.sql would be applied" if result["empty_database"] else (
            "pending migrations: " + ", ".join(map(str, result["pending"])) if result["pending"] else "up to date")
        print(what)
    elif result["fresh"]:
        print("applied schema.sql to an empty database")
    else:
        print("applied migrations " + ", ".join(map(str, result["applied"])) if result["applied"] else "up to date")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = from_env(dict(os.environ), http=getattr(args, "http", None), grpc=getattr(args, "grpc", None),
                            processes=getattr(args, "processes", None), need_secret=args.command in (None, "serve"))
        if args.command in (None, "serve"):
            from spooled.services.tracing import check_available
            check_available(settings.otel_exporter)
    except ConfigError as exc:
        print(f"spooled: {exc}", file=sys.stderr)
        return 2
    if settings.plan_limits:
        from spooled.domain.errors import ValidationFailed
        from spooled.domain.plans import check_overrides
        try:
            for tier, overrides in settings.plan_limits.items():
                check_overrides(overrides, tier)
        except ValidationFailed as exc:
            print(f"spooled: SPOOLED_PLAN_LIMITS: {exc.message}", file=sys.stderr)
            return 2
    from spooled.services import logs
    logs.configure(settings.log_level, settings.log_format)
    from spooled.domain.errors import DomainError
    from spooled.embedded_pg import database
    from spooled.store.schema import SchemaMismatch

    try:
        with database(settings.database_url, settings.data_dir, command=args.command or "serve") as dsn:
            if args.command == "create-org":
                created = trio.run(_create_org, settings, dsn, args.name, args.plan, args.slug,
                                   args.billing_email)
                org, key = created["organization"], created["api_key"]
                if args.json:
                    import orjson
                    print(orjson.dumps(created).decode())
                else:
                    print(f"Organization {org['name']} ({org['id']}), plan {org['plan_tier']}\n"
                          f"API key (shown only this once): {key['key']}")
                return 0
            if args.command == "migrate":
                _print_migrate(trio.run(_migrate, settings, dsn, args.status), args.json)
                return 0
            if hasattr(args, "run"):
                from spooled.cli import admin
                out = trio.run(admin.run, settings, dsn, args.run, args)
                if args.json:
                    import orjson
                    print(orjson.dumps(out.data, default=str).decode())
                else:
                    print(out.text)
                return 0
            if settings.processes > 1 and settings.listen_fds is None:
                from spooled.cli import processes
                return trio.run(processes.run, settings, dsn)
            from spooled import supervisor
            trio.run(supervisor.run, settings, dsn)
            return 0
    except BaseException as exc:   # Trio wraps what went wrong in exception groups: find the operator's problem
        problem = _operator_problem(exc, (ConfigError, SchemaMismatch, DomainError)) or _operator_problem(
            exc, (OSError,))
        if problem is None:
            raise
        print(f"spooled: {getattr(problem, 'message', None) or problem}", file=sys.stderr)
        return 2 if isinstance(problem, (ConfigError, SchemaMismatch)) else 1


def _operator_problem(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first error in `exc` (or its exception groups) that is one of `kinds`: a problem told in one sentence."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _operator_problem(sub, kinds)
            if found is not None:
                return found
    return None
