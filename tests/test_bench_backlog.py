"""bench/backlog.py measures what it says: orders waiting are counted in Postgres by kind and
status, and the history per order is the server's own count and the fetched history's bytes
(here on the test server, with real orders waiting for stock)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from bench.backlog import KINDS, count_in, history_per_order, settle, signalling
from runtime.settings import Settings
from tests.factories import receive
from tests.orders import place_order, stocked_shop, until
from workflows.contracts import BACKORDER_DISPATCHER_ID, WakeInput


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


async def test_waiting_orders_are_counted_and_their_histories_measured(
    shop: AsyncEngine, temporal_client: Client, settings: Settings, database_url: str
) -> None:
    prefix, _, _, status = KINDS["backorder"]
    for n in range(3):
        h = await place_order(
            shop, temporal_client, settings, f"{prefix}-{n}", [("COFFEE", 1, 900)], customer=f"c-{n}"
        )
        await until(h, lambda s: s.status == status)
    assert count_in(database_url, prefix, status) == 3
    assert count_in(database_url, prefix, "allocated") == 0
    seconds, waiting = await settle(database_url, prefix, status, 3, timeout=5)
    assert waiting == 3 and seconds < 5
    _, allocated = await settle(database_url, prefix, "allocated", 3, timeout=0.5)
    assert allocated == 0  # the timeout ends the wait and says how many got there

    measured = await history_per_order(temporal_client, "backorder", 3, sample=2)
    histories = [
        (await temporal_client.get_workflow_handle(f"order-web-{prefix}-{n}").fetch_history()).events
        for n in range(3)
    ]
    events = [len(h) for h in histories]
    sizes = [sum(e.ByteSize() for e in h) for h in histories]
    assert measured["sampled"] == 2 and measured["events_max"] in events
    assert min(events) <= measured["events_mean"] <= max(events)
    assert min(sizes) <= measured["fetched_bytes_mean"] <= max(sizes)


async def test_the_dispatcher_rounds_that_woke_orders_are_read_from_its_history(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    dispatcher = await temporal_client.start_workflow(
        "BackorderDispatcher",
        WakeInput(wait_seconds=1),
        id=BACKORDER_DISPATCHER_ID,
        task_queue=settings.task_queue,
    )
    prefix, _, _, status = KINDS["backorder"]
    h = await place_order(shop, temporal_client, settings, f"{prefix}-0", [("COFFEE", 2, 900)])
    await until(h, lambda s: s.status == status)
    await receive(shop, "COFFEE", "DC-EAST", 2, lot="L1")
    await until(h, lambda s: s.status == "allocated")
    rounds = await signalling(temporal_client)
    assert [r["woken"] for r in rounds] == [1] and rounds[0]["seconds"] >= 0
    await dispatcher.terminate("test over")
