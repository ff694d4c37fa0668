"""A return cancelled before anything arrived (its approval withdrawn, its exchange's held
units released), and an instant exchange: its order ships at once, and when the parcel
never comes the customer is charged for what they were sent."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from domain.posting import CASH_CLEARING
from runtime.settings import Settings
from tests import returns
from tests.conftest import Desk
from tests.factories import assert_inventory_clean, receive
from tests.orders import until
from tests.returns import (
    act,
    balances,
    create_return,
    open_exception_of,
    reserved,
    return_body,
    shipped_order,
    until_return,
)
from tests.test_replay import record_history

DAY = 86_400
MUG_FOR_TEE = {"outcome": "exchange", "exchange_lines": [{"sku": "MUG", "qty": 1, "unit_price": 2000}]}


async def _shipped(engine: AsyncEngine, client: Client, settings: Settings, ext: str) -> str:
    await receive(engine, "TEE", "DC-EAST", 5)
    await receive(engine, "MUG", "DC-EAST", 5)
    return await shipped_order(engine, client, settings, ext, [("TEE", 2, 2000)], tax=0)


async def test_a_cancel_withdraws_the_approval_or_releases_the_held_units(desk: Desk, worker: Worker) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "K-1")
    async with desk.engine.begin() as conn:
        await conn.execute(text("UPDATE sku SET returnable_days = 0 WHERE code = 'TEE'"))
    await create_return(desk.api, desk.keys["web"], return_body("K1", order_id, [("TEE", 1, "changed_mind")]))
    exc = await open_exception_of(desk.api, desk.keys["admin"], "K1", "return_approval")
    r = await act(desk.api, desk.keys["web"], "K1", "cancel", {"reason": "found the receipt"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    row = (await desk.api.get(f"/v1/exceptions/{exc['id']}", headers=desk.keys["admin"])).json()
    assert row["status"] == "cancelled"  # withdrawn, nobody decides a cancelled return
    async with desk.engine.begin() as conn:
        await conn.execute(text("UPDATE sku SET returnable_days = 30 WHERE code = 'TEE'"))
    await create_return(
        desk.api, desk.keys["web"], return_body("K2", order_id, [("TEE", 1, "wrong_size")], **MUG_FOR_TEE)
    )
    # The return reads in_transit a step before its exchange's units are held: wait for both.
    await until_return(
        desk.api, desk.keys["admin"], "K2", lambda x: x["status"] == "in_transit" and returns.units_held(x)
    )
    assert await reserved(desk.engine, "MUG") == 1
    r = await act(desk.api, desk.keys["web"], "K2", "cancel", {"reason": "keeping it"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert await reserved(desk.engine, "MUG") == 0
    assert (await act(desk.api, desk.keys["web"], "K2", "cancel", {"reason": "again"})).status_code == 409
    await record_history(desk.client, "rma-K2", "return-exchange-cancelled")
    await assert_inventory_clean(desk.engine)


async def test_an_instant_exchange_ships_at_once_and_is_charged_when_nothing_comes_back(
    desk: Desk, worker: Worker
) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "I-1")
    body = return_body("I1", order_id, [("TEE", 1, "wrong_size")], instant=True, **MUG_FOR_TEE)
    assert (await create_return(desk.api, desk.keys["web"], body)).status_code == 202
    ret = await until_return(
        desk.api,
        desk.keys["admin"],
        "I1",
        lambda x: bool(x["exchange_order"]) and x["status"] == "in_transit",
    )
    new = desk.client.get_workflow_handle(ret["exchange_order"])
    assert (await until(new, lambda s: bool(s.shipments))).shipments[0].location == "DC-EAST"
    cash = (await balances(desk.engine, [CASH_CLEARING]))[CASH_CLEARING]
    await desk.env.sleep(31 * DAY)
    expired = await until_return(desk.api, desk.keys["admin"], "I1", lambda x: x["status"] == "expired")
    assert expired["charged"] == 2000  # the MUG they kept along with the TEE
    assert (await balances(desk.engine, [CASH_CLEARING]))[CASH_CLEARING] == cash + 2000
    await record_history(desk.client, "rma-I1", "return-instant-exchange-expired")
    await assert_inventory_clean(desk.engine)
