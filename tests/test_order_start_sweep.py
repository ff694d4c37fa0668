"""An order taken whose workflow never started (the engine did not answer intake's start in
time, and the channel never sent the order again) is started by the API's sweep
(api.order_starts) and worked like any other: through the real intake rows, the real API
process's sweeper, real Temporal and the real worker."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from api.order_starts import OrderStartSweeper
from api.routes.orders import _intake
from api.schemas_orders import OrderCreate
from models.order_intake import insert_order
from runtime.settings import Settings
from tests.factories import receive
from tests.orders_api import Headers, order_body
from tests.test_orders_api_workflow import _wait_for


async def _taken_without_a_start(engine: AsyncEngine, external_id: str, seconds_ago: int) -> str:
    """What intake commits before it starts the workflow: the order's rows, `received`."""
    body = OrderCreate.model_validate(order_body(external_id))
    order_id = f"order-web-{external_id}"
    async with engine.begin() as conn:
        assert await insert_order(conn, _intake(body, order_id))
        await conn.execute(
            text("UPDATE sales_order SET created_at = now() - make_interval(secs => :s) WHERE id = :o"),
            {"s": seconds_ago, "o": order_id},
        )
    return order_id


async def test_an_order_whose_start_was_lost_is_started_by_the_sweep_and_worked(
    worker: Worker,
    engine: AsyncEngine,
    temporal_client: Client,
    settings: Settings,
    api: httpx.AsyncClient,
    keys: dict[str, Headers],
) -> None:
    await receive(engine, "TEE", "DC-EAST", 5)
    lost = await _taken_without_a_start(engine, "LOST-1", seconds_ago=120)
    fresh = await _taken_without_a_start(engine, "FRESH-1", seconds_ago=0)  # its own start may come yet
    sweeper = OrderStartSweeper(engine, temporal_client, settings)
    assert await sweeper.sweep_once() == [lost]
    order = await _wait_for(api, keys["web"], lost, lambda o: o["status"] == "allocated")
    assert order["lines"][0]["reserved"] == order["lines"][0]["qty"]
    # Asked once per order: the next sweep leaves it (and the fresh one) alone.
    assert await sweeper.sweep_once() == []
    description = await temporal_client.get_workflow_handle(lost).describe()
    assert description.run_id is not None
    async with engine.connect() as conn:
        status = (
            await conn.execute(text("SELECT status FROM sales_order WHERE id = :o"), {"o": fresh})
        ).scalar()
    assert status == "received"
