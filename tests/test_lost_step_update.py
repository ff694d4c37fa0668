"""A warehouse step commits inside the workflow task that runs its update; when the worker (or
the engine) dies before that task completes, the step is in Postgres but the update was never
accepted, and the workflow still sees the shipment as it was. Here that is what happens, for
real: the real pick activity commits against the real Postgres, as the dying worker's task
did, and no update carries it. The next step the warehouse asks for must still go through
(not 409 forever, the order stuck in fulfilment), and what the lost step's handler would have
done after its activity (a short pick's units sourced again) must happen."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities.gateways import gateway_from_settings
from activities.orders import OrderActivities
from runtime.settings import Settings
from tests.conftest import Desk
from tests.factories import balance, receive
from tests.orders import place_order, snapshot, until
from tests.orders_api import create, order_body
from workflows.contracts import (
    CancelOrder,
    CancelRequest,
    OrderSnapshot,
    PackageIn,
    PackRequest,
    PackShipment,
    PickedLine,
    PickRequest,
    PickShipment,
    shipment_order_id,
)
from workflows.keyed_steps import update_step_name

PACK = {"weight_g": 600, "length_mm": 300, "width_mm": 200, "height_mm": 100}
SHIP = {"carrier": "UPS", "service": "ground", "tracking": "1Z-LOST"}


async def _allocated(desk: Desk, external_id: str, west: int = 0) -> tuple[str, WorkflowHandle[Any, Any]]:
    """10 TEE at DC-EAST (and `west` at DC-WEST), an order of two over HTTP, allocated: its
    shipment and workflow."""
    await receive(desk.engine, "TEE", "DC-EAST", 10)
    if west:
        await receive(desk.engine, "TEE", "DC-WEST", west)
    r = await create(desk.api, desk.keys["web"], order_body(external_id))
    assert r.status_code == 202, r.text
    handle = desk.client.get_workflow_handle(f"order-web-{external_id}")
    snap = await until(handle, lambda o: bool(o.shipments))
    return snap.shipments[0].id, handle


async def _picked_without_its_update(engine: AsyncEngine, settings: Settings, sid: str, qty: int) -> None:
    """The pick step's activity, run as the lost update's workflow task ran it."""
    steps = OrderActivities(engine, gateway_from_settings(settings), None)
    order_id = shipment_order_id(sid)
    assert order_id is not None
    await steps.pick_shipment(PickShipment(order_id, PickRequest(sid, [PickedLine("TEE", qty)])))


def _pack(qty: int) -> dict[str, Any]:
    return {"packages": [{**PACK, "lines": [{"sku": "TEE", "qty": qty}]}]}


async def test_the_next_step_goes_through_after_a_pick_whose_update_was_lost(
    desk: Desk, worker: Worker
) -> None:
    api, wh = desk.api, desk.keys["warehouse"]
    sid, handle = await _allocated(desk, "LOST-1")
    # Nothing lost: a pack before the pick is refused, and the pick is not replayed for it.
    r = await api.post(f"/v1/shipments/{sid}/pack", json=_pack(2), headers=wh)
    assert r.status_code == 409, r.text

    await _picked_without_its_update(desk.engine, desk.settings, sid, 2)
    assert (await api.get(f"/v1/shipments/{sid}", headers=wh)).json()["status"] == "picked"
    assert (await snapshot(handle)).shipments[0].status == "allocated"  # the workflow never heard

    r = await api.post(f"/v1/shipments/{sid}/pack", json=_pack(2), headers=wh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "packed"
    assert (await snapshot(handle)).shipments[0].status == "packed"
    r = await api.post(f"/v1/shipments/{sid}/ship", json=SHIP, headers=wh)
    assert r.status_code == 200, r.text
    await asyncio.wait_for(handle.result(), timeout=20)  # the order ran to its end
    order = (await api.get("/v1/orders/order-web-LOST-1", headers=desk.keys["web"])).json()
    assert order["status"] == "completed" and order["lines"][0]["shipped"] == 2
    # The pick is in the timeline once: sent again, it answered from its record.
    assert [e["event"] for e in order["timeline"]].count("picked") == 1
    # A step asked twice is still refused when nothing was lost.
    assert (await api.post(f"/v1/shipments/{sid}/ship", json=SHIP, headers=wh)).status_code == 409


async def test_a_short_pick_whose_update_was_lost_is_sourced_again_once_caught_up(
    desk: Desk, worker: Worker
) -> None:
    api, wh = desk.api, desk.keys["warehouse"]
    sid, handle = await _allocated(desk, "LOST-2", west=5)
    await _picked_without_its_update(desk.engine, desk.settings, sid, 1)  # one TEE of two not found

    r = await api.post(f"/v1/shipments/{sid}/pack", json=_pack(1), headers=wh)
    assert r.status_code == 200, r.text
    # The pick's handler ran as it would have: the missing unit is sourced again, elsewhere
    # than the shelf that came up short.
    snap = await until(handle, lambda o: len(o.shipments) == 2)
    second = snap.shipments[1]
    assert (second.location, second.status, second.lines[0].qty) == ("DC-WEST", "allocated", 1)
    assert (snap.lines[0].reserved, snap.lines[0].backordered) == (2, 0)


async def test_a_cancel_whose_update_was_lost_is_its_own_step_and_its_retry_is_it_again(
    desk: Desk, worker: Worker
) -> None:
    """A step an update asks for is named by the update: numbered, the next request would take
    the lost step's number and be answered with its record (one unit cancelled, not two)."""
    await receive(desk.engine, "TEE", "DC-EAST", 10)
    h = await place_order(desk.engine, desk.client, desk.settings, "LOST-3", [("TEE", 4, 2000)])
    await until(h, lambda s: s.status == "allocated")
    steps = OrderActivities(desk.engine, gateway_from_settings(desk.settings), None)
    one = CancelRequest("customer changed their mind", {"1": 1}, "cs")
    # The lost update's step, as its workflow task ran it.
    await steps.cancel_order(CancelOrder(h.id, one, update_step_name("cancel", "lost-cancel")))
    assert (await snapshot(h)).lines[0].cancelled == 0  # the workflow never heard

    another = CancelRequest("and one more", {"1": 1}, "cs")
    snap = await h.execute_update("cancel", another, id="another-cancel", result_type=OrderSnapshot)
    assert snap.lines[0].cancelled == 2  # its own step, on top of the lost one
    again = await h.execute_update("cancel", one, id="lost-cancel", result_type=OrderSnapshot)
    assert again.lines[0].cancelled == 2  # the lost request retried: answered from its record
    assert (await snapshot(h)).lines[0].cancelled == 2
    assert await balance(desk.engine, "TEE", "DC-EAST") == (10, 2)


async def test_a_ship_goes_through_after_a_pack_whose_update_was_lost(desk: Desk, worker: Worker) -> None:
    """Two steps behind the record at the ship: the pick the workflow has (sent again, refused
    as done) and the pack it never heard of (sent again from the packages recorded)."""
    api, wh = desk.api, desk.keys["warehouse"]
    sid, handle = await _allocated(desk, "LOST-4")
    pick = {"lines": [{"sku": "TEE", "qty": 2}]}
    assert (await api.post(f"/v1/shipments/{sid}/pick", json=pick, headers=wh)).status_code == 200
    steps = OrderActivities(desk.engine, gateway_from_settings(desk.settings), None)
    box = PackageIn(PACK["weight_g"], PACK["length_mm"], PACK["width_mm"], PACK["height_mm"], {"TEE": 2})
    await steps.pack_shipment(PackShipment(handle.id, PackRequest(sid, [box], "ground")))
    assert (await snapshot(handle)).shipments[0].status == "picked"

    r = await api.post(f"/v1/shipments/{sid}/ship", json=SHIP, headers=wh)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], len(r.json()["packages"])) == ("shipped", 1)
    await asyncio.wait_for(handle.result(), timeout=20)
