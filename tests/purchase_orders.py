"""Helpers for purchase-order tests (the ledger of a ref is tests.orders.ledger): a supplier with terms, a PO recorded and its workflow
started as the API does, and waiting for the PO to get somewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from models.purchase_orders import PoIntake, PoIntakeLine, insert_po
from runtime.settings import Settings
from workflows.contracts import (
    PoSnapshot,
    PurchaseOrderInput,
    PurchaseTolerances,
    purchase_order_workflow_id,
)
from workflows.purchase_order import PurchaseOrderWorkflow


async def add_supplier(engine: AsyncEngine, code: str = "ACME", *, lead_time_days: int = 5) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO supplier (code, name, lead_time_days, dropship) VALUES (:c, :c, :l, false)"),
            {"c": code, "l": lead_time_days},
        )


async def add_item(
    engine: AsyncEngine,
    sku: str,
    cost: int,
    *,
    supplier: str = "ACME",
    moq: int = 1,
    multiple: int = 1,
    inspect: bool = False,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO supplier_item (supplier, sku, cost, moq, order_multiple, currency, inspect)"
                " VALUES (:s, :k, :c, :m, :o, 'USD', :i)"
            ),
            {"s": supplier, "k": sku, "c": cost, "m": moq, "o": multiple, "i": inspect},
        )


def tolerances(settings: Settings) -> PurchaseTolerances:
    return PurchaseTolerances(
        settings.po_over_receipt_tolerance, settings.bill_quantity_tolerance, settings.bill_value_tolerance
    )


async def place_po(
    engine: AsyncEngine,
    client: Client,
    settings: Settings,
    number: str,
    lines: list[tuple[str, int, int]],  # (sku, qty, unit_cost)
    *,
    location: str = "DC-EAST",
    supplier: str = "ACME",
    approval: bool = False,
    policies: dict[str, Any] | None = None,
    history_limit: int = 2_000,
) -> WorkflowHandle[Any, PoSnapshot]:
    intake = PoIntake(
        number,
        supplier,
        location,
        "USD",
        datetime.now(UTC),
        "test",
        lines=[PoIntakeLine(*ln) for ln in lines],
    )
    async with engine.begin() as conn:
        assert await insert_po(conn, intake)
    inp = PurchaseOrderInput(
        number,
        intake.value,
        approval,
        {**settings.purchase_policies(), **(policies or {})},
        tolerances(settings),
        history_limit=history_limit,
    )
    return await client.start_workflow(
        PurchaseOrderWorkflow.run, inp, id=purchase_order_workflow_id(number), task_queue=settings.task_queue
    )


async def po_when(handle: WorkflowHandle[Any, Any], ready: Callable[[PoSnapshot], bool]) -> PoSnapshot:
    for _ in range(300):
        snap = await handle.query(PurchaseOrderWorkflow.snapshot)
        if snap is not None and ready(snap):
            return snap
        await asyncio.sleep(0.05)
    raise AssertionError(f"the purchase order never got there (last: {snap})")


async def open_exception_of(engine: AsyncEngine, number: str, kind: str) -> Any:
    for _ in range(200):
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT * FROM exception WHERE subject_type = 'purchase_order' AND subject_id = :n"
                        " AND kind = :k AND status = 'open'"
                    ),
                    {"n": number, "k": kind},
                )
            ).first()
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open {kind} exception for {number}")


async def once_open(handle: WorkflowHandle[Any, Any], update: Any, arg: Any) -> Any:
    """Send a decision as soon as the workflow has its exception open: the row is written by
    the activity a moment before the workflow applies its answer, and until then the waiter
    refuses (NotOpen, or WrongState for a PO not yet waiting). Other refusals raise."""
    for _ in range(200):
        try:
            return await handle.execute_update(update, arg)
        except WorkflowUpdateFailedError as err:
            if getattr(err.cause, "type", None) not in ("NotOpen", "WrongState"):
                raise
        await asyncio.sleep(0.02)
    raise AssertionError("the exception never opened in the workflow")
