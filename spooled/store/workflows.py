"""Workflows and job dependencies in the database (queries/workflows.sql). Creating a workflow, cancelling or
retrying one, and adding dependencies to a job are each one transaction here; what happens to dependents and to
workflow counts as jobs move is the dependency triggers' work (schema.sql, docs/architecture.md "Job
dependencies"), in the transaction of each move.

`queues` is the caller's scope (domain/scope.py; empty: every queue): a workflow with a job outside it, or a job
outside it, is not found, as another organization's."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import DependencyEdge, Job, JobDependencies, RelatedJob, Workflow
from spooled.store.db import Database
from spooled.store.sql import Q

Now = dt.datetime | None


@attrs.frozen
class NewWorkflowJobs:
    """Column values of a workflow's jobs (one element per job); payloads already as JSON text."""
    ids: list[uuid.UUID]
    queues: list[str]
    payloads: list[str]
    priorities: list[int]
    max_retries: list[int | None]      # None: the queue's default
    timeouts: list[int | None]
    modes: list[str]
    met: list[bool]                    # no dependencies


@attrs.frozen
class Refused:
    """Why an edge addition changed nothing: `reason` is one of missing_job, missing_dependencies (`ids`),
    job_state (`status`), dependency_state (`ids`, `status`), other_workflow (`ids`), cycle (`ids`)."""
    reason: str
    ids: tuple[uuid.UUID, ...] = ()
    status: str | None = None


class WorkflowStore:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, org: uuid.UUID, workflow_id: uuid.UUID, name: str, description: str | None,
                     metadata: str | None, jobs: NewWorkflowJobs, edges: list[tuple[uuid.UUID, uuid.UUID]], *,
                     now: Now = None) -> Workflow:
        """The workflow, its jobs and their edges (child, parent), in one transaction."""
        head = Q.workflow_insert.args(id=workflow_id, org=org, name=name, description=description,
                                      metadata=metadata, total=len(jobs.ids), now=now)
        rows = Q.workflow_insert_jobs.args(org=org, workflow=workflow_id, now=now, **attrs.asdict(jobs))
        links = Q.workflow_insert_edges.args(children=[c for c, _ in edges], parents=[p for _, p in edges])

        async def unit(con):
            workflow = await con.fetchrow(Q.workflow_insert.sql, *head)
            await con.execute(Q.workflow_insert_jobs.sql, *rows)
            if edges:
                await con.execute(Q.workflow_insert_edges.sql, *links)
            return from_row(Workflow, workflow)
        return await self._db.transaction(unit)

    async def get(self, org: uuid.UUID, workflow_id: uuid.UUID, queues: Sequence[str]) -> Workflow | None:
        row = await self._db.fetchrow(Q.workflow_get, org=org, id=workflow_id, queues=queues)
        return from_row(Workflow, row) if row is not None else None

    async def list(self, org: uuid.UUID, queues: Sequence[str], *, status: str | None, limit: int, offset: int
                   ) -> list[Workflow]:
        """Newest first."""
        return from_rows(Workflow, await self._db.fetch(Q.workflow_list, org=org, status=status, limit=limit,
                                                        offset=offset, queues=queues))

    async def detail(self, org: uuid.UUID, workflow_id: uuid.UUID, queues: Sequence[str]
                     ) -> tuple[Workflow, list[Job], list[DependencyEdge]] | None:
        """The workflow, its jobs (oldest first) and its edges, read in one snapshot."""
        args = dict(org=org, id=workflow_id)

        async def unit(con):
            async with con.transaction(isolation="repeatable_read", readonly=True):
                head = await con.fetchrow(*Q.workflow_get.bind(**args, queues=queues))
                if head is None:
                    return None
                jobs = await con.fetch(Q.workflow_jobs.sql, *Q.workflow_jobs.args(**args))
                edges = await con.fetch(Q.workflow_edges.sql, *Q.workflow_edges.args(**args))
            return from_row(Workflow, head), from_rows(Job, jobs), from_rows(DependencyEdge, edges)
        return await self._db.run(unit)

    async def cancel(self, org: uuid.UUID, workflow_id: uuid.UUID, queues: Sequence[str], *, now: Now = None
                     ) -> tuple[int, Workflow | None]:
        """Cancel the workflow's pending and scheduled jobs, then mark it cancelled, in one transaction (jobs are
        locked before the workflow, as everywhere). (jobs cancelled, the workflow) where the workflow is None
        when it was completed or cancelled already (or is not in `queues`), and then nothing changed."""
        args = dict(org=org, id=workflow_id, queues=queues, now=now)

        async def unit(con):
            n = await con.fetchval(*Q.workflow_cancel_jobs.bind(**args))
            row = await con.fetchrow(*Q.workflow_mark_cancelled.bind(**args))
            return n, (from_row(Workflow, row) if row is not None else None)
        return await self._db.transaction(unit)

    async def retry(self, org: uuid.UUID, workflow_id: uuid.UUID, queues: Sequence[str], *, now: Now = None
                    ) -> tuple[int, Workflow | None]:
        """Retry the workflow's failed, dead-lettered and cancelled jobs and take it out of its end state, in one
        transaction. (jobs retried, the workflow); with no job to retry nothing changed (and the workflow is as
        it was, None when it is not in `queues`)."""
        args = dict(org=org, id=workflow_id, now=now)

        async def unit(con):
            n = await con.fetchval(*Q.workflow_retry_jobs.bind(**args, queues=queues))
            if not n:
                row = await con.fetchrow(*Q.workflow_get.bind(org=org, id=workflow_id,
                                                                                   queues=queues))
            else:
                row = await con.fetchrow(Q.workflow_mark_retried.sql, *Q.workflow_mark_retried.args(**args))
            return n, (from_row(Workflow, row) if row is not None else None)
        return await self._db.transaction(unit)

    async def dependencies(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str]
                           ) -> JobDependencies | None:
        """The job's dependencies and dependents (those in `queues`); None when the organization has no such job
        (in `queues`)."""
        async def unit(con):
            job = await con.fetchrow(*Q.job_get.bind(org=org, id=job_id, queues=queues))
            if job is None:
                return None
            refs = await con.fetch(*Q.job_dependency_refs.bind(id=job_id, queues=queues))
            return _dependencies(job, refs)
        return await self._db.run(unit)

    async def add_dependencies(self, org: uuid.UUID, job_id: uuid.UUID, parents: list[uuid.UUID], mode: str,
                               queues: Sequence[str]) -> tuple[int, JobDependencies] | Refused:
        """Make the job depend on `parents` too (mode for all of its dependencies), in one transaction, or say
        why not and change nothing. The job must be pending or scheduled; the dependencies jobs of the
        organization, not failed/dead-lettered/cancelled, in the job's workflow if it has one, and not
        depending on the job already (a cycle)."""
        ids = sorted(set(parents))

        async def unit(con):
            await con.execute(Q.dependency_lock_org.sql, *Q.dependency_lock_org.args(org=org))
            found = await con.fetch(*Q.dependency_lock_parents.bind(ids=ids, org=org, queues=queues))
            job = await con.fetchrow(*Q.dependency_lock_job.bind(id=job_id, org=org, queues=queues))
            refused = _refusal(job, ids, found)
            if refused is None:
                cyclic = await con.fetch(Q.dependency_reaches.sql, *Q.dependency_reaches.args(id=job_id, ids=ids))
                if cyclic:
                    refused = Refused("cycle", tuple(sorted(r["id"] for r in cyclic)))
            if refused is not None:
                return refused
            added = await con.fetchval(Q.dependency_add.sql, *Q.dependency_add.args(id=job_id, ids=ids))
            await con.execute(Q.dependency_settle_job.sql, *Q.dependency_settle_job.args(id=job_id, mode=mode))
            row = await con.fetchrow(*Q.job_get.bind(org=org, id=job_id, queues=queues))
            refs = await con.fetch(*Q.job_dependency_refs.bind(id=job_id, queues=queues))
            return added, _dependencies(row, refs)
        return await self._db.transaction(unit)


def _refusal(job, ids: list[uuid.UUID], found) -> Refused | None:
    if job is None:
        return Refused("missing_job")
    by_id = {r["id"]: r for r in found}
    missing = tuple(i for i in ids if i not in by_id)
    if missing:
        return Refused("missing_dependencies", missing)
    if job["status"] not in ("pending", "scheduled"):
        return Refused("job_state", status=job["status"])
    dead = [r for r in found if r["status"] in ("failed", "deadletter", "cancelled")]
    if dead:
        return Refused("dependency_state", (dead[0]["id"],), dead[0]["status"])
    if job["workflow_id"] is not None:
        other = tuple(r["id"] for r in found if r["workflow_id"] != job["workflow_id"])
        if other:
            return Refused("other_workflow", other)
    return None


def _dependencies(job, refs) -> JobDependencies:
    related = {"dependency": [], "dependent": []}
    for r in refs:
        related[r["side"]].append(from_row(RelatedJob, r))
    return JobDependencies(job["id"], job["dependency_mode"], job["dependencies_met"], related["dependency"],
                           related["dependent"])
