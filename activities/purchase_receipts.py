"""Receiving a purchase order: each receipt (keyed by its number) moves the units it brings
out of `inbound` into stock at the PO's cost (Inventory / GRNI into the moving average;
sellable units wake backorders through the arrival hook), inspected SKUs into quarantine;
a discrepancy (over beyond tolerance, damaged, short on a final receipt) is settled later by
a person. QC releases quarantined units or rejects them."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.po_step import PoStep, po_step
from domain import purchasing as rules
from domain.errors import InvalidRequest
from models import purchase_orders as pos
from models import stock
from workflows.contracts import (
    QC_PO,
    RECEIVE_PO,
    SETTLE_RECEIPT,
    Discrepancy,
    PoQc,
    PoReceive,
    PoReceived,
    PoSettleReceipt,
    PoSnapshot,
    ReceiptLine,
)


class ReceiptSteps:
    engine: AsyncEngine

    @RECEIVE_PO.implement
    async def receive_purchase_order(self, inp: PoReceive) -> PoReceived:
        receipt = inp.receipt
        async with po_step(self.engine, inp.number, f"receipt:{receipt.receipt}") as step:
            if step.done is not None:
                found = step.done.get("discrepancy")
                return PoReceived(await step.snapshot(), Discrepancy(**found) if found else None)
            received = [rules.ReceivedUnits(ln.sku, ln.qty_received, ln.qty_damaged) for ln in receipt.lines]
            check = rules.check_receipt(step.quantities(), received, inp.over_receipt, final=receipt.final)
            await step.move(
                "stock", [m for ln in receipt.lines for m in _receipt_moves(step, ln)], "po_receipt"
            )
            for ln in receipt.lines:
                row = step.lines[ln.sku]
                await step.write(
                    rules.apply_receipt(row.qty, ln.qty_received, ln.qty_damaged, inspect=row.inspect)
                )
            discrepancy = _discrepancy(step, receipt.receipt, check)
            lines = [asdict(ln) for ln in receipt.lines]
            found = asdict(discrepancy) if discrepancy else {}
            await pos.insert_receipt(
                step.conn,
                inp.number,
                receipt.receipt,
                "discrepancy" if discrepancy else "posted",
                lines,
                found,
            )
            status = await step.settle_status()
            await step.record(
                "received",
                receipt=receipt.receipt,
                lines=lines,
                discrepancy=found or None,
                by=receipt.received_by,
            )
            return PoReceived(await step.audited(receipt.actor, "receive", status), discrepancy)

    @SETTLE_RECEIPT.implement
    async def settle_receipt_discrepancy(self, inp: PoSettleReceipt) -> PoSnapshot:
        """Carry out the person's decision (domain.purchasing.settle_discrepancy) and close the
        exception in the same transaction."""
        d = inp.discrepancy
        async with po_step(self.engine, inp.number, f"settle:{d.receipt}") as step:
            if step.done is not None:
                return await step.snapshot()
            settled = rules.settle_discrepancy(inp.resolution.action, d.over, d.damaged, d.short)
            location = step.po.location
            moves = []
            for sku, n in settled.returned.items():
                over = min(n, d.over.get(sku, 0))
                kept_in = "quarantine" if step.lines[sku].inspect else "sellable"
                if over:
                    moves.append(stock.Move(sku, over, location, kept_in, "supplier", "virtual"))
                if n - over:
                    moves.append(stock.Move(sku, n - over, location, "damaged", "supplier", "virtual"))
            moves += [
                stock.Move(sku, n, location, "damaged", "scrap", "virtual")
                for sku, n in settled.scrapped.items()
            ]
            moves += [
                stock.Move(sku, n, location, "inbound", "supplier", "virtual")
                for sku, n in settled.closed.items()
            ]
            await step.move("settle", moves, f"discrepancy_{inp.resolution.action}")
            for sku in sorted({*settled.returned, *settled.closed}):
                q = step.lines[sku].qty
                over = min(settled.returned.get(sku, 0), d.over.get(sku, 0))
                quarantined = q.quarantined - over if step.lines[sku].inspect else q.quarantined
                await step.write(
                    replace(
                        q,
                        returned=q.returned + over,
                        quarantined=quarantined,
                        closed=q.closed + settled.closed.get(sku, 0),
                    )
                )
            await pos.set_receipt_status(step.conn, inp.number, d.receipt, "settled")
            await close_exception_row(step.conn, inp.resolution)
            status = await step.settle_status()
            await step.record(
                "discrepancy_settled",
                receipt=d.receipt,
                action=inp.resolution.action,
                by=inp.resolution.resolved_by,
                returned=settled.returned,
                scrapped=settled.scrapped,
                closed=settled.closed,
            )
            return await step.snapshot(status)

    @QC_PO.implement
    async def release_quarantine(self, inp: PoQc) -> PoSnapshot:
        """Passed units go to sellable (waking backorders); failed ones back to the supplier
        or to scrap."""
        async with po_step(self.engine, inp.number, inp.step) as step:
            if step.done is not None:
                return await step.snapshot()
            results = [rules.QcResult(ln.sku, ln.qty, ln.result, ln.disposition) for ln in inp.request.lines]
            rules.check_qc(step.quantities(), results)
            location = step.po.location
            moves = []
            for r in results:
                to = (
                    (location, "sellable")
                    if r.result == "pass"
                    else (("supplier" if r.disposition == "return_to_vendor" else "scrap"), "virtual")
                )
                moves.append(stock.Move(r.sku, r.qty, location, "quarantine", *to))
            await step.move("qc", moves, "qc")
            for r in results:
                q = step.lines[r.sku].qty
                step.lines[r.sku] = replace(
                    step.lines[r.sku],
                    qty=replace(
                        q,
                        quarantined=q.quarantined - r.qty,
                        rejected=q.rejected + (r.qty if r.result == "fail" else 0),
                    ),
                )
                await step.write(step.lines[r.sku].qty)
            status = await step.settle_status()
            await step.record("inspected", lines=[asdict(r) for r in results], by=inp.request.inspected_by)
            return await step.audited(inp.request.actor, "qc", status)


def _receipt_moves(step: PoStep, ln: ReceiptLine) -> list[stock.Move]:
    """The units leave `inbound` (as many as were still expected) and enter stock at the PO's
    cost: sellable, quarantine for an inspected SKU, damaged for damaged units."""
    row = step.lines.get(ln.sku)
    if row is None:
        raise InvalidRequest(f"{ln.sku} is not on this purchase order")
    expires_at = _expiry(ln)
    if row.tracking == "lot" and (not ln.lot or expires_at is None):
        raise InvalidRequest(f"{ln.sku} is lot-tracked: a receipt names its lot and expires_at")
    location, cost = step.po.location, row.qty.unit_cost
    moves = []
    from_inbound = min(ln.qty_received + ln.qty_damaged, row.qty.open)
    if from_inbound:
        moves.append(stock.Move(ln.sku, from_inbound, location, "inbound", "supplier", "virtual"))
    good_to = "quarantine" if row.inspect else "sellable"
    for status, units in ((good_to, ln.qty_received), ("damaged", ln.qty_damaged)):
        if units:
            moves.append(
                stock.Move(ln.sku, units, "supplier", "virtual", location, status, ln.lot, expires_at, cost)
            )
    return moves


def _expiry(ln: ReceiptLine) -> datetime | None:
    if not ln.expires_at:
        return None
    try:
        return datetime.fromisoformat(ln.expires_at)
    except ValueError as exc:
        raise InvalidRequest(f"{ln.sku}: expires_at is not a date and time") from exc


def _discrepancy(step: PoStep, receipt: str, check: rules.ReceiptCheck) -> Discrepancy | None:
    if not check.discrepancy:
        return None
    cost = {sku: row.qty.unit_cost for sku, row in step.lines.items()}
    at_risk = sum(
        (check.over.get(s, 0) + check.damaged.get(s, 0) + check.short.get(s, 0)) * cost[s] for s in cost
    )
    return Discrepancy(receipt, check.over, check.damaged, check.short, at_risk)
