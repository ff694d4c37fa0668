"""The vendor bill and its three-way match (domain.purchasing.match_bill): within the
tolerances it posts at once (GRNI at PO cost → AP at bill cost, the difference to purchase
price variance); outside them it waits for finance. Each invoice number posts once."""

from __future__ import annotations

from dataclasses import asdict, replace

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.po_step import PoStep, po_step
from domain import purchasing as rules
from domain.errors import WrongState
from domain.posting import lines_for
from models import purchase_orders as pos
from models.finance import Posting, post
from workflows.contracts import (
    BILL_PO,
    SETTLE_BILL,
    BillLine,
    BillMismatch,
    PoBill,
    PoBilled,
    PoSettleBill,
    PoSnapshot,
    PurchaseTolerances,
    VendorBillIn,
)


class BillSteps:
    engine: AsyncEngine

    @BILL_PO.implement
    async def match_vendor_bill(self, inp: PoBill) -> PoBilled:
        bill = inp.bill
        async with po_step(self.engine, inp.number, f"bill:{bill.invoice_number}") as step:
            lines = [asdict(ln) for ln in bill.lines]
            if step.done is not None:
                if step.done.get("lines") != lines:
                    raise WrongState(f"invoice {bill.invoice_number} was already entered with other lines")
                found = step.done.get("mismatch")
                return PoBilled(await step.snapshot(), BillMismatch(**found) if found else None)
            match = _match(step, bill, inp.tolerances)
            mismatches = [dict(m) for m in match.mismatches]
            status = "mismatch" if mismatches else "matched"
            total = sum(ln.qty * ln.unit_cost for ln in bill.lines)
            if not await pos.insert_bill(
                step.conn, step.po.supplier, bill.invoice_number, inp.number, status, lines, mismatches, total
            ):
                raise WrongState(f"invoice {bill.invoice_number} of {step.po.supplier} was already entered")
            mismatch = None
            if mismatches:
                mismatch = BillMismatch(bill.invoice_number, mismatches, total)
            else:
                await _post_bill(step, bill.invoice_number, match)
            await step.record(
                "billed" if mismatch is None else "bill_mismatch",
                invoice=bill.invoice_number,
                lines=lines,
                total=total,
                mismatches=mismatches,
                mismatch=asdict(mismatch) if mismatch else None,
            )
            return PoBilled(await step.audited(bill.actor, "bill"), mismatch)

    @SETTLE_BILL.implement
    async def settle_bill_mismatch(self, inp: PoSettleBill) -> PoSnapshot:
        """`accept`: post with the variance (never more units than the quantity rule allows);
        `dispute` / `reject`: post nothing, the bill is marked so."""
        invoice = inp.mismatch.invoice_number
        async with po_step(self.engine, inp.number, f"settle-bill:{invoice}") as step:
            if step.done is not None:
                return await step.snapshot()
            action = inp.resolution.action
            row = await pos.bill_of(step.conn, step.po.supplier, invoice)
            assert row is not None, "a mismatch is recorded with its bill"
            status = {"accept": "accepted", "dispute": "disputed", "reject": "rejected"}[action]
            total = 0
            if action == "accept":
                bill = VendorBillIn(invoice, [_bill_line(ln) for ln in row.lines])
                match = _match(step, bill, inp.tolerances)
                await _post_bill(step, invoice, match)
                total = match.total
            await pos.set_bill_status(step.conn, step.po.supplier, invoice, status, total or int(row.total))
            await close_exception_row(step.conn, inp.resolution)
            await step.record(
                "bill_settled", invoice=invoice, action=action, posted=total, by=inp.resolution.resolved_by
            )
            return await step.snapshot()


def _bill_line(raw: dict[str, int]) -> BillLine:
    return BillLine(str(raw["sku"]), int(raw["qty"]), int(raw["unit_cost"]))


def _match(step: PoStep, bill: VendorBillIn, tolerances: PurchaseTolerances) -> rules.Match:
    billed = [rules.BilledLine(ln.sku, ln.qty, ln.unit_cost) for ln in bill.lines]
    return rules.match_bill(step.quantities(), billed, tolerances.bill_quantity, tolerances.bill_value)


async def _post_bill(step: PoStep, invoice: str, match: rules.Match) -> None:
    postings: list[Posting] = []
    for ln in match.lines:
        amounts = {
            "received_value": ln.received_value,
            "price_variance": ln.price_variance,
            "billed": ln.billed,
        }
        postings += [
            Posting.of(p, location=step.po.location, sku=ln.sku) for p in lines_for("vendor_bill", amounts)
        ]
        q = step.lines[ln.sku].qty
        await step.write(replace(q, billed=q.billed + ln.qty), billed_value=ln.billed)
    await post(
        step.conn, f"{step.key}:post", "vendor_bill", postings, ref=step.ref, memo=f"invoice {invoice}"
    )
