"""Replenishment against the real database: what models.replenishment reads in bulk (demand
from stock moves to customers in the window, position from the buckets, policies, supplier
terms), and the run's idempotency at the SQL level: two concurrent drafts of one run id, on
their own connections, write each PO once. The helpers here also set up the API and
workflow tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.replenishment import ReplenishmentActivities
from domain.replenishment import Factors, suggest_all
from models import replenishment as store
from models import stock
from runtime.db import make_async_engine
from runtime.settings import Settings
from tests.factories import receive, standard_catalog
from workflows.contracts import DraftedRun, DraftRun


async def ship(
    conn: AsyncConnection, sku: str, location: str, qty: int, days_ago: float, to: str = "customer"
) -> None:
    """A recorded shipment (a stock move to `customer`) `days_ago` days ago."""
    key = f"test-ship-{sku}-{location}-{to}-{qty}-{days_ago}"
    await conn.execute(
        text(
            "INSERT INTO stock_operation (key, kind, ref, request_hash) VALUES (:k, 'consume', '', 'x')"
            " ON CONFLICT DO NOTHING"
        ),
        {"k": key},
    )
    await conn.execute(
        text(
            "INSERT INTO stock_move (op_key, sku, lot, from_location, from_status, to_location, to_status, qty,"
            " reason, ref, created_at) VALUES (:k, :sku, '', :loc, 'sellable', :to, 'virtual', :q, 'shipment', '',"
            " now() - make_interval(secs => :secs))"
        ),
        {"k": key, "sku": sku, "loc": location, "to": to, "q": qty, "secs": days_ago * 86_400},
    )


async def add_supplier(
    conn: AsyncConnection, code: str, lead: int, items: dict[str, tuple[int, int, int]]
) -> None:
    """items: sku → (cost, moq, order_multiple)."""
    await conn.execute(
        text("INSERT INTO supplier (code, name, lead_time_days, dropship) VALUES (:c, :c, :l, false)"),
        {"c": code, "l": lead},
    )
    for sku, (cost, moq, multiple) in items.items():
        await conn.execute(
            text(
                "INSERT INTO supplier_item (supplier, sku, cost, moq, order_multiple, currency, inspect)"
                " VALUES (:s, :sku, :cost, :moq, :m, 'USD', false)"
            ),
            {"s": code, "sku": sku, "cost": cost, "moq": moq, "m": multiple},
        )


async def replenishment_world(engine: AsyncEngine) -> None:
    """TEE at DC-EAST: 10 on hand, 2/day shipped, safety 5, cheapest supplier BETA (lead 10):
    ROP 2 × 10 + 5 = 25, OUT 25 + 2 × 7 = 39, need 29 → 30 (multiple 5).
    TEE at DC-WEST: nothing shipped, safety 3, review 0, policy supplier ACME: need 3 → MOQ 10.
    MUG at DC-EAST: 100 on hand, 1/day, lead 5: ROP 5, nothing to order."""
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-EAST", 100)
    async with engine.begin() as conn:
        await add_supplier(conn, "ACME", 5, {"TEE": (400, 10, 5), "MUG": (300, 1, 1)})
        await add_supplier(conn, "BETA", 10, {"TEE": (350, 10, 5)})
        await store.upsert_policy(conn, "TEE", "DC-EAST", 5, 7, None)
        await store.upsert_policy(conn, "TEE", "DC-WEST", 3, 0, "ACME")
        for day in range(28):
            await ship(conn, "TEE", "DC-EAST", 2, day + 0.5)
            await ship(conn, "MUG", "DC-EAST", 1, day + 0.5)
        await ship(conn, "TEE", "DC-EAST", 500, 40)  # outside the 28-day window
        await ship(conn, "TEE", "DC-EAST", 300, 3, to="DC-WEST")  # a transfer, not demand


async def suggested(engine: AsyncEngine) -> dict[tuple[str, str], Any]:
    today = datetime.now(UTC).date()
    async with engine.connect() as conn:
        data = await store.load_inputs(conn, 28, today)
    found = suggest_all(data.points, data.shipped, 28, Factors(data.factors), data.options, today)
    return {(s.point.sku, s.point.location): s for s in found}


async def test_the_bulk_reads_give_the_documented_arithmetic(engine: AsyncEngine) -> None:
    await replenishment_world(engine)
    async with engine.begin() as conn:  # a reservation and an inbound unit count in the position
        await stock.apply_moves(
            conn,
            "test-inbound",
            "adjustment",
            [stock.adjustment_move("TEE", "DC-EAST", "inbound", 4)],
            reason="initial",
        )
        await conn.execute(
            text(
                "UPDATE stock_balance SET reserved = 2 WHERE sku = 'TEE' AND location = 'DC-EAST' AND status = 'sellable'"
            )
        )
    found = await suggested(engine)
    east = found[("TEE", "DC-EAST")]
    assert (east.shipped, east.demand_per_day, east.option.supplier) == (56, 2, "BETA")
    assert (east.point.on_hand, east.point.inbound, east.point.reserved, east.point.position) == (
        10,
        4,
        2,
        12,
    )
    assert (east.reorder_point, east.order_up_to, east.suggested_qty) == (25, 39, 30)  # need 27 → 30
    west = found[("TEE", "DC-WEST")]
    assert (west.option.supplier, west.reorder_point, west.suggested_qty) == ("ACME", 3, 10)
    mug = found[("MUG", "DC-EAST")]
    assert (mug.demand_per_day, mug.suggested_qty, mug.point.safety_stock, mug.point.review_days) == (
        1,
        0,
        0,
        7,
    )
    assert ("COFFEE", "DC-EAST") not in found  # no supplier supplies it


def activities(engine: AsyncEngine, settings: Settings) -> ReplenishmentActivities:
    return ReplenishmentActivities(engine, settings, None)  # type: ignore[arg-type]  # drafting needs no client


async def test_two_concurrent_drafts_of_one_run_write_each_po_once(
    engine: AsyncEngine, database_url: str, settings: Settings
) -> None:
    await replenishment_world(engine)
    other = make_async_engine(database_url, pool_size=2)  # a second pool: surely another connection
    try:
        first, second = await asyncio.gather(
            activities(engine, settings).draft_replenishment(DraftRun("r1")),
            activities(other, settings).draft_replenishment(DraftRun("r1")),
        )
    finally:
        await other.dispose()
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert first.orders == second.orders
    assert [(o.number, o.value) for o in first.orders] == [
        ("R-r1-ACME-DC-WEST", 4000),
        ("R-r1-BETA-DC-EAST", 10_500),
    ]
    async with engine.connect() as conn:
        pos = list(
            await conn.execute(
                text(
                    "SELECT p.number, p.status, p.source, p.run_id, p.supplier, p.location, count(l.sku) AS lines,"
                    " sum(l.qty) AS units FROM purchase_order p JOIN purchase_order_line l ON l.po_number = p.number"
                    " GROUP BY p.number ORDER BY p.number"
                )
            )
        )
        run = await store.run_row(conn, "r1")
    assert [tuple(r) for r in pos] == [
        ("R-r1-ACME-DC-WEST", "draft", "replenishment", "r1", "ACME", "DC-WEST", 1, 10),
        ("R-r1-BETA-DC-EAST", "draft", "replenishment", "r1", "BETA", "DC-EAST", 1, 30),
    ]
    assert run is not None and run.status == "drafted" and len(run.result["orders"]) == 2


async def test_a_retried_run_answers_its_first_draft_and_a_new_run_drafts_anew(
    engine: AsyncEngine, settings: Settings
) -> None:
    await replenishment_world(engine)
    acts = activities(engine, settings)
    first = await acts.draft_replenishment(DraftRun("r2"))
    async with engine.begin() as conn:  # the world changes: a retry still answers what r2 drafted
        await ship(conn, "MUG", "DC-EAST", 1000, 1)
    again = await acts.draft_replenishment(DraftRun("r2"))
    assert again.replayed and again.orders == first.orders
    later = await acts.draft_replenishment(DraftRun("r3"))
    # r2's drafts are on order (their units are inbound from intake), so r3 orders only what
    # the new shipments made short: the MUG at DC-EAST.
    assert [o.number for o in later.orders] == ["R-r3-ACME-DC-EAST"]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT run_id, count(*) AS n FROM purchase_order GROUP BY run_id"))
        counts = {r.run_id: r.n for r in rows}
    assert counts == {"r2": 2, "r3": 1}


async def test_a_second_run_waits_for_the_first_to_commit_and_drafts_nothing_on_top(
    engine: AsyncEngine, settings: Settings
) -> None:
    await replenishment_world(engine)
    async with engine.connect() as holder:
        first = await holder.begin()
        await store.claim_run(holder, "r9")  # the first run: claimed, its transaction still open
        second = asyncio.ensure_future(activities(engine, settings).draft_replenishment(DraftRun("r9")))
        await asyncio.sleep(0.5)
        assert not second.done()  # blocked on the run's row, not drafting beside the first
        await store.set_run(holder, "r9", "drafted", DraftedRun("r9", 0, []))
        await first.commit()
    answer = await asyncio.wait_for(second, 10)
    assert answer.replayed and answer.orders == []
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM purchase_order"))).scalar() == 0
