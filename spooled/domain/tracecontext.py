"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate` a producer sends
with an enqueue, stored with the job and handed to the worker that claims it (docs/operations.md "Tracing").

Pure parsing; spans (when the `otel` extra is installed and enabled) are `services/tracing.py`'s.
"""

from __future__ import annotations

import re

import attrs

# version 00 (and, as the spec asks, any later version read by its first four fields); never version ff, an
# all-zero trace id or an all-zero parent id
TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?\Z")
MAX_TRACESTATE = 512            # the spec's limit for a propagated tracestate
_TRACESTATE = re.compile(r"[ -~]*\Z")   # printable ASCII (list members are validated by whoever reads them)


@attrs.frozen
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    @property
    def parent_id(self) -> str:
        return self.traceparent[36:52]


def valid_traceparent(value: str) -> bool:
    return TRACEPARENT.match(value) is not None


def valid_tracestate(value: str) -> bool:
    return len(value) <= MAX_TRACESTATE and _TRACESTATE.match(value) is not None


def from_carrier(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """A context from header-like values, or None when `traceparent` is absent or malformed (the spec: a
    receiver that cannot parse it ignores it; so is a malformed tracestate, alone)."""
    if not traceparent:
        return None
    traceparent = traceparent.strip().lower()
    if not valid_traceparent(traceparent):
        return None
    tracestate = tracestate.strip() if tracestate else None
    return TraceContext(traceparent, tracestate if tracestate and valid_tracestate(tracestate) else None)
