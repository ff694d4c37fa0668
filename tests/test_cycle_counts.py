"""Cycle counts as a warehouse and an approver run them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.factories import assert_inventory_clean, balance, receive, standard_catalog
from tests.test_replay import record_history
from tests.test_transfers import _open_exception
from workflows import search_attributes as sa
from workflows.contracts import CountState


@pytest.fixture
async def warehouse(
    admin: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str], worker: Worker
) -> httpx.AsyncClient:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 20)  # unit cost 1000: tolerance is 2 units and 5000
    await receive(engine, "MUG", "DC-EAST", 10)
    admin.headers["Authorization"] = f"Bearer {make_key('warehouse')}"
    return admin


async def _count(warehouse: httpx.AsyncClient, count_id: str, skus: list[str]) -> dict[str, Any]:
    r = await warehouse.post("/v1/cycle-counts", json={"id": count_id, "location": "DC-EAST", "skus": skus})
    assert r.status_code == 202, r.text
    return dict(r.json())


async def test_a_count_within_tolerance_posts_at_once(
    warehouse: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _count(warehouse, "C1", ["TEE", "MUG"])
    r = await warehouse.post(
        "/v1/cycle-counts/C1/submit",
        json={"lines": [{"sku": "TEE", "counted": 19}, {"sku": "MUG", "counted": 10}]},
    )
    assert r.status_code == 200, r.text
    count = r.json()
    assert count["status"] == "posted"
    assert [
        (ln["sku"], ln["expected"], ln["counted"], ln["variance"], ln["within_tolerance"])
        for ln in count["lines"]
    ] == [("MUG", 10, 10, 0, True), ("TEE", 20, 19, -1, True)]
    assert await balance(engine, "TEE", "DC-EAST") == (19, 0)
    async with engine.connect() as conn:
        moves = (await conn.execute(text("SELECT reason, qty FROM stock_move WHERE ref = 'count-C1'"))).all()
        loss = (
            await conn.execute(text("SELECT event FROM journal_entry WHERE key = 'count-C1:post-within'"))
        ).scalar()
    assert [tuple(m) for m in moves] == [("count", 1)]
    assert loss == "count_loss"
    assert (
        await warehouse.post("/v1/cycle-counts/C1/submit", json={"lines": [{"sku": "TEE", "counted": 1}]})
    ).status_code == 409
    await assert_inventory_clean(engine)


async def test_over_tolerance_waits_for_an_approver(
    warehouse: httpx.AsyncClient, engine: AsyncEngine, temporal_client: Client, make_key: Callable[..., str]
) -> None:
    await _count(warehouse, "C2", ["TEE", "MUG"])
    r = await warehouse.post(
        "/v1/cycle-counts/C2/submit",
        json={"lines": [{"sku": "TEE", "counted": 12}, {"sku": "MUG", "counted": 11}]},
    )
    assert r.json()["status"] == "awaiting_approval"
    assert await balance(engine, "MUG", "DC-EAST") == (11, 0)  # within tolerance: posted already
    assert await balance(engine, "TEE", "DC-EAST") == (20, 0)  # over: waits
    exc = await _open_exception(engine, "C2")
    assert exc.kind == "count_variance"
    assert exc.value_at_risk == 8 * 1000
    handle = temporal_client.get_workflow_handle("count-C2", result_type=CountState)
    for _ in range(50):
        if (await handle.describe()).typed_search_attributes.get(sa.OMNI_EXCEPTION) == "count_variance":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("OmniException was not set")
    approver = {"Authorization": f"Bearer {make_key('approver')}"}
    r = await warehouse.post(f"/v1/exceptions/{exc.id}/resolve", json={"action": "approve"}, headers=approver)
    assert r.status_code == 200, r.text
    assert (await handle.result()).status == "posted"
    assert await balance(engine, "TEE", "DC-EAST") == (12, 0)
    await assert_inventory_clean(engine)
    await record_history(temporal_client, "count-C2", "cycle-count-approved")


async def test_rejected_or_unanswered_variances_post_nothing(
    warehouse: httpx.AsyncClient,
    engine: AsyncEngine,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
) -> None:
    await _count(warehouse, "C3", ["TEE"])
    await warehouse.post("/v1/cycle-counts/C3/submit", json={"lines": [{"sku": "TEE", "counted": 30}]})
    await _open_exception(engine, "C3")
    for _ in range(4):  # three escalations, then the default action: reject
        await temporal_env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.sleep(0.3)
    handle = temporal_client.get_workflow_handle("count-C3", result_type=CountState)
    assert (await handle.result()).status == "rejected"
    async with engine.connect() as conn:
        exc = (await conn.execute(text("SELECT * FROM exception WHERE subject_id = 'C3'"))).one()
    assert exc.escalation_level == 3
    assert exc.resolution["action"] == "reject"
    assert await balance(engine, "TEE", "DC-EAST") == (20, 0)
    await assert_inventory_clean(engine)


async def test_accuracy_and_validation(warehouse: httpx.AsyncClient, make_key: Callable[..., str]) -> None:
    await _count(warehouse, "C4", ["TEE", "MUG"])
    await warehouse.post(
        "/v1/cycle-counts/C4/submit",
        json={"lines": [{"sku": "TEE", "counted": 20}, {"sku": "MUG", "counted": 2}]},
    )
    acc = (await warehouse.get("/v1/cycle-counts/accuracy")).json()
    assert acc == {"lines_counted": 2, "lines_within_tolerance": 1, "accuracy": 0.5}
    r = await warehouse.post("/v1/cycle-counts", json={"location": "DC-EAST", "skus": ["TEE", "NOPE"]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "skus", 1]
    r = await warehouse.post("/v1/cycle-counts", json={"location": "NOWHERE", "skus": ["TEE"]})
    assert r.json()["errors"][0]["loc"] == ["body", "location"]
    r = await warehouse.post("/v1/cycle-counts/C4/submit", json={"lines": [{"sku": "TEE", "counted": -1}]})
    assert r.status_code == 422
    again = await warehouse.post(
        "/v1/cycle-counts", json={"id": "C4", "location": "DC-EAST", "skus": ["TEE", "MUG"]}
    )
    assert again.status_code == 200
    channel = {"Authorization": f"Bearer {make_key('channel', channel='web')}"}
    assert (await warehouse.get("/v1/cycle-counts/accuracy", headers=channel)).status_code == 403
