"""Traces (runtime/telemetry.py) against the real app, worker, Postgres and Temporal test server,
spans kept in memory: a request that starts an order's workflow, and one that sends it an update,
each make one trace, HTTP span → Temporal start/update → the workflow's run/handler and the
activities it starts → SQL. Without an OTLP endpoint nothing is instrumented."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.db import make_async_engine
from runtime.settings import Settings
from runtime.telemetry import (
    API_SERVICE,
    ENDPOINT_VARS,
    install_tracing,
    process_tracing,
    reset_tracing,
    tracing_configured,
)
from tests.factories import receive
from tests.orders_api import Headers, create, order_body


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    install_tracing(exporter)
    yield exporter
    reset_tracing()


# The conftest fixtures, traced: the API (create_app) asks process_tracing itself; the client
# the API and the worker share carries the interceptor, as the processes' own clients do.
@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment, spans: InMemorySpanExporter) -> Client:
    tracing = process_tracing(API_SERVICE)
    assert tracing is not None
    config = temporal_env.client.config()
    config["interceptors"] = tracing.interceptors()
    return Client(**config)


@pytest.fixture
async def engine(database_url: str, spans: InMemorySpanExporter) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(database_url, pool_size=5)
    tracing = process_tracing(API_SERVICE)
    assert tracing is not None
    tracing.instrument_engine(eng)
    yield eng
    await eng.dispose()


def _by_id(exported: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in exported}


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The span's name and its ancestors' up to the trace's root (raises if one is missing)."""
    names = [span.name]
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def _trace_of(
    spans: InMemorySpanExporter, http_name: str, want: str, timeout: float = 20.0
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The HTTP server span named `http_name` and every span of its trace, once a span named
    `want` is among them (spans are exported as they end, the workflow's after the response)."""
    for _ in range(int(timeout / 0.05)):
        exported = spans.get_finished_spans()
        roots = [s for s in exported if s.name == http_name and s.kind == SpanKind.SERVER]
        if roots:
            trace = [s for s in exported if s.context.trace_id == roots[-1].context.trace_id]
            if any(s.name == want for s in trace):
                return roots[-1], trace
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {want} span in the trace of {http_name}: {[s.name for s in exported]}")


def _sql_under(trace: list[ReadableSpan], activity: str, by_id: dict[int, ReadableSpan]) -> list[list[str]]:
    return [
        _chain(s, by_id)
        for s in trace
        if s.kind == SpanKind.CLIENT
        and s.attributes is not None
        and s.attributes.get("db.system", s.attributes.get("db.system.name")) == "postgresql"
        and s.parent is not None
        and by_id[s.parent.span_id].name == f"RunActivity:{activity}"
    ]


async def _order_allocated(api: httpx.AsyncClient, headers: Headers) -> dict[str, Any]:
    for _ in range(200):
        order = (await api.get("/v1/orders/order-web-A-1", headers=headers)).json()
        if order.get("status") == "allocated" and order.get("shipments"):
            return dict(order)
        await asyncio.sleep(0.05)
    raise AssertionError("the order was never allocated")


@pytest.fixture
async def placed(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> dict[str, Any]:
    """An order placed over HTTP (stock received first) and allocated by the worker."""
    await receive(engine, "TEE", "DC-EAST", 10)
    r = await create(api, keys["web"], order_body())
    assert r.status_code == 202, r.text
    return await _order_allocated(api, keys["web"])


async def test_an_order_request_is_one_trace_from_http_to_sql(
    placed: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    order = placed
    # An order nothing holds is recorded and sourced in one step (record_order).
    root, trace = await _trace_of(spans, "POST /v1/orders", "RunActivity:record_order")
    by_id = _by_id(spans.get_finished_spans())
    assert root.parent is None and root.resource.attributes["service.name"] == API_SERVICE
    assert root.attributes is not None and root.attributes.get("http.route") == "/v1/orders"
    start = [s for s in trace if s.name == "StartWorkflow:Order"]
    assert [_chain(s, by_id) for s in start] == [["StartWorkflow:Order", "POST /v1/orders"]]
    run = [s for s in trace if s.name == "RunWorkflow:Order"]
    assert [_chain(s, by_id)[1:] for s in run] == [["StartWorkflow:Order", "POST /v1/orders"]]
    assert run[0].attributes is not None and run[0].attributes["temporalWorkflowID"] == "order-web-A-1"
    [activity] = [s for s in trace if s.name == "RunActivity:record_order"]
    # The workflow's spans are instants (a span left open across workflow tasks would not
    # survive a replay), so its activities hang beside its run, under the start.
    assert _chain(activity, by_id) == [
        "RunActivity:record_order",
        "StartActivity:record_order",
        "StartWorkflow:Order",
        "POST /v1/orders",
    ]
    assert _sql_under(trace, "record_order", by_id), "no SQL span under RunActivity:record_order"
    # The reservation the step made is a statement of its own, under that step.
    statements = [
        str((s.attributes or {}).get("db.statement", (s.attributes or {}).get("db.query.text", "")))
        for s in trace
        if s.parent is not None and by_id[s.parent.span_id].name == "RunActivity:record_order"
    ]
    assert any("reservation" in q for q in statements), statements
    assert order["shipments"][0]["location"] == "DC-EAST"


async def test_an_update_request_is_one_trace_through_its_handler_and_activity(
    api: httpx.AsyncClient, keys: dict[str, Headers], placed: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    sid = placed["shipments"][0]["id"]
    pick = {"lines": [{"sku": "TEE", "qty": 2}]}
    r = await api.post(f"/v1/shipments/{sid}/pick", json=pick, headers=keys["warehouse"])
    assert r.status_code == 200, r.text
    http = "POST /v1/shipments/{shipment_id}/pick"
    root, trace = await _trace_of(spans, http, "RunActivity:pick_shipment")
    by_id = _by_id(spans.get_finished_spans())
    assert root.parent is None
    names = {s.name for s in trace}
    assert "StartWorkflow:Order" not in names  # its own trace, not the order's first one
    [activity] = [s for s in trace if s.name == "RunActivity:pick_shipment"]
    chain = _chain(activity, by_id)
    assert chain[:2] == ["RunActivity:pick_shipment", "StartActivity:pick_shipment"]
    assert chain[2:] == ["StartWorkflowUpdate:pick", http], chain
    assert _sql_under(trace, "pick_shipment", by_id), "no SQL span under RunActivity:pick_shipment"
    for name in ("ValidateUpdate:pick", "HandleUpdate:pick"):
        [span] = [s for s in trace if s.name == name]
        assert _chain(span, by_id) == [name, "StartWorkflowUpdate:pick", http]
        # ... and linked to the order's own trace, the one its start began
        [start] = [s for s in spans.get_finished_spans() if s.name == "StartWorkflow:Order"]
        assert [link.context.span_id for link in span.links] == [start.context.span_id]


async def test_without_an_endpoint_nothing_is_traced(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, temporal_client: Client
) -> None:
    """No OTLP endpoint: no tracer provider, no middleware, no interceptor; the app still serves."""
    from api.app import create_app

    for var in ENDPOINT_VARS:
        monkeypatch.delenv(var, raising=False)
    reset_tracing()
    assert not tracing_configured()
    assert process_tracing(API_SERVICE) is None
    app = create_app(settings, configure_logs=False, temporal_client=temporal_client)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert "OpenTelemetryMiddleware" not in {m.cls.__name__ for m in app.user_middleware}  # type: ignore[attr-defined]
    reset_tracing()


async def test_an_endpoint_turns_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: one provider for the process, named for it unless
    OTEL_SERVICE_NAME says otherwise, exporting over OTLP/HTTP (nothing is sent here)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "omniflow-worker-eu")
    reset_tracing()
    try:
        tracing = process_tracing("omniflow-worker")
        assert tracing is not None and process_tracing("omniflow-worker") is tracing
        assert tracing.provider.resource.attributes["service.name"] == "omniflow-worker-eu"
        processors = tracing.provider._active_span_processor._span_processors
        exporter = processors[0].span_exporter  # type: ignore[attr-defined]
        assert type(exporter).__name__ == "OTLPSpanExporter"
        assert exporter._endpoint == "http://127.0.0.1:9/v1/traces"
    finally:
        reset_tracing()


def test_log_lines_carry_the_current_trace(spans: InMemorySpanExporter) -> None:
    from runtime.logging import add_trace_ids

    tracing = process_tracing(API_SERVICE)
    assert tracing is not None
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}  # no span: nothing added
    with tracing.provider.get_tracer("test").start_as_current_span("request") as span:
        line = add_trace_ids(None, "info", {"event": "x"})
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}" and line["span_id"] == f"{context.span_id:016x}"
