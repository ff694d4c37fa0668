"""Orders and shipments over HTTP.

The first part needs no running order workflow: validation, channel scoping, idempotency,
the create race, lists and pagination, the read model and pick waves (shipment rows written
straight to the tables). The last part runs the real worker: an order taken, held, fixed,
picked, packed, shipped and cancelled through its workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from tests.factories import receive, standard_catalog

Headers = dict[str, str]


def order_body(external_id: str = "A-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "external_id": external_id,
        "customer": {"id": "C-1", "email": "ann@example.com"},
        "ship_to": {"name": "Ann Lee", "line1": "1 Main St", "city": "New York", "region": "NY",
                    "postal_code": "10001", "country": "US", "lat": 40.75, "lon": -73.99},
        "lines": [{"sku": "TEE", "qty": 2, "unit_price": 2000}],
        "shipping_amount": 500,
        "tax_amount": 0,
        "payment": {"method": "card", "status": "captured", "amount": 4500, "reference": "ch_1"},
    }  # fmt: skip
    body.update(over)
    return body


def idem(headers: Headers) -> Headers:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
async def keys(
    api: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str]
) -> dict[str, Headers]:
    await standard_catalog(engine)
    made = {
        "web": make_key("channel", channel="web"),
        "marketplace": make_key("channel", channel="marketplace"),
        "admin": make_key("admin"),
        "warehouse": make_key("warehouse"),
        "finance": make_key("finance"),
        "readonly": make_key("readonly"),
    }
    return {name: {"Authorization": f"Bearer {key}"} for name, key in made.items()}


async def create(api: httpx.AsyncClient, headers: Headers, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/v1/orders", json=body, headers=idem(headers))


def loc(r: httpx.Response) -> list[Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return list(r.json()["errors"][0]["loc"])


# -- create: validation and scoping ---------------------------------------------------


async def test_an_order_is_recorded_and_its_workflow_started(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, temporal_client: Client
) -> None:
    body = order_body(lines=[{"sku": "TEE", "qty": 2, "unit_price": 2000},
                             {"sku": "MUG", "qty": 1, "unit_price": 1500}],
                      payment={"method": "card", "status": "captured", "amount": 6000, "reference": "ch_1"})  # fmt: skip
    r = await create(api, keys["web"], body)
    assert r.status_code == 202, r.text
    order = r.json()
    assert order["id"] == order["workflow_id"] == "order-web-A-1"
    assert r.headers["location"] == "/v1/orders/order-web-A-1"
    assert order["status"] == "received"
    assert order["amounts"] == {"merchandise": 5500, "shipping": 500, "tax": 0, "total": 6000}
    assert order["payment"]["status"] == "pending"  # the workflow records the payment
    assert order["payment"]["reported"] == "captured"
    assert [(ln["line"], ln["sku"], ln["qty"], ln["unit_price"], ln["reserved"]) for ln in order["lines"]] == [
        ("1", "TEE", 2, 2000, 0), ("2", "MUG", 1, 1500, 0)]  # fmt: skip
    assert order["customer"] == {"id": "C-1", "email": "ann@example.com"}
    assert order["ship_to"]["postal_code"] == "10001"
    assert (order["promise"], order["allow_backorder"], order["allow_split"], order["currency"]) == (
        "standard", True, True, "USD")  # fmt: skip
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
    assert loc(await create(api, web, order_body(lines=[{"sku": "NOPE", "qty": 1, "unit_price": 1}],
                                                 payment={"method": "card", "status": "pending", "amount": 0}))) == [
        "body", "lines", 0, "sku"]  # fmt: skip
    dup = [{"sku": "TEE", "qty": 1, "unit_price": 2000}, {"sku": "TEE", "qty": 1, "unit_price": 2000}]
    assert loc(await create(api, web, order_body(lines=dup))) == ["body", "lines", 1, "sku"]
    assert loc(await create(api, web, order_body(lines=[{"sku": "TEE", "qty": 0, "unit_price": 2000}]))) == [
        "body", "lines", 0, "qty"]  # fmt: skip
    assert loc(await create(api, web, order_body(lines=[{"sku": "TEE", "qty": 1, "unit_price": -1}]))) == [
        "body", "lines", 0, "unit_price"]  # fmt: skip
    assert loc(await create(api, web, order_body(shipping_amount=-1))) == ["body", "shipping_amount"]
    assert loc(await create(api, web, order_body(tax_amount=-5))) == ["body", "tax_amount"]
    assert loc(await create(api, web, order_body(lines=[]))) == ["body", "lines"]
    assert loc(await create(api, web, order_body(external_id="has space"))) == ["body", "external_id"]
    assert loc(await create(api, web, order_body(promise="overnight"))) == ["body", "promise"]
    assert loc(await create(api, web, order_body(discount=100))) == ["body", "discount"]
    ship_to = {**order_body()["ship_to"], "apartment": "4B"}
    assert loc(await create(api, web, order_body(ship_to=ship_to))) == ["body", "ship_to", "apartment"]
    assert loc(await create(api, web, order_body(ship_to={**order_body()["ship_to"], "name": 7}))) == [
        "body", "ship_to", "name"]  # fmt: skip
    assert loc(await create(api, web, order_body(customer={"email": "a@b.c"}))) == ["body", "customer", "id"]
    assert loc(await create(api, web, order_body(payment={"method": "card", "status": "paid", "amount": 4500}))) == [
        "body", "payment", "status"]  # fmt: skip
    short = {"method": "card", "status": "authorized", "amount": 4000, "reference": "a"}
    r = await create(api, web, order_body(payment=short))
    assert loc(r) == ["body", "payment", "amount"] and "4500" in r.json()["detail"]
    assert loc(await create(api, keys["admin"], order_body(channel="pos"))) == ["body", "channel"]
    assert (await api.get("/v1/orders", headers=keys["admin"])).json()["items"] == []


async def test_address_problems_are_not_a_422(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    """An address nobody can ship to is taken: the workflow holds it (address_invalid)."""
    body = order_body(ship_to={"name": "", "line1": "", "city": "", "region": "", "postal_code": "",
                               "country": "USA", "lat": 200.0},
                      payment={"method": "card", "status": "pending", "amount": 0, "reference": ""})  # fmt: skip
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


# -- reading ---------------------------------------------------------------------------


async def test_orders_list_filters_and_pages(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    admin = keys["admin"]
    for i in range(5):
        customer = {"id": "C-odd" if i % 2 else "C-even", "email": ""}
        assert (await create(api, admin, order_body(f"L-{i}", customer=customer))).status_code == 202
    assert (await create(api, admin, order_body("L-M", channel="marketplace"))).status_code == 202
    base = datetime(2030, 1, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        for i in range(5):
            await conn.execute(text("UPDATE sales_order SET created_at = :t WHERE external_id = :e"),
                               {"t": base + timedelta(hours=i), "e": f"L-{i}"})  # fmt: skip
        await conn.execute(text("UPDATE sales_order SET created_at = :t WHERE external_id = 'L-M'"),
                           {"t": base + timedelta(hours=2)})  # fmt: skip
        await conn.execute(
            text("UPDATE sales_order SET status = 'on_hold' WHERE external_id IN ('L-1', 'L-M')")
        )

    async def ids(**params: Any) -> list[str]:
        r = await api.get("/v1/orders", params=params, headers=admin)
        assert r.status_code == 200, r.text
        return [o["external_id"] for o in r.json()["items"]]

    assert await ids() == ["L-0", "L-1", "L-M", "L-2", "L-3", "L-4"]
    assert await ids(status="on_hold") == ["L-1", "L-M"]
    assert await ids(channel="web", status="on_hold") == ["L-1"]
    assert await ids(customer_id="C-odd") == ["L-1", "L-3"]
    window = {"created_from": "2030-01-01T02:00:00Z", "created_to": "2030-01-01T04:00:00Z"}
    assert await ids(**window) == ["L-M", "L-2", "L-3"]
    assert await ids(created_from="2030-01-01T03:00:00") == ["L-3", "L-4"]  # naive = UTC
    assert (await api.get("/v1/orders", params={"status": "lost"}, headers=admin)).status_code == 422
    assert (await api.get("/v1/orders", params={"cursor": "!!"}, headers=admin)).status_code == 400

    for limit in (2, 3):  # 3 ends a page inside the two orders created at the same time
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/v1/orders", params=params, headers=admin)).json()
            assert len(page["items"]) <= limit
            seen += [o["external_id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["L-0", "L-1", "L-M", "L-2", "L-3", "L-4"]


async def test_the_list_reads_children_in_a_fixed_number_of_queries(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    counted: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counted.append(statement)

    engine = api.app.state.engine  # type: ignore[attr-defined]
    for i in range(6):
        assert (await create(api, keys["web"], order_body(f"Q-{i}"))).status_code == 202
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (
            len((await api.get("/v1/orders", params={"limit": 2}, headers=keys["web"])).json()["items"]) == 2
        )
        few = len(counted)
        counted.clear()
        assert (
            len((await api.get("/v1/orders", params={"limit": 6}, headers=keys["web"])).json()["items"]) == 6
        )
        assert len(counted) == few
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _add_shipment(
    conn: Any, order_id: str, n: int, location: str, lines: dict[str, int], *, status: str = "allocated",
    kind: str = "stock", promise: str = "standard", created_at: datetime | None = None,
) -> str:  # fmt: skip
    shipment_id = f"{order_id}-S{n}"
    await conn.execute(
        text("INSERT INTO shipment (id, order_id, location, kind, status, promise, packages, created_at, updated_at) "
             "VALUES (:id, :o, :l, :k, :s, :p, '[]'::jsonb, :t, :t)"),
        {"id": shipment_id, "o": order_id, "l": location, "k": kind, "s": status, "p": promise,
         "t": created_at or datetime.now(UTC)},
    )  # fmt: skip
    for i, (sku, qty) in enumerate(lines.items(), start=1):
        await conn.execute(
            text(
                "INSERT INTO shipment_line (shipment_id, line, sku, qty, picked) VALUES (:s, :l, :k, :q, 0)"
            ),
            {"s": shipment_id, "l": str(i), "k": sku, "q": qty},
        )
    return shipment_id


async def test_an_order_reads_its_shipments_holds_and_timeline(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    assert (await create(api, keys["web"], order_body())).status_code == 202
    order_id = "order-web-A-1"
    async with engine.begin() as conn:
        await _add_shipment(conn, order_id, 1, "DC-EAST", {"TEE": 2})
        await conn.execute(text(
            "INSERT INTO exception (id, key, kind, subject_type, subject_id, workflow_id, status, opened_at, due_at, "
            "escalation_level, priority, value_at_risk, actions, details) VALUES ('exc_1', 'k1', 'payment_pending', "
            "'order', :o, :o, 'open', now(), now() + interval '1 hour', 0, 10.0, 4500, "
            "'[\"confirm_payment\", \"cancel\"]'::jsonb, '{}'::jsonb)"), {"o": order_id})  # fmt: skip
        await conn.execute(text("INSERT INTO order_event (order_id, key, event, detail, at) VALUES "
                                "(:o, 'k', 'received', '{\"holds\": []}'::jsonb, now())"), {"o": order_id})  # fmt: skip
    order = (await api.get(f"/v1/orders/{order_id}", headers=keys["web"])).json()
    [shipment] = order["shipments"]
    assert shipment["id"] == f"{order_id}-S1" and shipment["location"] == "DC-EAST"
    assert (shipment["kind"], shipment["status"], shipment["carrier"], shipment["tracking"]) == (
        "stock", "allocated", None, None)  # fmt: skip
    assert shipment["lines"] == [{"line": "1", "sku": "TEE", "qty": 2, "picked": 0}]
    [hold] = order["holds"]
    assert (hold["exception_id"], hold["kind"], hold["status"], hold["escalation_level"]) == (
        "exc_1", "payment_pending", "open", 0)  # fmt: skip
    assert hold["actions"] == ["confirm_payment", "cancel"] and hold["due_at"]
    assert [(e["event"], e["detail"]) for e in order["timeline"]] == [("received", {"holds": []})]

    read = await api.get(f"/v1/shipments/{order_id}-S1", headers=keys["warehouse"])
    assert read.status_code == 200
    assert read.json()["order_id"] == order_id and read.json()["lines"][0]["sku"] == "TEE"
    assert (await api.get(f"/v1/shipments/{order_id}-S1", headers=keys["web"])).status_code == 200
    assert (await api.get(f"/v1/shipments/{order_id}-S1", headers=keys["marketplace"])).status_code == 404
    assert (await api.get("/v1/shipments/nope-S1", headers=keys["warehouse"])).status_code == 404


async def test_actions_on_unknown_objects_are_404_and_bad_bodies_422(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    wh, web = keys["warehouse"], keys["web"]
    pick = {"lines": [{"sku": "TEE", "qty": 1}]}
    assert (await api.post("/v1/shipments/nope-S1/pick", json=pick, headers=wh)).status_code == 404
    pack = {"packages": [{"weight_g": 500, "length_mm": 300, "width_mm": 200, "height_mm": 100,
                          "lines": [{"sku": "TEE", "qty": 1}]}]}  # fmt: skip
    assert (await api.post("/v1/shipments/nope-S1/pack", json=pack, headers=wh)).status_code == 404
    assert loc(await api.post("/v1/shipments/nope-S1/pack", json={**pack, "service": "teleport"}, headers=wh)) == [
        "body", "service"]  # fmt: skip
    assert (
        await api.post("/v1/shipments/nope-S1/ship", json={"carrier": "UPS"}, headers=wh)
    ).status_code == 404
    assert loc(await api.post("/v1/shipments/nope-S1/ship", json={}, headers=wh)) == ["body", "carrier"]
    bad_pick = {"lines": [{"sku": "TEE", "qty": -1}]}
    assert loc(await api.post("/v1/shipments/nope-S1/pick", json=bad_pick, headers=wh)) == [
        "body",
        "lines",
        0,
        "qty",
    ]
    r = await api.post("/v1/shipments/nope-S1/pick", json={**pick, "short_reason": "lost"}, headers=wh)
    assert loc(r) == ["body", "short_reason"]
    assert (
        await api.post("/v1/orders/order-web-NOPE/cancel", json={"reason": "x"}, headers=web)
    ).status_code == 404

    assert (await create(api, web, order_body())).status_code == 202
    r = await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": "x", "lines": [{"sku": "MUG", "qty": 1}]},
                       headers=web)  # fmt: skip
    assert loc(r) == ["body", "lines", 0, "sku"]
    assert loc(await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": ""}, headers=web)) == [
        "body", "reason"]  # fmt: skip
    r = await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": "x", "lines": [{"sku": "TEE", "qty": 0}]},
                       headers=web)  # fmt: skip
    assert loc(r) == ["body", "lines", 0, "qty"]
    r = await api.post("/v1/orders/order-web-A-1/payment", json={"status": "pending", "amount": 1, "reference": "r"},
                       headers=web)  # fmt: skip
    assert loc(r) == ["body", "status"]
    r = await api.patch("/v1/orders/order-web-A-1/ship-to", json={"name": "A", "zip": "1"}, headers=web)
    assert loc(r) == ["body", "zip"]


# -- pick waves --------------------------------------------------------------------------


async def test_pick_tasks_are_open_stock_shipments_in_waves(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    for ext in ("P-1", "P-2", "P-3", "P-4", "P-5"):
        assert (await create(api, keys["admin"], order_body(ext))).status_code == 202
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        s1 = await _add_shipment(conn, "order-web-P-1", 1, "DC-EAST", {"TEE": 2, "MUG": 1}, created_at=t0)
        s2 = await _add_shipment(conn, "order-web-P-2", 1, "DC-EAST", {"TEE": 1}, promise="express",
                                 created_at=t0 + timedelta(minutes=1))  # fmt: skip
        s3 = await _add_shipment(conn, "order-web-P-3", 1, "DC-EAST", {"TEE": 3, "MUG": 0},
                                 created_at=t0 + timedelta(minutes=2))  # fmt: skip
        s4 = await _add_shipment(conn, "order-web-P-4", 1, "DC-WEST", {"MUG": 2}, created_at=t0)
        # Not pick work: already picked, drop-ship, cancelled, nothing left to pick.
        await _add_shipment(conn, "order-web-P-5", 1, "DC-EAST", {"TEE": 1}, status="picked")
        await _add_shipment(
            conn, "order-web-P-5", 2, "DC-EAST", {"TEE": 1}, kind="dropship", status="requested"
        )
        await _add_shipment(conn, "order-web-P-5", 3, "DC-EAST", {"TEE": 1}, status="cancelled")
        await _add_shipment(conn, "order-web-P-5", 4, "DC-EAST", {"TEE": 0})

    async def waves(**params: Any) -> list[dict[str, Any]]:
        r = await api.get("/v1/pick-tasks", params=params, headers=keys["warehouse"])
        assert r.status_code == 200, r.text
        assert r.json()["next_cursor"] is None
        return list(r.json()["items"])

    east = await waves(location="DC-EAST")
    assert [(w["id"], w["number"], w["promise"], [s["id"] for s in w["shipments"]], w["lines"]) for w in east] == [
        ("DC-EAST-W1", 1, "express", [s2], 1),
        ("DC-EAST-W2", 2, "standard", [s1, s3], 3),
    ]  # fmt: skip
    assert east[1]["pick_list"] == [{"sku": "MUG", "lot": "", "qty": 1}, {"sku": "TEE", "lot": "", "qty": 5}]
    assert east[1]["shipments"][0]["order_id"] == "order-web-P-1"
    assert [(ln["sku"], ln["qty"]) for ln in east[1]["shipments"][0]["lines"]] == [("TEE", 2), ("MUG", 1)]
    assert [(ln["sku"], ln["qty"]) for ln in east[1]["shipments"][1]["lines"]] == [("TEE", 3)]

    small = await waves(location="DC-EAST", max_lines=2)
    assert [[s["id"] for s in w["shipments"]] for w in small] == [[s2], [s1], [s3]]
    everywhere = await waves()
    assert [w["id"] for w in everywhere] == ["DC-EAST-W1", "DC-EAST-W2", "DC-WEST-W1"]
    assert everywhere[2]["shipments"][0]["id"] == s4
    assert await waves(location="NOWHERE") == []
    r = await api.get("/v1/pick-tasks", params={"max_lines": 0}, headers=keys["warehouse"])
    assert r.status_code == 422
    assert (await api.get("/v1/pick-tasks", headers=keys["web"])).status_code == 403


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
    api: httpx.AsyncClient, stocked: dict[str, Headers]
) -> None:
    web, wh = stocked["web"], stocked["warehouse"]
    r = await create(api, web, order_body())
    assert r.status_code == 202, r.text
    order = await _wait_for(
        api, web, "order-web-A-1", lambda o: o["status"] == "allocated" and o["shipments"]
    )
    assert order["lines"][0]["reserved"] == 2
    assert order["payment"]["status"] == "captured"
    [shipment] = order["shipments"]
    sid = shipment["id"]
    assert (shipment["location"], shipment["status"]) == ("DC-EAST", "allocated")
    waves = (await api.get("/v1/pick-tasks", params={"location": "DC-EAST"}, headers=wh)).json()["items"]
    assert [s["id"] for w in waves for s in w["shipments"]] == [sid]

    ship = {"carrier": "UPS", "service": "ground", "tracking": "1Z999"}
    assert (
        await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)
    ).status_code == 409  # not packed
    r = await api.post(f"/v1/shipments/{sid}/pick", json={"lines": [{"sku": "TEE", "qty": 2}]}, headers=wh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "picked" and r.json()["lines"][0]["picked"] == 2
    assert (await api.post(f"/v1/shipments/{sid}/pick", json={"lines": [{"sku": "TEE", "qty": 2}]},
                           headers=wh)).status_code == 409  # fmt: skip
    pack = {"packages": [{"weight_g": 600, "length_mm": 300, "width_mm": 200, "height_mm": 100,
                          "lines": [{"sku": "TEE", "qty": 1}, {"sku": "TEE", "qty": 1}]}]}  # fmt: skip
    r = await api.post(f"/v1/shipments/{sid}/pack", json=pack, headers=wh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "packed" and len(r.json()["packages"]) == 1
    r = await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["carrier"], r.json()["tracking"]) == ("shipped", "UPS", "1Z999")
    assert r.json()["shipped_at"]
    order = await _wait_for(api, web, "order-web-A-1", lambda o: o["status"] in ("shipped", "completed"))
    assert order["lines"][0]["shipped"] == 2
    events = [e["event"] for e in order["timeline"]]
    assert events[0] == "received" and "shipped" in events
    # A retried create is still the same order.
    assert (await create(api, web, order_body())).status_code == 200


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
    body = order_body(lines=[{"sku": "TEE", "qty": 2, "unit_price": 2000},
                             {"sku": "MUG", "qty": 3, "unit_price": 1000}],
                      payment={"method": "card", "status": "authorized", "amount": 7500, "reference": "a"})  # fmt: skip
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
