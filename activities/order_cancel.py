"""Cancelling an order's unshipped units (releasing their reservations, shrinking their
shipments, refunding or voiding the money) and closing an order that has nothing left."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.order_payments import restore_store_credit
from activities.order_step import OrderStep, order_step, read_view
from domain import orders as rules
from domain.errors import WrongState
from models import order_store as orders
from models import shipment_store as shipments
from models import stock
from models.availability import lock_skus_with_components
from models.payments import PaymentGateway, refund_payment, void_payment
from workflows.contracts import (
    CANCEL_ORDER,
    COMPLETE_ORDER,
    CancelOrder,
    CompleteOrder,
    OrderSnapshot,
    Resolution,
)


class CancelSteps:
    engine: AsyncEngine
    gateway: PaymentGateway

    @CANCEL_ORDER.implement
    async def cancel_order(self, inp: CancelOrder) -> OrderSnapshot:
        """Cancel units that have not shipped (all of them, or `request.lines`): release their
        reservations, shrink or cancel their shipments, and settle the money — refund what
        was captured for them, or void an untouched authorization when nothing is left."""
        req = inp.request
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:{inp.step}") as step:
            if step.done is not None:
                return await step.snapshot()
            lines = await orders.lines(step.conn, inp.order_id)
            by_line = {r.line: r for r in lines}
            qty = {r.line: orders.line_qty(r) for r in lines}
            cancel = rules.units_to_cancel(inp.order_id, step.order.status, qty, req.lines)
            await lock_skus_with_components(step.conn, [r.sku for r in lines])
            new = {line: qty[line].cancel(n) for line, n in cancel.items()}
            await self._release_cancelled(
                step, {line: by_line[line].reserved - q.reserved for line, q in new.items()}
            )
            for line, q in new.items():
                await step.write_line(line, q)
            refund, settled = await self._settle_cancel(step, lines, cancel)
            if inp.exception_id:  # a decision: its audit row is the exception's
                decision = Resolution(
                    inp.exception_id, "cancel", req.reason, req.requested_by, actor=req.actor
                )
                await close_exception_row(step.conn, decision)
            view = await step.refresh(write=False)
            await step.record(
                "cancelled",
                lines=cancel,
                reason=req.reason,
                by=req.requested_by,
                refund=refund,
                payment=settled,
                status=view.status,
            )
            await step.settle(view)
            after = view.snapshot()
            if not inp.exception_id:
                before = {"status": step.order.status, "lines": {r.line: asdict(qty[r.line]) for r in lines}}
                await step.audit(req.actor, "cancel", ("order", inp.order_id), before, after)
            return after

    async def _release_cancelled(self, step: OrderStep, to_release: dict[str, int]) -> None:
        """Take the cancelled reserved units off the open shipments, least advanced first,
        releasing their reservations; a shipment left with nothing is cancelled."""
        rank = {"requested": 0, "allocated": 0, "picked": 1, "packed": 2}
        open_shipments = [s for s in await shipments.of_order(step.conn, step.order_id) if s.status in rank]
        for shipment in sorted(open_shipments, key=lambda s: (rank[s.status], s.id)):
            take: dict[str, int] = {}
            for ln in shipment.lines:
                n = min(to_release.get(ln.line, 0), ln.qty)
                if n > 0:
                    take[ln.line] = n
                    to_release[ln.line] -= n
                    await shipments.take_units(step.conn, shipment.id, ln.line, n)
            if not take:
                continue
            if shipment.kind == "stock":
                key = f"{step.key}:release:{shipment.id}"
                await stock.release(step.conn, key, shipment.reservation, take, ref=step.order_id)
            if await shipments.units_left(step.conn, shipment.id) == 0:
                await shipments.set_status(step.conn, shipment.id, "cancelled")

    async def _settle_cancel(
        self, step: OrderStep, lines: list[Any], cancel: dict[str, int]
    ) -> tuple[int, str]:
        """Refund what was captured for the cancelled units, or void an untouched
        authorization when the whole order is cancelled. Answers (refunded, how settled)."""
        order, conn, key = step.order, step.conn, step.key
        priced = [rules.PricedLine(r.line, r.qty, r.unit_price) for r in lines]
        money = rules.cancel_refund_amounts(
            priced, cancel, order.shipping_amount, order.tax_amount, {r.line: r.cancelled for r in lines}
        )
        everything = not any(r.shipped for r in lines) and all(
            orders.line_qty(r).open == cancel.get(r.line, 0) for r in lines
        )
        if order.payment_method == "store_credit" and order.captured > 0 and money.total > 0:
            restored = await restore_store_credit(
                conn, order, key, money.merchandise, money.shipping, money.tax
            )
            await orders.set_payment_status(
                conn, order.id, "refunded" if everything else "partially_refunded"
            )
            return restored, "store_credit"
        if order.payment_id and order.payment_reported == "captured" and money.total > 0:
            await refund_payment(
                conn, self.gateway, f"{key}:refund", order.payment_id, money.total, channel=order.channel
            )
            await orders.set_payment_status(
                conn, order.id, "refunded" if everything else "partially_refunded"
            )
            return money.total, "refunded"
        if order.payment_id and order.payment_status == "authorized" and order.captured == 0 and everything:
            await void_payment(conn, self.gateway, f"{key}:void", order.payment_id)
            await orders.set_payment_status(conn, order.id, "voided")
            return 0, "voided"
        return 0, "none"

    @COMPLETE_ORDER.implement
    async def complete_order(self, inp: CompleteOrder) -> OrderSnapshot:
        """Every unit shipped or cancelled: the order is done (completed, or cancelled when
        nothing shipped). Any exception still open for it is withdrawn."""
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:complete") as step:
            view = await read_view(step.conn, inp.order_id)
            if step.done is None and await step.close_if_done(view) is None:
                raise WrongState(f"order {inp.order_id} still has units to ship")
            return view.snapshot()
