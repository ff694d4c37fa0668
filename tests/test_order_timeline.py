"""An order's timeline says each thing once (issue 13): the closing event carries the final
status and is not added when the step's own event already records it; and a cancel of an
order that has ended answers the business reason, not the engine's words."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from tests.factories import receive
from tests.orders_api import Headers, create, order_body
from tests.test_orders_api_workflow import _wait_for

ORDER = "order-web-A-1"


@pytest.fixture
async def stocked(keys: dict[str, Headers], engine: AsyncEngine, worker: Worker) -> dict[str, Headers]:
    await receive(engine, "TEE", "DC-EAST", 10)
    return keys


def _events(order: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    return [(e["event"], e["detail"]) for e in order["timeline"]]  # type: ignore[attr-defined]


async def test_a_cancelled_order_says_cancelled_once(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    web = stocked["web"]
    assert (await create(api, web, order_body())).status_code == 202
    await _wait_for(api, web, ORDER, lambda o: o["status"] == "allocated")
    r = await api.post(f"/v1/orders/{ORDER}/cancel", json={"reason": "changed mind"}, headers=web)
    assert r.status_code == 200, r.text
    order = await _wait_for(api, web, ORDER, lambda o: o["status"] == "cancelled")
    events = _events(order)
    assert [e for e, _ in events].count("cancelled") == 1, events
    assert events[-1][0] == "cancelled" and events[-1][1]["status"] == "cancelled"
    assert all(detail for _, detail in events), events

    again = await api.post(f"/v1/orders/{ORDER}/cancel", json={"reason": "again"}, headers=web)
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/refused"
    assert again.json()["detail"] == f"order {ORDER} is cancelled: nothing left to cancel"


async def test_a_completed_order_ends_with_one_completed_event(
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    web, wh = stocked["web"], stocked["warehouse"]
    assert (await create(api, web, order_body())).status_code == 202
    order = await _wait_for(api, web, ORDER, lambda o: o["status"] == "allocated" and o["shipments"])
    sid = order["shipments"][0]["id"]
    qty = order["lines"][0]["qty"]
    picked = {"lines": [{"sku": "TEE", "qty": qty}]}
    assert (await api.post(f"/v1/shipments/{sid}/pick", json=picked, headers=wh)).status_code == 200
    package = {"weight_g": 600, "length_mm": 300, "width_mm": 200, "height_mm": 100, **picked}
    r = await api.post(f"/v1/shipments/{sid}/pack", json={"packages": [package]}, headers=wh)
    assert r.status_code == 200, r.text
    ship = {"carrier": "UPS", "service": "ground", "tracking": "1Z999"}
    assert (await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)).status_code == 200
    order = await _wait_for(api, web, ORDER, lambda o: o["status"] == "completed")
    events = _events(order)
    names = [e for e, _ in events]
    assert names.count("completed") == 1 and names.count("shipped") == 1, events
    assert events[-1] == ("completed", {"status": "completed", "shipped": qty, "cancelled": 0})

    r = await api.post(f"/v1/orders/{ORDER}/cancel", json={"reason": "too late"}, headers=web)
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/refused"
    assert r.json()["detail"] == f"order {ORDER} is completed: nothing left to cancel"


async def test_an_order_nothing_holds_is_recorded_and_sourced_in_one_transaction(
    api: httpx.AsyncClient, stocked: dict[str, Headers], engine: AsyncEngine
) -> None:
    """Record and source are two keyed steps (each its own timeline record) in one commit:
    their events were written by the same transaction (the same xmin), and so were the
    reservation's shipment and the payment."""
    from sqlalchemy import text

    web = stocked["web"]
    assert (await create(api, web, order_body())).status_code == 202
    await _wait_for(api, web, ORDER, lambda o: o["status"] == "allocated")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT key, xmin::text FROM order_event WHERE order_id = :o AND key IS NOT NULL"
                    " UNION ALL SELECT 'shipment', xmin::text FROM shipment WHERE order_id = :o"
                    " UNION ALL SELECT 'payment', xmin::text FROM payment_operation WHERE key LIKE :k"
                ),
                {"o": ORDER, "k": f"{ORDER}:record:%"},
            )
        ).all()
    by_key: dict[str, str] = {key: xmin for key, xmin in rows}
    assert set(by_key) == {f"{ORDER}:record", f"{ORDER}:source:1", "shipment", "payment"}, by_key
    assert len({xmin for _, xmin in rows}) == 1, rows
