"""The keyed step every order activity is made of: one transaction that locks the order row,
finds out whether this step (its key `{order_id}:{step}`) has already run and, if so, lets
the activity answer what it answered the first time; otherwise the activity decides (with
the domain's rules), writes, and records the step's timeline event under that key, whose
UNIQUE constraint makes the step's effects once-only.

    async with order_step(self.engine, order_id, key) as step:
        if step.done is not None:
            return ...  # from step.done and await step.snapshot()
        ...                               # load → decide → write
        view = await step.refresh()       # the order's status from its lines
        await step.record("picked", ...)  # the timeline event, keyed
        return view.snapshot()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.exceptions import ApplicationError

from activities.errors import business_outcomes
from activities.exceptions import count_closed
from activities.metrics import StepRun, counted_step
from domain import fulfilment
from domain import holds as hold_rules
from domain import orders as rules
from domain.audit import Actor
from domain.errors import InvalidStockChange
from models import audit as trail
from models import order_store as orders
from models import shipment_store as shipments
from workflows.contracts import (
    LineSnap,
    OrderChange,
    OrderSnapshot,
    ShipmentAnswer,
    ShipmentLineSnap,
    ShipmentSnap,
)


@dataclass
class OrderView:
    """One read of the order (order_store.ORDER_VIEW): what a step's status and snapshot are
    made of."""

    order_id: str
    status: str
    payment_status: str
    holding: bool  # a hold exception of the order is open
    lines: list[list[Any]]  # [line, sku, qty, reserved, backordered, shipped, cancelled, returned]
    shipments: list[list[Any]]  # [id, location, kind, status, [[line, sku, qty, picked], ...]]

    def quantities(self) -> list[rules.LineQty]:
        return [rules.LineQty(*ln[2:8]) for ln in self.lines]

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=self.order_id,
            status=self.status,
            payment_status=self.payment_status,
            lines=[LineSnap(*ln[:7]) for ln in self.lines],
            shipments=[
                ShipmentSnap(sid, location, kind, status, [ShipmentLineSnap(*sl) for sl in lines])
                for sid, location, kind, status, lines in self.shipments
            ],
        )

    def change(self, lines: Iterable[str]) -> OrderChange:
        """The order's status and, of its lines, those named (the ones a step changed)."""
        named = set(lines)
        snaps = [LineSnap(*ln[:7]) for ln in self.lines if ln[0] in named]
        return OrderChange(self.status, snaps, [], self.payment_status)


async def read_view(conn: AsyncConnection, order_id: str) -> OrderView:
    row = await orders.view(conn, order_id, hold_rules.HOLD_ORDER)
    return OrderView(order_id, row.status, row.payment_status, bool(row.holding), row.lines, row.shipments)


@dataclass
class OrderStep:
    conn: AsyncConnection
    order: Any  # the sales_order row, locked
    key: str
    done: dict[str, Any] | None  # the step's recorded event detail, when it has run before
    run: StepRun | None = None  # the steps this transaction runs, for omniflow_steps_total
    recorded: dict[str, Any] | None = None  # what `record` wrote under the key in this transaction

    @property
    def order_id(self) -> str:
        return str(self.order.id)

    async def snapshot(self) -> OrderSnapshot:
        return (await self.view()).snapshot()

    async def view(self) -> OrderView:
        return await read_view(self.conn, self.order_id)

    async def shipment(self, shipment_id: str) -> ShipmentAnswer:
        """The shipment as this transaction has left it, as its step route answers it."""
        return shipment_answer(await shipments.answer(self.conn, shipment_id))

    async def then(self, key: str) -> OrderStep:
        """The order's next keyed step in this same transaction (record, then source): its
        own key and record; the order row as this transaction has left it."""
        order, done = await orders.lock_order_at_step(self.conn, self.order_id, key)
        step = OrderStep(self.conn, order, key, done, self.run)
        if self.run is not None:  # counted with this transaction's outcome
            self.run.found(key.removeprefix(f"{self.order_id}:"), step.done is not None)
        return step

    async def refresh(self, *, on_hold: bool | None = None, write: bool = True) -> OrderView:
        """The order's status from its lines (domain.orders.order_status_from_lines), written
        to the read model; answers the order as it now stands. `on_hold` None: held while any
        hold exception of the order is open. `write` False: a step that may end the order
        writes it with `settle`, in one UPDATE of the order row instead of two; a step that
        records next writes it with its record (`record_status`)."""
        view = await read_view(self.conn, self.order_id)
        picking = any(shp[3] in fulfilment.IN_WAREHOUSE for shp in view.shipments)
        holding = view.holding if on_hold is None else on_hold
        settled = view.status == rules.COMPLETED
        view.status = rules.order_status_from_lines(
            view.quantities(), holding, picking=picking, settled=settled
        )
        if write:
            await orders.set_status(self.conn, self.order_id, view.status)
        return view

    async def settle(self, view: OrderView) -> str | None:
        """After `refresh(write=False)`: the order closes (`close_if_done`) or takes the
        status `refresh` computed. Answers the closing status, or None."""
        closed = await self.close_if_done(view)
        if closed is None:
            await orders.set_status(self.conn, self.order_id, view.status)
        return closed

    async def record(self, event: str, **detail: Any) -> None:
        """The step's timeline event, under its key: the record that it ran."""
        await orders.add_event(self.conn, self.order_id, self.key, event, detail)
        self.recorded = detail

    async def record_status(self, view: OrderView, event: str, **detail: Any) -> None:
        """After `refresh(write=False)`: the view's status written and the step's record, in
        one statement."""
        await orders.add_event_with_status(self.conn, self.order_id, self.key, event, detail, view.status)
        self.recorded = detail

    async def audit(
        self, actor: Actor | None, action: str, obj: tuple[str, str], before: Any, after: Any
    ) -> None:
        """A person's step (`actor`): its audit row, before → after, in this transaction under
        the step's key, so it commits with the change and a retry adds none."""
        target = trail.AuditObject(*obj)
        await trail.step(self.conn, actor, action, target, self.key, before=before, after=after)

    async def note(self, event: str, **detail: Any) -> None:
        """A timeline event that is not the step's record (it carries no key)."""
        await orders.add_event(self.conn, self.order_id, None, event, detail)

    async def write_line(self, line: str, q: rules.LineQty) -> None:
        if not q.check():
            raise InvalidStockChange(f"order line {line}: {', '.join(q.problems())}")
        await orders.write_line(self.conn, self.order_id, line, q)

    async def close_if_done(self, view: OrderView) -> str | None:
        """Every unit shipped or cancelled (`view`: the order as this transaction left it):
        the order is done in this same transaction — `completed` when something shipped
        (payment captured and posted by then), else `cancelled`; exceptions still open for it
        are withdrawn. Sets the view's status.

        The timeline says it once: a closing event (`completed` or `cancelled`, with the final
        status and the units shipped and cancelled) under the key `complete_order` uses, so
        either closes it once — unless the order had already ended before this step, or the
        step's own event already records the final status (a cancel that leaves nothing: its
        `cancelled` event says `status: cancelled`)."""
        lines = view.quantities()
        if not rules.nothing_open(lines):
            return None
        status = rules.COMPLETED if any(q.shipped for q in lines) else rules.CANCELLED
        await orders.close(self.conn, self.order_id, status)
        withdrawn = await orders.withdraw_exceptions(self.conn, self.order_id, f"order {status}")
        count_closed(self.conn, withdrawn, "cancelled")
        view.status = status
        # The step's own record: written in this transaction, or (a replay) found at its start.
        own = self.recorded if self.recorded is not None else self.done
        if self.order.status == status or (own or {}).get("status") == status:
            return status
        detail = {
            "status": status,
            "shipped": sum(q.shipped for q in lines),
            "cancelled": sum(q.cancelled for q in lines),
        }
        await orders.add_event(
            self.conn, self.order_id, f"{self.order_id}:complete", status, detail, once=True
        )
        return status


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def shipment_answer(row: Any) -> ShipmentAnswer:
    """A shipment row with its lines (shipment_store.answer, or a write that answers like it)
    as its step route answers it."""
    return ShipmentAnswer(
        id=row.id,
        location=row.location,
        kind=row.kind,
        status=row.status,
        lines=[ShipmentLineSnap(*ln) for ln in row.lines],
        promise=row.promise,
        supplier=row.supplier,
        carrier=row.carrier,
        service=row.service,
        tracking=row.tracking,
        packages=list(row.packages),
        created_at=_micros(row.created_at),
        updated_at=_micros(row.updated_at),
        shipped_at=_micros(row.shipped_at) if row.shipped_at is not None else None,
    )


def _micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


@asynccontextmanager
async def order_step(
    engine: AsyncEngine, order_id: str, key: str, *, refusals: bool = True
) -> AsyncIterator[OrderStep]:
    """One keyed step of an order, in one transaction. `refusals`: domain refusals leave as
    non-retryable ApplicationErrors (off for a caller that retries some of them itself)."""
    async with AsyncExitStack() as stack:
        run = await stack.enter_async_context(counted_step("order", key.removeprefix(f"{order_id}:")))
        if refusals:
            await stack.enter_async_context(business_outcomes())
        conn = await stack.enter_async_context(engine.begin())
        order, done = await orders.lock_order_at_step(conn, order_id, key)
        if order is None:
            raise ApplicationError(
                f"order {order_id} is not recorded", type="unknown_order", non_retryable=True
            )
        step = OrderStep(conn, order, key, done, run)
        run.found(key.removeprefix(f"{order_id}:"), step.done is not None)
        yield step
