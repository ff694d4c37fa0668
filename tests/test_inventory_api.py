"""The inventory endpoints (docs/api.md, "Inventory and availability"), as a warehouse and a
channel use them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import assert_inventory_clean, set_policy, standard_catalog


@pytest.fixture
async def warehouse(
    admin: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str]
) -> httpx.AsyncClient:
    await standard_catalog(engine)
    admin.headers["Authorization"] = f"Bearer {make_key('warehouse')}"
    return admin


def adj(sku: str, delta: int, location: str = "DC-EAST", **extra: object) -> dict[str, object]:
    return {
        "sku": sku,
        "location": location,
        "status": "sellable",
        "delta": delta,
        "reason": "initial",
        **extra,
    }


async def test_adjustment_adds_stock_and_replays_by_key(
    warehouse: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    r = await warehouse.post(
        "/v1/inventory/adjustments", json=adj("TEE", 20), headers={"Idempotency-Key": "a1"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["balances"] == [
        {"sku": "TEE", "location": "DC-EAST", "status": "sellable", "lot": "", "qty": 20}
    ]
    again = await warehouse.post(
        "/v1/inventory/adjustments", json=adj("TEE", 20), headers={"Idempotency-Key": "a1"}
    )
    assert again.headers["idempotent-replayed"] == "true"
    view = (await warehouse.get("/v1/inventory/TEE")).json()
    assert view["locations"] == [
        {
            "location": "DC-EAST",
            "on_hand": 20,
            "reserved": 0,
            "available": 20,
            "lots": [],
            "buckets": {
                "sellable": 20,
                "in_transit": 0,
                "inbound": 0,
                "returns": 0,
                "quarantine": 0,
                "damaged": 0,
            },
        }
    ]
    assert view["available_to_promise"] == {"b2b": 20, "marketplace": 20, "web": 20}
    await assert_inventory_clean(engine)


async def test_adjustments_need_an_idempotency_key(warehouse: httpx.AsyncClient) -> None:
    r = await warehouse.post("/v1/inventory/adjustments", json=adj("TEE", 1))
    assert r.status_code == 400


async def test_going_negative_is_409_with_the_current_quantity(warehouse: httpx.AsyncClient) -> None:
    await warehouse.post("/v1/inventory/adjustments", json=adj("TEE", 3), headers={"Idempotency-Key": "b1"})
    r = await warehouse.post(
        "/v1/inventory/adjustments", json=adj("TEE", -5, reason="damage"), headers={"Idempotency-Key": "b2"}
    )
    assert r.status_code == 409
    body = r.json()
    assert body["on_hand"] == 3
    assert body["available"] == 3
    assert body["requested"] == 5
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (adj("NOPE", 1), ["body", "sku"]),
        (adj("TEE", 1, location="NOWHERE"), ["body", "location"]),
        (adj("TEE", 0), ["body", "delta"]),
        ({**adj("TEE", 1), "status": "lost"}, ["body", "status"]),
        ({**adj("TEE", 1), "reason": "because"}, ["body", "reason"]),
        ({**adj("TEE", 1), "colour": "red"}, ["body", "colour"]),
    ],
)
async def test_bad_adjustments_name_the_field(
    warehouse: httpx.AsyncClient, body: dict[str, object], loc: list[str]
) -> None:
    r = await warehouse.post(
        "/v1/inventory/adjustments", json=body, headers={"Idempotency-Key": f"bad-{loc[-1]}"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == loc


async def test_kits_and_lots_are_validated(warehouse: httpx.AsyncClient) -> None:
    r = await warehouse.post(
        "/v1/inventory/adjustments", json=adj("GIFT", 1), headers={"Idempotency-Key": "k"}
    )
    assert r.status_code == 422
    assert "kit" in r.json()["detail"]
    r = await warehouse.post(
        "/v1/inventory/adjustments", json=adj("COFFEE", 1), headers={"Idempotency-Key": "l"}
    )
    assert r.status_code == 422
    assert "lot" in r.json()["detail"]
    r = await warehouse.post(
        "/v1/inventory/adjustments",
        json=adj("COFFEE", 4, lot="L1", expires_at="2031-01-01T00:00:00Z"),
        headers={"Idempotency-Key": "m"},
    )
    assert r.status_code == 201
    lots = (await warehouse.get("/v1/inventory/COFFEE")).json()["locations"][0]["lots"]
    assert lots[0]["lot"] == "L1"
    assert lots[0]["qty"] == 4


async def test_status_moves_and_the_movement_ledger(warehouse: httpx.AsyncClient) -> None:
    await warehouse.post("/v1/inventory/adjustments", json=adj("TEE", 10), headers={"Idempotency-Key": "c1"})
    r = await warehouse.post(
        "/v1/inventory/moves",
        json={
            "sku": "TEE",
            "location": "DC-EAST",
            "from_status": "sellable",
            "to_status": "quarantine",
            "qty": 4,
        },
    )
    assert r.status_code == 201, r.text
    view = (await warehouse.get("/v1/inventory/TEE")).json()["locations"][0]
    assert view["buckets"]["sellable"] == 6
    assert view["buckets"]["quarantine"] == 4
    moves = (await warehouse.get("/v1/inventory/movements", params={"sku": "TEE"})).json()["items"]
    assert [(m["from_location"], m["to_status"], m["qty"]) for m in moves] == [
        ("adjustment", "sellable", 10),
        ("DC-EAST", "quarantine", 4),
    ]
    page = (await warehouse.get("/v1/inventory/movements", params={"limit": 1})).json()
    assert len(page["items"]) == 1
    nxt = (
        await warehouse.get("/v1/inventory/movements", params={"limit": 1, "cursor": page["next_cursor"]})
    ).json()
    assert nxt["items"][0]["id"] > page["items"][0]["id"]
    assert (await warehouse.get("/v1/inventory/movements", params={"cursor": "!!"})).status_code == 400


async def test_unknown_sku_is_404(warehouse: httpx.AsyncClient) -> None:
    assert (await warehouse.get("/v1/inventory/NOPE")).status_code == 404


async def test_channel_keys_see_only_their_channel(
    warehouse: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str]
) -> None:
    await warehouse.post("/v1/inventory/adjustments", json=adj("TEE", 20), headers={"Idempotency-Key": "d1"})
    async with engine.begin() as conn:
        await set_policy(conn, "marketplace", "TEE", safety=2, ringfence={"DC-EAST": 5})
    web = {"Authorization": f"Bearer {make_key('channel', channel='web')}"}
    r = await warehouse.get("/v1/availability", params={"sku": ["TEE", "GIFT"]}, headers=web)
    assert r.json()["items"] == [
        {"channel": "web", "sku": "GIFT", "available": 0},
        {"channel": "web", "sku": "TEE", "available": 15},
    ]
    assert (
        await warehouse.get("/v1/availability", params={"channel": "marketplace"}, headers=web)
    ).status_code == 404
    view = (await warehouse.get("/v1/inventory/TEE", headers=web)).json()
    assert view["available_to_promise"] == {"web": 15}
    everyone = (await warehouse.get("/v1/availability", params={"sku": "TEE"})).json()["items"]
    assert {i["channel"]: i["available"] for i in everyone} == {"b2b": 15, "marketplace": 18, "web": 15}


async def test_the_change_feed_pages_and_long_polls(warehouse: httpx.AsyncClient) -> None:
    first = (await warehouse.get("/v1/availability/changes", params={"channel": "web", "after": "0"})).json()
    assert first["events"] == []
    waiting = asyncio.create_task(
        warehouse.get(
            "/v1/availability/changes", params={"channel": "web", "after": first["next_after"], "wait": 5}
        )
    )
    await asyncio.sleep(0.3)
    await warehouse.post("/v1/inventory/adjustments", json=adj("MUG", 7), headers={"Idempotency-Key": "e1"})
    page = (await waiting).json()
    assert [(e["sku"], e["available"]) for e in page["events"]] == [("MUG", 7)]
    await warehouse.post("/v1/inventory/adjustments", json=adj("TEE", 2), headers={"Idempotency-Key": "e2"})
    await warehouse.post(
        "/v1/inventory/adjustments", json=adj("MUG", -1, reason="damage"), headers={"Idempotency-Key": "e3"}
    )
    nxt = (
        await warehouse.get(
            "/v1/availability/changes", params={"channel": "web", "after": page["next_after"]}
        )
    ).json()
    # TEE +2 makes two gift sets possible; MUG -1 leaves 6 mugs and still two sets (no GIFT event).
    assert [(e["sku"], e["available"]) for e in nxt["events"]] == [("GIFT", 2), ("TEE", 2), ("MUG", 6)]
    assert nxt["events"][0]["seq"] > page["events"][0]["seq"]
    missing = await warehouse.get("/v1/availability/changes")
    assert missing.status_code == 422
    assert (
        await warehouse.get("/v1/availability/changes", params={"channel": "web", "after": "x"})
    ).status_code == 422
