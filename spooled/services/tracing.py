"""Trace contexts through the queue, and OpenTelemetry spans when enabled (docs/operations.md "Tracing").

Without spans (`SPOOLED_OTEL_EXPORTER` unset, or the `otel` extra not installed) a job keeps the W3C context its
producer sent (`traceparent` header, gRPC metadata, or a field of the job) and the worker that claims it gets
that same context: its spans join the producer's trace directly.

With spans (`pip install 'spooled-server[otel]'` and `SPOOLED_OTEL_EXPORTER=otlp|console|file:PATH`) the server
takes part in the trace:
- enqueue: a PRODUCER span `<queue> publish`, child of the producer's context, around the insert; the job
  stores *its* context;
- claim: a CONSUMER span `<queue> receive` per job, child of the stored context, from the moment the job became
  due to its lease (the time it waited in the queue); the claiming worker is handed *its* context.
So one trace reads producer -> publish -> receive -> worker. Only jobs that carry a context get spans.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, Sequence

import attrs

from spooled.domain.models import Job
from spooled.domain.tracecontext import TraceContext, from_carrier
from spooled.settings import ConfigError

log = logging.getLogger(__name__)

EXTRA = "pip install 'spooled-server[otel]'"


class Tracing:
    """No spans: contexts are stored and handed on unchanged."""
    enabled = False

    @contextlib.contextmanager
    def publishing(self, org: str, queue: str, contexts: Sequence[TraceContext | None]
                   ) -> Iterator[Sequence[TraceContext | None]]:
        """Around an enqueue: the contexts to store with the jobs (one per job)."""
        yield contexts

    def delivered(self, queue: str, jobs: list[Job], queued_secs: list[float]) -> list[Job]:
        """The claimed jobs as the worker gets them (their contexts)."""
        return jobs

    def shutdown(self) -> None:
        pass


def check_available(exporter: str | None) -> None:
    """ConfigError (one sentence) when spans are asked for but cannot be made."""
    if exporter is None:
        return
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ConfigError(f"SPOOLED_OTEL_EXPORTER={exporter} needs the OpenTelemetry packages: {EXTRA}") from None
    if exporter == "otlp":
        try:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        except ImportError:
            raise ConfigError("SPOOLED_OTEL_EXPORTER=otlp needs the OTLP exporter: "
                              "pip install opentelemetry-exporter-otlp-proto-http") from None


def tracing_for(exporter: str | None, service_name: str, version: str) -> Tracing:
    if exporter is None:
        return Tracing()
    check_available(exporter)
    return _Spans(exporter, service_name, version)


class _Spans(Tracing):
    enabled = True

    def __init__(self, exporter: str, service_name: str, version: str):
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._kind = trace.SpanKind
        self._prop = TraceContextTextMapPropagator()
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name,
                                                                  "service.version": version}))
        self._file = None
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            processor = BatchSpanProcessor(OTLPSpanExporter())     # OTEL_EXPORTER_OTLP_* say where
        else:
            if exporter == "console":
                out = sys.stderr
            else:                                                   # file:PATH, one JSON object per line
                out = self._file = open(exporter.removeprefix("file:"), "a", buffering=1)
            processor = SimpleSpanProcessor(ConsoleSpanExporter(out=out,
                                                                formatter=lambda s: s.to_json(indent=None) + "\n"))
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("spooled", version)

    def _parent(self, ctx: TraceContext):
        carrier = {"traceparent": ctx.traceparent}
        if ctx.tracestate:
            carrier["tracestate"] = ctx.tracestate
        return self._prop.extract(carrier)

    def _context_of(self, span) -> TraceContext | None:
        carrier: dict[str, str] = {}
        self._prop.inject(carrier, context=self._trace.set_span_in_context(span))
        return from_carrier(carrier.get("traceparent"), carrier.get("tracestate"))

    @contextlib.contextmanager
    def publishing(self, org, queue, contexts):
        spans: dict[TraceContext, object] = {}
        counts: dict[TraceContext, int] = {}
        for ctx in contexts:
            if ctx is not None:
                counts[ctx] = counts.get(ctx, 0) + 1
        for ctx, n in counts.items():
            spans[ctx] = self._tracer.start_span(
                f"{queue} publish", context=self._parent(ctx), kind=self._kind.PRODUCER,
                attributes={"messaging.system": "spooled", "messaging.operation.type": "send",
                            "messaging.destination.name": queue, "messaging.batch.message_count": n,
                            "spooled.organization_id": org})
        stored = {ctx: self._context_of(span) or ctx for ctx, span in spans.items()}
        try:
            yield [stored[c] if c is not None else None for c in contexts]
        except BaseException as exc:
            for span in spans.values():
                span.record_exception(exc)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans.values():
                span.end()

    def delivered(self, queue, jobs, queued_secs):
        now = time.time_ns()
        out = []
        for job, waited in zip(jobs, queued_secs):
            ctx = from_carrier(job.traceparent, job.tracestate)
            if ctx is None:
                out.append(job)
                continue
            span = self._tracer.start_span(
                f"{queue} receive", context=self._parent(ctx), kind=self._kind.CONSUMER,
                start_time=now - int(max(waited, 0.0) * 1e9),
                attributes={"messaging.system": "spooled", "messaging.operation.type": "receive",
                            "messaging.destination.name": queue, "messaging.message.id": str(job.id),
                            "spooled.worker_id": job.assigned_worker_id or "",
                            "spooled.retry_count": job.retry_count})
            span.end(end_time=now)
            handed = self._context_of(span) or ctx
            out.append(attrs.evolve(job, traceparent=handed.traceparent, tracestate=handed.tracestate))
        return out

    def shutdown(self) -> None:
        try:
            self._provider.shutdown()
        except Exception:
            log.exception("could not flush the last spans")
        if self._file is not None:
            self._file.close()
