"""Transfers as a warehouse runs them, over HTTP, with the real worker on the time-skipping
Temporal test server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.factories import assert_inventory_clean, balance, receive, standard_catalog
from tests.test_replay import record_history
from workflows import search_attributes as sa
from workflows.contracts import Resolution, TransferState


@pytest.fixture
async def warehouse(
    admin: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str], worker: Worker
) -> httpx.AsyncClient:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    admin.headers["Authorization"] = f"Bearer {make_key('warehouse')}"
    return admin


async def _open_exception(engine: AsyncEngine, subject: str) -> Any:
    for _ in range(100):
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT * FROM exception WHERE subject_id = :s"), {"s": subject})
            ).first()
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("no exception opened")


async def test_a_transfer_ships_and_arrives(warehouse: httpx.AsyncClient, engine: AsyncEngine) -> None:
    r = await warehouse.post(
        "/v1/transfers",
        json={"number": "T1", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 4}]},
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "requested"
    again = await warehouse.post(
        "/v1/transfers",
        json={"number": "T1", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 4}]},
    )
    assert again.status_code == 200
    r = await warehouse.post("/v1/transfers/T1/receive", json={"lines": [{"sku": "TEE", "qty_received": 4}]})
    assert r.status_code == 409  # not shipped yet
    r = await warehouse.post("/v1/transfers/T1/ship", json={"carrier": "UPS"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "shipped"
    assert await balance(engine, "TEE", "DC-EAST") == (6, 0)
    assert await balance(engine, "TEE", "DC-WEST", "in_transit") == (4, 0)
    assert (await warehouse.post("/v1/transfers/T1/ship", json={})).status_code == 409
    r = await warehouse.post("/v1/transfers/T1/receive", json={"lines": [{"sku": "TEE", "qty_received": 4}]})
    assert r.json()["status"] == "completed"
    assert r.json()["lines"][0]["received"] == 4
    assert await balance(engine, "TEE", "DC-WEST") == (4, 0)
    await record_history(warehouse.app.state.temporal, "transfer-T1", "transfer-happy-path")  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        arrivals = (
            await conn.execute(text("SELECT location, qty FROM stock_arrival WHERE ref = 'transfer-T1'"))
        ).all()
    assert [tuple(a) for a in arrivals] == [("DC-WEST", 4)]
    await assert_inventory_clean(engine)


async def test_shipping_more_than_is_available_is_refused(
    warehouse: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await warehouse.post(
        "/v1/transfers",
        json={"number": "T2", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 11}]},
    )
    r = await warehouse.post("/v1/transfers/T2/ship", json={})
    assert r.status_code == 409
    assert r.json()["available"] == 10
    assert (await warehouse.get("/v1/transfers/T2")).json()["status"] == "requested"
    assert await balance(engine, "TEE", "DC-EAST") == (10, 0)


async def test_bad_requests_name_the_field(warehouse: httpx.AsyncClient) -> None:
    r = await warehouse.post(
        "/v1/transfers", json={"from": "DC-EAST", "to": "NOWHERE", "lines": [{"sku": "TEE", "qty": 1}]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "to"]
    r = await warehouse.post(
        "/v1/transfers", json={"from": "DC-EAST", "to": "DC-EAST", "lines": [{"sku": "TEE", "qty": 1}]}
    )
    assert r.status_code == 422
    r = await warehouse.post(
        "/v1/transfers", json={"from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "GIFT", "qty": 1}]}
    )
    assert r.json()["errors"][0]["loc"] == ["body", "lines", 0, "sku"]
    assert (await warehouse.post("/v1/transfers/NOPE/ship", json={})).status_code == 404


async def test_a_short_receipt_waits_for_a_person(
    warehouse: httpx.AsyncClient, engine: AsyncEngine, temporal_client: Client
) -> None:
    await warehouse.post(
        "/v1/transfers",
        json={"number": "T3", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 5}]},
    )
    await warehouse.post("/v1/transfers/T3/ship", json={})
    r = await warehouse.post(
        "/v1/transfers/T3/receive", json={"lines": [{"sku": "TEE", "qty_received": 2, "qty_damaged": 1}]}
    )
    assert r.json()["status"] == "discrepancy"
    exc = await _open_exception(engine, "T3")
    assert exc.kind == "receipt_discrepancy"
    assert exc.status == "open"
    assert exc.actions == ["write_off", "found"]
    assert exc.value_at_risk == 3 * 1000  # two missing and one damaged tee at their average cost
    assert exc.priority == 30.0
    handle = temporal_client.get_workflow_handle("transfer-T3", result_type=TransferState)
    for _ in range(50):
        if (await handle.describe()).typed_search_attributes.get(sa.OMNI_EXCEPTION) == "receipt_discrepancy":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("OmniException was not set")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("resolve_exception", Resolution(exc.id, "shrug"))
    assert "not one of" in str(refused.value.cause)
    await handle.execute_update(
        "resolve_exception", Resolution(exc.id, "found", note="in the back", resolved_by="ann")
    )
    final = await handle.result()
    assert final.status == "completed"
    assert await balance(engine, "TEE", "DC-WEST") == (4, 0)
    assert await balance(engine, "TEE", "DC-WEST", "damaged") == (1, 0)
    async with engine.connect() as conn:
        closed = (
            await conn.execute(
                text("SELECT status, resolved_by, resolution FROM exception WHERE id = :i"), {"i": exc.id}
            )
        ).one()
    assert closed.status == "resolved"
    assert closed.resolved_by == "ann"
    assert closed.resolution["action"] == "found"
    assert (await handle.describe()).typed_search_attributes.get(sa.OMNI_EXCEPTION) is None
    await assert_inventory_clean(engine)
    await record_history(temporal_client, "transfer-T3", "transfer-discrepancy-resolved")


async def test_an_unanswered_discrepancy_escalates_then_is_written_off(
    warehouse: httpx.AsyncClient,
    engine: AsyncEngine,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
) -> None:
    await warehouse.post(
        "/v1/transfers",
        json={"number": "T4", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 3}]},
    )
    await warehouse.post("/v1/transfers/T4/ship", json={})
    await warehouse.post("/v1/transfers/T4/receive", json={"lines": [{"sku": "TEE", "qty_received": 1}]})
    handle = temporal_client.get_workflow_handle("transfer-T4", result_type=TransferState)
    await _open_exception(engine, "T4")
    levels = []
    for _ in range(4):  # each SLA passes without a decision: three escalations, then the default action
        await temporal_env.sleep(timedelta(hours=24, seconds=1))
        await asyncio.sleep(0.3)
        async with engine.connect() as conn:
            levels.append(
                (
                    await conn.execute(text("SELECT escalation_level FROM exception WHERE subject_id = 'T4'"))
                ).scalar()
            )
    assert levels[:3] == [1, 2, 3]
    final = await handle.result()
    assert final.status == "completed"
    async with engine.connect() as conn:
        exc = (await conn.execute(text("SELECT * FROM exception WHERE subject_id = 'T4'"))).one()
        lost = (
            await conn.execute(
                text("SELECT qty FROM stock_move WHERE ref = 'transfer-T4' AND to_location = 'adjustment'")
            )
        ).scalar()
    assert exc.escalation_level == 3
    assert exc.status == "resolved"
    assert exc.resolved_by == "system:policy"
    assert exc.resolution["action"] == "write_off"
    assert lost == 2
    assert await balance(engine, "TEE", "DC-WEST", "in_transit") == (0, 0)
    await assert_inventory_clean(engine)
    await record_history(temporal_client, "transfer-T4", "transfer-escalated-written-off")
