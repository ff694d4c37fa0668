"""Traces: OpenTelemetry across an API request, the workflow start or update it sends, the
workflow's run and its activities, and the SQL each of them runs.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then
each process sets up one tracer provider, the first time it asks (`process_tracing`), exporting
over OTLP/HTTP in batches. The standard `OTEL_*` variables are read by the SDK and the exporter
themselves (headers, sampler, batch sizes, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_SDK_DISABLED`); the service name defaults to omniflow-api / omniflow-worker. Off, nothing
is instrumented at all: no interceptor, no middleware, no SQL hooks.

The spans are made by the libraries: the FastAPI instrumentation (the HTTP server span), the
Temporal SDK's TracingInterceptor (StartWorkflow / StartWorkflowUpdate on the client, then
RunWorkflow, HandleUpdate, StartActivity and RunActivity in the worker, carried in Temporal
headers; an update in its request's trace: runtime.workflow_tracing) and the SQLAlchemy instrumentation (one span per statement). Workflow code imports
none of this: the interceptor makes the workflow's spans outside the sandbox, never on replay.

Tests install an in-memory exporter with `install_tracing(InMemorySpanExporter())`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio.contrib.opentelemetry import TracingInterceptor

API_SERVICE = "omniflow-api"
WORKER_SERVICE = "omniflow-worker"
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Probes and scrapes answer every few seconds and say nothing about an order.
UNTRACED_URLS = "/healthz,/readyz,/metrics"


@dataclass(frozen=True)
class Tracing:
    """A process's tracer provider and the instrumentation that feeds it."""

    provider: TracerProvider

    def interceptors(self) -> list[TracingInterceptor]:
        """For Client.connect: the client's calls, and every worker built on that client."""
        from runtime.workflow_tracing import RequestTracingInterceptor

        return [RequestTracingInterceptor(self.provider.get_tracer("omniflow.temporal"))]

    def instrument_app(self, app: FastAPI) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """One span per statement on this engine, child of whatever span is current (the
        request's, the activity's). The async engine runs its statements on `sync_engine`.
        EngineTracer, not SQLAlchemyInstrumentor().instrument(engine=...): the instrumentor is
        once per process, and the tests run the API's engine and the worker's in one."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeter

        usage = NoOpMeter("omniflow").create_up_down_counter("db.client.connections.usage")
        EngineTracer(self.provider.get_tracer("omniflow.sql"), engine.sync_engine, usage)  # type: ignore[no-untyped-call]


_process: dict[str, Tracing | None] = {}


def tracing_configured() -> bool:
    return any(os.environ.get(var) for var in ENDPOINT_VARS)


def process_tracing(service: str) -> Tracing | None:
    """This process's tracing, set up on the first call: None (off) unless an OTLP endpoint is
    set or a test installed an exporter."""
    if "tracing" not in _process:
        _process["tracing"] = _from_environment(service) if tracing_configured() else None
    return _process["tracing"]


def _from_environment(service: str) -> Tracing:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Handed to each instrumentation, not set as OpenTelemetry's global provider: what this
    # process traces is what is listed here.
    tracing = Tracing(_provider(service))
    tracing.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return tracing


def _provider(service: str) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    named: Any = resource.attributes.get(SERVICE_NAME, "")
    if str(named).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    return TracerProvider(resource=resource)


def install_tracing(exporter: SpanExporter, service: str = API_SERVICE) -> Tracing:
    """Tests: this process traces to `exporter`, each span as it ends (no batching)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracing = Tracing(_provider(service))
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    _process["tracing"] = tracing
    return tracing


def reset_tracing() -> None:
    """Tests: forget the process's tracing; the next process_tracing() decides again."""
    tracing = _process.pop("tracing", None)
    if tracing is not None:
        tracing.provider.shutdown()
