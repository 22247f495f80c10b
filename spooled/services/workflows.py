"""Workflows (DAGs of jobs created in one transaction) and job dependencies (api.md "Workflows").

The rules that run as jobs move live in the database, in the transaction of each move (docs/architecture.md
"Job dependencies"): a job becomes claimable when its last needed dependency completes, dependents of a
dependency that ended failed/dead-lettered/cancelled are cancelled (`all`; `any`: once none can complete), and
a workflow's counts and status follow its jobs. This service validates and shapes what clients ask for.

A caller restricted to some queues (`Scope`, domain/scope.py) creates workflows only in its queues and reaches
only the workflows all of whose jobs are in them (cancel and retry act on every job of a workflow, so a workflow
is never shown in part); any other is not found. A job's dependencies and dependents outside the scope are left
out of its dependency listing, and cannot be added as dependencies (as another organization's jobs).
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.domain import dag, errors, inputs
from spooled.domain.ids import new_job_id, parse_id, try_id
from spooled.domain.models import DependencyEdge, Job, JobDependencies, Workflow
from spooled.domain.scope import Scope
from spooled.services.jobs import dumps, sized_json
from spooled.services.metrics import Metrics
from spooled.services.quotas import Quotas
from spooled.store.workflows import NewWorkflowJobs, Refused, WorkflowStore

Now = dt.datetime | None


@attrs.frozen
class Created:
    workflow: Workflow
    job_ids: list[tuple[str, uuid.UUID]]        # (key, job id) in request order


@attrs.frozen
class Detail:
    workflow: Workflow
    jobs: list[Job]
    edges: list[DependencyEdge]


def _missing() -> errors.NotFound:
    return errors.NotFound("Workflow not found")


class Workflows:
    def __init__(self, store: WorkflowStore, *, quotas: Quotas, max_payload_bytes: int = 1024 * 1024,
                 metrics: Metrics | None = None):
        self._store = store
        self._quotas = quotas
        self._max_payload = max_payload_bytes
        self._metrics = metrics if metrics is not None else Metrics(None)

    async def create(self, scope: Scope, spec: inputs.CreateWorkflow, *, now: Now = None) -> Created:
        """All the jobs and their edges in one transaction, or nothing: a duplicate key, an unknown or own key in
        `depends_on`, a cycle, a payload over the limit or the plan's workflow, job or queue quotas passed is
        refused before anything is written."""
        for j in spec.jobs:
            scope.require(j.queue_name)
        org = scope.org
        keys = [j.key for j in spec.jobs]
        depends = [list(dict.fromkeys(j.depends_on or ())) for j in spec.jobs]
        dag.check(keys, depends)
        payloads, largest = [], 0
        for i, j in enumerate(spec.jobs):
            text, size = sized_json(j.payload, self._max_payload, f"jobs[{i}].payload")
            largest = max(largest, size)
            payloads.append(text)
        await self._quotas.check(org, "workflows", 1)
        queues = list(dict.fromkeys(j.queue_name for j in spec.jobs))
        for n, queue in enumerate(queues):       # every job counts once; each new queue against the queue limit
            await self._quotas.check_enqueue(org, queue, len(spec.jobs) if n == 0 else 0, largest)
        ids = sorted(new_job_id() for _ in spec.jobs)     # ascending in request order: the listing and claim order
        by_key = dict(zip(keys, ids))
        edges = [(ids[i], by_key[d]) for i, deps in enumerate(depends) for d in deps]
        workflow = await self._store.create(
            parse_id(org), new_job_id(), spec.name, spec.description,
            dumps(spec.metadata) if spec.metadata is not None else None,
            NewWorkflowJobs(ids=ids, queues=[j.queue_name for j in spec.jobs], payloads=payloads,
                            priorities=[j.priority or 0 for j in spec.jobs],
                            max_retries=[j.max_retries for j in spec.jobs],
                            timeouts=[j.timeout_seconds for j in spec.jobs],
                            modes=[j.dependency_mode or "all" for j in spec.jobs],
                            met=[not d for d in depends]),
            edges, now=now)
        self._quotas.enqueued(org, len(ids))
        for j in spec.jobs:
            self._metrics.series(org, j.queue_name).enqueued.inc()
        return Created(workflow, list(zip(keys, ids)))

    async def list(self, scope: Scope, *, status: str | None = None, limit: int = 20, offset: int = 0
                   ) -> tuple[list[Workflow], bool]:
        """One page, newest first, and whether more exist."""
        if status is not None and status not in inputs.WORKFLOW_STATUSES:
            raise errors.invalid("status", f"must be one of {', '.join(inputs.WORKFLOW_STATUSES)}")
        rows = await self._store.list(parse_id(scope.org), scope.queues, status=status, limit=limit + 1,
                                      offset=offset)
        return rows[:limit], len(rows) > limit

    async def get(self, scope: Scope, workflow_id: str) -> Workflow:
        workflow = await self._store.get(parse_id(scope.org), parse_id(workflow_id, "Workflow"), scope.queues)
        if workflow is None:
            raise _missing()
        return workflow

    async def detail(self, scope: Scope, workflow_id: str) -> Detail:
        """The workflow with its jobs and edges (one snapshot)."""
        found = await self._store.detail(parse_id(scope.org), parse_id(workflow_id, "Workflow"), scope.queues)
        if found is None:
            raise _missing()
        return Detail(*found)

    async def cancel(self, scope: Scope, workflow_id: str, *, now: Now = None) -> Workflow:
        """Cancel its pending and scheduled jobs (running ones finish as they would) and mark it cancelled;
        Conflict when it is completed or cancelled already."""
        org_id, wid = parse_id(scope.org), parse_id(workflow_id, "Workflow")
        _, workflow = await self._store.cancel(org_id, wid, scope.queues, now=now)
        if workflow is None:
            current = await self.get(scope, workflow_id)
            raise errors.Conflict(f"Cannot cancel a workflow that is {current.status}")
        return await self.get(scope, workflow_id)        # as the dependency triggers left it at commit

    async def retry(self, scope: Scope, workflow_id: str, *, now: Now = None) -> Workflow:
        """Run its failed, dead-lettered and cancelled jobs again (each waits again for any dependency retried
        with it); Conflict when it has none."""
        org_id, wid = parse_id(scope.org), parse_id(workflow_id, "Workflow")
        if (await self.get(scope, workflow_id)).status in ("failed", "cancelled"):
            await self._quotas.check(scope.org, "workflows", 1)          # it becomes active again
        retried, workflow = await self._store.retry(org_id, wid, scope.queues, now=now)
        if workflow is None:
            raise _missing()
        if not retried:
            raise errors.Conflict(f"The workflow has no failed, dead-lettered or cancelled job to retry "
                                  f"(it is {workflow.status})")
        return await self.get(scope, workflow_id)

    async def dependencies(self, scope: Scope, job_id: str) -> JobDependencies:
        found = await self._store.dependencies(parse_id(scope.org), parse_id(job_id), scope.queues)
        if found is None:
            raise errors.NotFound("Job not found")
        return found

    async def add_dependencies(self, scope: Scope, job_id: str, spec: inputs.AddDependencies
                               ) -> tuple[int, JobDependencies]:
        """The job depends on `spec.depends_on` too, `spec.dependency_mode` applying to all of its dependencies
        (docs/api-notes.md "Workflows and dependencies" says what is refused). (edges added, the result)."""
        jid = parse_id(job_id)
        parents = []
        for i, raw in enumerate(spec.depends_on):
            pid = try_id(raw)
            if pid is None:
                raise _no_dependency(i)
            if pid == jid:
                raise errors.invalid(f"depends_on[{i}]", "a job cannot depend on itself")
            parents.append(pid)
        outcome = await self._store.add_dependencies(parse_id(scope.org), jid, parents, spec.dependency_mode,
                                                     scope.queues)
        if isinstance(outcome, Refused):
            raise _refusal(outcome, parents)
        return outcome


def _no_dependency(i: int) -> errors.ValidationFailed:
    return errors.invalid(f"depends_on[{i}]", "must be the id of a job of this organization")


def _refusal(r: Refused, parents: list[uuid.UUID]) -> errors.DomainError:
    def at(job: uuid.UUID) -> int:
        return parents.index(job)
    if r.reason == "missing_job":
        return errors.NotFound("Job not found")
    if r.reason == "missing_dependencies":
        return _no_dependency(at(r.ids[0]))
    if r.reason == "job_state":
        return errors.Conflict(f"Cannot add dependencies to a job that is {r.status}: only a pending or "
                               f"scheduled job can wait for others")
    if r.reason == "dependency_state":
        return errors.Conflict(f"Cannot depend on job {r.ids[0]}: it is {r.status} and can never complete "
                               f"(retry it first)")
    if r.reason == "other_workflow":
        return errors.invalid(f"depends_on[{at(r.ids[0])}]", "must be a job of the same workflow")
    return errors.invalid(f"depends_on[{at(r.ids[0])}]", "depends on this job already (that would be a cycle)")
