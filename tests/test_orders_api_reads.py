"""Orders over HTTP, reading: lists and pagination, the read model (shipments, holds, the
timeline), actions on unknown objects, and pick waves, with shipment rows written straight
to the tables (no order workflow runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.orders_api import Headers, create, loc, order_body

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
            await conn.execute(
                text("UPDATE sales_order SET created_at = :t WHERE external_id = :e"),
                {"t": base + timedelta(hours=i), "e": f"L-{i}"},
            )
        await conn.execute(
            text("UPDATE sales_order SET created_at = :t WHERE external_id = 'L-M'"),
            {"t": base + timedelta(hours=2)},
        )
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
    conn: Any,
    order_id: str,
    n: int,
    location: str,
    lines: dict[str, int],
    *,
    status: str = "allocated",
    kind: str = "stock",
    promise: str = "standard",
    created_at: datetime | None = None,
) -> str:
    shipment_id = f"{order_id}-S{n}"
    await conn.execute(
        text(
            "INSERT INTO shipment (id, order_id, location, kind, status, promise, packages, created_at, updated_at) "
            "VALUES (:id, :o, :l, :k, :s, :p, '[]'::jsonb, :t, :t)"
        ),
        {
            "id": shipment_id,
            "o": order_id,
            "l": location,
            "k": kind,
            "s": status,
            "p": promise,
            "t": created_at or datetime.now(UTC),
        },
    )
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
        await conn.execute(
            text(
                "INSERT INTO exception (id, key, kind, subject_type, subject_id, workflow_id, status, opened_at, due_at, "
                "escalation_level, priority, value_at_risk, actions, details) VALUES ('exc_1', 'k1', 'payment_pending', "
                "'order', :o, :o, 'open', now(), now() + interval '1 hour', 0, 10.0, 4500, "
                "'[\"confirm_payment\", \"cancel\"]'::jsonb, '{}'::jsonb)"
            ),
            {"o": order_id},
        )
        await conn.execute(
            text(
                "INSERT INTO order_event (order_id, key, event, detail, at) VALUES "
                "(:o, 'k', 'received', '{\"holds\": []}'::jsonb, now())"
            ),
            {"o": order_id},
        )
    order = (await api.get(f"/v1/orders/{order_id}", headers=keys["web"])).json()
    [shipment] = order["shipments"]
    assert shipment["id"] == f"{order_id}-S1" and shipment["location"] == "DC-EAST"
    assert (shipment["kind"], shipment["status"], shipment["carrier"], shipment["tracking"]) == (
        "stock",
        "allocated",
        None,
        None,
    )
    assert shipment["lines"] == [{"line": "1", "sku": "TEE", "qty": 2, "picked": 0}]
    [hold] = order["holds"]
    assert (hold["exception_id"], hold["kind"], hold["status"], hold["escalation_level"]) == (
        "exc_1",
        "payment_pending",
        "open",
        0,
    )
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
    pack = {
        "packages": [
            {
                "weight_g": 500,
                "length_mm": 300,
                "width_mm": 200,
                "height_mm": 100,
                "lines": [{"sku": "TEE", "qty": 1}],
            }
        ]
    }
    assert (await api.post("/v1/shipments/nope-S1/pack", json=pack, headers=wh)).status_code == 404
    assert loc(
        await api.post("/v1/shipments/nope-S1/pack", json={**pack, "service": "teleport"}, headers=wh)
    ) == ["body", "service"]
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
    r = await api.post(
        "/v1/orders/order-web-A-1/cancel",
        json={"reason": "x", "lines": [{"sku": "MUG", "qty": 1}]},
        headers=web,
    )
    assert loc(r) == ["body", "lines", 0, "sku"]
    assert loc(await api.post("/v1/orders/order-web-A-1/cancel", json={"reason": ""}, headers=web)) == [
        "body",
        "reason",
    ]
    r = await api.post(
        "/v1/orders/order-web-A-1/cancel",
        json={"reason": "x", "lines": [{"sku": "TEE", "qty": 0}]},
        headers=web,
    )
    assert loc(r) == ["body", "lines", 0, "qty"]
    r = await api.post(
        "/v1/orders/order-web-A-1/payment",
        json={"status": "pending", "amount": 1, "reference": "r"},
        headers=web,
    )
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
        s2 = await _add_shipment(
            conn,
            "order-web-P-2",
            1,
            "DC-EAST",
            {"TEE": 1},
            promise="express",
            created_at=t0 + timedelta(minutes=1),
        )
        s3 = await _add_shipment(
            conn, "order-web-P-3", 1, "DC-EAST", {"TEE": 3, "MUG": 0}, created_at=t0 + timedelta(minutes=2)
        )
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
    assert [
        (w["id"], w["number"], w["promise"], [s["id"] for s in w["shipments"]], w["lines"]) for w in east
    ] == [
        ("DC-EAST-W1", 1, "express", [s2], 1),
        ("DC-EAST-W2", 2, "standard", [s1, s3], 3),
    ]
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


async def test_pick_tasks_long_poll_answers_when_the_work_changes_or_304_after_the_wait(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    import asyncio
    import time

    wh = keys["warehouse"]
    for ext in ("L-1", "L-2"):
        assert (await create(api, keys["admin"], order_body(ext))).status_code == 202
    async with engine.begin() as conn:
        first = await _add_shipment(conn, "order-web-L-1", 1, "DC-EAST", {"TEE": 1})
    r = await api.get("/v1/pick-tasks", headers=wh)
    tag = r.headers["etag"]
    assert [s["id"] for w in r.json()["items"] for s in w["shipments"]] == [first]
    assert (await api.get("/v1/pick-tasks", headers=wh)).headers["etag"] == tag  # same work, same tag

    t0 = time.monotonic()
    r = await api.get("/v1/pick-tasks", params={"wait": 0.3}, headers={**wh, "If-None-Match": tag})
    assert r.status_code == 304 and r.headers["etag"] == tag and time.monotonic() - t0 >= 0.3

    async def add_later() -> str:
        await asyncio.sleep(0.3)
        async with engine.begin() as conn:
            return await _add_shipment(conn, "order-web-L-2", 1, "DC-WEST", {"MUG": 1})

    t0 = time.monotonic()
    waiting = api.get("/v1/pick-tasks", params={"wait": 10}, headers={**wh, "If-None-Match": tag})
    r, second = await asyncio.gather(waiting, add_later())
    assert r.status_code == 200 and time.monotonic() - t0 < 5  # answered by the change, not the wait
    assert r.headers["etag"] != tag
    assert sorted(s["id"] for w in r.json()["items"] for s in w["shipments"]) == sorted([first, second])
    r = await api.get("/v1/pick-tasks", params={"wait": 21}, headers=wh)
    assert r.status_code == 422
