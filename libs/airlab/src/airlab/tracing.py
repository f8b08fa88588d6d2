"""Traces across the lab (OpenTelemetry). Off unless an OTLP endpoint is set (`AIRLAB_OTEL_ENDPOINT`, e.g.
http://collector:4318): then each service exports its spans over OTLP/HTTP, named `airlab-<service>`.

One research is one trace. The trace context travels in W3C `traceparent` headers: gRPC metadata between
a client and a service, NATS message headers between a publisher and each consumer, and a job's record
from the runner's request handler to the run that starts later. So StartResearch's span is the root, and
the planner, each agent's answer, each run and the report are spans below it.

Off, every helper here returns at its first line: no span, no header, no SDK imported."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

__all__ = [
    "Span",
    "SpanKind",
    "carrier",
    "configure",
    "enabled",
    "handling",
    "headers_of",
    "shutdown",
    "span",
]

log = logging.getLogger(__name__)

TRACER_NAME = "airlab"
# The SDK's TracerProvider and its tracer once configured; None means tracing is off. The provider is this
# module's own, not OpenTelemetry's global one, so tracing can be turned off again (shutdown).
_provider: Any = None
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _provider is not None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base endpoint (a full .../v1/traces URL is kept)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def configure(service: str, endpoint: str) -> None:
    """Export this process's spans to `endpoint` (nothing when it is empty). Batched: a span reaches the
    collector within the SDK's schedule delay (OTEL_BSP_SCHEDULE_DELAY, 5 s by default) or at shutdown."""
    global _provider, _tracer
    if not endpoint or _provider is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"airlab-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    log.info("exporting traces", extra={"endpoint": traces_url(endpoint)})


def shutdown() -> None:
    """Send the spans still batched (a stopping service's last ones)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
        _provider, _tracer = None, None


def carrier() -> dict[str, str]:
    """The current trace context as headers (`traceparent`), to send or store; empty when off."""
    if _provider is None:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span | None]:
    """A span around the block, current inside it (what the block publishes or calls carries it on).
    `parent`: headers that carried a trace context from another process (none there: the current one, or
    a new trace). Yields None when tracing is off."""
    if _tracer is None:
        yield None
        return
    context = propagate.extract(dict(parent)) if parent else None
    with _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as current:
        yield current


def handling(
    consumer: str, event_type: str, event_id: str, research_id: str, headers: Mapping[str, str] | None
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of a consumer handling one event, below the publisher's (`headers`); a null context
    when off, without building the span's attributes (this runs for every event)."""
    if _tracer is None:
        return contextlib.nullcontext()
    return span(
        f"handle {event_type}",
        parent=headers,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.consumer.group.name": consumer, "airlab.event_id": event_id,
                    "airlab.research_id": research_id},
    )  # fmt: skip


def headers_of(metadata: Any) -> dict[str, str]:
    """gRPC invocation metadata (pairs of key and value) as headers, for `span(parent=...)`."""
    if _provider is None or not metadata:
        return {}
    return {key: value for key, value in metadata if isinstance(value, str)}
