"""Workflows and job dependencies over REST (api.md "Workflows (job dependencies)")."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import inputs
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, body, body_as, json_response, require_queue, scope, services
from spooled.transports.http.pagination import page_args
from spooled.transports.http.schema import INTEGER, STRING, array, enum, merge, obj
from spooled.transports.http.spec import EMPTY, OFFSET, Body, limit, one_of, op

bp = Blueprint("workflows", __name__)


@bp.post("/workflows")
@op("Create a workflow: a DAG of up to 100 jobs", body=inputs.CreateWorkflow, ok={201: Body(obj({
    "workflow_id": STRING, "status": enum(*inputs.WORKFLOW_STATUSES),
    "job_ids": array(obj({"key": STRING, "job_id": STRING}))}))},
    description="An unknown key, a self-dependency or a cycle is 422 and nothing is created.")
@authed
async def create_workflow():
    spec, _ = await body_as(inputs.CreateWorkflow)
    for job in spec.jobs:
        require_queue(job.queue_name)
    created = await services().workflows.create(scope(), spec)
    return json_response({"workflow_id": str(created.workflow.id), "status": created.workflow.status,
                          "job_ids": [{"key": k, "job_id": str(i)} for k, i in created.job_ids]}, 201)


@bp.get("/workflows")
@op("List workflows", ok=array(views.WORKFLOW), paged=True, query=(
    limit(), OFFSET, one_of("status", inputs.WORKFLOW_STATUSES)))
@authed
async def list_workflows():
    limit, offset, _ = page_args()
    page, more = await services().workflows.list(scope(), status=request.args.get("status") or None, limit=limit,
                                                 offset=offset)
    return json_response([views.workflow(w) for w in page], headers={"X-Has-More": "true" if more else "false"})


@bp.get("/workflows/<workflow_id>")
@op("Get a workflow with its jobs and edges", ok=views.WORKFLOW_DETAIL)
@authed
async def get_workflow(workflow_id: str):
    d = await services().workflows.detail(scope(), workflow_id)
    return json_response(views.workflow_detail(d.workflow, d.jobs, d.edges))


@bp.post("/workflows/<workflow_id>/cancel")
@op("Cancel a workflow's pending jobs", body=EMPTY, ok=views.WORKFLOW, errors=(409,))
@authed
async def cancel_workflow(workflow_id: str):
    await body()
    return json_response(views.workflow(await services().workflows.cancel(scope(), workflow_id)))


@bp.post("/workflows/<workflow_id>/retry")
@op("Run a workflow's failed, dead-lettered and cancelled jobs again", body=EMPTY, ok=views.WORKFLOW,
    errors=(409,))
@authed
async def retry_workflow(workflow_id: str):
    await body()
    return json_response(views.workflow(await services().workflows.retry(scope(), workflow_id)))


@bp.get("/jobs/<job_id>/dependencies")
@op("A job's dependencies and dependents", ok=views.JOB_DEPENDENCIES)
@authed
async def job_dependencies(job_id: str):
    return json_response(views.job_dependencies(await services().workflows.dependencies(scope(), job_id)))


@bp.post("/jobs/<job_id>/dependencies")
@op("Make a job depend on more jobs", body=inputs.AddDependencies, errors=(409,), ok=merge(
    views.JOB_DEPENDENCIES_OBJECT, obj({"added_count": INTEGER, "dependencies_added": INTEGER})))
@authed
async def add_job_dependencies(job_id: str):
    spec, _ = await body_as(inputs.AddDependencies)
    added, deps = await services().workflows.add_dependencies(scope(), job_id, spec)
    return json_response({**views.job_dependencies(deps), "added_count": added, "dependencies_added": added})
