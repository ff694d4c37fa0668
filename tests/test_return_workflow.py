"""The return workflow against the real activities, over the API, on the time-skipping
test server: every path from authorization to completion, with the stock and the books
checked after each."""

from __future__ import annotations

from temporalio.worker import Worker

from domain.posting import CASH_CLEARING, RETURNS_INVENTORY, SALES_RETURNS, TAX_PAYABLE
from tests.conftest import Desk
from tests.factories import assert_inventory_clean, balance, receive
from tests.returns import (
    act,
    balances,
    create_return,
    read,
    return_body,
    shipped_order,
    until_return,
)
from tests.test_replay import record_history


async def test_a_return_within_policy_is_received_inspected_restocked_and_refunded(
    desk: Desk, worker: Worker
) -> None:
    await receive(desk.engine, "TEE", "DC-EAST", 10)
    order_id = await shipped_order(
        desk.engine, desk.client, desk.settings, "R-1", [("TEE", 2, 2000)], tax=400
    )
    r = await create_return(
        desk.api, desk.keys["web"], return_body("R1", order_id, [("TEE", 1, "wrong_size")])
    )
    assert r.status_code == 202, r.text
    ret = await until_return(desk.api, desk.keys["admin"], "R1", lambda x: x["status"] == "in_transit")
    before = await balance(desk.engine, "TEE", "DC-EAST")
    got = await act(
        desk.api,
        desk.keys["warehouse"],
        "R1",
        "receive",
        {"location": "DC-EAST", "lines": [{"sku": "TEE", "qty": 1}]},
    )
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "received" and got.json()["refunded"] == 0  # receiving refunds nothing
    assert await balance(desk.engine, "TEE", "DC-EAST", "returns") == (1, 0)
    got = await act(
        desk.api,
        desk.keys["warehouse"],
        "R1",
        "inspect",
        {"lines": [{"sku": "TEE", "qty": 1, "condition": "new", "disposition": "restock"}]},
    )
    assert got.status_code == 200, got.text
    ret = await until_return(desk.api, desk.keys["admin"], "R1", lambda x: x["status"] == "completed")
    assert ret["refunded"] == 2200  # 2000 and half the order's 400 tax; shipping is not refunded
    assert (await balance(desk.engine, "TEE", "DC-EAST"))[0] == before[0] + 1
    books = await balances(desk.engine, [SALES_RETURNS, TAX_PAYABLE, CASH_CLEARING, RETURNS_INVENTORY])
    assert books[SALES_RETURNS] == 2000 and books[RETURNS_INVENTORY] == 0
    order = (await desk.api.get(f"/v1/orders/{order_id}", headers=desk.keys["admin"])).json()
    assert order["status"] == "partially_returned" and order["lines"][0]["returned"] == 1
    await assert_inventory_clean(desk.engine)
    assert (await read(desk.api, desk.keys["admin"], "R1"))["timeline"]
    await record_history(desk.client, "rma-R1", "return-refunded")
