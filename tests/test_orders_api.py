"""Orders over HTTP, creating them: validation, channel scoping, idempotency and the create race.

No order workflow runs here. Reading (lists, the read model, pick waves) is in
test_orders_api_reads.py; the real worker taking orders through in test_orders_api_workflow.py."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from tests.orders_api import Headers, create, idem, loc, order_body

# -- create: validation and scoping ---------------------------------------------------


async def test_an_order_is_recorded_and_its_workflow_started(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, temporal_client: Client
) -> None:
    body = order_body(
        lines=[{"sku": "TEE", "qty": 2, "unit_price": 2000}, {"sku": "MUG", "qty": 1, "unit_price": 1500}],
        payment={"method": "card", "status": "captured", "amount": 6000, "reference": "ch_1"},
    )
    r = await create(api, keys["web"], body)
    assert r.status_code == 202, r.text
    order = r.json()
    assert order["id"] == order["workflow_id"] == "order-web-A-1"
    assert r.headers["location"] == "/v1/orders/order-web-A-1"
    assert order["status"] == "received"
    assert order["amounts"] == {"merchandise": 5500, "shipping": 500, "tax": 0, "total": 6000}
    assert order["payment"]["status"] == "pending"  # the workflow records the payment
    assert order["payment"]["reported"] == "captured"
    assert [
        (ln["line"], ln["sku"], ln["qty"], ln["unit_price"], ln["reserved"]) for ln in order["lines"]
    ] == [("1", "TEE", 2, 2000, 0), ("2", "MUG", 1, 1500, 0)]
    assert order["customer"] == {"id": "C-1", "email": "ann@example.com"}
    assert order["ship_to"]["postal_code"] == "10001"
    assert (order["promise"], order["allow_backorder"], order["allow_split"], order["currency"]) == (
        "standard",
        True,
        True,
        "USD",
    )
    assert order["shipments"] == [] and order["holds"] == []
    described = await temporal_client.get_workflow_handle("order-web-A-1").describe()
    assert described.workflow_type == "Order"
    assert described.task_queue == api.app.state.settings.task_queue  # type: ignore[attr-defined]

    # The same order again (another Idempotency-Key): the existing one, never a second.
    again = await create(api, keys["web"], body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == order["id"]
    # Other data under the same channel + external id: a conflict.
    other = await create(api, keys["web"], {**body, "customer": {"id": "C-2", "email": ""}})
    assert other.status_code == 409 and "other data" in other.json()["detail"]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sales_order"))).scalar() == 1
        assert (await conn.execute(text("SELECT count(*) FROM order_line"))).scalar() == 2


async def test_bad_requests_name_the_field(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    web = keys["web"]
    assert loc(
        await create(
            api,
            web,
            order_body(
                lines=[{"sku": "NOPE", "qty": 1, "unit_price": 1}],
                payment={"method": "card", "status": "pending", "amount": 0},
            ),
        )
    ) == ["body", "lines", 0, "sku"]
    dup = [{"sku": "TEE", "qty": 1, "unit_price": 2000}, {"sku": "TEE", "qty": 1, "unit_price": 2000}]
    assert loc(await create(api, web, order_body(lines=dup))) == ["body", "lines", 1, "sku"]
    assert loc(await create(api, web, order_body(lines=[{"sku": "TEE", "qty": 0, "unit_price": 2000}]))) == [
        "body",
        "lines",
        0,
        "qty",
    ]
    assert loc(await create(api, web, order_body(lines=[{"sku": "TEE", "qty": 1, "unit_price": -1}]))) == [
        "body",
        "lines",
        0,
        "unit_price",
    ]
    assert loc(await create(api, web, order_body(shipping_amount=-1))) == ["body", "shipping_amount"]
    assert loc(await create(api, web, order_body(tax_amount=-5))) == ["body", "tax_amount"]
    assert loc(await create(api, web, order_body(lines=[]))) == ["body", "lines"]
    assert loc(await create(api, web, order_body(external_id="has space"))) == ["body", "external_id"]
    assert loc(await create(api, web, order_body(promise="overnight"))) == ["body", "promise"]
    assert loc(await create(api, web, order_body(discount=100))) == ["body", "discount"]
    ship_to = {**order_body()["ship_to"], "apartment": "4B"}
    assert loc(await create(api, web, order_body(ship_to=ship_to))) == ["body", "ship_to", "apartment"]
    assert loc(await create(api, web, order_body(ship_to={**order_body()["ship_to"], "name": 7}))) == [
        "body",
        "ship_to",
        "name",
    ]
    assert loc(await create(api, web, order_body(customer={"email": "a@b.c"}))) == ["body", "customer", "id"]
    assert loc(
        await create(api, web, order_body(payment={"method": "card", "status": "paid", "amount": 4500}))
    ) == ["body", "payment", "status"]
    short = {"method": "card", "status": "authorized", "amount": 4000, "reference": "a"}
    r = await create(api, web, order_body(payment=short))
    assert loc(r) == ["body", "payment", "amount"] and "4500" in r.json()["detail"]
    assert loc(await create(api, keys["admin"], order_body(channel="pos"))) == ["body", "channel"]
    assert (await api.get("/v1/orders", headers=keys["admin"])).json()["items"] == []


async def test_address_problems_are_not_a_422(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    """An address nobody can ship to is taken: the workflow holds it (address_invalid)."""
    body = order_body(
        ship_to={
            "name": "",
            "line1": "",
            "city": "",
            "region": "",
            "postal_code": "",
            "country": "USA",
            "lat": 200.0,
        },
        payment={"method": "card", "status": "pending", "amount": 0, "reference": ""},
    )
    r = await create(api, keys["web"], body)
    assert r.status_code == 202, r.text
    assert r.json()["ship_to"]["country"] == "USA"


async def test_a_channel_key_orders_and_reads_its_own_channel_only(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    r = await create(api, keys["web"], order_body(channel="marketplace"))
    assert r.status_code == 403 and r.json()["status"] == 403
    assert (await create(api, keys["web"], order_body("W-1"))).status_code == 202
    assert (await create(api, keys["admin"], order_body("M-1", channel="marketplace"))).status_code == 202
    market = keys["marketplace"]
    assert (await api.get("/v1/orders/order-web-W-1", headers=market)).status_code == 404
    assert (await api.get("/v1/orders/order-marketplace-M-1", headers=market)).status_code == 200
    listed = (await api.get("/v1/orders", headers=market)).json()["items"]
    assert [o["id"] for o in listed] == ["order-marketplace-M-1"]
    assert (await api.get("/v1/orders", params={"channel": "web"}, headers=market)).status_code == 404
    both = (await api.get("/v1/orders", headers=keys["readonly"])).json()["items"]
    assert {o["id"] for o in both} == {"order-web-W-1", "order-marketplace-M-1"}
    assert (await api.get("/v1/orders/order-web-NOPE", headers=keys["readonly"])).status_code == 404
    # Actions on another channel's order are 404 too, before any workflow is asked.
    r = await api.post("/v1/orders/order-web-W-1/cancel", json={"reason": "x"}, headers=market)
    assert r.status_code == 404
    r = await api.patch("/v1/orders/order-web-W-1/ship-to", json=order_body()["ship_to"], headers=market)
    assert r.status_code == 404
    pay = {"status": "captured", "amount": 4500, "reference": "ch_2"}
    assert (await api.post("/v1/orders/order-web-W-1/payment", json=pay, headers=market)).status_code == 404
    assert (
        await api.post("/v1/orders/order-web-NOPE/payment", json=pay, headers=keys["finance"])
    ).status_code == 404
    assert (
        await api.post("/v1/orders/order-web-W-1/payment", json=pay, headers=keys["warehouse"])
    ).status_code == 403


async def test_create_needs_an_idempotency_key_and_replays_it(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    r = await api.post("/v1/orders", json=order_body(), headers=keys["web"])
    assert r.status_code == 400 and r.json()["type"] == "/problems/idempotency-key-required"
    headers = idem(keys["web"])
    first = await api.post("/v1/orders", json=order_body(), headers=headers)
    assert first.status_code == 202
    replay = await api.post("/v1/orders", json=order_body(), headers=headers)
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    other = await api.post("/v1/orders", json=order_body("A-2"), headers=headers)
    assert other.status_code == 422


async def test_a_raced_create_makes_one_order_and_one_workflow(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, temporal_client: Client
) -> None:
    body = order_body("RACE-1")
    answers = list(await asyncio.gather(*(create(api, keys["web"], body) for _ in range(2))))
    assert sorted(r.status_code for r in answers) == [200, 202], [r.text for r in answers]
    assert {r.json()["id"] for r in answers} == {"order-web-RACE-1"}
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sales_order"))).scalar() == 1
        assert (await conn.execute(text("SELECT count(*) FROM order_line"))).scalar() == 1
    handle = temporal_client.get_workflow_handle("order-web-RACE-1")
    starts = [
        e
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_execution_started_event_attributes")
    ]
    assert len(starts) == 1
    # Different data raced under one business key: one wins, the other is a conflict.
    other = order_body(
        "RACE-2", tax_amount=1, payment={"method": "card", "status": "captured", "amount": 4501}
    )
    raced = await asyncio.gather(
        create(api, keys["web"], order_body("RACE-2")), create(api, keys["web"], other)
    )
    assert sorted(r.status_code for r in raced) == [202, 409]
