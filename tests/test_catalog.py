"""Master data over HTTP: idempotent creates, validation that names the field, policies that
move every channel's ATP at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
    for path, body in (
        ("/v1/skus", TEE),
        ("/v1/skus", MUG),
        ("/v1/skus", KIT),
        ("/v1/locations", EAST),
        ("/v1/locations", WEST),
    ):
        assert (await admin.post(path, json=body)).status_code == 201, path
    channels = [
        {"code": "web", "type": "web", "locations": ["DC-EAST", "DC-WEST"]},
        {"code": "marketplace", "type": "marketplace", "locations": ["DC-EAST"], "sourcing_rule": "cheapest"},
    ]
    for ch in channels:
        assert (await admin.post("/v1/channels", json=ch)).status_code == 201


async def test_creates_answer_201_with_the_record(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/v1/skus", json=TEE)
    assert r.status_code == 201
    tee = r.json()
    assert {
        k: tee[k]
        for k in (
            "code",
            "name",
            "kind",
            "components",
            "unit_cost",
            "price",
            "currency",
            "tracking",
            "returnable_days",
            "release_at",
        )
    } == {
        **TEE,
        "kind": "simple",
        "components": [],
        "currency": "USD",
        "tracking": "none",
        "returnable_days": 30,
        "release_at": None,
    }
    assert tee["created_at"]
    assert (await admin.get("/v1/skus/TEE-1")).json() == tee
    r = await admin.post("/v1/locations", json=EAST)
    assert r.status_code == 201
    assert {k: r.json()[k] for k in EAST} == EAST
    assert (r.json()["priority"], r.json()["can_ship"]) == (100, True)
    r = await admin.post("/v1/channels", json={"code": "b2b", "type": "b2b", "locations": ["DC-EAST"]})
    assert r.status_code == 201
    assert {k: r.json()[k] for k in ("code", "name", "type", "locations", "sourcing_rule")} == {
        "code": "b2b",
        "name": "b2b",
        "type": "b2b",
        "locations": ["DC-EAST"],
        "sourcing_rule": "nearest",
    }
    r = await admin.post(
        "/v1/suppliers", json={"code": "NW", "name": "Northwind", "items": [{"sku": "TEE-1", "cost": 5}]}
    )
    assert r.status_code == 201
    assert r.json()["items"] == [{"sku": "TEE-1", "cost": 5, "moq": 1, "order_multiple": 1}]
    assert (r.json()["lead_time_days"], r.json()["dropship"]) == (7, False)


async def test_creates_are_idempotent_by_code(admin: httpx.AsyncClient) -> None:
    await _seed(admin)
    again = await admin.post(
        "/v1/skus", json={**KIT, "components": KIT["components"][::-1]}
    )  # order is no difference
    assert again.status_code == 200
    assert again.json()["components"] == [{"sku": "MUG-1", "qty": 2}, {"sku": "TEE-1", "qty": 1}]
    assert (
        await admin.post("/v1/skus", json={**TEE, "currency": "USD", "returnable_days": 30})
    ).status_code == 200
    other = await admin.post("/v1/skus", json={**TEE, "price": 9999})
    assert other.status_code == 409
    assert "TEE-1" in other.json()["detail"]
    assert (await admin.get("/v1/skus/TEE-1")).json()["price"] == TEE["price"]  # unchanged
    assert (
        await admin.post("/v1/skus", json={**KIT, "components": [{"sku": "TEE-1", "qty": 1}]})
    ).status_code == 409
    assert (await admin.post("/v1/locations", json=EAST)).status_code == 200
    conflict = await admin.post("/v1/locations", json={**EAST, "ship_cost": 1})
    assert conflict.status_code == 409 and "DC-EAST" in conflict.json()["detail"]
    web = {"code": "web", "type": "web", "locations": ["DC-WEST", "DC-EAST"]}
    assert (await admin.post("/v1/channels", json=web)).status_code == 200
    assert (await admin.post("/v1/channels", json={**web, "locations": ["DC-EAST"]})).status_code == 409
    assert (await admin.post("/v1/channels", json={**web, "sourcing_rule": "cheapest"})).status_code == 409
    supplier = {
        "code": "NW",
        "name": "Northwind",
        "items": [{"sku": "TEE-1", "cost": 5}, {"sku": "MUG-1", "cost": 3}],
    }
    assert (await admin.post("/v1/suppliers", json=supplier)).status_code == 201
    assert (
        await admin.post("/v1/suppliers", json={**supplier, "items": supplier["items"][::-1]})
    ).status_code == 200
    assert (await admin.post("/v1/suppliers", json={**supplier, "dropship": True})).status_code == 409
    web_read = (await admin.get("/v1/channels/web")).json()
    assert web_read["locations"] == ["DC-EAST", "DC-WEST"]
    assert web_read["sourcing_rule"] == "nearest"


async def test_release_at_round_trips_and_stays_idempotent(admin: httpx.AsyncClient) -> None:
    pre = {"code": "BOOK-2", "name": "Book, volume 2", "release_at": "2030-01-15T09:00:00Z"}
    r = await admin.post("/v1/skus", json=pre)
    assert r.status_code == 201
    assert r.json()["release_at"].startswith("2030-01-15T09:00:00")
    assert (
        await admin.post("/v1/skus", json={**pre, "release_at": "2030-01-15T10:00:00+01:00"})
    ).status_code == 200
    assert (
        await admin.post("/v1/skus", json={**pre, "release_at": "2030-01-15T09:00:00"})
    ).status_code == 200
    assert (
        await admin.post("/v1/skus", json={**pre, "release_at": "2030-01-16T09:00:00Z"})
    ).status_code == 409


async def test_an_idempotency_key_replays_the_create(admin: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "sku-tee-1"}
    first = await admin.post("/v1/skus", json=TEE, headers=headers)
    replay = await admin.post("/v1/skus", json=TEE, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    assert (await admin.post("/v1/skus", json=MUG, headers=headers)).status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/skus", {"code": "X", "name": "x", "colour": "red"}, ["body", "colour"]),
        ("/v1/skus", {"code": "K", "name": "k", "kind": "kit"}, ["body", "components"]),
        (
            "/v1/skus",
            {"code": "S", "name": "s", "components": [{"sku": "TEE-1", "qty": 1}]},
            ["body", "components"],
        ),
        (
            "/v1/skus",
            {"code": "K", "name": "k", "kind": "kit", "components": [{"sku": "NOPE", "qty": 1}]},
            ["body", "components", 0, "sku"],
        ),
        (
            "/v1/skus",
            {"code": "K2", "name": "k", "kind": "kit", "components": [{"sku": "GIFT-1", "qty": 1}]},
            ["body", "components", 0, "sku"],
        ),
        (
            "/v1/skus",
            {
                "code": "K",
                "name": "k",
                "kind": "kit",
                "components": [{"sku": "TEE-1", "qty": 1}, {"sku": "TEE-1", "qty": 2}],
            },
            ["body", "components"],
        ),
        (
            "/v1/skus",
            {"code": "K", "name": "k", "kind": "kit", "components": [{"sku": "K", "qty": 1}]},
            ["body", "components"],
        ),
        (
            "/v1/skus",
            {"code": "K", "name": "k", "kind": "kit", "components": [{"sku": "TEE-1", "qty": 0}]},
            ["body", "components", 0, "qty"],
        ),
        ("/v1/skus", {"code": "bad code!", "name": "x"}, ["body", "code"]),
        ("/v1/skus", {"code": "X" * 65, "name": "x"}, ["body", "code"]),
        ("/v1/skus", {"code": "X", "name": "x", "price": -1}, ["body", "price"]),
        ("/v1/skus", {"code": "X", "name": "x", "currency": "usd"}, ["body", "currency"]),
        ("/v1/skus", {"code": "X", "name": "x", "tracking": "batch"}, ["body", "tracking"]),
        ("/v1/skus", {"code": "X", "name": "x", "returnable_days": -1}, ["body", "returnable_days"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "dc", "lat": 10}, ["body", "lon"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "dc", "lon": 10}, ["body", "lon"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "dc", "lat": 91, "lon": 0}, ["body", "lat"]),
        ("/v1/locations", {"code": "customer", "name": "c", "type": "dc"}, ["body", "code"]),
        ("/v1/locations", {"code": "Scrap", "name": "c", "type": "store"}, ["body", "code"]),
        ("/v1/locations", {"code": "L", "name": "l", "type": "virtual"}, ["body", "type"]),
        ("/v1/channels", {"code": "c", "type": "web", "locations": ["NOWHERE"]}, ["body", "locations", 0]),
        (
            "/v1/channels",
            {"code": "c", "type": "web", "locations": ["DC-EAST", "supplier"]},
            ["body", "locations", 1],
        ),
        (
            "/v1/channels",
            {"code": "c", "type": "web", "locations": ["DC-EAST", "DC-EAST"]},
            ["body", "locations"],
        ),
        ("/v1/channels", {"code": "c", "type": "web", "sourcing_rule": "random"}, ["body", "sourcing_rule"]),
        (
            "/v1/suppliers",
            {"code": "S", "name": "s", "items": [{"sku": "NOPE", "cost": 1}]},
            ["body", "items", 0, "sku"],
        ),
        (
            "/v1/suppliers",
            {"code": "S", "name": "s", "items": [{"sku": "TEE-1", "cost": 1, "moq": 0}]},
            ["body", "items", 0, "moq"],
        ),
        (
            "/v1/suppliers",
            {"code": "S", "name": "s", "items": [{"sku": "TEE-1", "cost": 1}, {"sku": "TEE-1", "cost": 2}]},
            ["body", "items"],
        ),
    ],
)
async def test_bad_master_data_names_the_field(
    admin: httpx.AsyncClient, path: str, body: dict[str, object], loc: list[object]
) -> None:
    await _seed(admin)
    r = await admin.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["errors"][0]["loc"] == loc
    assert problem["errors"][0]["msg"]
    if body["code"] != "customer":  # (the seeded virtual location)
        assert (await admin.get(f"{path}/{body['code']}")).status_code == 404  # nothing was written


async def test_referential_errors_say_what_is_unknown(admin: httpx.AsyncClient) -> None:
    await _seed(admin)
    r = await admin.post("/v1/skus", json={**KIT, "code": "K", "components": [{"sku": "NOPE", "qty": 1}]})
    assert r.json()["errors"] == [{"loc": ["body", "components", 0, "sku"], "msg": "unknown SKU 'NOPE'"}]
    r = await admin.post("/v1/channels", json={"code": "c", "type": "web", "locations": ["customer"]})
    assert r.json()["errors"][0]["msg"] == "unknown location 'customer'"
    r = await admin.post("/v1/locations", json={"code": "adjustment", "name": "a", "type": "dc"})
    assert "reserved" in r.json()["errors"][0]["msg"]


async def test_a_policy_moves_every_channels_atp_and_the_feed(
    admin: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _seed(admin)
    await receive(engine, "TEE-1", "DC-EAST", 20)
    r = await admin.put(
        "/v1/channels/marketplace/policies/TEE-1",
        json={"safety_stock": 2, "ringfence": [{"location": "DC-EAST", "qty": 5}]},
    )
    assert r.status_code == 200
    assert r.json() == {
        "channel": "marketplace",
        "sku": "TEE-1",
        "safety_stock": 2,
        "ringfence": [{"location": "DC-EAST", "qty": 5}],
    }
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
    assert (await admin.get("/v1/channels/web/policies/TEE-1")).json() == {
        "channel": "web",
        "sku": "TEE-1",
        "safety_stock": 0,
        "ringfence": [],
    }
    assert (await admin.get("/v1/channels/marketplace/policies/TEE-1")).json() == r.json()
    assert (await admin.get("/v1/channels/nope/policies/TEE-1")).status_code == 404
    assert (await admin.get("/v1/channels/web/policies/NOPE")).status_code == 404


async def test_a_policy_put_replaces_the_previous_one(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed(admin)
    url = "/v1/channels/web/policies/MUG-1"
    fences = [{"location": "DC-WEST", "qty": 1}, {"location": "DC-EAST", "qty": 3}]
    r = await admin.put(url, json={"safety_stock": 4, "ringfence": fences})
    assert r.json()["ringfence"] == sorted(fences, key=lambda f: str(f["location"]))
    r = await admin.put(url, json={"ringfence": [{"location": "DC-WEST", "qty": 2}]})
    assert r.status_code == 200
    assert r.json() == {
        "channel": "web",
        "sku": "MUG-1",
        "safety_stock": 0,
        "ringfence": [{"location": "DC-WEST", "qty": 2}],
    }
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT location, qty FROM channel_ringfence WHERE channel = 'web'"))
        ).all()
    assert [tuple(row) for row in rows] == [("DC-WEST", 2)]
    for body, loc in (
        ({"safety_stock": -1}, ["body", "safety_stock"]),
        ({"ringfence": [{"location": "DC-WEST", "qty": -1}]}, ["body", "ringfence", 0, "qty"]),
        ({"ringfence": [{"location": "DC-WEST", "qty": 1}] * 2}, ["body", "ringfence"]),
        (
            {"ringfence": [{"location": "DC-EAST", "qty": 1}, {"location": "NOPE", "qty": 1}]},
            ["body", "ringfence", 1, "location"],
        ),
        ({"safety": 1}, ["body", "safety"]),
    ):
        bad = await admin.put(url, json=body)
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == loc, bad.text
    assert (await admin.get(url)).json()["ringfence"] == [{"location": "DC-WEST", "qty": 2}]  # unchanged


async def test_a_new_channel_sees_existing_stock(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed(admin)
    await receive(engine, "MUG-1", "DC-WEST", 7)
    await admin.post("/v1/channels", json={"code": "pos", "type": "pos", "locations": ["DC-WEST"]})
    items = (await admin.get("/v1/availability", params={"channel": "pos", "sku": "MUG-1"})).json()["items"]
    assert items == [{"channel": "pos", "sku": "MUG-1", "available": 7}]


async def _walk(
    admin: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **params: str
) -> list[str]:
    codes: list[str] = []
    cursor = None
    while True:
        query: dict[str, str | int] = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get(path, params=query, headers=headers)).json()
        assert len(page["items"]) <= 2
        codes += [item["code"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return codes


async def test_lists_page_with_a_cursor(admin: httpx.AsyncClient, make_key: Callable[..., str]) -> None:
    await _seed(admin)
    for code in ("A-1", "Z-1", "b-1"):
        assert (await admin.post("/v1/skus", json={"code": code, "name": code})).status_code == 201
    first = (await admin.get("/v1/skus", params={"limit": 2})).json()
    assert [s["code"] for s in first["items"]] == ["A-1", "GIFT-1"] and first["next_cursor"]
    assert await _walk(admin, "/v1/skus") == ["A-1", "GIFT-1", "MUG-1", "TEE-1", "Z-1", "b-1"]
    assert await _walk(admin, "/v1/skus", kind="simple") == ["A-1", "MUG-1", "TEE-1", "Z-1", "b-1"]
    kits = (await admin.get("/v1/skus", params={"kind": "kit"})).json()
    assert [s["code"] for s in kits["items"]] == ["GIFT-1"] and kits["next_cursor"] is None
    assert kits["items"][0]["components"] == [{"sku": "MUG-1", "qty": 2}, {"sku": "TEE-1", "qty": 1}]
    assert (await admin.get("/v1/skus", params={"kind": "bundle"})).status_code == 422
    assert (await admin.get("/v1/skus", params={"cursor": "%%%"})).status_code == 400
    assert (await admin.get("/v1/skus", params={"limit": 0})).status_code == 422

    for code in ("STORE-1", "DROP-1"):
        body = {"code": code, "name": code, "type": "store" if code.startswith("S") else "dropship"}
        assert (await admin.post("/v1/locations", json=body)).status_code == 201
    assert await _walk(admin, "/v1/locations") == ["DC-EAST", "DC-WEST", "DROP-1", "STORE-1"]
    with_virtual = await _walk(admin, "/v1/locations", include_virtual="true")
    assert {"customer", "supplier", "adjustment", "scrap", "DC-EAST"} <= set(with_virtual)
    assert len(with_virtual) == len(set(with_virtual)) == 8

    assert (await admin.post("/v1/channels", json={"code": "pos", "type": "pos"})).status_code == 201
    assert await _walk(admin, "/v1/channels") == ["marketplace", "pos", "web"]
    for code in ("S1", "S2", "S3"):
        assert (await admin.post("/v1/suppliers", json={"code": code, "name": code})).status_code == 201
    assert await _walk(admin, "/v1/suppliers") == ["S1", "S2", "S3"]

    # master data is readable by every role, a channel key included; of the channels, a
    # channel key sees its own (another's is as unknown as one that does not exist)
    channel_key = {"Authorization": f"Bearer {make_key('channel', channel='marketplace')}"}
    r = await admin.get("/v1/channels/marketplace", headers=channel_key)
    assert r.status_code == 200 and r.json()["locations"] == ["DC-EAST"]
    assert (await admin.get("/v1/channels/web", headers=channel_key)).status_code == 404
    assert await _walk(admin, "/v1/channels", headers=channel_key) == ["marketplace"]
    assert (await admin.get("/v1/skus/GIFT-1", headers=channel_key)).status_code == 200


async def test_reads_of_unknown_codes_are_404_problems(admin: httpx.AsyncClient) -> None:
    for path in ("/v1/skus/NOPE", "/v1/locations/NOPE", "/v1/channels/NOPE", "/v1/suppliers/NOPE"):
        r = await admin.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "NOPE" in r.json()["detail"]


async def test_racing_creates_make_one_row(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    results = await asyncio.gather(*(admin.post("/v1/skus", json=TEE) for _ in range(10)))
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sku WHERE code = 'TEE-1'"))).scalar() == 1


async def test_racing_creates_of_kits_channels_and_suppliers(
    admin: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _seed(admin)
    kit = {**KIT, "code": "GIFT-2"}
    channel = {"code": "edi", "type": "edi", "locations": ["DC-EAST", "DC-WEST"]}
    supplier = {
        "code": "NW",
        "name": "Northwind",
        "items": [{"sku": "TEE-1", "cost": 5}, {"sku": "MUG-1", "cost": 3}],
    }
    for path, body in (("/v1/skus", kit), ("/v1/channels", channel), ("/v1/suppliers", supplier)):
        results = await asyncio.gather(*(admin.post(path, json=body) for _ in range(8)))
        assert sorted(r.status_code for r in results) == [200] * 7 + [201], path
        assert all(r.json() == results[0].json() for r in results)  # every answer shows the whole record
    # different bodies racing for one code: one wins, the others are told so (never a 500)
    results = await asyncio.gather(
        *(admin.post("/v1/skus", json={"code": "RACE-1", "name": "r", "price": p}) for p in range(8))
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 7
    async with engine.connect() as conn:
        counts = [
            (await conn.execute(text(q))).scalar()
            for q in (
                "SELECT count(*) FROM sku_component WHERE kit_sku = 'GIFT-2'",
                "SELECT count(*) FROM channel_location WHERE channel = 'edi'",
                "SELECT count(*) FROM supplier_item WHERE supplier = 'NW'",
                "SELECT count(*) FROM sku WHERE code = 'RACE-1'",
            )
        ]
    assert counts == [2, 2, 2, 1]


async def test_a_dropship_location_names_a_drop_ship_supplier(admin: httpx.AsyncClient) -> None:
    await admin.post("/v1/skus", json={"code": "SOFA", "name": "Sofa", "unit_cost": 100, "price": 300})
    await admin.post(
        "/v1/suppliers", json={"code": "NODROP", "name": "Plain", "items": [{"sku": "SOFA", "cost": 90}]}
    )
    await admin.post(
        "/v1/suppliers",
        json={"code": "ACME", "name": "Acme", "dropship": True, "items": [{"sku": "SOFA", "cost": 100}]},
    )
    base = {"code": "DS-1", "name": "Drop", "type": "dropship"}
    for body, msg in (
        ({**base, "supplier": "NOPE"}, "unknown supplier"),
        ({**base, "supplier": "NODROP"}, "does not drop-ship"),
        ({**base, "type": "dc", "supplier": "ACME"}, "only a dropship location"),
    ):
        r = await admin.post("/v1/locations", json=body)
        assert r.status_code == 422 and msg in r.text, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "supplier"]
    r = await admin.post("/v1/locations", json={**base, "supplier": "ACME"})
    assert r.status_code == 201 and r.json()["supplier"] == "ACME"
