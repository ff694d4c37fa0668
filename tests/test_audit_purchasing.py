"""The audit trail of the purchase-order steps people take through the API, which the PO's
workflow carries out in an activity: the approver's decision, the supplier's confirmation,
receipts, QC, bills and the cancel each show once in `GET /v1/audit`, with who, the route,
the request id and the PO before → after, also when the request is retried with its
Idempotency-Key. The row is written in the step's own transaction: an audit row that cannot
be written takes the step with it, and a retried activity adds none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from activities.purchasing import PurchasingActivities
from domain.audit import Actor
from tests import audit
from tests.purchase_orders import add_supplier
from workflows.contracts import ConfirmedLine, PoConfirm, SupplierConfirmation

Headers = dict[str, str]


def _po(number: str, qty: int) -> dict[str, Any]:
    return {
        "number": number,
        "supplier": "ACME",
        "location": "DC-EAST",
        "lines": [{"sku": "TEE", "qty": qty}],
    }


async def _placed(api: httpx.AsyncClient, admin: Headers, number: str, qty: int) -> dict[str, Any]:
    r = await api.post("/v1/purchase-orders", json=_po(number, qty), headers=admin)
    assert r.status_code == 202, r.text
    for _ in range(200):
        read: dict[str, Any] = (await api.get(f"/v1/purchase-orders/{number}", headers=admin)).json()
        if read["status"] == "sent" or read["holds"]:
            return read
        await asyncio.sleep(0.05)
    raise AssertionError(f"purchase order {number} was never sent nor held: {read}")


@pytest.fixture
async def acme(api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine) -> None:
    await add_supplier(engine)
    terms = {"cost": 10_000, "inspect": True}  # inspected: a receipt goes to quarantine, QC releases it
    assert (
        await api.put("/v1/suppliers/ACME/items/TEE", json=terms, headers=keys["admin"])
    ).status_code == 200


async def test_each_po_step_a_person_takes_is_in_the_trail_once(
    api: httpx.AsyncClient, keys: dict[str, Headers], acme: None, worker: Worker, make_key: Callable[..., str]
) -> None:
    admin, wh, fin = keys["admin"], keys["warehouse"], keys["finance"]
    approver = {"Authorization": f"Bearer {make_key('approver')}"}
    held = await _placed(api, admin, "PA-1", 60)  # 600,000 > the approval threshold
    [hold] = held["holds"]
    await audit.twice(
        api,
        "/v1/purchase-orders/PA-1/approve",
        approver,
        {"reason": "budgeted"},
        "rq-approve",
        until_taken=True,
    )
    decided = await audit.listed(api, admin, f"exception:{hold['id']}", "resolve")
    assert audit.who(decided) == ("approver", "POST /v1/purchase-orders/{number}/approve", "rq-approve")
    assert decided["actor"]["name"] == "test approver"
    assert (decided["before"]["status"], decided["before"]["kind"]) == ("open", "po_approval")
    assert decided["before"]["subject"] == {"type": "purchase_order", "id": "PA-1"}
    assert (decided["after"]["status"], decided["after"]["action"], decided["after"]["note"]) == (
        "resolved",
        "approve",
        "budgeted",
    )

    confirm = {"lines": [{"sku": "TEE", "qty": 60}]}
    await audit.twice(api, "/v1/purchase-orders/PA-1/confirm", admin, confirm, "rq-confirm")
    entry = await audit.listed(api, admin, "purchase_order:PA-1", "confirm")
    assert audit.who(entry) == ("admin", "POST /v1/purchase-orders/{number}/confirm", "rq-confirm")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("sent", "confirmed")
    assert (entry["before"]["lines"][0]["confirmed"], entry["after"]["lines"][0]["confirmed"]) == (None, 60)

    receipt = {"receipt": "GRN-1", "lines": [{"sku": "TEE", "qty_received": 60}]}
    await audit.twice(api, "/v1/purchase-orders/PA-1/receipts", wh, receipt, "rq-receive")
    entry = await audit.listed(api, admin, "purchase_order:PA-1", "receive")
    assert audit.who(entry) == ("warehouse", "POST /v1/purchase-orders/{number}/receipts", "rq-receive")
    assert (entry["before"]["lines"][0]["received"], entry["after"]["lines"][0]["quarantined"]) == (0, 60)

    qc = {
        "lines": [
            {"sku": "TEE", "qty": 58, "result": "pass"},
            {"sku": "TEE", "qty": 2, "result": "fail", "disposition": "scrap"},
        ]
    }
    await audit.twice(api, "/v1/purchase-orders/PA-1/qc", wh, qc, "rq-qc")
    entry = await audit.listed(api, admin, "purchase_order:PA-1", "qc")
    assert audit.who(entry) == ("warehouse", "POST /v1/purchase-orders/{number}/qc", "rq-qc")
    assert (entry["before"]["lines"][0]["quarantined"], entry["after"]["lines"][0]["rejected"]) == (60, 2)

    bill = {"invoice_number": "INV-1", "lines": [{"sku": "TEE", "qty": 58, "unit_cost": 10_000}]}
    await audit.twice(api, "/v1/purchase-orders/PA-1/bills", fin, bill, "rq-bill")
    entry = await audit.listed(api, admin, "purchase_order:PA-1", "bill")
    assert audit.who(entry) == ("finance", "POST /v1/purchase-orders/{number}/bills", "rq-bill")
    assert (entry["before"]["lines"][0]["billed"], entry["after"]["lines"][0]["billed"]) == (0, 58)

    await _placed(api, admin, "PA-2", 5)  # under the threshold: sent at once
    await audit.twice(
        api, "/v1/purchase-orders/PA-2/cancel", admin, {"reason": "duplicate"}, "rq-cancel", until_taken=True
    )
    entry = await audit.listed(api, admin, "purchase_order:PA-2", "cancel")
    assert audit.who(entry) == ("admin", "POST /v1/purchase-orders/{number}/cancel", "rq-cancel")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("sent", "cancelled")
    assert entry["after"]["lines"][0]["closed"] == 5


async def test_a_rejection_is_the_decision_once_and_not_a_second_cancel_row(
    api: httpx.AsyncClient, keys: dict[str, Headers], acme: None, worker: Worker, make_key: Callable[..., str]
) -> None:
    approver = {"Authorization": f"Bearer {make_key('approver')}"}
    held = await _placed(api, keys["admin"], "PR-1", 60)
    await audit.twice(
        api,
        "/v1/purchase-orders/PR-1/reject",
        approver,
        {"reason": "over budget"},
        "rq-reject",
        until_taken=True,
    )
    entry = await audit.listed(api, keys["admin"], f"exception:{held['holds'][0]['id']}", "resolve")
    assert audit.who(entry) == ("approver", "POST /v1/purchase-orders/{number}/reject", "rq-reject")
    # carried out as the PO's cancel, which closes the exception as it does every cancel
    assert (entry["after"]["action"], entry["after"]["note"]) == ("cancel", "rejected: over budget")
    r = await api.get("/v1/audit", params={"object": "purchase_order:PR-1"}, headers=keys["admin"])
    assert r.json()["items"] == []  # the cancel that carries the rejection out is the decision's


async def _po_state(engine: AsyncEngine, number: str) -> tuple[str, int, int]:
    async with engine.connect() as conn:
        status = (
            await conn.execute(text("SELECT status FROM purchase_order WHERE number = :n"), {"n": number})
        ).scalar_one()
        events = (
            await conn.execute(text("SELECT count(*) FROM po_event WHERE po_number = :n"), {"n": number})
        ).scalar_one()
    return str(status), int(events), len(await audit.rows(engine, "purchase_order", number))


async def test_an_audit_row_that_cannot_be_written_takes_its_step_with_it_and_a_retry_adds_none(
    api: httpx.AsyncClient, keys: dict[str, Headers], acme: None, engine: AsyncEngine, worker: Worker
) -> None:
    await _placed(api, keys["admin"], "PT-1", 5)
    activities = PurchasingActivities(engine)

    def step(actor: Actor) -> PoConfirm:
        return PoConfirm("PT-1", SupplierConfirmation([ConfirmedLine("TEE", 4)], "supplier", actor))

    before = await _po_state(engine, "PT-1")
    too_long = Actor("key_1", "admin", "n" * 500, "rq-bad", "POST /v1/purchase-orders/{number}/confirm")
    with pytest.raises(DBAPIError):  # the name does not fit its column: the INSERT fails
        await activities.confirm_purchase_order(step(too_long))
    assert await _po_state(engine, "PT-1") == before  # nor confirmed, nor its event, nor a row
    assert before[0] == "sent" and before[2] == 0

    good = Actor("key_1", "admin", "Ada", "rq-good", "POST /v1/purchase-orders/{number}/confirm")
    assert (await activities.confirm_purchase_order(step(good))).status == "confirmed"
    await activities.confirm_purchase_order(step(good))  # the activity again (at least once)
    status, _, rows = await _po_state(engine, "PT-1")
    assert (status, rows) == ("confirmed", 1)
    [row] = await audit.rows(engine, "purchase_order", "PT-1")
    assert (row.actor_name, row.request_id, row.before["status"], row.after["status"]) == (
        "Ada",
        "rq-good",
        "sent",
        "confirmed",
    )
