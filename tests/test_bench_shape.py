"""The ceiling of the benchmark makes exactly the round trips of a real order: its shape is
read from the order's history (here: the recorded ones)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest import mock

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.ceiling import Shape
from bench.lifecycle import shape_of
from cli.temporal_dev import TemporalDevServer

HISTORIES = Path(__file__).resolve().parent / "histories"


def _history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())


def test_the_shape_of_an_order_before_and_after_the_round_trip_cuts() -> None:
    before, trips_before = shape_of(_history("order-happy-path-before-local-steps"))
    assert before == Shape(activities_before=2, activities_per_update=1, activities_after=1, updates=3)
    assert trips_before["activities"] == 6 and trips_before["local_activities"] == 0
    after, trips_after = shape_of(_history("order-happy-path"))
    assert after == Shape(
        activities_before=0,
        activities_per_update=0,
        activities_after=0,
        updates=3,
        local_before=1,
        local_per_update=1,
        local_after=0,
    )
    assert trips_after["history_events"] < trips_before["history_events"]


def _ceiling_worker(client: Client, task_queue: str) -> Worker:
    from bench import ceiling

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ceiling.CeilingWorkflow],
        activities=[ceiling.noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def _tasks(client: Client, workflow_id: str) -> int:
    return shape_of(await client.get_workflow_handle(workflow_id).fetch_history())[1]["workflow_tasks"]


async def _driven(client: Client, task_queue: str, shape: Shape) -> int:
    """The workflow tasks of one no-op driven as the benchmark drives it."""
    from bench import ceiling
    from bench.ceiling_driver import ReadyNotices, _driver

    notices = await ReadyNotices().listen()
    ceiling.NOTIFY_PORT = notices.port
    try:
        async with _ceiling_worker(client, task_queue):
            with mock.patch("bench.ceiling_driver.CEILING_QUEUE", task_queue):
                await _driver(client, shape, "notified", notices)(0)
    finally:
        ceiling.NOTIFY_PORT = 0
    return await _tasks(client, "ceiling-notified-0")


async def _first_update_with_the_start(client: Client, task_queue: str, shape: Shape) -> int:
    """The workflow tasks of one no-op whose first update reached the server with its start,
    before any worker took the start's task (as a driver that does not wait may, at random)."""
    handle = await client.start_workflow("BenchCeiling", shape, id="ceiling-at-once", task_queue=task_queue)
    # The SDK cannot wait for "admitted"; the update waits in the server for the first task,
    # which no worker takes for this half second.
    first = asyncio.create_task(handle.execute_update("step", "u0"))
    await asyncio.sleep(0.5)
    async with _ceiling_worker(client, task_queue):
        await first
        for i in range(1, shape.updates):
            await handle.execute_update("step", f"u{i}")
        await handle.result()
    return await _tasks(client, "ceiling-at-once")


async def test_the_ceiling_makes_the_workflow_tasks_of_an_order(
    dev_server: TemporalDevServer, task_queue: str
) -> None:
    """An order's first update comes when its first step has run, inside its first workflow
    task, so it is a task of its own; the no-op's driver waits for the same moment. (The test
    server does not merge an update into the start's task, so this runs on a dev server.)"""
    from runtime.temporal import connect_or_fail

    temporal_client = await connect_or_fail(dev_server.address, "default", "TEMPORAL_ADDRESS")
    order, _ = shape_of(_history("order-happy-path"))
    # 4: the benchmark's orders (`round_trips_per_order`); this recording has one more, from
    # the workflow test that drove it.
    assert await _driven(temporal_client, task_queue, order) == 4
    # With the start, the first update rides in the start's task: one task fewer than an order.
    assert await _first_update_with_the_start(temporal_client, task_queue, order) == 3
