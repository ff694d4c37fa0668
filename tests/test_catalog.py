"""Master data over HTTP: idempotent creates, validation that names the field, policies that
move every channel's ATP at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import receive

TEE = {"code": "TEE-1", "name": "Tee", "unit_cost": 600, "price": 2500}
MUG = {"code": "MUG-1", "name": "Mug", "unit_cost": 350, "price": 1600}
KIT = {
    "code": "GIFT-1",
    "name": "Gift",
    "kind": "kit",
    "components": [{"sku": "TEE-1", "qty": 1}, {"sku": "MUG-1", "qty": 2}],
}
EAST = {"code": "DC-EAST", "name": "East", "type": "dc", "lat": 40.7, "lon": -74.0, "ship_cost": 400}
WEST = {"code": "DC-WEST", "name": "West", "type": "dc", "lat": 34.0, "lon": -118.2, "ship_cost": 300}


async def _seed(admin: httpx.AsyncClient) -> None:
    for path, body in (("/v1/skus", TEE), ("/v1/skus", MUG), ("/v1/skus", KIT), ("/v1/locations", EAST),
                       ("/v1/locations", WEST)):  # fmt: skip
        assert (await admin.post(path, json=body)).status_code == 201, path
    channels = [{"code": "web", "type": "web", "locations": ["DC-EAST", "DC-WEST"]},
                {"code": "marketplace", "type": "marketplace", "locations": ["DC-EAST"], "sourcing_rule": "cheapest"}]  # fmt: skip
    for ch in channels:
        assert (await admin.post("/v1/channels", json=ch)).status_code == 201


async def test_creates_are_idempotent_by_code(admin: httpx.AsyncClient) -> None:
    await _seed(admin)
    again = await admin.post("/v1/skus", json=KIT)
    assert again.status_code == 200
    assert again.json()["components"] == [{"sku": "MUG-1", "qty": 2}, {"sku": "TEE-1", "qty": 1}]
    other = await admin.post("/v1/skus", json={**TEE, "price": 9999})
    assert other.status_code == 409
    assert (await admin.post("/v1/locations", json=EAST)).status_code == 200
    assert (await admin.post("/v1/locations", json={**EAST, "ship_cost": 1})).status_code == 409
    web = (await admin.get("/v1/channels/web")).json()
    assert web["locations"] == ["DC-EAST", "DC-WEST"]
    assert web["sourcing_rule"] == "nearest"


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/skus", {"code": "K", "name": "k", "kind": "kit"}, ["body"]),
        ("/v1/skus", {"code": "K", "name": "k", "kind": "kit", "components": [{"sku": "NOPE", "qty": 1}]},
         ["body", "components", 0, "sku"]),
        ("/v1/skus", {"code": "K2", "name": "k", "kind": "kit", "components": [{"sku": "GIFT-1", "qty": 1}]},
         ["body", "components", 0, "sku"]),
        ("/v1/skus", {"code": "bad code!", "name": "x"}, ["body", "code"]),
        ("/v1/skus", {"code": "X", "name": "x", "price": -1}, ["body", "price"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "dc", "lat": 10}, ["body"]),
        ("/v1/locations", {"code": "customer", "name": "c", "type": "dc"}, ["body"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "virtual"}, ["body", "type"]),
        ("/v1/channels", {"code": "c", "type": "web", "locations": ["NOWHERE"]}, ["body", "locations", 0]),
        ("/v1/channels", {"code": "c", "type": "web", "locations": ["supplier"]}, ["body", "locations", 0]),
        ("/v1/suppliers", {"code": "S", "name": "s", "items": [{"sku": "NOPE", "cost": 1}]}, ["body", "items", 0, "sku"]),
        ("/v1/suppliers", {"code": "S", "name": "s", "items": [{"sku": "TEE-1", "cost": 1, "moq": 0}]},
         ["body", "items", 0, "moq"]),
    ],
)  # fmt: skip
async def test_bad_master_data_names_the_field(
    admin: httpx.AsyncClient, path: str, body: dict[str, object], loc: list[object]
) -> None:
    await _seed(admin)
    r = await admin.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"][: len(loc)] == loc


async def test_a_policy_moves_every_channels_atp_and_the_feed(
    admin: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _seed(admin)
    await receive(engine, "TEE-1", "DC-EAST", 20)
    r = await admin.put("/v1/channels/marketplace/policies/TEE-1",
                        json={"safety_stock": 2, "ringfence": [{"location": "DC-EAST", "qty": 5}]})  # fmt: skip
    assert r.status_code == 200
    assert r.json() == {"channel": "marketplace", "sku": "TEE-1", "safety_stock": 2,
                        "ringfence": [{"location": "DC-EAST", "qty": 5}]}  # fmt: skip
    atp = {
        i["channel"]: i["available"]
        for i in (await admin.get("/v1/availability", params={"sku": "TEE-1"})).json()["items"]
    }
    assert atp == {"marketplace": 18, "web": 15}
    feed = (await admin.get("/v1/availability/changes", params={"channel": "web", "after": "0"})).json()
    assert [(e["sku"], e["available"]) for e in feed["events"]][-1] == ("TEE-1", 15)
    bad = await admin.put(
        "/v1/channels/marketplace/policies/TEE-1", json={"ringfence": [{"location": "DC-WEST", "qty": 1}]}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "ringfence", 0, "location"]
    assert (await admin.put("/v1/channels/nope/policies/TEE-1", json={})).status_code == 404
    assert (await admin.put("/v1/channels/web/policies/NOPE", json={})).status_code == 404
    assert (await admin.get("/v1/channels/web/policies/TEE-1")).json()["safety_stock"] == 0


async def test_a_new_channel_sees_existing_stock(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed(admin)
    await receive(engine, "MUG-1", "DC-WEST", 7)
    await admin.post("/v1/channels", json={"code": "pos", "type": "pos", "locations": ["DC-WEST"]})
    items = (await admin.get("/v1/availability", params={"channel": "pos", "sku": "MUG-1"})).json()["items"]
    assert items == [{"channel": "pos", "sku": "MUG-1", "available": 7}]


async def test_lists_page_and_reads_404(admin: httpx.AsyncClient) -> None:
    await _seed(admin)
    first = (await admin.get("/v1/skus", params={"limit": 2})).json()
    rest = (await admin.get("/v1/skus", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [s["code"] for s in first["items"] + rest["items"]] == ["GIFT-1", "MUG-1", "TEE-1"]
    assert [s["code"] for s in (await admin.get("/v1/skus", params={"kind": "kit"})).json()["items"]] == [
        "GIFT-1"
    ]
    assert [loc["code"] for loc in (await admin.get("/v1/locations")).json()["items"]] == [
        "DC-EAST",
        "DC-WEST",
    ]
    virtual = (await admin.get("/v1/locations", params={"include_virtual": True})).json()["items"]
    assert {"customer", "supplier", "adjustment", "scrap"} <= {loc["code"] for loc in virtual}
    for path in ("/v1/skus/NOPE", "/v1/locations/NOPE", "/v1/channels/NOPE", "/v1/suppliers/NOPE"):
        assert (await admin.get(path)).status_code == 404
    sup = await admin.post("/v1/suppliers", json={"code": "NW", "name": "Northwind", "lead_time_days": 14,
                                                  "items": [{"sku": "TEE-1", "cost": 600, "moq": 50, "order_multiple": 25}]})  # fmt: skip
    assert sup.status_code == 201
    assert (await admin.get("/v1/suppliers/NW")).json()["items"][0]["moq"] == 50


async def test_racing_creates_make_one_row(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    results = await asyncio.gather(*(admin.post("/v1/skus", json=TEE) for _ in range(10)))
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sku WHERE code = 'TEE-1'"))).scalar() == 1
