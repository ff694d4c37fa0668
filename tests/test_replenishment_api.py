"""The replenishment routes (docs/api.md, "Replenishment"): suggestions with their arithmetic,
factors and policies, on-demand runs through the real worker, and the simulation; bad input
is a 422 problem+json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from tests.test_replenishment_db import replenishment_world
from workflows.contracts import ReplenishmentResult, replenishment_workflow_id


@pytest.fixture
async def world(
    engine: AsyncEngine, admin: httpx.AsyncClient, make_key: Callable[..., str]
) -> dict[str, Any]:
    await replenishment_world(engine)
    return {"Authorization": f"Bearer {make_key('warehouse')}"}


def _problem(r: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


async def test_suggestions_show_the_arithmetic(admin: httpx.AsyncClient, world: dict[str, Any]) -> None:
    r = await admin.get("/v1/replenishment/suggestions", headers=world)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["demand_days"] == 28
    items = {(i["sku"], i["location"]): i for i in body["items"]}
    assert set(items) == {("TEE", "DC-EAST"), ("TEE", "DC-WEST")}  # the MUG needs nothing
    east = items[("TEE", "DC-EAST")]
    assert {k: east[k] for k in ("on_hand", "inbound", "reserved", "demand_per_day", "factor")} == {
        "on_hand": 10,
        "inbound": 0,
        "reserved": 0,
        "demand_per_day": 2.0,
        "factor": 1.0,
    }
    assert (east["lead_time_days"], east["safety_stock"], east["reorder_point"], east["order_up_to"]) == (
        10,
        5,
        25,
        39,
    )
    assert (east["suggested_qty"], east["supplier"], east["unit_cost"]) == (30, "BETA", 350)
    assert "2 × 10 days lead + 5 safety = 25" in east["why"] and "ordered 30" in east["why"]
    west = (await admin.get("/v1/replenishment/suggestions?location=DC-WEST", headers=world)).json()["items"]
    assert [(i["sku"], i["supplier"], i["suggested_qty"]) for i in west] == [("TEE", "ACME", 10)]
    beta = (await admin.get("/v1/replenishment/suggestions?supplier=BETA", headers=world)).json()["items"]
    assert [(i["sku"], i["location"]) for i in beta] == [("TEE", "DC-EAST")]
    everything = (await admin.get("/v1/replenishment/suggestions?all=true", headers=world)).json()["items"]
    mug = next(i for i in everything if i["sku"] == "MUG")
    assert mug["suggested_qty"] == 0 and "nothing to order" in mug["why"]
    _problem(await admin.get("/v1/replenishment/suggestions?location=no%20such", headers=world))


async def test_factors_replace_the_set_and_scale_demand(
    admin: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    factors = [
        {"category": "apparel", "from": "2000-01-01", "to": "2999-12-31", "factor": 3},
        {"sku": "TEE", "from": "2000-01-01", "to": "2999-12-31", "factor": 1.5},
    ]
    engine_sql = "UPDATE sku SET category = 'apparel' WHERE code IN ('TEE', 'MUG')"
    app = admin.app  # type: ignore[attr-defined]
    async with app.state.engine.begin() as conn:
        await conn.execute(text(engine_sql))
    r = await admin.put("/v1/replenishment/factors", json=factors)
    assert r.status_code == 200, r.text
    assert [f["factor"] for f in r.json()] == [3.0, 1.5]
    assert (await admin.get("/v1/replenishment/factors", headers=world)).json() == r.json()
    items = (await admin.get("/v1/replenishment/suggestions?all=true", headers=world)).json()["items"]
    by = {(i["sku"], i["location"]): i for i in items}
    assert by[("TEE", "DC-EAST")]["factor"] == 1.5 and by[("TEE", "DC-EAST")]["demand_per_day"] == 3.0
    assert by[("MUG", "DC-EAST")]["factor"] == 3.0  # no own factor: its category's
    r = await admin.put("/v1/replenishment/factors", json=[])
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    "body",
    [
        [{"sku": "TEE", "category": "apparel", "from": "2026-01-01", "to": "2026-02-01", "factor": 1}],
        [{"from": "2026-01-01", "to": "2026-02-01", "factor": 1}],
        [{"sku": "TEE", "from": "2026-03-01", "to": "2026-02-01", "factor": 1}],
        [{"sku": "TEE", "from": "2026-01-01", "to": "2026-02-01", "factor": -1}],
        [{"sku": "TEE", "from": "2026-01-01", "to": "2026-02-01", "factor": 1, "extra": 1}],
        [{"sku": "NOPE", "from": "2026-01-01", "to": "2026-02-01", "factor": 1}],
        {"sku": "TEE"},
    ],
)
async def test_bad_factors_are_422(admin: httpx.AsyncClient, world: dict[str, Any], body: Any) -> None:
    problem = _problem(await admin.put("/v1/replenishment/factors", json=body))
    assert problem["type"] == "/problems/validation-error" and problem["errors"]


async def test_policies(admin: httpx.AsyncClient, world: dict[str, Any]) -> None:
    r = await admin.put(
        "/v1/replenishment/policies/MUG/DC-EAST", json={"safety_stock": 200, "review_days": 14}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sku": "MUG",
        "location": "DC-EAST",
        "safety_stock": 200,
        "review_days": 14,
        "supplier": None,
    }
    items = (await admin.get("/v1/replenishment/suggestions", headers=world)).json()["items"]
    mug = next(i for i in items if i["sku"] == "MUG")
    assert (mug["reorder_point"], mug["order_up_to"], mug["suggested_qty"]) == (205, 219, 119)
    _problem(
        await admin.put("/v1/replenishment/policies/MUG/DC-EAST", json={"safety_stock": -1, "review_days": 1})
    )
    problem = _problem(
        await admin.put(
            "/v1/replenishment/policies/MUG/DC-EAST",
            json={"safety_stock": 1, "review_days": 1, "supplier": "X"},
        )
    )
    assert problem["errors"][0]["loc"] == ["body", "supplier"]
    _problem(
        await admin.put(
            "/v1/replenishment/policies/NOPE/DC-EAST", json={"safety_stock": 1, "review_days": 1}
        ),
        404,
    )
    _problem(
        await admin.put(
            "/v1/replenishment/policies/MUG/customer", json={"safety_stock": 1, "review_days": 1}
        ),
        404,
    )


async def test_a_run_drafts_pos_once_per_run_id(
    admin: httpx.AsyncClient,
    world: dict[str, Any],
    worker: Worker,
    temporal_client: Client,
    engine: AsyncEngine,
) -> None:
    _problem(await admin.post("/v1/replenishment/run", json={"run_id": "has space"}))
    _problem(await admin.post("/v1/replenishment/run", json={"run_id": "x" * 49}))
    _problem(await admin.post("/v1/replenishment/run", json={}))
    r = await admin.post("/v1/replenishment/run", json={"run_id": "api-1"})
    assert r.status_code == 202, r.text
    assert r.json()["workflow_id"] == "replenishment-api-1"
    handle = temporal_client.get_workflow_handle(
        replenishment_workflow_id("api-1"), result_type=ReplenishmentResult
    )
    result = await handle.result()
    assert [o.number for o in result.orders] == ["R-api-1-ACME-DC-WEST", "R-api-1-BETA-DC-EAST"]
    again = await admin.post("/v1/replenishment/run", json={"run_id": "api-1"})
    assert again.status_code == 202 and again.json()["status"] == "done"
    run = (await admin.get("/v1/replenishment/runs/api-1", headers=world)).json()
    assert run["status"] == "done" and run["finished_at"] and len(run["result"]["orders"]) == 2
    _problem(await admin.get("/v1/replenishment/runs/nope", headers=world), 404)
    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM purchase_order WHERE run_id = 'api-1'"))
        ).scalar() == 2


async def test_simulate_compares_a_proposed_policy_with_the_current(
    admin: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    r = await admin.post("/v1/replenishment/simulate", json={"days": 20, "policy": {}})
    assert r.status_code == 200, r.text
    same = r.json()
    assert same["days"] == 20 and same["sku_locations"] == 3 and same["current"] == same["proposed"]
    r = await admin.post(
        "/v1/replenishment/simulate", json={"days": 20, "policy": {"safety_stock": 50, "review_days": 14}}
    )
    body = r.json()
    assert body["proposed"]["purchase_value"] > body["current"]["purchase_value"]
    assert body["proposed"]["units_short"] <= body["current"]["units_short"]
    assert body["proposed"]["average_days_of_cover"] > body["current"]["average_days_of_cover"]
    lean = (
        await admin.post(
            "/v1/replenishment/simulate", json={"days": 20, "policy": {"safety_stock_multiplier": 0}}
        )
    ).json()
    assert set(lean["proposed"]) == {
        "stock_out_days",
        "units_short",
        "average_days_of_cover",
        "purchase_value",
        "orders",
    }
    served = (
        await admin.post("/v1/replenishment/simulate", json={"days": 20, "policy": {"service_level": 0.99}})
    ).json()
    assert served["proposed"]["orders"] >= 1


@pytest.mark.parametrize(
    "body",
    [
        {"days": 0, "policy": {}},
        {"days": 400, "policy": {}},
        {"policy": {}},
        {"days": 10},
        {"days": 10, "policy": {"safety_stock": 1, "service_level": 0.9}},
        {"days": 10, "policy": {"service_level": 1.5}},
        {"days": 10, "policy": {"demand_days": 0}},
        {
            "days": 10,
            "policy": {"factors": [{"sku": "TEE", "from": "2026-02-01", "to": "2026-01-01", "factor": 1}]},
        },
        {"days": 10, "policy": {"bogus": 1}},
    ],
)
async def test_bad_simulations_are_422(admin: httpx.AsyncClient, world: dict[str, Any], body: Any) -> None:
    assert (
        _problem(await admin.post("/v1/replenishment/simulate", json=body))["type"]
        == "/problems/validation-error"
    )
