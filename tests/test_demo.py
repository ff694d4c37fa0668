"""The demo data loads through the public API, once: a second load changes nothing."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import create_app
from cli.demo import (
    CHANNELS,
    LOCATIONS,
    ORDERS,
    PURCHASE_ORDERS,
    SKUS,
    STOCK,
    SUPPLIER_TERMS,
    SUPPLIERS,
    load_demo,
)
from cli.demo_returns import ORDER_ID, RETURNS
from runtime.ports import free_port
from runtime.settings import Settings
from tests.factories import assert_inventory_clean


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar() or 0)
            for t in (
                "location",
                "sku",
                "channel",
                "supplier",
                "stock_move",
                "journal_entry",
                "exception",
                "sales_order",
                "purchase_order",
                "po_receipt",
                "supplier_item",
                "replenishment_policy",
                "sales_return",
            )
        }


OPEN = [
    "address_invalid",
    "fraud_review",
    "payment_pending",
    "po_approval",
    "receipt_discrepancy",  # the short transfer
    "receipt_discrepancy",  # the PO received with damaged units
    "return_approval",  # the final-sale candle asked back
]


async def _purchasing_is_there(url: str, admin_key: str) -> None:
    """What the purchasing demo shows through the API: the terms, the two POs where they
    wait, the damaged receipt in the exception queue, and a replenishment suggestion."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as http:
        coffee = (await http.get("/v1/suppliers/KILN/items/COFFEE-1")).json()
        assert (coffee["cost"], coffee["moq"], coffee["lead_time_days"], coffee["inspect"]) == (
            500,
            20,
            7,
            True,
        )
        waiting = (await http.get("/v1/purchase-orders/DEMO-PO-1")).json()
        assert waiting["value"] > 500_000 and [h["kind"] for h in waiting["holds"]] == ["po_approval"]
        partial = (await http.get("/v1/purchase-orders/DEMO-PO-2")).json()
        line = partial["lines"][0]
        assert (line["confirmed"], line["received"], line["damaged"], line["inbound"]) == (100, 48, 2, 50)
        assert [h["kind"] for h in partial["holds"]] == ["receipt_discrepancy"]
        queue = (await http.get("/v1/exceptions", params={"kind": "receipt_discrepancy"})).json()["items"]
        assert {(e["subject"]["type"], e["subject"]["id"]) for e in queue} >= {
            ("purchase_order", "DEMO-PO-2")
        }
        suggestions = (await http.get("/v1/replenishment/suggestions")).json()["items"]
        mug = next(s for s in suggestions if (s["sku"], s["location"]) == ("MUG-1", "DC-WEST"))
        assert (mug["position"], mug["reorder_point"], mug["supplier"], mug["suggested_qty"]) == (
            10,
            24,
            "KILN",
            48,
        )


async def _returns_are_there(url: str, admin_key: str, engine: AsyncEngine) -> None:
    """The three returns of the shipped order, each where a person finds it."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as http:
        approval, exchange, parcel = [(await http.get(f"/v1/returns/{r['number']}")).json() for r in RETURNS]
        order = (await http.get(f"/v1/orders/{ORDER_ID}")).json()
    assert (approval["status"], approval["needs_approval"]) == ("requested", True)
    assert [h["kind"] for h in approval["holds"]] == ["return_approval"]
    assert [r["rule"] for r in approval["approval_reasons"]] == ["not_returnable"]
    assert exchange["status"] == "in_transit" and exchange["holds"] == []
    assert exchange["new_order_lines"] == [{"sku": "TEE-1", "qty": 2, "unit_price": 2500}]
    assert (parcel["status"], parcel["lines"][0]["received"], parcel["lines"][0]["inspected"]) == (
        "received",
        1,
        0,
    )
    assert parcel["refunded"] == 0  # received, not refunded: the inspection comes first
    assert order["status"] == "partially_returned"
    assert {ln["sku"]: ln["returned"] for ln in order["lines"]} == {"TEE-1": 1, "HOODIE-1": 0, "CANDLE-1": 0}
    async with engine.connect() as conn:
        held = (
            await conn.execute(
                text("SELECT sum(qty) FROM reservation WHERE ref = :r"), {"r": exchange["exchange_order"]}
            )
        ).scalar()
        back = (
            await conn.execute(
                text(
                    "SELECT qty FROM stock_balance WHERE sku = 'TEE-1' AND location = 'DC-EAST' AND status = 'returns'"
                )
            )
        ).scalar()
    assert (held, back) == (2, 1)  # the exchange's tees held; the returned tee in `returns`


async def _queues_settled(engine: AsyncEngine) -> list[str]:
    """The open exception kinds once the demo orders and POs have reached their queues."""
    kinds: list[str] = []
    for _ in range(200):
        async with engine.connect() as conn:
            kinds = sorted(
                (await conn.execute(text("SELECT kind FROM exception WHERE status = 'open'"))).scalars()
            )
            busy = (
                await conn.execute(text("SELECT count(*) FROM sales_order WHERE status = 'received'"))
            ).scalar()
        if len(kinds) == len(OPEN) and not busy:
            break
        await asyncio.sleep(0.05)
    return kinds


async def test_demo_loads_once(
    settings: Settings, temporal_client: Client, worker: Worker, engine: AsyncEngine, admin_key: str
) -> None:
    app = create_app(settings, configure_logs=False, temporal_client=temporal_client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    loop = asyncio.get_running_loop()
    task = loop.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        out1, out2 = io.StringIO(), io.StringIO()
        await asyncio.to_thread(load_demo, url, admin_key, out1)
        kinds = await _queues_settled(engine)
        assert kinds == OPEN
        first = await _counts(engine)
        await asyncio.to_thread(load_demo, url, admin_key, out2)
        assert await _counts(engine) == first
        assert first["location"] - 4 == len(LOCATIONS) == 4  # (plus the four virtual ones)
        assert (first["sku"], first["channel"], first["supplier"]) == (
            len(SKUS),
            len(CHANNELS),
            len(SUPPLIERS),
        )
        assert first["stock_move"] >= len(STOCK)
        # the short transfer, three held orders, two POs (approval, damaged units) and a return
        # outside its policy wait for a person
        assert first["exception"] == 7
        assert first["purchase_order"] == len(PURCHASE_ORDERS) and first["po_receipt"] == 1
        assert first["supplier_item"] == len(SUPPLIER_TERMS)
        assert first["sales_order"] == len(ORDERS) + 1  # and the order the returns are of
        assert first["sales_return"] == len(RETURNS)
        lines = out1.getvalue().splitlines()
        assert lines[0] == "demo: 4 locations, 3 channels, 8 SKUs, 3 suppliers (18 new)"
        assert all(line.startswith("demo: ") for line in lines) and len(lines) == 9
        assert lines[-3] == (
            "demo: purchase orders: DEMO-PO-1 awaiting_approval (over the approval threshold), "
            "DEMO-PO-2 partially_received with 2 damaged units in the receipt_discrepancy queue"
        )
        assert lines[-1] == (
            "demo: returns of DEMO-1005 (partially_returned): "
            "DEMO-RMA-1 requested in the return_approval queue (CANDLE-1 is not returnable), "
            "DEMO-RMA-2 in_transit (an exchange: 2 × TEE-1 held at DC-EAST), "
            "DEMO-RMA-3 received (1 × TEE-1 at DC-EAST, waiting for inspection)"
        )
        assert out2.getvalue().splitlines()[5:] == lines[5:]  # the second load finds them as they were
        await _purchasing_is_there(url, admin_key)
        await _returns_are_there(url, admin_key, engine)
        assert out2.getvalue().splitlines()[0].endswith("(0 new)")
        await assert_inventory_clean(engine)
        async with engine.connect() as conn:
            fence = (
                await conn.execute(
                    text(
                        "SELECT location, qty FROM channel_ringfence WHERE channel = 'marketplace' AND sku = 'TEE-1'"
                    )
                )
            ).all()
            safety = (
                await conn.execute(
                    text(
                        "SELECT safety_stock FROM channel_policy WHERE channel = 'marketplace' AND sku = 'TEE-1'"
                    )
                )
            ).scalar()
            kit = (
                await conn.execute(
                    text(
                        "SELECT component_sku, qty FROM sku_component WHERE kit_sku = 'GIFT-SET-1' ORDER BY 1"
                    )
                )
            ).all()
        assert [tuple(r) for r in fence] == [("DC-EAST", 5)] and safety == 2
        assert [tuple(r) for r in kit] == [("MUG-1", 2), ("TEE-1", 1)]
    finally:
        server.should_exit = True
        await task


def _fake_api(adjustments: httpx.Response) -> tuple[httpx.Client, list[str]]:
    """A stand-in for an API build without the adjustments endpoint (the real app has it):
    master data answers like the real one, adjustments answer `adjustments`."""
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        assert request.headers["authorization"] == "Bearer k"
        if request.url.path == "/v1/inventory/adjustments":
            assert request.headers["idempotency-key"].startswith("demo-stock-")
            return adjustments
        return httpx.Response(201 if request.method == "POST" else 200, json=json.loads(request.content))

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://demo"), calls


@pytest.mark.parametrize(
    "missing",
    [
        httpx.Response(404, json={"type": "about:blank", "status": 404, "detail": "Not Found"}),
        httpx.Response(405, json={"type": "about:blank", "status": 405, "detail": "Method Not Allowed"}),
    ],
)
def test_demo_skips_stock_while_the_adjustments_endpoint_is_missing(missing: httpx.Response) -> None:
    client, calls = _fake_api(missing)
    out = io.StringIO()
    load_demo("http://unused", "k", out, client=client)
    assert calls.count("POST /v1/inventory/adjustments") == 1  # the first row tells, then stop asking
    assert not any("/v1/transfers" in c for c in calls)  # a transfer needs stock
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("demo: stock and transfer skipped") and str(missing.status_code) in lines[-1]
    assert not client.is_closed  # a client passed in stays the caller's


def test_demo_stops_on_a_real_error_from_the_adjustments_endpoint() -> None:
    client, _ = _fake_api(
        httpx.Response(404, json={"type": "/problems/not-found", "detail": "SKU TEE-1 was not found"})
    )
    with pytest.raises(RuntimeError, match="adjustments answered 404"):
        load_demo("http://unused", "k", io.StringIO(), client=client)
