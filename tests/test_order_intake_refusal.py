"""An order without backorders that the channel's ATP cannot cover now is turned away at
intake (issue 20): 409 `/problems/insufficient-stock` naming each refused line's rule (atp,
ring_fence, safety_stock, lot_expiry; kits from their components), before any workflow
starts and before anything is written. An order that allows backorders is never turned away there; a refusal
is not kept under its Idempotency-Key, and never hides an order taken earlier. Through the
real API on real Postgres and Temporal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.settings import Settings
from tests.factories import receive, set_policy
from tests.orders_api import Headers, order_body

Policies = dict[str, tuple[str, int, dict[str, int]]]  # channel -> (sku, safety stock, fences)
TEE_FENCED: Policies = {"marketplace": ("TEE", 0, {"DC-EAST": 10})}  # every TEE held for the marketplace
MUG_KEPT: Policies = {"web": ("MUG", 8, {})}  # web keeps 8 of 10 MUG back
GIFT_KEPT: Policies = {"web": ("GIFT", 1, {})}  # web keeps one GIFT back


@pytest.fixture
async def stocked(keys: dict[str, Headers], engine: AsyncEngine) -> dict[str, Headers]:
    """10 TEE and 10 MUG at DC-EAST (5 GIFT = 1 TEE + 2 MUG); no worker."""
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-EAST", 10)
    return keys


def body(external_id: str, sku: str, qty: int, **over: Any) -> dict[str, Any]:
    payment = {"method": "card", "status": "captured", "amount": qty * 1000 + 500, "reference": "ch_1"}
    over.setdefault("allow_backorder", False)
    return order_body(
        external_id, lines=[{"sku": sku, "qty": qty, "unit_price": 1000}], payment=payment, **over
    )


async def post(api: httpx.AsyncClient, headers: Headers, order: dict[str, Any], key: str) -> httpx.Response:
    return await api.post("/v1/orders", json=order, headers={**headers, "Idempotency-Key": key})


async def nothing_written(engine: AsyncEngine, temporal_client: Client, order_id: str, key: str) -> None:
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM sales_order), (SELECT count(*) FROM order_line),"
                    " (SELECT count(*) FROM order_event), (SELECT count(*) FROM idempotency_record WHERE key = :k)"
                ),
                {"k": key},
            )
        ).one()
    assert tuple(counts) == (0, 0, 0, 0)
    with pytest.raises(RPCError) as started:
        await temporal_client.get_workflow_handle(order_id).describe()
    assert started.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("sku", "qty", "policies", "split", "available", "rule"),
    [
        ("TEE", 3, TEE_FENCED, True, 0, "ring_fence"),
        ("TEE", 11, {}, False, 10, "atp"),
        ("MUG", 3, MUG_KEPT, False, 2, "safety_stock"),
        ("GIFT", 1, TEE_FENCED, True, 0, "ring_fence"),
        ("GIFT", 6, {}, True, 5, "atp"),
        ("GIFT", 5, GIFT_KEPT, True, 4, "safety_stock"),
    ],
)
async def test_an_order_the_stock_cannot_cover_is_refused_at_intake_naming_the_rule(
    api: httpx.AsyncClient,
    stocked: dict[str, Headers],
    engine: AsyncEngine,
    temporal_client: Client,
    sku: str,
    qty: int,
    policies: Policies,
    split: bool,
    available: int,
    rule: str,
) -> None:
    async with engine.begin() as conn:
        for channel, (code, safety, fence) in policies.items():
            await set_policy(conn, channel, code, safety=safety, ringfence=fence)
    r = await post(api, stocked["web"], body("X-1", sku, qty, allow_split=split), "k-1")
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"] == "/problems/insufficient-stock"
    assert problem["order_id"] == "order-web-X-1"
    assert problem["lines"] == [{"line": "1", "sku": sku, "qty": qty, "available": available, "rule": rule}]
    await nothing_written(engine, temporal_client, "order-web-X-1", "k-1")


async def test_an_order_that_allows_backorders_or_can_be_partly_filled_is_never_refused_at_intake(
    api: httpx.AsyncClient, stocked: dict[str, Headers], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 10})
    web = stocked["web"]
    assert (await post(api, web, body("B-1", "TEE", 3, allow_backorder=True), "k-1")).status_code == 202
    # Split allowed: 10 of the 11 can ship now, the rest is sourcing's to cancel.
    assert (await post(api, web, body("B-2", "MUG", 11), "k-2")).status_code == 202
    # No split: the TEE line refuses the whole order; the MUG line is short too, since B-2 (not
    # sourced yet: no worker) is on its way to take all 10 MUG and holds them back at intake.
    two = order_body(
        "B-3",
        lines=[{"sku": "MUG", "qty": 1, "unit_price": 1000}, {"sku": "TEE", "qty": 1, "unit_price": 1000}],
        payment={"method": "card", "status": "captured", "amount": 2500, "reference": "ch_1"},
        allow_backorder=False,
        allow_split=False,
    )
    r = await post(api, web, two, "k-3")
    assert r.status_code == 409, r.text
    assert [(ln["line"], ln["sku"], ln["rule"]) for ln in r.json()["lines"]] == [
        ("1", "MUG", "atp"),
        ("2", "TEE", "ring_fence"),
    ]


async def test_a_refusal_is_not_kept_under_its_key_and_never_hides_an_order_taken_before(
    api: httpx.AsyncClient, stocked: dict[str, Headers], engine: AsyncEngine, settings: Settings
) -> None:
    web = stocked["web"]
    short = body("I-1", "TEE", 12, allow_split=False)
    assert (await post(api, web, short, "k-1")).status_code == 409
    await receive(engine, "TEE", "DC-WEST", 5)
    await asyncio.sleep(settings.intake_stock_cache_seconds)  # this process's read of TEE is stale now
    # The same key and order again: checked again (nothing was kept), and taken now.
    assert (await post(api, web, short, "k-1")).status_code == 202
    # That key for another order that would be refused: the key's own answer, 422.
    reused = await post(api, web, body("I-2", "TEE", 99, allow_split=False), "k-1")
    assert reused.status_code == 422, reused.text
    assert reused.json()["type"] == "/problems/idempotency-key-reused"
    # The order taken, sent again under a new key once the stock is held for others: the order (200).
    async with engine.begin() as conn:
        await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 10, "DC-WEST": 5})
    await asyncio.sleep(settings.intake_stock_cache_seconds)
    again = await post(api, web, short, "k-2")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == "order-web-I-1"


async def test_units_only_an_expired_lot_holds_are_refused_by_lot_expiry(
    api: httpx.AsyncClient, stocked: dict[str, Headers], engine: AsyncEngine, temporal_client: Client
) -> None:
    expired = datetime.now(UTC) - timedelta(days=1)
    await receive(engine, "COFFEE", "DC-EAST", 5, lot="L-OLD", expires_at=expired)
    r = await post(api, stocked["web"], body("E-1", "COFFEE", 2), "k-1")
    assert r.status_code == 409, r.text
    assert r.json()["lines"] == [
        {"line": "1", "sku": "COFFEE", "qty": 2, "available": 0, "rule": "lot_expiry"}
    ]
    await nothing_written(engine, temporal_client, "order-web-E-1", "k-1")
