"""The audit trail of the steps people take on orders, shipments, returns, transfers and
cycle counts, and of the exception decisions behind them: each workflow-mediated action
shows once in `GET /v1/audit` with who, the route, the request id and before → after, also
when the request is retried with its Idempotency-Key; a step its activity refuses leaves no
row; a decision nobody took (a withdrawal) leaves none either."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from tests import audit
from tests.factories import receive
from tests.orders_api import Headers, create, order_body
from tests.returns import create_return, inspection, open_exception_of, receipt, return_body, shipped_order

PACK = {
    "packages": [
        {
            "weight_g": 600,
            "length_mm": 300,
            "width_mm": 200,
            "height_mm": 100,
            "lines": [{"sku": "TEE", "qty": 2}],
        }
    ]
}


async def _order_when(
    api: httpx.AsyncClient, headers: Headers, order_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    for _ in range(200):
        order: dict[str, Any] = (await api.get(f"/v1/orders/{order_id}", headers=headers)).json()
        if ready(order):
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never got there: {order}")


async def _none(api: httpx.AsyncClient, admin: Headers, obj: str, action: str | None = None) -> None:
    params = {"object": obj} | ({"action": action} if action else {})
    r = await api.get("/v1/audit", params=params, headers=admin)
    assert r.status_code == 200 and r.json()["items"] == [], r.text


async def test_pick_pack_ship_cancel_and_a_payment_confirmed_are_each_in_the_trail_once(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> None:
    await receive(engine, "TEE", "DC-EAST", 10)
    admin, web, wh = keys["admin"], keys["web"], keys["warehouse"]
    assert (await create(api, web, order_body("A-1"))).status_code == 202
    order = await _order_when(
        api, web, "order-web-A-1", lambda o: o["status"] == "allocated" and o["shipments"]
    )
    sid = order["shipments"][0]["id"]
    await audit.twice(api, f"/v1/shipments/{sid}/pick", wh, {"lines": [{"sku": "TEE", "qty": 2}]}, "rq-pick")
    await audit.twice(api, f"/v1/shipments/{sid}/pack", wh, PACK, "rq-pack")
    ship = {"carrier": "UPS", "tracking": "1Z9"}
    await audit.twice(api, f"/v1/shipments/{sid}/ship", wh, ship, "rq-ship")
    steps = [("pick", "allocated", "picked"), ("pack", "picked", "packed"), ("ship", "packed", "shipped")]
    for action, was, now in steps:
        entry = await audit.listed(api, admin, f"shipment:{sid}", action)
        route = f"POST /v1/shipments/{{shipment_id}}/{action}"
        assert audit.who(entry) == ("warehouse", route, f"rq-{action}")
        assert entry["actor"]["name"] == "test warehouse"
        assert (entry["before"]["status"], entry["after"]["status"]) == (was, now)
    shipped = await audit.listed(api, admin, f"shipment:{sid}", "ship")
    assert (shipped["after"]["carrier"], shipped["after"]["tracking"]) == ("UPS", "1Z9")
    packed = await audit.listed(api, admin, f"shipment:{sid}", "pack")
    assert packed["after"]["packages"][0]["weight_g"] == 600

    assert (await create(api, web, order_body("A-2"))).status_code == 202
    await _order_when(api, web, "order-web-A-2", lambda o: o["status"] == "allocated")
    await audit.twice(api, "/v1/orders/order-web-A-2/cancel", web, {"reason": "changed mind"}, "rq-cancel")
    entry = await audit.listed(api, admin, "order:order-web-A-2", "cancel")
    assert audit.who(entry) == ("channel", "POST /v1/orders/{order_id}/cancel", "rq-cancel")
    assert entry["before"]["status"] == "allocated" and entry["before"]["lines"]["1"]["reserved"] == 2
    assert entry["after"]["status"] == "cancelled" and entry["after"]["lines"][0]["cancelled"] == 2

    pending = {"method": "invoice", "status": "pending", "amount": 0, "reference": ""}
    assert (await create(api, web, order_body("A-3", payment=pending))).status_code == 202
    held = await _order_when(api, web, "order-web-A-3", lambda o: bool(o["holds"]))
    pay = {"status": "authorized", "amount": 4500, "reference": "inv-1", "method": "invoice"}
    await audit.twice(
        api, "/v1/orders/order-web-A-3/payment", keys["finance"], pay, "rq-pay", until_taken=True
    )
    entry = await audit.listed(api, admin, f"exception:{held['holds'][0]['exception_id']}", "resolve")
    assert audit.who(entry) == ("finance", "POST /v1/orders/{order_id}/payment", "rq-pay")
    assert (entry["before"]["kind"], entry["after"]["action"]) == ("payment_pending", "confirm_payment")
    assert entry["after"]["data"]["reference"] == "inv-1"


async def test_a_return_approved_received_inspected_or_cancelled_is_in_the_trail_once(
    api: httpx.AsyncClient,
    keys: dict[str, Headers],
    engine: AsyncEngine,
    temporal_client: Client,
    settings: Settings,
    worker: Worker,
    make_key: Callable[..., str],
) -> None:
    admin, web, wh = keys["admin"], keys["web"], keys["warehouse"]
    approver = {"Authorization": f"Bearer {make_key('approver')}"}
    await receive(engine, "TEE", "DC-EAST", 10)
    order_id = await shipped_order(engine, temporal_client, settings, "R-1", [("TEE", 2, 2000)], tax=0)
    async with engine.begin() as conn:  # outside the return window: a return waits for approval
        await conn.execute(text("UPDATE shipment SET shipped_at = now() - interval '90 days'"))
    assert (
        await create_return(api, web, return_body("RA1", order_id, [("TEE", 1, "wrong_size")]))
    ).status_code == 202
    exc = await open_exception_of(api, admin, "RA1", "return_approval")
    decision = {"action": "approve", "note": "loyal customer"}
    await audit.twice(
        api, f"/v1/exceptions/{exc['id']}/resolve", approver, decision, "rq-decide", until_taken=True
    )
    entry = await audit.listed(api, admin, f"exception:{exc['id']}", "resolve")
    assert audit.who(entry) == ("approver", "POST /v1/exceptions/{exception_id}/resolve", "rq-decide")
    assert entry["before"] == {
        "status": "open",
        "kind": "return_approval",
        "escalation_level": 0,
        "subject": {"type": "return", "id": "RA1"},
    }
    assert (entry["after"]["status"], entry["after"]["action"]) == ("resolved", "approve")

    refused = await api.post("/v1/returns/RA1/receive", json=receipt("NOWHERE", ("TEE", 1)), headers=wh)
    assert refused.status_code == 422, refused.text  # the activity refuses: no change, no row
    await _none(api, admin, "return:RA1", "receive")
    await audit.twice(api, "/v1/returns/RA1/receive", wh, receipt("DC-EAST", ("TEE", 1)), "rq-receive")
    entry = await audit.listed(api, admin, "return:RA1", "receive")
    assert audit.who(entry) == ("warehouse", "POST /v1/returns/{number}/receive", "rq-receive")
    assert (entry["before"]["lines"][0]["received"], entry["after"]["lines"][0]["received"]) == (0, 1)
    assert entry["before"]["status"] == "in_transit"
    body = inspection(("TEE", 1, "new", "restock"))
    await audit.twice(api, "/v1/returns/RA1/inspect", wh, body, "rq-inspect")
    entry = await audit.listed(api, admin, "return:RA1", "inspect")
    assert (entry["before"]["lines"][0]["inspected"], entry["after"]["lines"][0]["inspected"]) == (0, 1)

    assert (
        await create_return(api, web, return_body("RA2", order_id, [("TEE", 1, "wrong_size")]))
    ).status_code == 202
    withdrawn = await open_exception_of(api, admin, "RA2", "return_approval")
    await audit.twice(api, "/v1/returns/RA2/cancel", web, {"reason": "found the receipt"}, "rq-rcancel")
    entry = await audit.listed(api, admin, "return:RA2", "cancel")
    assert audit.who(entry) == ("channel", "POST /v1/returns/{number}/cancel", "rq-rcancel")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("requested", "cancelled")
    await _none(api, admin, f"exception:{withdrawn['id']}")  # withdrawn by the cancel, decided by nobody


async def test_a_transfer_shipped_received_and_settled_and_a_count_submitted_are_in_the_trail_once(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> None:
    admin, wh = keys["admin"], keys["warehouse"]
    await receive(engine, "TEE", "DC-EAST", 10)
    transfer = {"number": "X1", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 5}]}
    assert (await api.post("/v1/transfers", json=transfer, headers=wh)).status_code == 202
    await audit.twice(api, "/v1/transfers/X1/ship", wh, {"carrier": "LTL"}, "rq-tship", until_taken=True)
    entry = await audit.listed(api, admin, "transfer:X1", "ship")
    assert audit.who(entry) == ("warehouse", "POST /v1/transfers/{number}/ship", "rq-tship")
    assert (entry["before"], entry["after"]["status"]) == ({"status": "requested"}, "shipped")
    assert entry["after"]["lines"] == [{"sku": "TEE", "lot": "", "qty": 5}]

    wrong = {"lines": [{"sku": "MUG", "qty_received": 1}]}
    refused = await api.post("/v1/transfers/X1/receive", json=wrong, headers=wh)
    assert refused.status_code in (409, 422), refused.text  # the activity refuses: no change, no row
    await _none(api, admin, "transfer:X1", "receive")
    short = {"lines": [{"sku": "TEE", "qty_received": 3}]}
    await audit.twice(api, "/v1/transfers/X1/receive", wh, short, "rq-treceive")
    entry = await audit.listed(api, admin, "transfer:X1", "receive")
    assert (entry["before"], entry["after"]["status"]) == ({"status": "shipped"}, "discrepancy")
    assert entry["after"]["lines"][0]["qty_received"] == 3
    exc = None
    for _ in range(200):
        items = (await api.get("/v1/exceptions", params={"subject_id": "X1"}, headers=wh)).json()["items"]
        if items:
            exc = items[0]
            break
        await asyncio.sleep(0.05)
    assert exc is not None
    decision = {"action": "write_off", "note": "lost in transit"}
    await audit.twice(api, f"/v1/exceptions/{exc['id']}/resolve", wh, decision, "rq-settle", until_taken=True)
    entry = await audit.listed(api, admin, f"exception:{exc['id']}", "resolve")
    assert (entry["before"]["kind"], entry["after"]["action"]) == ("receipt_discrepancy", "write_off")

    count = {"id": "C1", "location": "DC-EAST", "skus": ["TEE"]}
    assert (await api.post("/v1/cycle-counts", json=count, headers=wh)).status_code == 202
    counted = {"lines": [{"sku": "TEE", "counted": 4}]}  # 10 - 5 shipped = 5 expected: within tolerance
    await audit.twice(api, "/v1/cycle-counts/C1/submit", wh, counted, "rq-count", until_taken=True)
    entry = await audit.listed(api, admin, "cycle_count:C1", "submit")
    assert audit.who(entry) == ("warehouse", "POST /v1/cycle-counts/{count_id}/submit", "rq-count")
    assert (entry["before"], entry["after"]["status"]) == ({"status": "open"}, "posted")
    assert [(ln["sku"], ln["expected"], ln["counted"]) for ln in entry["after"]["lines"]] == [("TEE", 5, 4)]
