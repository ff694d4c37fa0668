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


async def _ceiling_tasks(client: Client, task_queue: str, shape: Shape, tag: str, notify: bool) -> int:
    """The workflow tasks of one no-op driven as the benchmark drives it (`notify`), or with
    its first update sent right after the start."""
    from bench import ceiling
    from bench.ceiling_driver import ReadyNotices, _driver

    class AtOnce(ReadyNotices):
        def expect(self, workflow_id: str) -> asyncio.Future[None]:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    notices = await (ReadyNotices() if notify else AtOnce()).listen()
    ceiling.NOTIFY_PORT = notices.port
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ceiling.CeilingWorkflow],
            activities=[ceiling.noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            drive = _driver(client, shape, tag, notices)
            with mock.patch("bench.ceiling_driver.CEILING_QUEUE", task_queue):
                await drive(0)
            _, trips = shape_of(await client.get_workflow_handle(f"ceiling-{tag}-0").fetch_history())
    finally:
        ceiling.NOTIFY_PORT = 0
    return trips["workflow_tasks"]


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
    assert await _ceiling_tasks(temporal_client, task_queue, order, "notified", notify=True) == 4
    # Sent at once, the first update rides in the start's task: one task fewer than an order.
    assert await _ceiling_tasks(temporal_client, task_queue, order, "at-once", notify=False) == 3
