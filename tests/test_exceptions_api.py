"""The human queue over HTTP: list every open exception, decide one through its workflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from domain.exceptions import priority
from tests.factories import assert_inventory_clean, balance, receive, standard_catalog
from tests.test_transfers import _open_exception
from workflows.contracts import TransferState


@pytest.fixture
async def short_transfer(
    admin: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str], worker: Worker
) -> str:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    wh = {"Authorization": f"Bearer {make_key('warehouse')}"}
    await admin.post(
        "/v1/transfers",
        json={"number": "X1", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "TEE", "qty": 5}]},
        headers=wh,
    )
    await admin.post("/v1/transfers/X1/ship", json={}, headers=wh)
    await admin.post(
        "/v1/transfers/X1/receive", json={"lines": [{"sku": "TEE", "qty_received": 3}]}, headers=wh
    )
    return str((await _open_exception(engine, "X1")).id)


async def test_open_exceptions_are_listed_and_decided_once(
    admin: httpx.AsyncClient,
    short_transfer: str,
    make_key: Callable[..., str],
    engine: AsyncEngine,
    temporal_client: Client,
) -> None:
    wh = {"Authorization": f"Bearer {make_key('warehouse')}"}
    listed = (await admin.get("/v1/exceptions", params={"kind": "receipt_discrepancy"}, headers=wh)).json()[
        "items"
    ]
    assert [(e["id"], e["subject"], e["status"], e["escalation_level"]) for e in listed] == [
        (short_transfer, {"type": "transfer", "id": "X1"}, "open", 0)
    ]
    assert listed[0]["actions"] == ["write_off", "found"]
    assert listed[0]["workflow_id"] == "transfer-X1"

    finance = {"Authorization": f"Bearer {make_key('finance')}"}
    r = await admin.post(
        f"/v1/exceptions/{short_transfer}/resolve", json={"action": "found"}, headers=finance
    )
    assert r.status_code == 403
    r = await admin.post(f"/v1/exceptions/{short_transfer}/resolve", json={"action": "shrug"}, headers=wh)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "action"]
    r = await admin.post(
        f"/v1/exceptions/{short_transfer}/resolve", json={"action": "write_off", "note": "lost"}, headers=wh
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] is True
    result = await temporal_client.get_workflow_handle("transfer-X1", result_type=TransferState).result()
    assert result.status == "completed"
    r = await admin.post(f"/v1/exceptions/{short_transfer}/resolve", json={"action": "write_off"}, headers=wh)
    assert r.status_code == 409
    assert r.json()["current_status"] == "resolved"
    assert (await admin.get("/v1/exceptions", headers=wh)).json()["items"] == []
    done = (await admin.get("/v1/exceptions", params={"status": "resolved"}, headers=wh)).json()["items"]
    assert done[0]["resolution"]["action"] == "write_off"
    assert await balance(engine, "TEE", "DC-WEST", "in_transit") == (0, 0)
    await assert_inventory_clean(engine)
    assert (await admin.get("/v1/exceptions/nope", headers=wh)).status_code == 404


async def test_sorting_by_priority_pages_with_a_cursor(admin: httpx.AsyncClient, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for i, value in enumerate([5_000, 90_000, 20_000]):
            await conn.execute(
                text(
                    "INSERT INTO exception (id, key, kind, subject_type, subject_id, workflow_id, due_at, priority,"
                    " value_at_risk, actions, details) VALUES (:id, :id, 'fraud_review', 'order', :id, :id,"
                    " now() + interval '1 hour', :p, :v, '[\"approve\"]', '{}')"
                ),
                {"id": f"e{i}", "p": priority(value, 0, timedelta(hours=1), timedelta(hours=1)), "v": value},
            )
    first = (await admin.get("/v1/exceptions", params={"limit": 2})).json()
    assert [e["id"] for e in first["items"]] == ["e1", "e2"]
    rest = (await admin.get("/v1/exceptions", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [e["id"] for e in rest["items"]] == ["e0"]
    assert rest["next_cursor"] is None
    by_due = (await admin.get("/v1/exceptions", params={"sort": "due_at"})).json()["items"]
    assert len(by_due) == 3


def test_priority_weighs_money_escalation_and_time_to_sla() -> None:
    sla = timedelta(hours=4)
    assert priority(50_000, 0, sla, sla) == 500.0  # $500, just opened
    assert priority(50_000, 0, timedelta(0), sla) == 1000.0  # $500 at its SLA
    assert priority(70_000, 0, sla, sla) < priority(50_000, 0, timedelta(0), sla)
    assert priority(50_000, 2, sla, sla) == 1500.0
