"""Trace context through the queue (docs/operations.md "Tracing"): a W3C context sent with an enqueue (REST
header or field, gRPC metadata or field) is stored with the job and handed to the worker that claims it; with
OpenTelemetry spans on, the server's publish and receive spans sit between producer and worker in one trace;
without the `otel` extra installed the contexts still travel (and asking for spans is one clear sentence)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from trio_asyncio import aio_as_trio

from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.access import instance
from tests.conftest import make_settings, new_org
from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import claim, job
from tests.procs import ROOT, clean_env, spooled_server
from tests.test_grpc import key_of, open_aio_channel, struct

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"
NO_OTEL = ("-c", "import sys; sys.modules['opentelemetry'] = None; from spooled.cli import main; "
                 "sys.argv[0] = 'spooled'; sys.exit(main())")


async def test_contexts_are_stored_and_handed_on(server, api):
    with trio.fail_after(30):
        r = await api.post("/api/v1/jobs", headers={"traceparent": TP, "tracestate": "vendor=1"},
                           json={"queue_name": "tr", "payload": {}})
        assert r.status_code == 201 and (r.json()["traceparent"], r.json()["tracestate"]) == (TP, "vendor=1")
        own = f"00-{'a' * 32}-{'b' * 16}-01"
        r = await api.post("/api/v1/jobs/bulk", headers={"traceparent": TP},
                           json={"queue_name": "tr", "jobs": [{"payload": {}}, {"payload": {}, "traceparent": own}]})
        bulk = [s["job_id"] for s in r.json()["succeeded"]]
        assert [(await job(api, i))["traceparent"] for i in bulk] == [TP, own]
        # a malformed header is ignored (the spec says so); a malformed field is the client's error
        r = await api.post("/api/v1/jobs", headers={"traceparent": "00-zz-12-01"}, json={"queue_name": "tr2",
                                                                                           "payload": {}})
        assert r.status_code == 201 and r.json()["traceparent"] is None
        r = await api.post("/api/v1/jobs", json={"queue_name": "tr2", "payload": {},
                                                 "traceparent": f"00-{'0' * 32}-{PARENT}-01"})
        assert r.status_code == 422 and r.json()["details"]["field"] == "traceparent"
        got = await claim(api, "tr", limit=3)
        assert sorted(j["traceparent"] for j in got) == sorted([TP, TP, own])

        channel = await open_aio_channel(server.grpc_address)
        try:
            stub, md = QueueServiceStub(channel), {"x-api-key": key_of(api)}
            await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name="trg", payload=struct({})),
                                            metadata={**md, "traceparent": TP})
            await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name="trg", payload=struct({}), traceparent=own,
                                                              tracestate="k=v"), metadata=md)
            await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name="trg", payload=struct({})), metadata=md)
            out = await aio_as_trio(stub.Dequeue)(pb.DequeueRequest(queue_name="trg", worker_id="w", batch_size=3),
                                                  metadata=md)
            assert sorted((j.traceparent, j.tracestate) for j in out.jobs) == sorted([(TP, ""), (own, "k=v"),
                                                                                     ("", "")])
        finally:
            channel.close()


def spans_in(path) -> dict[str, dict]:
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {s["name"]: s for s in spans}


def hex_id(value: str) -> str:
    return value.removeprefix("0x")


async def test_one_trace_spans_producer_queue_and_worker(aio_loop, dsn, tmp_path):
    spans_file = tmp_path / "spans.jsonl"
    settings = make_settings(tmp_path, dsn, otel_exporter=f"file:{spans_file}")
    with trio.fail_after(60):
        async with instance(settings, dsn) as running, httpx.AsyncClient(base_url=running.http_url) as c:
            _, auth = await new_org(c)
            r = await c.post("/api/v1/jobs", headers={**auth, "traceparent": TP},
                             json={"queue_name": "spans", "payload": {"x": 1}})
            stored = r.json()["traceparent"]
            channel = await open_aio_channel(running.grpc_address)
            try:
                out = await aio_as_trio(QueueServiceStub(channel).Dequeue)(
                    pb.DequeueRequest(queue_name="spans", worker_id="w"),
                    metadata={"x-api-key": auth["Authorization"].split()[1]})
            finally:
                channel.close()
    (handed,) = [j.traceparent for j in out.jobs]
    spans = spans_in(spans_file)
    publish, receive = spans["spans publish"], spans["spans receive"]
    assert hex_id(publish["context"]["trace_id"]) == TRACE and hex_id(publish["parent_id"]) == PARENT
    assert publish["kind"] == "SpanKind.PRODUCER"
    assert stored == f"00-{TRACE}-{hex_id(publish['context']['span_id'])}-01"
    assert hex_id(receive["context"]["trace_id"]) == TRACE
    assert hex_id(receive["parent_id"]) == hex_id(publish["context"]["span_id"])
    assert receive["attributes"]["messaging.message.id"] == out.jobs[0].id
    assert handed == f"00-{TRACE}-{hex_id(receive['context']['span_id'])}-01"
    # the worker continues the trace with what it was handed
    ctx = TraceContextTextMapPropagator().extract({"traceparent": handed})
    with TracerProvider().get_tracer("worker").start_as_current_span("work", context=ctx) as work:
        assert format(work.get_span_context().trace_id, "032x") == TRACE
        assert format(work.parent.span_id, "016x") == hex_id(receive["context"]["span_id"])


async def test_without_the_extra_contexts_still_travel(aio_loop, dsn, tmp_path):
    env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(tmp_path))
    with trio.fail_after(90):
        async with spooled_server(env, python=NO_OTEL) as proc:
            async with httpx.AsyncClient(base_url=proc.url) as c:
                _, auth = await new_org(c)
                r = await c.post("/api/v1/jobs", headers={**auth, "traceparent": TP},
                                 json={"queue_name": "plain", "payload": {}})
                assert r.status_code == 201
                r = await c.post("/api/v1/jobs/claim", headers=auth, json={"queue_name": "plain", "worker_id": "w"})
                assert r.json()["jobs"][0]["traceparent"] == TP


@pytest.mark.parametrize("exporter", ["console", "otlp"])
def test_asking_for_spans_without_the_extra_is_one_sentence(exporter, tmp_path):
    r = subprocess.run([sys.executable, *NO_OTEL, "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=clean_env(SPOOLED_OTEL_EXPORTER=exporter, SPOOLED_DATA_DIR=str(tmp_path)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.fullmatch(rf"spooled: SPOOLED_OTEL_EXPORTER={exporter} needs the OpenTelemetry packages: "
                        r"pip install 'spooled-server\[otel\]'", r.stderr.strip()), r.stderr
