"""The purchasing API over ASGI with the real worker: supplier terms, a PO validated against
them (422 naming the line and the rule), inbound at once, approval over the threshold, the
supplier's confirmation, receipts, QC and bills as workflow updates, replays and conflicts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from tests.factories import balance
from tests.purchase_orders import add_supplier

Headers = dict[str, str]


def idem(headers: Headers) -> Headers:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


async def terms(api: httpx.AsyncClient, admin: Headers, sku: str, **body: Any) -> httpx.Response:
    return await api.put(f"/v1/suppliers/ACME/items/{sku}", json={"cost": 1000, **body}, headers=admin)


def po(number: str, *lines: tuple[str, int], **over: Any) -> dict[str, Any]:
    return {
        "number": number,
        "supplier": "ACME",
        "location": "DC-EAST",
        "lines": [{"sku": s, "qty": q} for s, q in lines],
        **over,
    }


async def test_supplier_terms_are_kept_and_a_po_breaking_them_is_a_422_naming_the_line(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    await add_supplier(engine, lead_time_days=4)
    r = await terms(api, keys["admin"], "TEE", moq=10, order_multiple=5, inspect=False)
    assert r.status_code == 200 and r.json()["lead_time_days"] == 4  # the supplier's, none of its own
    assert (await terms(api, keys["admin"], "GIFT")).status_code == 422  # a kit is bought as its components
    assert (
        await api.put("/v1/suppliers/NOPE/items/TEE", json={"cost": 1}, headers=keys["admin"])
    ).status_code == 404
    assert (await terms(api, keys["warehouse"], "TEE")).status_code == 403
    got = await api.get("/v1/suppliers/ACME/items/TEE", headers=keys["readonly"])
    assert got.json()["moq"] == 10
    for lines, rule in (
        ([("TEE", 5)], "moq"),
        ([("TEE", 12)], "order_multiple"),
        ([("MUG", 1)], "not_supplied"),
    ):
        r = await api.post("/v1/purchase-orders", json=po("X", *lines), headers=idem(keys["admin"]))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["loc"] == ["body", "lines", 0] and r.json()["errors"][0]["rule"] == rule
    r = await api.post(
        "/v1/purchase-orders", json=po("X", ("TEE", 10)) | {"supplier": "NOPE"}, headers=keys["admin"]
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "supplier"]


async def test_a_po_is_recorded_sent_and_received_over_http(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> None:
    await add_supplier(engine, lead_time_days=4)
    await terms(api, keys["admin"], "TEE", cost=800)
    r = await api.post("/v1/purchase-orders", json=po("P-100", ("TEE", 10)), headers=idem(keys["admin"]))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["workflow_id"] == "po-P-100" and body["lines"][0]["unit_cost"] == 800
    assert await balance(engine, "TEE", "DC-EAST", "inbound") == (10, 0)  # shows at once
    again = await api.post("/v1/purchase-orders", json=po("P-100", ("TEE", 10)), headers=idem(keys["admin"]))
    assert again.status_code == 200
    other = await api.post("/v1/purchase-orders", json=po("P-100", ("TEE", 20)), headers=idem(keys["admin"]))
    assert other.status_code == 409
    confirm = {"lines": [{"sku": "TEE", "qty": 10, "promised_at": "2030-01-01T00:00:00Z"}]}
    r = await api.post("/v1/purchase-orders/P-100/confirm", json=confirm, headers=keys["admin"])
    assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text
    again = await api.post("/v1/purchase-orders/P-100/confirm", json=confirm, headers=keys["admin"])
    assert again.status_code == 409  # confirmed once
    receipt = {"receipt": "GRN-1", "lines": [{"sku": "TEE", "qty_received": 10}]}
    r = await api.post("/v1/purchase-orders/P-100/receipts", json=receipt, headers=keys["warehouse"])
    assert r.status_code == 200 and r.json()["status"] == "received", r.text
    assert r.json()["receipts"][0]["receipt_number"] == "GRN-1"
    assert await balance(engine, "TEE", "DC-EAST") == (10, 0)
    bill = {"invoice_number": "INV-1", "lines": [{"sku": "TEE", "qty": 10, "unit_cost": 800}]}
    r = await api.post("/v1/purchase-orders/P-100/bills", json=bill, headers=keys["finance"])
    assert r.status_code == 200, r.text
    assert (await api.get("/v1/purchase-orders/P-100", headers=keys["readonly"])).json()["lines"][0][
        "billed"
    ] == 10
    assert (await api.get("/v1/purchase-orders/P-100", headers=keys["web"])).status_code == 403
    listed = await api.get("/v1/purchase-orders?supplier=ACME", headers=keys["readonly"])
    assert [p["number"] for p in listed.json()["items"]] == ["P-100"]
    assert (await api.get("/v1/purchase-orders?status=bogus", headers=keys["readonly"])).status_code == 422
    assert (await api.get("/v1/purchase-orders/NOPE", headers=keys["readonly"])).status_code == 404


async def test_over_the_threshold_a_po_waits_for_an_approver(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker, make_key: Any
) -> None:
    await add_supplier(engine)
    await terms(api, keys["admin"], "TEE", cost=10_000)
    r = await api.post("/v1/purchase-orders", json=po("P-200", ("TEE", 60)), headers=idem(keys["admin"]))
    assert r.status_code == 202
    approver = {"Authorization": f"Bearer {make_key('approver')}"}
    for _ in range(100):
        read = (await api.get("/v1/purchase-orders/P-200", headers=approver)).json()
        if read["holds"]:
            break
    assert read["status"] == "awaiting_approval" and read["holds"][0]["kind"] == "po_approval"
    receipt = {"receipt": "GRN-1", "lines": [{"sku": "TEE", "qty_received": 1}]}
    early = await api.post("/v1/purchase-orders/P-200/receipts", json=receipt, headers=keys["warehouse"])
    assert early.status_code == 409  # nothing is expected before it is sent
    assert (
        await api.post("/v1/purchase-orders/P-200/reject", json={"reason": ""}, headers=approver)
    ).status_code == 422
    for _ in range(100):  # the hold row is written a moment before the workflow has it open
        r = await api.post("/v1/purchase-orders/P-200/approve", json={"reason": "budgeted"}, headers=approver)
        if r.status_code != 409:
            break
        await asyncio.sleep(0.02)
    assert r.status_code == 200 and r.json()["status"] == "sent", r.text
    r = await api.post(
        "/v1/purchase-orders/P-200/cancel", json={"reason": "not needed"}, headers=keys["admin"]
    )
    assert r.status_code == 200
    assert await balance(engine, "TEE", "DC-EAST", "inbound") == (0, 0)
