"""Replenishment's two steps: draft the run's purchase orders (one transaction, keyed by the
run id), then start each PO's workflow (holding a Temporal client, like the backorder
dispatcher)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.replenishment import DraftOrder, Factors, draft_orders, suggest_all
from models.purchase_orders import PoIntake, PoIntakeLine, insert_po
from models.replenishment import claim_run, load_inputs, set_run
from runtime.logging import get_logger
from runtime.settings import Settings
from workflows import search_attributes as sa
from workflows.contracts import (
    DRAFT_REPLENISHMENT,
    PURCHASE_ORDER_WORKFLOW,
    START_REPLENISHMENT_ORDERS,
    DraftedPo,
    DraftedRun,
    DraftRun,
    OrdersStarted,
    PurchaseOrderInput,
    PurchaseTolerances,
    StartOrders,
    purchase_order_workflow_id,
)

log = get_logger("omniflow.replenishment")


def drafted_from(result: dict[str, Any]) -> DraftedRun:
    return DraftedRun(
        run_id=result["run_id"],
        suggestions=int(result["suggestions"]),
        orders=[DraftedPo(**o) for o in result.get("orders", [])],
        replayed=True,
    )


def intake_of(order: DraftOrder, run_id: str, now: datetime) -> PoIntake:
    lines = [PoIntakeLine(ln.sku, ln.qty, ln.unit_cost) for ln in order.lines]
    body = json.dumps([asdict(ln) for ln in order.lines], sort_keys=True)
    return PoIntake(
        number=order.number,
        supplier=order.supplier,
        location=order.location,
        currency=order.currency,
        expected_at=now + timedelta(days=order.lead_time_days),
        request_hash=hashlib.sha256(body.encode()).hexdigest(),
        source="replenishment",
        run_id=run_id,
        lines=lines,
    )


class ReplenishmentActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings, client: Client) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client

    @DRAFT_REPLENISHMENT.implement
    async def draft_replenishment(self, inp: DraftRun) -> DraftedRun:
        """Claim the run, compute every suggestion, write a draft PO per supplier and
        location: one transaction, so the POs exist exactly when the run says `drafted`."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            run = await claim_run(conn, inp.run_id)
            if run.status != "running":
                return drafted_from(dict(run.result))
            data = await load_inputs(conn, self.settings.replenishment_demand_days, now.date())
            suggestions = suggest_all(
                data.points,
                data.shipped,
                self.settings.replenishment_demand_days,
                Factors(data.factors),
                data.options,
                now.date(),
            )
            orders = draft_orders(suggestions, inp.run_id)
            for order in orders:
                await insert_po(conn, intake_of(order, inp.run_id, now))
            drafted = DraftedRun(
                inp.run_id,
                sum(1 for s in suggestions if s.suggested_qty > 0),
                [
                    DraftedPo(o.number, o.supplier, o.location, o.currency, o.value, len(o.lines))
                    for o in orders
                ],
            )
            await set_run(conn, inp.run_id, "drafted", drafted)
        log.info("replenishment drafted", run_id=inp.run_id, orders=len(orders))
        return drafted

    @START_REPLENISHMENT_ORDERS.implement
    async def start_replenishment_orders(self, inp: StartOrders) -> OrdersStarted:
        """Start each drafted PO's workflow (an existing one is kept), then mark the run done."""
        s = self.settings
        tolerances = PurchaseTolerances(
            s.po_over_receipt_tolerance, s.bill_quantity_tolerance, s.bill_value_tolerance
        )
        for order in inp.orders:
            po_input = PurchaseOrderInput(
                number=order.number,
                value=order.value,
                approval_required=True,  # a person approves what a machine proposed
                policies=s.purchase_policies(),
                tolerances=tolerances,
            )
            # A PO whose workflow ran and finished already is never started a second time.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await self.client.start_workflow(
                    PURCHASE_ORDER_WORKFLOW,
                    po_input,
                    id=purchase_order_workflow_id(order.number),
                    task_queue=s.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, "draft")]),
                )
            activity.heartbeat(order.number)
        async with self.engine.begin() as conn:
            await set_run(conn, inp.run_id, "done")
        log.info("replenishment orders started", run_id=inp.run_id, orders=len(inp.orders))
        return OrdersStarted(inp.run_id, len(inp.orders))
