"""The worker's Prometheus endpoint against the real worker, Postgres and the Temporal test
server: the SDK's metrics and ours after orders that are held, escalated, fixed, backordered
and retried; what each counter counts when a step or an exception activity runs again; and the
worker process itself serving /metrics and exiting cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities import metrics
from activities.exceptions import ExceptionActivities, close_exception_row
from cli.temporal_dev import TemporalDevServer
from runtime.ports import free_port
from tests.orders_api import Headers
from tests.worker_metrics import MetricsWorker, drive_scenario, observed, settings
from workflows.contracts import Escalate, OpenException, Resolution

__all__ = ["observed", "settings"]  # the fixtures, used by name


async def test_the_endpoint_serves_the_sdk_metrics_and_ours(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, observed: MetricsWorker
) -> None:
    before = await observed.scrape()
    held = await drive_scenario(api, keys, engine, observed)
    after = await observed.scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    families = after.families()
    # The SDK's own, through the MetricBuffer bridge: names as its exporter would give them.
    assert families["temporal_workflow_task_schedule_to_start_latency_seconds"] == "histogram"
    assert families["temporal_activity_execution_latency_seconds"] == "histogram"
    assert families["temporal_worker_task_slots_available"] == "gauge"
    assert families["temporal_request"] == "counter"
    assert after.value("temporal_worker_task_slots_available", worker_type="ActivityWorker") > 0
    assert after.value("temporal_workflow_completed_total") >= 0
    # Order steps are local activities; the publisher's round a regular one.
    assert delta("temporal_local_activity_execution_failed_total", activity_type="record_order") >= 1
    assert delta("temporal_activity_execution_failed_total", activity_type="publish_channel_round") >= 1
    assert after.value("process_cpu_seconds_total") > 0

    # Ours. Steps: each order recorded once, however often the timed-out one was tried.
    assert delta("omniflow_steps_total", process="order", step="record", outcome="done") == 3
    assert delta("omniflow_steps_total", process="order", step="record", outcome="rolled_back") >= 1
    # Sourced: the two orders nothing held.
    assert delta("omniflow_steps_total", process="order", step="source", outcome="done") == 2
    # The held order's address_invalid: opened once, escalated once (3 s SLA), then resolved
    # once by its default action.
    assert delta("omniflow_exceptions_opened_total", kind="address_invalid") == 1
    assert held.escalations == 1
    assert delta("omniflow_exceptions_escalated_total", kind="address_invalid") == 1
    assert delta("omniflow_exceptions_closed_total", kind="address_invalid", status="resolved") == 1
    assert held.open_while_held == 1
    assert after.value("omniflow_exceptions_open", kind="address_invalid") == 0
    # The mugs nobody has: one line refused by ATP, its units waiting.
    assert delta("omniflow_reservations_refused_total", reason="atp", outcome="backordered") == 1
    assert delta("omniflow_publish_lag_seconds_count", channel="web") >= 1


async def test_counters_count_what_happened_not_how_often_it_was_tried(engine: AsyncEngine) -> None:
    """Each activity run twice, as a retry after a lost answer runs it: opened once, escalated
    once a level; a close rolled back is not counted, the one committed is."""
    acts = ExceptionActivities(engine)

    def seen(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    kind = "count_variance"
    opened, escalated = (
        seen("omniflow_exceptions_opened_total", kind=kind),
        seen("omniflow_exceptions_escalated_total", kind=kind),
    )
    closed = seen("omniflow_exceptions_closed_total", kind=kind, status="resolved")
    req = OpenException(
        key="metrics-count-1",
        kind=kind,
        subject_type="cycle_count",
        subject_id="cc-1",
        workflow_id="cc-1",
        sla_seconds=60,
        value_at_risk=100,
        actions=["approve"],
        details={},
    )
    first = await acts.open_exception(req)
    assert (await acts.open_exception(req)).id == first.id
    assert seen("omniflow_exceptions_opened_total", kind=kind) == opened + 1
    for level in (1, 1, 2, 2):
        await acts.escalate_exception(Escalate(first.id, level, 60, 100))
    assert seen("omniflow_exceptions_escalated_total", kind=kind) == escalated + 2

    class RolledBack(Exception):
        pass

    resolution = Resolution(first.id, "approve", "", "tester")

    async def close_then_fail() -> None:
        async with engine.begin() as conn:
            await close_exception_row(conn, resolution)
            raise RolledBack

    with pytest.raises(RolledBack):
        await close_then_fail()
    assert seen("omniflow_exceptions_closed_total", kind=kind, status="resolved") == closed
    for _ in range(2):
        async with engine.begin() as conn:
            await close_exception_row(conn, resolution)
    assert seen("omniflow_exceptions_closed_total", kind=kind, status="resolved") == closed + 1
    async with engine.connect() as conn:
        status = (
            await conn.execute(text("SELECT status FROM exception WHERE id = :id"), {"id": first.id})
        ).scalar()
    assert status == "resolved"


async def test_the_worker_process_serves_metrics_and_exits_cleanly_on_sigterm(
    dev_server: TemporalDevServer, database_url: str, task_queue: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": dev_server.address,
        "OMNIFLOW_TASK_QUEUE": task_queue,
        "OMNIFLOW_WORKER_METRICS_PORT": str(port),
        "OMNIFLOW_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        body = ""
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    body = ""
                if "temporal_worker_task_slots_available" in body or proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0].decode(errors="replace")[-3000:])
        assert "temporal_worker_task_slots_available" in body
        assert "omniflow_steps_total" in body
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert f'"metrics": "http://127.0.0.1:{port}/metrics"' in out.decode()
