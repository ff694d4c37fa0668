"""Orders over HTTP with the real worker: an order taken, held, fixed, picked, packed, shipped
and cancelled through its workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from tests.factories import receive
from tests.orders_api import Headers, create, idem, order_body
from workflows import search_attributes as sa

# -- with the order workflow running -----------------------------------------------------


async def _wait_for(
    api: httpx.AsyncClient, headers: Headers, order_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    order: dict[str, Any] = {}
    for _ in range(200):
        r = await api.get(f"/v1/orders/{order_id}", headers=headers)
        assert r.status_code == 200, r.text
        order = r.json()
        if done(order):
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"order never got there: {order}")


@pytest.fixture
async def stocked(keys: dict[str, Headers], engine: AsyncEngine, worker: Worker) -> dict[str, Headers]:
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-EAST", 10)
    return keys


async def test_an_order_is_picked_packed_and_shipped(
    api: httpx.AsyncClient, stocked: dict[str, Headers], temporal_client: Client
) -> None:
    web, wh = stocked["web"], stocked["warehouse"]
    r = await create(api, web, order_body())
    assert r.status_code == 202, r.text
    order = await _wait_for(
        api, web, "order-web-A-1", lambda o: o["status"] == "allocated" and o["shipments"]
    )
    assert order["lines"][0]["reserved"] == 2
    assert order["payment"]["status"] == "captured"
    # Started without OmniException: set only while an exception is open (`IS NOT NULL` in the UI).
    attrs = (await temporal_client.get_workflow_handle("order-web-A-1").describe()).typed_search_attributes
    assert (attrs.get(sa.OMNI_EXCEPTION), attrs.get(sa.OMNI_CHANNEL)) == (None, "web")
    [shipment] = order["shipments"]
    sid = shipment["id"]
    assert (shipment["location"], shipment["status"]) == ("DC-EAST", "allocated")
    waves = (await api.get("/v1/pick-tasks", params={"location": "DC-EAST"}, headers=wh)).json()["items"]
    assert [s["id"] for w in waves for s in w["shipments"]] == [sid]

    ship = {"carrier": "UPS", "service": "ground", "tracking": "1Z999"}
    assert (
        await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)
    ).status_code == 409  # not packed
    with statements(api) as during_pick:
        r = await api.post(
            f"/v1/shipments/{sid}/pick", json={"lines": [{"sku": "TEE", "qty": 2}]}, headers=wh
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "picked" and r.json()["lines"][0]["picked"] == 2
    assert during_pick == []  # answered from the update: the API read nothing
    assert r.json() == (await api.get(f"/v1/shipments/{sid}", headers=wh)).json()
    assert (
        await api.post(f"/v1/shipments/{sid}/pick", json={"lines": [{"sku": "TEE", "qty": 2}]}, headers=wh)
    ).status_code == 409
    pack = {
        "packages": [
            {
                "weight_g": 600,
                "length_mm": 300,
                "width_mm": 200,
                "height_mm": 100,
                "lines": [{"sku": "TEE", "qty": 1}, {"sku": "TEE", "qty": 1}],
            }
        ]
    }
    with statements(api) as during_pack:
        r = await api.post(f"/v1/shipments/{sid}/pack", json=pack, headers=wh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "packed" and len(r.json()["packages"]) == 1
    assert during_pack == []
    assert r.json() == (await api.get(f"/v1/shipments/{sid}", headers=wh)).json()
    with statements(api) as during_ship:
        r = await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["carrier"], r.json()["tracking"]) == ("shipped", "UPS", "1Z999")
    assert r.json()["shipped_at"]
    assert during_ship == []
    assert r.json() == (await api.get(f"/v1/shipments/{sid}", headers=wh)).json()
    order = await _wait_for(api, web, "order-web-A-1", lambda o: o["status"] in ("shipped", "completed"))
    assert order["lines"][0]["shipped"] == 2
    events = [e["event"] for e in order["timeline"]]
    assert events[0] == "received" and "shipped" in events
    # A retried create is still the same order.
    assert (await create(api, web, order_body())).status_code == 200
    # Without the read before the update: an order's unknown shipment is 404, while the order
    # runs and after it has finished; a step on its finished order is 409.
    for missing in (f"{sid[:-1]}9", "order-web-NOPE-S1", "order-web-A-1", "order-web-A-1-S0"):
        r = await api.post(f"/v1/shipments/{missing}/ship", json=ship, headers=wh)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["detail"] == f"shipment {missing} was not found"
    assert (await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)).status_code == 409


async def test_an_unknown_shipment_of_a_running_order_is_404(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    web, wh = stocked["web"], stocked["warehouse"]
    assert (await create(api, web, order_body())).status_code == 202
    await _wait_for(api, web, "order-web-A-1", lambda o: o["status"] == "allocated" and o["shipments"])
    await api.get("/v1/pick-tasks", headers=wh)  # the key's lookup, cached from then on
    with statements(api) as during:
        r = await api.post(
            "/v1/shipments/order-web-A-1-S7/pick", json={"lines": [{"sku": "TEE", "qty": 2}]}, headers=wh
        )
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["detail"] == "shipment order-web-A-1-S7 was not found"
    assert during == []  # the workflow refused it: no read


@contextmanager
def statements(api: httpx.AsyncClient) -> Iterator[list[str]]:
    """The SQL statements the API's engine runs inside the block."""
    engine = api.app.state.engine.sync_engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_pending_payment_holds_the_order_until_confirmed(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    body = order_body(payment={"method": "invoice", "status": "pending", "amount": 0, "reference": ""})
    assert (await create(api, stocked["web"], body)).status_code == 202
    order = await _wait_for(
        api, stocked["web"], "order-web-A-1", lambda o: o["status"] == "on_hold" and o["holds"]
    )
    assert [(h["kind"], h["status"]) for h in order["holds"]] == [("payment_pending", "open")]
    pay = {"status": "authorized", "amount": 4500, "reference": "inv-1", "method": "invoice"}
    r = await api.post("/v1/orders/order-web-A-1/payment", json=pay, headers=stocked["finance"])
    assert r.status_code == 200, r.text
    order = await _wait_for(api, stocked["web"], "order-web-A-1", lambda o: o["status"] == "allocated")
    assert order["payment"]["status"] == "authorized"
    assert [h["status"] for h in order["holds"]] == ["resolved"]


async def test_a_bad_address_holds_the_order_until_the_channel_fixes_it(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    good = order_body()["ship_to"]
    assert (
        await create(api, stocked["web"], order_body(ship_to={**good, "postal_code": "ABC"}))
    ).status_code == 202
    order = await _wait_for(
        api, stocked["web"], "order-web-A-1", lambda o: o["status"] == "on_hold" and o["holds"]
    )
    assert [h["kind"] for h in order["holds"]] == ["address_invalid"]
    r = await api.patch("/v1/orders/order-web-A-1/ship-to", json=good, headers=stocked["web"])
    assert r.status_code == 200, r.text
    order = await _wait_for(api, stocked["web"], "order-web-A-1", lambda o: o["status"] == "allocated")
    assert order["ship_to"]["postal_code"] == "10001"


async def test_an_order_is_cancelled_in_part_then_in_full(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    web = stocked["web"]
    body = order_body(
        lines=[{"sku": "TEE", "qty": 2, "unit_price": 2000}, {"sku": "MUG", "qty": 3, "unit_price": 1000}],
        payment={"method": "card", "status": "authorized", "amount": 7500, "reference": "a"},
    )
    assert (await create(api, web, body)).status_code == 202
    await _wait_for(api, web, "order-web-A-1", lambda o: o["status"] == "allocated")
    part = {"reason": "customer changed mind", "lines": [{"sku": "MUG", "qty": 1}]}
    r = await api.post("/v1/orders/order-web-A-1/cancel", json=part, headers=idem(web))
    assert r.status_code == 200, r.text
    assert [(ln["sku"], ln["cancelled"]) for ln in r.json()["lines"]] == [("TEE", 0), ("MUG", 1)]
    r = await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": "all of it"}, headers=web)
    assert r.status_code == 200, r.text
    order = await _wait_for(api, web, "order-web-A-1", lambda o: o["status"] == "cancelled")
    assert [(ln["sku"], ln["cancelled"]) for ln in order["lines"]] == [("TEE", 2), ("MUG", 3)]
    assert (
        await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": "again"}, headers=web)
    ).status_code == 409
