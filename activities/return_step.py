"""The keyed step every return activity is made of (as activities.po_step is for purchase
orders): one transaction that locks the return row, finds out whether this step (its key
`rma-{number}:{step}`) has run, and otherwise lets the activity load → decide → write and
record the step's timeline event under that key. A person's step (its request carries an
`actor`) appends its audit row in the same transaction, with the return before and after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.keyed_step import KeyedStep, step_transaction
from domain import orders as order_rules
from domain import returns as rules
from domain.audit import Actor
from domain.errors import NotFound
from models import order_store as orders
from models import return_store as returns
from workflows.contracts import ReturnLineSnap, ReturnSnapshot, return_workflow_id

# an order that a return changes: its own workflow has finished with it (or is waiting)
ORDER_SETTLED = (
    order_rules.SHIPPED,
    order_rules.COMPLETED,
    order_rules.PARTIALLY_RETURNED,
    order_rules.RETURNED,
)


@dataclass
class ReturnStep(KeyedStep):
    audit_type: ClassVar[str] = "return"
    stock_kind: ClassVar[str] = "returns"
    conn: AsyncConnection
    ret: Any  # the sales_return row, locked
    key: str
    done: dict[str, Any] | None  # the step's recorded event detail, when it has run before
    lines: dict[str, Any]  # return_line rows by SKU
    before: ReturnSnapshot  # the return as the step found it (for the audit trail)

    @property
    def number(self) -> str:
        return str(self.ret.number)

    @property
    def ref(self) -> str:
        return return_workflow_id(self.number)

    async def reload(self) -> None:
        self.ret = await returns.lock_return(self.conn, self.number)
        self.lines = {r.sku: r for r in await returns.lines(self.conn, self.number)}

    async def snapshot(self) -> ReturnSnapshot:
        await self.reload()
        return _snapshot(self.ret, self.lines)

    async def audited(self, actor: Actor | None, action: str) -> ReturnSnapshot:
        """The snapshot the step answers, with a person's audit row (before → after)."""
        return await self.audited_as(actor, action, await self.snapshot())

    async def settle_status(self) -> str:
        """The return's status from its units, written (a return that ended keeps its status)."""
        await self.reload()
        if self.ret.status in rules.RETURN_DONE:
            return str(self.ret.status)
        parcel = [r for r in self.lines.values() if not r.keep]
        status = rules.return_status(
            authorized=self.ret.status != rules.REQUESTED,
            expected=sum(r.qty for r in parcel),
            received=sum(r.received for r in parcel),
            inspected=sum(r.inspected for r in parcel),
            settled=self.ret.settled_at is not None,
        )
        await returns.update_return(self.conn, self.number, status=status)
        return status

    async def record(self, event: str, **detail: Any) -> None:
        await returns.add_event(self.conn, self.number, self.key, event, detail)

    async def units(self, sku: str, qty: int) -> list[tuple[str, int]]:
        """The stock units `qty` of a return line are: a kit's components, else the SKU."""
        recipe = (await returns.components(self.conn, [sku])).get(sku)
        return [(c, n * qty) for c, n in recipe] if recipe else [(sku, qty)]

    async def mark_returned(self, units: dict[str, int]) -> None:
        """Order lines' returned units (order line -> units) and the order's status from them."""
        order_id = str(self.ret.order_id)
        order = await orders.lock_order(self.conn, order_id)
        for line, n in units.items():
            if n:
                await returns.add_returned(self.conn, order_id, line, n)
        if order is not None and order.status in ORDER_SETTLED:
            quantities = [orders.line_qty(r) for r in await orders.lines(self.conn, order_id)]
            settled = order.status != order_rules.SHIPPED
            status = order_rules.order_status_from_lines(quantities, False, settled=settled)
            await orders.set_status(self.conn, order_id, status)
        await orders.add_event(self.conn, order_id, None, "returned", {"return": self.number, "units": units})


def _snapshot(ret: Any, lines: dict[str, Any]) -> ReturnSnapshot:
    return ReturnSnapshot(
        str(ret.number),
        ret.status,
        [ReturnLineSnap(r.sku, r.qty, r.keep, r.received, r.inspected, r.credited) for r in lines.values()],
        ret.new_order or "",
        ret.settled_at is not None,
    )


@asynccontextmanager
async def return_step(engine: AsyncEngine, number: str, step: str) -> AsyncIterator[ReturnStep]:
    key = f"{return_workflow_id(number)}:{step}"
    async with step_transaction(engine, "return", step) as (conn, run):
        ret = await returns.lock_return(conn, number)
        if ret is None:
            raise NotFound(f"return {number} is not recorded")
        done = await returns.step_result(conn, key)
        run.found(step, done is not None)
        rows = {r.sku: r for r in await returns.lines(conn, number)}
        yield ReturnStep(conn, ret, key, done, rows, _snapshot(ret, rows))
