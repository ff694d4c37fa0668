"""Placing and driving orders in workflow tests: the rows the API writes, then the workflow,
then the warehouse's updates, as a channel and a warehouse would."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from activities.orders import OrderActivities
from bench.common import NYC
from bench.sourcing import order_intake
from models.order_intake import IntakeLine, OrderIntake, insert_order
from runtime.settings import Settings
from tests.factories import receive, standard_catalog
from workflows.contracts import (
    ExceptionPolicyInput,
    OrderInput,
    OrderSnapshot,
    PackageIn,
    PackRequest,
    PickedLine,
    PickRequest,
    RecordOrder,
    ShipmentAnswer,
    ShipRequest,
    order_workflow_id,
)

GOOD_ADDRESS = NYC


async def place_order(
    engine: AsyncEngine,
    client: Client,
    settings: Settings,
    external_id: str,
    lines: list[tuple[str, int, int]],  # (sku, qty, unit_price)
    *,
    channel: str = "web",
    payment: str = "authorized",
    ship_to: dict[str, Any] | None = None,
    shipping: int = 500,
    tax: int = 0,
    customer: str = "cust-1",
    allow_backorder: bool = True,
    allow_split: bool = True,
    promise: str = "standard",
    billing: dict[str, Any] | None = None,
    policies: dict[str, Any] | None = None,
    aging_seconds: int | None = None,
    recheck_seconds: int | None = None,
    method: str = "card",
    search_attributes: TypedSearchAttributes | None = None,
) -> WorkflowHandle[Any, Any]:
    """`search_attributes`: those the run starts with (the API starts orders with
    api.order_start.sa_pairs)."""
    order_id = order_workflow_id(channel, external_id)
    merchandise = sum(q * p for _, q, p in lines)
    total = merchandise + shipping + tax
    intake = OrderIntake(
        order_id=order_id,
        channel=channel,
        external_id=external_id,
        customer_id=customer,
        customer_email="a@example.com",
        ship_to=GOOD_ADDRESS if ship_to is None else ship_to,
        billing_address=billing or None,
        promise=promise,
        allow_backorder=allow_backorder,
        allow_split=allow_split,
        currency="USD",
        shipping_amount=shipping,
        tax_amount=tax,
        payment_method=method,
        payment_reported=payment,
        payment_amount=total if payment != "pending" else 0,
        payment_reference="ref-1",
        request_hash=hashlib.sha256(external_id.encode()).hexdigest(),
        lines=[IntakeLine(sku, qty, price) for sku, qty, price in lines],
    )
    async with engine.begin() as conn:
        if not await insert_order(conn, intake):  # the rows the API writes (models.order_intake)
            raise AssertionError(f"order {order_id} was placed already")
    pol = settings.order_policies()
    pol.update(policies or {})
    return await client.start_workflow(
        "Order",
        OrderInput(
            order_id=order_id,
            channel=channel,
            value=total,
            policies=pol,
            backorder_aging_seconds=aging_seconds or settings.backorder_aging_seconds,
            backorder_recheck_seconds=recheck_seconds or settings.backorder_recheck_seconds,
        ),
        id=order_id,
        task_queue=settings.task_queue,
        search_attributes=search_attributes,
    )


async def snapshot(handle: WorkflowHandle[Any, Any]) -> OrderSnapshot:
    return await handle.query("snapshot", result_type=OrderSnapshot)


async def until(
    handle: WorkflowHandle[Any, Any], ok: Callable[[OrderSnapshot], bool], timeout: float = 10.0
) -> OrderSnapshot:
    """Poll the workflow's snapshot until `ok` (real time: activities run for real). A workflow
    not started yet (an exchange's order, started by its return a moment after it is named)
    is waited for like any other state."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await handle.query("snapshot", result_type=OrderSnapshot)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        if last is not None and ok(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"order never reached the state; last {last}")


async def open_exception(engine: AsyncEngine, order_id: str, kind: str, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM exception WHERE subject_id = :o AND kind = :k AND status = 'open'"),
                    {"o": order_id, "k": kind},
                )
            ).first()
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open {kind} exception for {order_id}")


async def fulfil(
    handle: WorkflowHandle[Any, Any], shipment_id: str, *, short: dict[str, int] | None = None
) -> OrderSnapshot:
    """Pick everything (less `short` units per SKU), pack it in one box, ship it."""
    snap = await snapshot(handle)
    shipment = next(s for s in snap.shipments if s.id == shipment_id)
    picked: dict[str, int] = {}
    for ln in shipment.lines:
        picked[ln.sku] = picked.get(ln.sku, 0) + ln.qty - (short or {}).get(ln.sku, 0)
    await handle.execute_update(
        "pick",
        PickRequest(shipment_id, [PickedLine(s, q) for s, q in picked.items()]),
        result_type=ShipmentAnswer,
    )
    if not any(picked.values()):
        return await snapshot(handle)
    await handle.execute_update(
        "pack",
        PackRequest(shipment_id, [PackageIn(1000, 300, 200, 100, {s: q for s, q in picked.items() if q})]),
        result_type=ShipmentAnswer,
    )
    shipped: ShipmentAnswer = await handle.execute_update(
        "ship", ShipRequest(shipment_id, "UPS", "ground", f"1Z{shipment_id[-6:]}"), result_type=ShipmentAnswer
    )
    assert (shipped.id, shipped.status, shipped.carrier) == (shipment_id, "shipped", "UPS")
    return await snapshot(handle)


# -- shared by the order workflow tests ----------------------------------------------------


async def stocked_shop(engine: AsyncEngine) -> AsyncEngine:
    """The standard catalog, with 10 TEE at DC-EAST and 10 MUG at DC-WEST."""
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-WEST", 10)
    return engine


async def recorded_tee_order(steps: OrderActivities, external_id: str, qty: int) -> str:
    """An order of `qty` TEE on web, no backorders, recorded by the real step (the rows the API
    writes, then `record_order`), not yet sourced."""
    intake = order_intake("web", external_id, "TEE", qty, allow_backorder=False)
    async with steps.engine.begin() as conn:
        assert await insert_order(conn, intake)
    await steps.record_order(RecordOrder(intake.order_id))
    return intake.order_id


async def ledger(engine: AsyncEngine, ref: str) -> dict[str, int]:
    """Account -> net (debit − credit) of the journal entries for `ref`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT l.account, sum(l.debit) - sum(l.credit) AS net FROM journal_line l JOIN journal_entry e"
                " ON e.id = l.entry_id WHERE e.ref = :r GROUP BY l.account"
            ),
            {"r": ref},
        )
        return {r.account: int(r.net) for r in rows}


def fast_policy(kind: str, default: str, limit: int = 1) -> dict[str, ExceptionPolicyInput]:
    """An exception policy for `kind` with a one-hour SLA, `limit` escalations, then `default`."""
    return {kind: ExceptionPolicyInput(sla_seconds=3600, max_escalations=limit, default_action=default)}


async def exception_row(engine: AsyncEngine, exception_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT * FROM exception WHERE id = :i"), {"i": exception_id})).one()
