"""Purchase-order steps before the goods arrive: record (units on order show in `inbound` at
once), send after approval, the supplier's confirmation (a lower confirmed quantity lowers
inbound), cancel (what has not been received leaves inbound) and close. Receipts, QC and
bills are in activities.purchase_receipts and activities.purchase_bills. Each is one keyed
step (activities.po_step): load → decide (domain.purchasing) → write."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.po_step import PoStep, po_step
from activities.purchase_bills import BillSteps
from activities.purchase_receipts import ReceiptSteps
from domain import purchasing as rules
from domain.errors import InvalidRequest, WrongState
from models import purchase_orders as pos
from models import stock
from workflows.contracts import (
    CANCEL_PO,
    CLOSE_PO,
    CONFIRM_PO,
    RECORD_PO,
    SEND_PO,
    PoCancel,
    PoClose,
    PoConfirm,
    PoDecision,
    PoRecord,
    PoRecorded,
    PoSnapshot,
    Resolution,
)


def _off_order(step: PoStep, sku: str, units: int) -> stock.Move:
    """Units no longer on order leave the location's `inbound` bucket (they arrived in it with
    the PO's intake, models.purchase_orders.insert_po)."""
    return stock.Move(sku, units, step.po.location, "inbound", "supplier", "virtual")


class PurchasingActivities(ReceiptSteps, BillSteps):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @RECORD_PO.implement
    async def record_purchase_order(self, inp: PoRecord) -> PoRecorded:
        """Send the PO at once unless it needs approval (its units went to `inbound` with
        its intake, models.purchase_orders.insert_po)."""
        async with po_step(self.engine, inp.number, "record") as step:
            if step.done is not None:
                return PoRecorded(await step.snapshot(), step.done.get("status") == rules.SENT)
            status = rules.AWAITING_APPROVAL if inp.approval_required else rules.SENT
            await pos.set_status(step.conn, inp.number, status)
            await step.record("sent" if status == rules.SENT else "awaiting_approval", status=status)
            return PoRecorded(await step.snapshot(status), status == rules.SENT)

    @SEND_PO.implement
    async def send_purchase_order(self, inp: PoDecision) -> PoSnapshot:
        """An approver approved: the PO goes to the supplier; the exception closes with it."""
        async with po_step(self.engine, inp.number, inp.step) as step:
            if step.done is None:
                if step.po.status != rules.AWAITING_APPROVAL:
                    raise WrongState(
                        f"purchase order {inp.number} is {step.po.status}, not awaiting approval"
                    )
                await pos.set_status(step.conn, inp.number, rules.SENT)
                await close_exception_row(step.conn, inp.resolution)  # with the approver's audit row
                await step.record("approved", by=inp.resolution.resolved_by, note=inp.resolution.note)
            return await step.snapshot(rules.SENT if step.done is None else None)

    @CANCEL_PO.implement
    async def cancel_purchase_order(self, inp: PoCancel) -> PoSnapshot:
        """Cancel what has not been received: its inbound units leave, the lines close."""
        async with po_step(self.engine, inp.number, inp.step) as step:
            if step.done is not None:
                return await step.snapshot()
            if step.po.status in rules.PO_DONE:
                raise WrongState(f"purchase order {inp.number} is {step.po.status}: nothing left to cancel")
            open_units = {sku: row.qty.open for sku, row in step.lines.items() if row.qty.open}
            if not open_units:
                raise WrongState(
                    f"purchase order {inp.number} has nothing left to receive: nothing to cancel"
                )
            await step.move(
                "cancel", [_off_order(step, sku, n) for sku, n in open_units.items()], "cancelled"
            )
            for sku, n in open_units.items():
                q = step.lines[sku].qty
                await step.write(replace(q, closed=q.closed + n))
            if inp.exception_id:
                req = inp.request
                resolution = Resolution(
                    inp.exception_id, "cancel", req.reason, req.requested_by, actor=req.actor
                )
                await close_exception_row(step.conn, resolution)  # the decision is the audit row
            status = await step.settle_status(cancelled=True)
            await pos.set_status(step.conn, inp.number, status, note=inp.request.reason[:500])
            await step.record(
                "cancelled", units=open_units, reason=inp.request.reason, by=inp.request.requested_by
            )
            return await step.audited(None if inp.exception_id else inp.request.actor, "cancel", status)

    @CONFIRM_PO.implement
    async def confirm_purchase_order(self, inp: PoConfirm) -> PoSnapshot:
        """The supplier confirms a quantity and a date per line; units it will not send leave
        inbound. Lines it does not name are confirmed as ordered."""
        async with po_step(self.engine, inp.number, "confirm") as step:
            if step.done is not None:
                return await step.snapshot()
            confirmed = {ln.sku: ln for ln in inp.confirmation.lines}
            rules.check_confirmation(step.quantities(), [(ln.sku, ln.qty) for ln in inp.confirmation.lines])
            leaving = []
            for sku, row in step.lines.items():
                line = confirmed.get(sku)
                qty = line.qty if line is not None else row.qty.qty
                if qty < row.qty.qty:
                    leaving.append(_off_order(step, sku, row.qty.qty - qty))
                await step.write(replace(row.qty, confirmed=qty))
                await pos.set_promised(step.conn, inp.number, sku, _when(line.promised_at if line else ""))
            await step.move("confirm", leaving, "confirmed_below_order")
            status = await step.settle_status()
            await step.record(
                "confirmed",
                lines={ln.sku: ln.qty for ln in inp.confirmation.lines},
                by=inp.confirmation.confirmed_by,
            )
            return await step.audited(inp.confirmation.actor, "confirm", status)

    @CLOSE_PO.implement
    async def close_purchase_order(self, inp: PoClose) -> PoSnapshot:
        async with po_step(self.engine, inp.number, "close") as step:
            if step.done is None:
                if not rules.ready_to_close(list(step.quantities().values()), inp.bill_quantity):
                    raise WrongState(
                        f"purchase order {inp.number} still has units to receive, inspect or bill"
                    )
                await pos.set_status(step.conn, inp.number, rules.CLOSED)
                await step.record("closed")
            return await step.snapshot(rules.CLOSED)


def _when(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"promised_at is not a date and time: {value!r}") from exc
