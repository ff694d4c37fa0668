"""What a return gives back, in one keyed step (`settle_return`): the credit of the units
(merchandise and tax share, domain.returns.credit_for) less the fees, as the outcome says:
a refund through the payment gateway (never more than captured − refunded), store credit
(a liability, with the bonus), an exchange's difference (charged or refunded) or nothing
(a replacement). Over the threshold the workflow asks `refund_approval` first: the step
answers `needs_approval` without paying, and is asked again with the decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.return_step import ReturnStep, return_step
from domain import returns as rules
from domain.posting import lines_for, store_credit_amounts
from models import order_store
from models import return_store as returns
from models.finance import Posting, post
from models.payments import CaptureSplit, PaymentGateway, authorize_payment, capture_payment, refund_payment
from workflows.contracts import SETTLE_RETURN, Settlement, SettleReturn


@dataclass(frozen=True)
class Due:
    units: dict[str, int]  # return line (SKU) -> units credited now
    credit: dict[str, int]  # return line -> credit (merchandise + tax share)
    tax: int
    fees: dict[str, int]  # return line -> fee charged now

    @property
    def total(self) -> int:
        return sum(self.credit.values())

    @property
    def fee(self) -> int:
        return min(self.total, sum(self.fees.values()))

    @property
    def paid(self) -> int:
        return self.total - self.fee

    def tax_of(self, amount: int) -> int:
        """The tax in `amount` of the credit (all of it for the whole credit)."""
        return self.tax * amount // self.total if self.total else 0


class ReturnMoney:
    engine: AsyncEngine
    gateway: PaymentGateway

    @SETTLE_RETURN.implement
    async def settle_return(self, inp: SettleReturn) -> Settlement:
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is not None:
                return Settlement(await step.snapshot(), int(step.done.get("amount", 0)))
            due = await _due(step, inp.scope)
            outcome = str(step.ret.outcome)
            amount = await _amount(step, due, outcome, inp)
            approval = outcome == rules.REFUND or (outcome == rules.EXCHANGE and amount < 0)
            if (
                inp.decision == ""
                and approval
                and rules.needs_refund_approval(abs(amount), inp.approval_over)
            ):
                return Settlement(await step.snapshot(), amount, needs_approval=True)
            declined = inp.decision == "declined"
            if inp.resolution is not None:
                await close_exception_row(step.conn, inp.resolution)
            paid = 0 if declined else await self._pay(step, due, outcome, amount, inp)
            await _credit_units(step, due, inp, paid)
            event = (
                "refund_declined"
                if declined
                else {rules.STORE_CREDIT: "store_credit_issued"}.get(outcome, "refunded")
            )
            if outcome in (rules.EXCHANGE, rules.REPLACEMENT) and not declined:
                event = "exchange_settled" if outcome == rules.EXCHANGE else "replacement_settled"
            by = inp.resolution.resolved_by if inp.resolution else ""
            await step.record(event, amount=paid, scope=inp.scope, credit=due.total, fee=due.fee, by=by)
            await step.settle_status()
            return Settlement(await step.snapshot(), paid)

    async def _pay(self, step: ReturnStep, due: Due, outcome: str, amount: int, inp: SettleReturn) -> int:
        order = await order_store.lock_order(step.conn, str(step.ret.order_id))
        if order is None or amount == 0:
            return 0
        if outcome == rules.STORE_CREDIT:
            return await _issue_credit(step, order, due, inp.bonus_percent)
        if order.payment_method == "store_credit" and outcome == rules.REFUND:
            return await _issue_credit(step, order, due, 0)  # paid with credit: refunded as credit
        if amount > 0 and outcome == rules.EXCHANGE:  # the new order costs more: the customer pays it
            return await _charge(self, step, amount)
        refundable = await order_store.refundable(step.conn, order.payment_id)
        refund = min(abs(amount), refundable)
        if refund <= 0:
            return 0
        event = "keep_item_refund" if inp.scope == "keep" else "refund"
        tax = due.tax_of(refund)
        await refund_payment(
            step.conn,
            self.gateway,
            f"{step.key}:refund",
            order.payment_id,
            refund,
            channel=order.channel,
            event=event,
            tax=tax,
        )
        await _post_fee(step, order, due, tax)
        await returns.add_to_return(step.conn, step.number, refunded=refund)
        status = "refunded" if refund == refundable else "partially_refunded"  # as a cancel's refund says
        await order_store.set_payment_status(step.conn, order.id, status)
        return -refund if outcome == rules.EXCHANGE else refund


async def _due(step: ReturnStep, scope: str) -> Due:
    """The units to credit now and what they are worth: the credit telescopes over what the
    order's other returns (and this one, before) credited on the same order lines."""
    units = {
        sku: (r.qty if scope == "keep" else r.received) - r.credited
        for sku, r in step.lines.items()
        if r.keep == (scope == "keep")
    }
    units = {sku: n for sku, n in units.items() if n > 0}
    order_id = str(step.ret.order_id)
    order = await order_store.lock_order(step.conn, order_id)
    order_lines = await returns.order_lines(step.conn, order_id)
    before = await returns.credited_before(step.conn, order_id, step.number)
    for r in step.lines.values():
        before[r.order_line] = before.get(r.order_line, 0) + r.credited
    credit, tax, fees = {}, 0, {}
    for sku, n in units.items():
        row = step.lines[sku]
        c = rules.credit_for(order_lines, int(order.tax_amount) if order else 0, {row.order_line: n}, before)
        credit[sku], tax = c.total, tax + c.tax
        fees[sku] = min(c.total, int(row.fee)) if row.credited == 0 else 0
    return Due(units, credit, tax, fees)


async def _amount(step: ReturnStep, due: Due, outcome: str, inp: SettleReturn) -> int:
    """What moves: the refund or credit, an exchange's difference (> 0 charged, < 0
    refunded; with the last settlement only), nothing for a replacement."""
    if outcome == rules.REPLACEMENT:
        return 0
    if outcome != rules.EXCHANGE:
        return due.paid
    if not inp.final:
        return 0
    value = rules.order_value(step.ret.new_order_lines)
    credited = int(step.ret.credit) - sum(int(r.fee) for r in step.lines.values() if r.credited)
    return rules.exchange_difference(credited + due.paid, value)


async def _credit_units(step: ReturnStep, due: Due, inp: SettleReturn, paid: int) -> None:
    for sku, n in due.units.items():
        row = step.lines[sku]
        share = due.credit[sku] - due.fees[sku]
        await returns.update_line(
            step.conn, step.number, sku, credited=row.credited + n, refund_amount=row.refund_amount + share
        )
    if inp.scope == "keep":  # nothing comes back: the units count as returned now
        await step.mark_returned({step.lines[sku].order_line: n for sku, n in due.units.items()})
    await returns.add_to_return(step.conn, step.number, credit=due.total)
    if inp.final:
        await returns.stamp(step.conn, step.number, "settled_at")


async def _post_fee(step: ReturnStep, order: Any, due: Due, refunded_tax: int) -> None:
    """The fee kept is revenue of its own: out of sales returns, into return fee revenue,
    less its tax (which stays payable). Sales returns then show the merchandise returned."""
    if due.fee <= 0 or due.total <= 0:
        return
    fee_net = due.fee - (due.tax - refunded_tax)
    lines = [Posting.of(ln, channel=order.channel) for ln in lines_for("return_fee", {"fee": fee_net})]
    await post(step.conn, f"{step.key}:fee", "return_fee", lines, ref=str(order.id), currency=order.currency)


async def _issue_credit(step: ReturnStep, order: Any, due: Due, bonus_percent: int) -> int:
    """Store credit: the customer's balance grows by the credit (and its bonus); the books
    move it from sales and tax to the store credit liability."""
    paid = due.paid
    bonus = rules.store_credit_bonus(paid, bonus_percent)
    customer, currency = str(order.customer_id), str(order.currency)
    await returns.credit_entry(
        step.conn, f"{step.key}:issued", customer, currency, paid, "issued", step.number
    )
    if bonus:
        await returns.credit_entry(
            step.conn, f"{step.key}:bonus", customer, currency, bonus, "bonus", step.number
        )
    tax = due.tax_of(paid)
    amounts = store_credit_amounts(paid - tax, tax, bonus)
    lines = [Posting.of(ln, channel=order.channel) for ln in lines_for("store_credit_issued", amounts)]
    await post(
        step.conn,
        f"{step.key}:store_credit",
        "store_credit_issued",
        lines,
        ref=str(order.id),
        currency=currency,
    )
    await _post_fee(step, order, due, tax)
    await returns.add_to_return(step.conn, step.number, store_credit=paid + bonus)
    return paid + bonus


async def _charge(money: ReturnMoney, step: ReturnStep, amount: int) -> int:
    """Charge the customer on the promised order (the exchange's difference, or the whole
    order when the parcel never came): authorized and captured at once, revenue."""
    order_id = str(step.ret.new_order)
    payment_id = await authorize_payment(
        step.conn, money.gateway, f"{step.key}:authorize", order_id, "card", amount, str(step.ret.currency)
    )
    await capture_payment(
        step.conn,
        money.gateway,
        f"{step.key}:capture",
        payment_id,
        amount,
        CaptureSplit(revenue=amount, shipping=0, tax=0),
        channel=str(step.ret.channel),
    )
    await returns.add_to_return(step.conn, step.number, charged=amount)
    return amount


async def charge_for_exchange(money: ReturnMoney, step: ReturnStep) -> int:
    """An instant exchange or replacement shipped and nothing came back: the customer pays
    for what they were sent."""
    if step.ret.outcome == rules.REPLACEMENT:  # sent at no charge: they pay what the units sold for
        value = sum(int(r.qty) * int(r.unit_price) for r in step.lines.values())
    else:
        value = rules.order_value(step.ret.new_order_lines)
    return await _charge(money, step, value) if value > 0 else 0
