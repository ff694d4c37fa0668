"""Order steps. Each activity is one keyed transaction (activities.order_step) that makes the
business change (stock, payment, ledger), updates the read model and records the step's
timeline event under `{order_id}:{step}`: a retried activity finds its step done and answers
what it answered the first time. Each reads load → decide (domain) → write; the SQL lives
in models.order_store and models.shipment_store, the rules in domain."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.exceptions import close_exception_row
from activities.order_cancel import CancelSteps
from activities.order_payments import take_payment
from activities.order_sourcing import SourcingSteps
from activities.order_step import OrderStep, order_step, shipment_answer
from domain import fulfilment, waves
from domain import holds as hold_rules
from domain import orders as rules
from domain.errors import NotFound
from domain.posting import lines_for
from models import order_store as orders
from models import shipment_store as shipments
from models import stock
from models.availability import lock_skus_with_components
from models.finance import Posting, post
from models.payments import CaptureSplit, PaymentGateway, capture_payment
from models.stock.batcher import ReservationBatcher
from workflows.contracts import (
    BACKORDER_UNITS,
    PACK_SHIPMENT,
    PICK_SHIPMENT,
    RECORD_ORDER,
    SETTLE_HOLD,
    SHIP_SHIPMENT,
    BackorderUnits,
    HoldSettled,
    OrderChange,
    OrderSnapshot,
    PackShipment,
    Picked,
    PickShipment,
    Recorded,
    RecordOrder,
    Resolution,
    SettleHold,
    ShipmentAnswer,
    ShipmentStepped,
    ShipShipment,
)


class OrderActivities(SourcingSteps, CancelSteps):
    def __init__(
        self, engine: AsyncEngine, gateway: PaymentGateway, batcher: ReservationBatcher | None
    ) -> None:
        self.engine = engine
        self.gateway = gateway
        self.batcher = batcher

    # -- record ----------------------------------------------------------------------

    @RECORD_ORDER.implement
    async def record_order(self, inp: RecordOrder) -> Recorded:
        """Take the payment the channel reports, assess the holds (address, payment, fraud)
        and mark pre-order lines as waiting for their release date. With `source_step`, an
        order that nothing holds is sourced right after in the same transaction, each step
        under its own key: one Temporal round trip and one commit instead of two. A lost
        reservation race runs both again (the gateway answers a retried key as the first
        time). The order row lock has already given the transaction its id when the SKU
        locks are taken, as in every order step."""
        key = f"{inp.order_id}:record"
        source_step = inp.source_step
        if not source_step:
            async with order_step(self.engine, inp.order_id, key) as step:
                return await self._recorded(step)

        async def record_and_source(step: OrderStep) -> Recorded:
            recorded = await self._recorded(step)
            if recorded.holds or recorded.release_at:
                return recorded
            sourced = await self.source_in(step, source_step)
            assert sourced.snapshot is not None, "sourcing answers the order"
            # The order once: the workflow takes it from `snapshot` (the same after both steps).
            return Recorded(sourced.snapshot, [], {}, "", sourced=replace(sourced, snapshot=None))

        return await self.sourcing_step(inp.order_id, key, record_and_source)

    async def _recorded(self, step: OrderStep) -> Recorded:
        """What recording answered the first time, or record now."""
        if step.done is None:
            return await self._record(step)
        d = step.done
        return Recorded(await step.snapshot(), d["holds"], d["details"], d.get("release_at", ""))

    async def _record(self, step: OrderStep) -> Recorded:
        order = step.order
        payment_status = order.payment_status
        if order.payment_reported in ("authorized", "captured") and order.payment_amount > 0:
            payment_status = await take_payment(
                step.conn,
                self.gateway,
                order,
                step.key,
                order.payment_reported,
                order.payment_amount,
                order.payment_method,
            )
        problems = hold_rules.validate_address(hold_rules.address_from(order.ship_to))
        fraud = await self._fraud(step)
        holds = hold_rules.holds_for(problems, payment_status, fraud)
        details: dict[str, Any] = {}
        if "address_invalid" in holds:
            details["address_invalid"] = {"problems": [p.__dict__ for p in problems]}
        if "payment_pending" in holds:
            total = order.merchandise + order.shipping_amount + order.tax_amount
            details["payment_pending"] = {"payment_status": payment_status, "amount_due": total}
        if "fraud_review" in holds:
            details["fraud_review"] = {"score": fraud.score, "reasons": fraud.reasons}
        await orders.set_fraud(step.conn, order.id, fraud.score, fraud.reasons)
        release_at = await self._mark_pre_orders(step)
        view = await step.refresh(on_hold=bool(holds), write=False)
        await step.record_status(
            view,
            "received",
            holds=holds,
            details=details,
            release_at=release_at,
            payment_status=payment_status,
            fraud_score=fraud.score,
            status=view.status,
        )
        return Recorded(view.snapshot(), holds, details, release_at)

    async def _fraud(self, step: OrderStep) -> hold_rules.FraudAssessment:
        order = step.order
        ship_to = hold_rules.address_from(order.ship_to)
        billing = hold_rules.address_from(order.billing_address) if order.billing_address else None
        country_differs, postal_differs = hold_rules.billing_differences(ship_to, billing)
        history = await orders.customer_history(step.conn, order.customer_id, order.channel)
        signals = hold_rules.FraudSignals(
            order_value=order.merchandise + order.shipping_amount + order.tax_amount,
            billing_country_differs=country_differs,
            billing_postal_differs=postal_differs,
            orders_last_24h=int(history.day),
            first_time_customer=int(history.ever) <= 1,
            express=order.promise == "express",
        )
        return hold_rules.fraud_score(signals)

    async def _mark_pre_orders(self, step: OrderStep) -> str:
        rows = await orders.pre_order_lines(step.conn, step.order_id)
        if not rows:
            return ""
        for r in rows:
            await orders.backorder_whole_line(step.conn, step.order_id, r.line)
        release_at: datetime = max(r.release_at for r in rows)
        await step.note("pre_order", lines=[r.line for r in rows], release_at=release_at.isoformat())
        return release_at.isoformat()

    # -- holds -----------------------------------------------------------------------

    @SETTLE_HOLD.implement
    async def settle_hold(self, inp: SettleHold) -> HoldSettled:
        """Carry out a person's decision on a hold (not `cancel`: that is `cancel_order`) and
        close its exception in the same transaction."""
        resolution = inp.resolution
        async with order_step(
            self.engine, inp.order_id, f"{inp.order_id}:settle:{resolution.exception_id}"
        ) as step:
            if step.done is not None:
                return HoldSettled(await step.snapshot(), step.done["cleared"], step.done.get("note", ""))
            cleared, note = await self._carry_out(step, resolution)
            await close_exception_row(step.conn, resolution)
            view = await step.refresh(on_hold=inp.holds_after > 0 or not cleared)
            await step.record(
                "hold_cleared" if cleared else "hold_not_cleared",
                kind=inp.kind,
                action=resolution.action,
                by=resolution.resolved_by,
                cleared=cleared,
                note=note,
            )
            return HoldSettled(view.snapshot(), cleared, note)

    async def _carry_out(self, step: OrderStep, resolution: Resolution) -> tuple[bool, str]:
        """Whether the decision cleared the hold, and what to tell the next person if not."""
        data, order = resolution.data or {}, step.order
        if resolution.action == "fix_address":
            address = hold_rules.address_from(data.get("ship_to") or order.ship_to)
            problems = hold_rules.validate_address(address)
            if problems:
                return False, "; ".join(p.message for p in problems)
            await orders.set_ship_to(step.conn, order.id, asdict(address))
        elif resolution.action == "confirm_payment":
            status, amount = str(data.get("status", "authorized")), int(data.get("amount", 0) or 0)
            await orders.set_payment_reference(
                step.conn, order.id, str(data.get("reference", "")), str(data.get("method", ""))
            )
            result = await take_payment(
                step.conn, self.gateway, order, step.key, status, amount, order.payment_method
            )
            if result == "declined":
                return False, "the payment was declined"
        return True, resolution.note

    @BACKORDER_UNITS.implement
    async def backorder_units(self, inp: BackorderUnits) -> OrderSnapshot:
        """A person chose to let the unfilled units wait for stock (short pick decision)."""
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:{inp.step}") as step:
            if step.done is not None:
                return await step.snapshot()
            for r in await orders.lines(step.conn, inp.order_id):
                q = orders.line_qty(r)
                if q.unassigned > 0:
                    await step.write_line(r.line, q.backorder(q.unassigned))
            view = await step.refresh()
            await step.record("backordered", by=inp.decided_by, status=view.status)
            return view.snapshot()

    # -- fulfilment ----------------------------------------------------------------------

    async def _shipment(self, step: OrderStep, shipment_id: str) -> shipments.Shipment:
        shipment = await shipments.one(step.conn, step.order_id, shipment_id)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} is not part of order {step.order_id}")
        return shipment

    @PICK_SHIPMENT.implement
    async def pick_shipment(self, inp: PickShipment) -> Picked:
        """Record what was picked. Units not found leave sellable (a count loss, or to
        `damaged`) and their reservation is released, so the workflow sources them again."""
        req = inp.request
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:pick:{req.shipment_id}") as step:
            if step.done is not None:
                done: dict[str, int] = step.done["short"]
                return Picked((await step.view()).change(done), done, await step.shipment(req.shipment_id))
            shipment = await self._shipment(step, req.shipment_id)
            picked = fulfilment.check_pick(shipment, [(p.sku, p.qty) for p in req.lines], req.short_reason)
            short = fulfilment.short_lines(shipment, picked)
            await lock_skus_with_components(step.conn, [ln.sku for ln in shipment.lines])
            if short:
                await self._write_off_short(step, shipment, short, damaged=req.short_reason == "damaged")
            for ln in shipment.lines:
                await shipments.set_picked(step.conn, shipment.id, ln.line, picked.get(ln.sku, 0))
            after = shipment_answer(
                await shipments.set_status(
                    step.conn, shipment.id, "picked" if sum(picked.values()) > 0 else "cancelled"
                )
            )
            view = await step.refresh(write=False)
            await step.record_status(
                view,
                "short_picked" if short else "picked",
                shipment=shipment.id,
                picked=picked,
                short=short,
                by=req.picked_by,
                status=view.status,
            )
            await step.audit(req.actor, "pick", ("shipment", shipment.id), shipment, after.snap())
            # What the workflow needs of it: the order's status, the lines the short pick
            # released, and the shipment (which the route answers).
            return Picked(view.change(short), short, after)

    async def _write_off_short(
        self, step: OrderStep, shipment: shipments.Shipment, short: dict[str, int], *, damaged: bool
    ) -> None:
        """Release the reservation of the units not found; they leave sellable (a count loss,
        or to `damaged`), and the order lines have them unassigned again."""
        key, order_id = step.key, step.order_id
        freed = await stock.release(step.conn, f"{key}:release", shipment.reservation, short, ref=order_id)
        moves = [
            stock.Move(r["sku"], r["qty"], r["location"], "sellable", r["location"], "damaged", r["lot"])
            if damaged
            else stock.adjustment_move(r["sku"], r["location"], "sellable", -r["qty"], r["lot"])
            for r in freed.data["lines"]
        ]
        kind, reason = ("status_move", "damage") if damaged else ("adjustment", "short_pick")
        await stock.apply_moves(step.conn, f"{key}:short", kind, moves, reason=reason, ref=order_id)
        for r in await orders.lines(step.conn, order_id):
            if r.line in short:
                await step.write_line(r.line, orders.line_qty(r).release(short[r.line]))

    @PACK_SHIPMENT.implement
    async def pack_shipment(self, inp: PackShipment) -> ShipmentStepped:
        req = inp.request
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:pack:{req.shipment_id}") as step:
            if step.done is None:
                shipment = await self._shipment(step, req.shipment_id)
                packages = [
                    waves.Package(p.weight_g, p.length_mm, p.width_mm, p.height_mm, p.lines)
                    for p in req.packages
                ]
                fulfilment.check_pack(shipment, req.service, packages)
                row = await shipments.pack(
                    step.conn, shipment.id, req.service, [p.__dict__ for p in req.packages]
                )
                await step.record("packed", shipment=shipment.id, packages=len(req.packages))
                after = {**asdict(shipments.from_answer(row)), "packages": req.packages}
                await step.audit(req.actor, "pack", ("shipment", shipment.id), shipment, after)
                answer = shipment_answer(row)
            else:
                answer = await step.shipment(req.shipment_id)
            # Packing changes no order line nor the order's status (the locked row's).
            unchanged = OrderChange(step.order.status, [], [], step.order.payment_status)
            return _stepped(unchanged, answer)

    @SHIP_SHIPMENT.implement
    async def ship_shipment(self, inp: ShipShipment) -> ShipmentStepped:
        """The parcel leaves: the reservation is consumed (sellable → customer, COGS at moving
        average), or for drop-ship the supplier's cost is posted; the payment for these units
        is captured and revenue, shipping and tax are posted. One transaction."""
        req = inp.request
        async with order_step(self.engine, inp.order_id, f"{inp.order_id}:ship:{req.shipment_id}") as step:
            if step.done is not None:
                answer = await step.shipment(req.shipment_id)
                return _stepped((await step.view()).change(ln.line for ln in answer.lines), answer)
            shipment = await self._shipment(step, req.shipment_id)
            fulfilment.check_ship(shipment, req.carrier)
            units = {ln.line: ln.qty for ln in shipment.lines if ln.qty > 0}
            await lock_skus_with_components(step.conn, [ln.sku for ln in shipment.lines])
            await self._take_goods(step, shipment)
            order_lines = await orders.lines(step.conn, inp.order_id)
            for r in order_lines:
                if r.line in units:
                    await step.write_line(r.line, orders.line_qty(r).ship(units[r.line]))
            await self._capture_for(step, order_lines, units)
            after = shipment_answer(
                await shipments.mark_shipped(step.conn, shipment.id, req.carrier, req.service, req.tracking)
            )
            view = await step.refresh(write=False)
            await step.record(
                "shipped",
                shipment=shipment.id,
                carrier=req.carrier,
                tracking=req.tracking,
                units=units,
                status=view.status,
            )
            await step.settle(view)
            shipped = {"carrier": req.carrier, "tracking": req.tracking, **asdict(after.snap())}
            await step.audit(req.actor, "ship", ("shipment", shipment.id), shipment, shipped)
            return _stepped(view.change(units), after)

    async def _take_goods(self, step: OrderStep, shipment: shipments.Shipment) -> None:
        """Stock leaves on its reservation; a drop-ship parcel posts what the supplier charges."""
        if shipment.kind == "stock":
            await stock.consume(
                step.conn, f"{step.key}:consume", shipment.reservation, None, ref=step.order_id
            )
            return
        postings: list[Posting] = []
        for ln in shipment.lines:
            cost = await orders.supplier_cost(step.conn, shipment.supplier or "", ln.sku)
            postings += [
                Posting.of(p, location=shipment.location, sku=ln.sku, channel=step.order.channel)
                for p in lines_for("dropship_shipment", {"cost": cost * ln.qty})
            ]
        if postings:
            await post(step.conn, f"{step.key}:dropship", "dropship_shipment", postings, ref=step.order_id)

    async def _capture_for(self, step: OrderStep, order_lines: list[Any], units: dict[str, int]) -> None:
        """Capture what these units cost the customer (when the channel did not capture it all)."""
        order = step.order
        if order.payment_reported == "captured" or not order.payment_id:
            return
        # The order's first shipment: no unit had shipped before this one (`order_lines` as
        # they were before this step wrote them).
        first = not any(r.shipped for r in order_lines)
        priced = [rules.PricedLine(r.line, r.qty, r.unit_price) for r in order_lines]
        shipped_before = {r.line: r.shipped for r in order_lines}
        charge = rules.shipment_charge(
            priced, units, order.shipping_amount, order.tax_amount, shipped_before, first_shipment=first
        )
        if charge.total > 0:
            await capture_payment(
                step.conn,
                self.gateway,
                f"{step.key}:capture",
                order.payment_id,
                charge.total,
                CaptureSplit(revenue=charge.merchandise, shipping=charge.shipping, tax=charge.tax),
                channel=order.channel,
            )
            await orders.add_captured(step.conn, order.id, charge.total)


def _stepped(change: OrderChange, shipment: ShipmentAnswer) -> ShipmentStepped:
    return ShipmentStepped(change.status, change.lines, [], change.payment_status, shipment)
