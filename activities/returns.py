"""Return steps: record (authorized at once, or waiting for approval), the approver's
decision, holding the units of an exchange or replacement order, placing that order, the
parcel's receipt (customer → `returns`, at the cost the units left with), the inspection
(each disposition's move and posting) and the end (held units go back). The money is in
activities.return_money. Each is one keyed step (activities.return_step): load → decide
(domain.returns) → write."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.return_money import ReturnMoney, charge_for_exchange
from activities.return_step import ReturnStep, return_step
from domain import returns as rules
from domain.errors import InvalidRequest, ReservationShortage, WrongState
from models import order_intake, order_store, stock
from models import return_store as returns
from models.payments import PaymentGateway
from workflows.contracts import (
    DECIDE_RETURN,
    END_RETURN,
    HOLD_NEW_ORDER,
    INSPECT_UNITS,
    PLACE_NEW_ORDER,
    RECEIVE_PARCEL,
    RECORD_RETURN,
    DecideReturn,
    EndReturn,
    HoldNewOrder,
    InspectUnits,
    PlacedOrder,
    PlaceNewOrder,
    ReceiveParcel,
    RecordReturn,
    ReturnSnapshot,
    order_workflow_id,
)


def new_order_id(channel: str, number: str) -> str:
    """The exchange or replacement order a return promises: a business key of its own."""
    return order_workflow_id(channel, f"RMA-{number}")


class ReturnActivities(ReturnMoney):
    def __init__(self, engine: AsyncEngine, gateway: PaymentGateway) -> None:
        self.engine = engine
        self.gateway = gateway

    @RECORD_RETURN.implement
    async def record_return(self, inp: RecordReturn) -> ReturnSnapshot:
        """Authorized at once within policy; otherwise it waits for an approver."""
        async with return_step(self.engine, inp.number, "record") as step:
            if step.done is None:
                if step.ret.needs_approval:
                    await step.record("requested", reasons=step.ret.approval_reasons)
                else:
                    await returns.update_return(step.conn, inp.number, status=rules.AUTHORIZED)
                    await step.record("authorized", by="policy")
                    await step.settle_status()
            return await step.snapshot()

    @DECIDE_RETURN.implement
    async def decide_return(self, inp: DecideReturn) -> ReturnSnapshot:
        """An approver's decision on a return outside policy; the exception closes with it."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is None:
                if step.ret.status != rules.REQUESTED:
                    raise WrongState(f"return {inp.number} is {step.ret.status}, not waiting for approval")
                res = inp.resolution
                if res.action == "approve":
                    await returns.update_return(step.conn, inp.number, status=rules.AUTHORIZED)
                    await step.record("authorized", by=res.resolved_by, note=res.note)
                    await step.settle_status()
                else:
                    note = f"rejected: {res.note or 'outside the return policy'}"
                    await returns.update_return(step.conn, inp.number, status=rules.REJECTED, note=note[:500])
                    await step.record("rejected", by=res.resolved_by, note=res.note)
                await close_exception_row(step.conn, res)
            return await step.snapshot()

    @HOLD_NEW_ORDER.implement
    async def hold_return_new_order(self, inp: HoldNewOrder) -> ReturnSnapshot:
        """Reserve the promised order's units at the first of the channel's locations that has
        them all, so they cannot sell out while the parcel travels. None has them: the order
        will source (or backorder) them like any order when it is placed."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is None and step.ret.new_order_lines:
                await self._hold(step)
            return await step.snapshot()

    async def _hold(self, step: ReturnStep) -> None:
        order_id = new_order_id(step.ret.channel, step.number)
        key = f"{step.ref}:hold"
        wanted = [
            (str(i), ln["sku"], int(ln["qty"])) for i, ln in enumerate(step.ret.new_order_lines, start=1)
        ]
        sites = [
            r.code
            for r in await order_store.shipping_locations(step.conn, step.ret.channel)
            if r.type != "dropship"
        ]
        for site in sites:
            try:
                async with step.conn.begin_nested():
                    lines = [stock.ReserveLine(line, sku, site, qty) for line, sku, qty in wanted]
                    await stock.reserve(step.conn, key, step.ret.channel, lines, ref=order_id)
            except ReservationShortage:
                continue
            await returns.hold_for_order(step.conn, order_id, key, site)
            await returns.update_return(
                step.conn, step.number, hold_key=key, hold_location=site, new_order=order_id
            )
            await step.record("units_held", order=order_id, location=site, lines=step.ret.new_order_lines)
            return
        await returns.update_return(step.conn, step.number, new_order=order_id)
        await step.record("units_not_held", order=order_id, why="no location has every unit")

    @PLACE_NEW_ORDER.implement
    async def place_return_new_order(self, inp: PlaceNewOrder) -> PlacedOrder:
        """Record the exchange or replacement order (its sourcing takes the held units); the
        workflow then starts its order workflow. Paid by the return: no payment is taken."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            ret = step.ret
            order_id = ret.new_order or new_order_id(ret.channel, step.number)
            value = rules.order_value(ret.new_order_lines)
            if step.done is None:
                source = await order_store.lock_order(step.conn, str(ret.order_id))
                if source is None:
                    raise InvalidRequest(f"order {ret.order_id} of return {step.number} is gone")
                await order_intake.insert_order(step.conn, _intake(order_id, ret, source))
                await order_store.set_payment_status(step.conn, order_id, "captured")
                await returns.update_return(step.conn, step.number, new_order=order_id)
                await step.record("order_placed", order=order_id, value=value, lines=ret.new_order_lines)
            return PlacedOrder(await step.snapshot(), order_id, str(ret.channel), value)

    @RECEIVE_PARCEL.implement
    async def receive_return_parcel(self, inp: ReceiveParcel) -> ReturnSnapshot:
        """What arrived goes from the customer into the location's `returns` bucket, valued at
        the cost it left with (COGS back to returns inventory). Receiving refunds nothing."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is None:
                await self._receive(step, inp)
            return await step.audited(inp.receipt.actor, "receive")

    async def _receive(self, step: ReturnStep, inp: ReceiveParcel) -> None:
        arriving: dict[str, int] = defaultdict(int)
        for ln in inp.receipt.lines:
            arriving[ln.sku] += ln.qty
        parcel = {sku: r for sku, r in step.lines.items() if not r.keep}
        problems = rules.receive_problems(
            {s: r.qty for s, r in parcel.items()}, {s: r.received for s, r in parcel.items()}, arriving
        )
        if problems:
            raise InvalidRequest("; ".join(problems))
        location = inp.receipt.location
        if step.ret.location and step.ret.location != location:
            raise InvalidRequest(f"return {step.number} is being received at {step.ret.location}")
        kind = await returns.location_type(step.conn, location)
        if kind in (None, "virtual", "dropship"):
            raise InvalidRequest(f"{location!r} is not a location that receives returns")
        units = [(c, n) for sku, qty in arriving.items() for c, n in await step.units(sku, qty)]
        cost = await returns.shipped_unit_costs(step.conn, str(step.ret.order_id), [c for c, _ in units])
        moves = [
            stock.Move(c, n, "customer", "virtual", location, "returns", unit_cost=cost.get(c))
            for c, n in units
        ]
        await step.move("receive", moves, "return_received")
        for sku, qty in arriving.items():
            await returns.update_line(step.conn, step.number, sku, received=parcel[sku].received + qty)
        await step.mark_returned({parcel[sku].order_line: qty for sku, qty in arriving.items()})
        await returns.update_return(step.conn, step.number, location=location)
        await returns.stamp(step.conn, step.number, "received_at", first_only=True)
        await step.record("received", location=location, lines=dict(arriving), by=inp.receipt.received_by)
        await step.settle_status()

    @INSPECT_UNITS.implement
    async def inspect_returned_units(self, inp: InspectUnits) -> ReturnSnapshot:
        """Each inspected unit leaves `returns` for its disposition: restock → sellable (ATP
        rises, backorders wake), refurbish / quarantine → quarantine, scrap → shrinkage,
        return_to_vendor → the supplier, owed back to us (vendor receivable)."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is None:
                await self._inspect(step, inp)
            return await step.audited(inp.inspection.actor, "inspect")

    async def _inspect(self, step: ReturnStep, inp: InspectUnits) -> None:
        asked = [(ln.sku, ln.qty, ln.condition, ln.disposition) for ln in inp.inspection.lines]
        problems = rules.inspect_problems(
            {s: r.received for s, r in step.lines.items()},
            {s: r.inspected for s, r in step.lines.items()},
            asked,
        )
        if problems:
            raise InvalidRequest("; ".join(problems))
        here = str(step.ret.location)
        moves: list[stock.Move] = []
        done: dict[str, dict[str, Any]] = {}
        for sku, qty, condition, disposition in asked:
            where, bucket = rules.DISPOSITIONS[disposition]
            to = here if where == "here" else where
            moves += [stock.Move(c, n, here, "returns", to, bucket) for c, n in await step.units(sku, qty)]
            row = done.setdefault(
                sku,
                {"inspected": step.lines[sku].inspected, "dispositions": dict(step.lines[sku].dispositions)},
            )
            row["inspected"] += qty
            row["dispositions"][disposition] = row["dispositions"].get(disposition, 0) + qty
            row["condition"] = condition
        await step.move("inspect", moves, "return_inspected")
        for sku, row in done.items():
            await returns.update_line(step.conn, step.number, sku, **row)
        await step.record("inspected", lines=[list(a) for a in asked], by=inp.inspection.inspected_by)
        await step.settle_status()

    @END_RETURN.implement
    async def end_return(self, inp: EndReturn) -> ReturnSnapshot:
        """Completed, expired or cancelled. Units held for an order that was not placed go
        back; an instant exchange whose parcel never came is charged what it was credited."""
        async with return_step(self.engine, inp.number, inp.step) as step:
            if step.done is None:
                ret = step.ret
                placed = (
                    ret.new_order is not None
                    and await order_intake.recorded_as(step.conn, ret.new_order) is not None
                )
                if ret.hold_key and not placed:
                    await stock.release(step.conn, f"{step.key}:release", ret.hold_key, None, ref=step.ref)
                    await returns.drop_hold(step.conn, ret.new_order)
                charged = 0
                if (
                    placed
                    and inp.status != rules.COMPLETED
                    and ret.instant
                    and not any(r.received for r in step.lines.values())
                ):
                    charged = await charge_for_exchange(self, step)
                if inp.status == rules.COMPLETED:
                    status = await step.settle_status()
                else:
                    status = inp.status
                    note = (inp.reason or "")[:500]
                    await returns.update_return(step.conn, step.number, status=status, note=note)
                await returns.stamp(step.conn, step.number, "completed_at")
                await step.record(status, reason=inp.reason, by=inp.cancelled_by, charged=charged)
            return await step.audited(inp.actor, "cancel")  # actor None: completed or expired


def _intake(order_id: str, ret: Any, source: Any) -> order_intake.OrderIntake:
    lines = [
        order_intake.IntakeLine(ln["sku"], int(ln["qty"]), int(ln["unit_price"]))
        for ln in ret.new_order_lines
    ]
    digest = hashlib.sha256(json.dumps(ret.new_order_lines, sort_keys=True).encode()).hexdigest()
    return order_intake.OrderIntake(
        order_id,
        ret.channel,
        order_id.removeprefix(f"order-{ret.channel}-"),
        source.customer_id,
        source.customer_email,
        dict(source.ship_to or {}),
        source.billing_address,
        "standard",
        True,
        True,
        ret.currency,
        0,
        0,
        ret.outcome,
        "captured",
        0,
        ret.number,
        digest,
        lines,
    )
