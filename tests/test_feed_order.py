"""The availability feed when an order step's transaction id is older than its SKU lock.

An order step (models.order_store.lock_order: `SELECT ... FOR NO KEY UPDATE` on its order)
gets its transaction id before it takes its SKU locks. So a stock change that takes the SKU
lock first gets a younger id, commits first, and its event sits after the step's in the
feed's (txid, seq) order, although the step's value is the newer one. Here the two
transactions really run that way on the real Postgres (the step is the real activity; the
other change is models.stock under the SKU lock it took before the step asked for it), and
a feed consumer (GET /v1/availability/changes, every page in order) and the channel
publisher's receiver both end with the true ATP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.gateways import gateway_from_settings
from activities.orders import OrderActivities
from models import publishing_store as store
from models import stock
from models.availability import lock_skus
from runtime.settings import Settings
from tests.factories import assert_inventory_clean, wait_for_a_sku_lock
from tests.orders import recorded_tee_order, stocked_shop
from tests.publishing import Receiver, running_receiver, start_publisher
from workflows.contracts import CancelOrder, CancelRequest, SourceOrder

SECRET = "whsec_feed_order"
Write = Callable[[AsyncConnection], Awaitable[Any]]


@pytest.fixture
async def steps(engine: AsyncEngine, settings: Settings) -> OrderActivities:
    """The order activities reserving in the step's own transaction (no batcher): a step's
    reservation, like its cancel's release, is written after its order row lock."""
    await stocked_shop(engine)  # 10 TEE at DC-EAST
    return OrderActivities(engine, gateway_from_settings(settings), None)


async def _step_older_but_later(engine: AsyncEngine, step: Awaitable[Any], other: Write) -> None:
    """`step` (an order step: its order row lock gives it its transaction id) asks for TEE's
    lock while `other` holds it; `other` then writes (a younger id), and commits first."""
    async with engine.connect() as conn:
        tx = await conn.begin()
        await lock_skus(conn, ["TEE"])  # no write yet: no transaction id
        running = asyncio.ensure_future(step)
        await wait_for_a_sku_lock(engine)
        await other(conn)
        await tx.commit()
    await running
    async with engine.connect() as conn:
        events = (
            await conn.execute(
                text(
                    "SELECT txid, seq FROM availability_event WHERE channel = 'web' AND sku = 'TEE'"
                    " ORDER BY seq DESC LIMIT 2"
                )
            )
        ).all()
    [(step_txid, step_seq), (other_txid, other_seq)] = events
    # The scenario really happened: the step wrote last (higher seq) with the older id.
    assert step_seq > other_seq and step_txid < other_txid


async def _feed_values(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    """What a consumer holds after applying every page of web's feed in order, one event a page."""
    values: dict[str, int] = {}
    after = "0"
    while True:
        r = await api.get(
            "/v1/availability/changes",
            params={"channel": "web", "after": after, "limit": 1},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        if not page["events"]:
            return values
        for e in page["events"]:
            values[e["sku"]] = e["available"]
        after = page["next_after"]


async def _truth(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await store.current_atp(conn, "web")


async def test_a_cancel_older_than_a_reservation_that_commits_first_leaves_the_feed_consumer_at_the_truth(
    steps: OrderActivities, api: httpx.AsyncClient, admin_key: str
) -> None:
    order_id = await recorded_tee_order(steps, "OLD-1", 2)
    await steps.source_order(SourceOrder(order_id, "source", []))
    assert (await _truth(steps.engine))["TEE"] == 8
    cancel = steps.cancel_order(CancelOrder(order_id, CancelRequest("customer asked"), "cancel"))
    walk_in = [stock.ReserveLine("1", "TEE", "DC-EAST", 3)]
    await _step_older_but_later(
        steps.engine, cancel, lambda conn: stock.reserve(conn, "walk-in", "web", walk_in)
    )
    truth = await _truth(steps.engine)
    assert truth["TEE"] == 7  # 10 - 3: the cancel's release (the last commit) is the truth
    consumer = await _feed_values(api, {"Authorization": f"Bearer {admin_key}"})
    assert consumer["TEE"] == truth["TEE"], "the feed's last TEE event is the reservation's 5"
    await assert_inventory_clean(steps.engine)


@pytest.fixture
async def publisher(
    steps: OrderActivities, temporal_client: Client, settings: Settings, worker: Worker, receiver: Receiver
) -> AsyncIterator[str]:
    """web's publisher (on the real worker) posting to `receiver`: its workflow id."""
    wid = await start_publisher(temporal_client, steps.engine, settings, receiver)
    yield wid
    await temporal_client.get_workflow_handle(wid).terminate("test over")


async def test_an_order_reserving_older_than_a_receipt_that_commits_first_leaves_the_receiver_at_the_truth(
    steps: OrderActivities, publisher: str, receiver: Receiver, temporal_env: WorkflowEnvironment
) -> None:
    engine = steps.engine
    await _published_up_to_the_head(engine, temporal_env)
    assert receiver.state["TEE"] == 10
    order_id = await recorded_tee_order(steps, "OLD-2", 2)
    sourcing = steps.source_order(SourceOrder(order_id, "source", []))
    receipt = stock.adjustment_move("TEE", "DC-EAST", "sellable", 5)
    await _step_older_but_later(
        engine,
        sourcing,
        lambda conn: stock.apply_moves(conn, "late-receipt", "adjustment", [receipt], reason="found"),
    )
    truth = await _truth(engine)
    assert truth["TEE"] == 13  # 10 + 5 - 2: the order's reservation (the last commit) is the truth
    await _published_up_to_the_head(engine, temporal_env)
    assert receiver.state["TEE"] == truth["TEE"], "the last delta said the receipt's 15"
    assert receiver.stale == 0
    await assert_inventory_clean(engine)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver(SECRET) as r:
        yield r


async def _published_up_to_the_head(engine: AsyncEngine, env: WorkflowEnvironment) -> None:
    """Wait for the publisher's cursor to reach the feed's head (every change delivered)."""
    for _ in range(200):
        async with engine.connect() as conn:
            t = await store.target(conn, "web")
            head = await store.feed_head(conn, "web")
        if t is not None and not t.snapshot_due and (int(t.cursor_txid), int(t.cursor_seq)) == head:
            return
        await env.sleep(0.2)
        await asyncio.sleep(0.02)
    raise AssertionError("the publisher never caught up with the feed")
