"""The keyed step every purchase-order activity is made of (as activities.order_step is for
orders): one transaction that locks the PO row, finds out whether this step (its key
`po-{number}:{step}`) has run, and otherwise lets the activity load → decide → write and
record the step's timeline event under that key. A person's step (its request carries an
`actor`) appends its audit row in the same transaction, with the PO before and after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.keyed_step import KeyedStep, step_transaction
from domain import purchasing as rules
from domain.audit import Actor
from domain.errors import NotFound
from models import purchase_orders as pos
from workflows.contracts import PoLineSnap, PoSnapshot, purchase_order_workflow_id


@dataclass
class PoStep(KeyedStep):
    audit_type: ClassVar[str] = "purchase_order"
    stock_kind: ClassVar[str] = "purchasing"
    conn: AsyncConnection
    po: Any  # the purchase_order row, locked
    key: str
    done: dict[str, Any] | None  # the step's recorded event detail, when it has run before
    lines: dict[str, pos.PoLineRow]
    before: PoSnapshot  # the PO as the step found it (for the audit trail)

    @property
    def number(self) -> str:
        return str(self.po.number)

    @property
    def ref(self) -> str:
        return purchase_order_workflow_id(self.number)

    def quantities(self) -> dict[str, rules.PoLineQty]:
        return {sku: row.qty for sku, row in self.lines.items()}

    async def reload(self) -> None:
        self.lines = await pos.lines(self.conn, self.number, self.po.supplier)

    async def snapshot(self, status: str | None = None) -> PoSnapshot:
        await self.reload()
        return PoSnapshot(
            self.number, status or self.po.status, [_snap(row.qty) for row in self.lines.values()]
        )

    async def audited(self, actor: Actor | None, action: str, status: str | None = None) -> PoSnapshot:
        """The snapshot the step answers, with a person's audit row (before → after)."""
        return await self.audited_as(actor, action, await self.snapshot(status))

    async def write(self, q: rules.PoLineQty, *, billed_value: int = 0) -> None:
        await pos.write_line(self.conn, self.number, q, billed_value=billed_value)

    async def settle_status(self, *, cancelled: bool = False) -> str:
        """The PO's status from its lines, written (a closed or cancelled PO keeps its status)."""
        if self.po.status in rules.PO_DONE:
            return str(self.po.status)
        await self.reload()
        status = rules.po_status(
            list(self.quantities().values()),
            sent=self.po.sent_at is not None or self.po.status != rules.DRAFT,
            confirmed=any(row.qty.confirmed is not None for row in self.lines.values()),
            cancelled=cancelled,
        )
        if status == rules.SENT and self.po.status == rules.AWAITING_APPROVAL:
            status = rules.AWAITING_APPROVAL
        await pos.set_status(self.conn, self.number, status)
        return status

    async def record(self, event: str, **detail: Any) -> None:
        await pos.add_event(self.conn, self.number, self.key, event, detail)


def _snap(q: rules.PoLineQty) -> PoLineSnap:
    return PoLineSnap(
        q.sku,
        q.qty,
        q.unit_cost,
        q.confirmed,
        q.received,
        q.damaged,
        q.quarantined,
        q.rejected,
        q.returned,
        q.closed,
        q.billed,
    )


@asynccontextmanager
async def po_step(engine: AsyncEngine, number: str, step: str) -> AsyncIterator[PoStep]:
    key = f"{purchase_order_workflow_id(number)}:{step}"
    async with step_transaction(engine, "purchase_order", step) as (conn, run):
        po = await pos.lock_po(conn, number)
        if po is None:
            raise NotFound(f"purchase order {number} is not recorded")
        done = await pos.step_result(conn, key)
        run.found(step, done is not None)
        lines = await pos.lines(conn, number, po.supplier)
        before = PoSnapshot(number, po.status, [_snap(row.qty) for row in lines.values()])
        yield PoStep(conn, po, key, done, lines, before)
