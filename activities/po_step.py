"""The keyed step every purchase-order activity is made of (as activities.order_step is for
orders): one transaction that locks the PO row, finds out whether this step (its key
`po-{number}:{step}`) has run, and otherwise lets the activity load → decide → write and
record the step's timeline event under that key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.errors import business_outcomes
from domain import purchasing as rules
from domain.errors import NotFound
from models import purchase_orders as pos
from models import stock
from workflows.contracts import PoLineSnap, PoSnapshot, purchase_order_workflow_id


@dataclass
class PoStep:
    conn: AsyncConnection
    po: Any  # the purchase_order row, locked
    key: str
    done: dict[str, Any] | None  # the step's recorded event detail, when it has run before
    lines: dict[str, pos.PoLineRow]

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

    async def move(self, step: str, moves: list[stock.Move], reason: str) -> None:
        """Stock moves of this step, keyed under it (once, however often the step runs)."""
        if moves:
            await stock.apply_moves(
                self.conn, f"{self.key}:{step}", "purchasing", moves, reason=reason, ref=self.ref
            )


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
    async with business_outcomes(), engine.begin() as conn:
        po = await pos.lock_po(conn, number)
        if po is None:
            raise NotFound(f"purchase order {number} is not recorded")
        done = await pos.step_result(conn, key)
        yield PoStep(conn, po, key, done, await pos.lines(conn, number, po.supplier))
