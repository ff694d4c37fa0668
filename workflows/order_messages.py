"""The order workflow's messages and helpers: cancel, customer service's fixes and the
warehouse's pick, pack and ship (updates validated by the domain rules before any work), and
the keyed steps every phase takes. `workflows.order.OrderWorkflow` adds the phases of `run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain import fulfilment, waves
    from domain import orders as order_rules
    from domain.errors import WrongState
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        CANCEL_ORDER,
        PACK_SHIPMENT,
        PICK_SHIPMENT,
        SHIP_SHIPMENT,
        WITHDRAW_EXCEPTION,
        ActivityRef,
        CancelOrder,
        CancelRequest,
        OpenException,
        OrderChange,
        OrderInput,
        OrderSnapshot,
        PackRequest,
        PackShipment,
        PaymentConfirmation,
        PickRequest,
        PickShipment,
        Resolution,
        ShipmentAnswer,
        ShipmentSnap,
        ShipRequest,
        ShipShipment,
        ShipToFix,
        WithdrawException,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for
    from workflows.keyed_steps import asked_name
    from workflows.refusals import refusal, refusals

STEP_TIMEOUT = timedelta(seconds=60)
# The patch of runs that ask no other patch, upsert a search attribute only when its value
# changes (see OrderState.lean).
LEAN_COMMANDS = "lean-commands"

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class OrderState:
    """What the workflow knows between steps; the order itself is `order`, as the last
    committed step left it."""

    order: OrderSnapshot | None = None
    steps_named: int = 0  # numbers the step names (`source:3`) that key each step's effects
    hold: str = ""  # the hold being waited on
    busy: set[str] = field(default_factory=set)  # shipments with a warehouse step in flight
    stock_news: bool = False  # the backorder dispatcher says stock arrived
    needs_sourcing: bool = False  # a short pick released units: source them again
    unfillable: dict[str, int] = field(default_factory=dict)  # short units nobody can refill
    avoid: list[str] = field(default_factory=list)  # locations whose shelves just came up short
    backorder_since: datetime | None = None
    closed_by_last_step: bool = False  # patch close-in-last-step, decided in the first task
    lean: bool = False  # patch lean-commands (implies local-steps, record-and-source, close-in-last-step)


class OrderMessages(AwaitsDecisions):
    """State, lock and inputs are set by OrderWorkflow's @workflow.init."""

    inp: OrderInput
    state: OrderState
    waiter: ExceptionWaiter
    lock: asyncio.Lock

    # -- cancel -----------------------------------------------------------------------

    async def _cancel_now(self, req: CancelRequest, exception_id: str = "") -> OrderSnapshot:
        async with self.lock:
            step = CancelOrder(self.inp.order_id, req, asked_name("cancel", self._name), exception_id)
            snap = await self._take(CANCEL_ORDER, step)
            self._apply(snap)
        return snap

    @workflow.update
    async def cancel(self, req: CancelRequest) -> OrderSnapshot:
        await workflow.wait_condition(lambda: self.state.order is not None)
        try:
            return await self._cancel_now(req)
        except ActivityError as err:
            raise refusal(err) from err

    @cancel.validator
    def _can_cancel(self, req: CancelRequest) -> None:
        snap = self.state.order
        if snap is None:
            return  # still being recorded: the handler waits for it
        lines = {
            ln.line: order_rules.LineQty(ln.ordered, ln.reserved, ln.backordered, ln.shipped, ln.cancelled)
            for ln in snap.lines
        }
        with refusals():
            order_rules.units_to_cancel(snap.order_id, snap.status, lines, req.lines)

    # -- customer service ---------------------------------------------------------------

    @workflow.update
    async def fix_ship_to(self, fix: ShipToFix) -> OrderSnapshot:
        self.waiter.offer(self._address_fix(fix, "address corrected"))
        await workflow.wait_condition(
            lambda: self.state.hold != "address_invalid" or self.waiter.open is None
        )
        return self._order()

    @fix_ship_to.validator
    def _can_fix_ship_to(self, fix: ShipToFix) -> None:
        with refusals():
            self._expect_hold("address_invalid", "the order is not on an address hold")
        self.waiter.validate(self._address_fix(fix, ""))

    @workflow.update
    async def confirm_payment(self, pay: PaymentConfirmation) -> OrderSnapshot:
        self.waiter.offer(self._payment(pay, "payment confirmed"))
        await workflow.wait_condition(
            lambda: self.state.hold != "payment_pending" or self.waiter.open is None
        )
        return self._order()

    @confirm_payment.validator
    def _can_confirm_payment(self, pay: PaymentConfirmation) -> None:
        with refusals():
            self._expect_hold("payment_pending", "the order is not waiting for payment")
        self.waiter.validate(self._payment(pay, ""))

    def _address_fix(self, fix: ShipToFix, note: str) -> Resolution:
        assert self.waiter.open is not None
        data = {"ship_to": fix.ship_to}
        return Resolution(self.waiter.open.id, "fix_address", note, fix.fixed_by, data, fix.actor)

    def _payment(self, pay: PaymentConfirmation, note: str) -> Resolution:
        assert self.waiter.open is not None
        data = {"status": pay.status, "amount": pay.amount, "reference": pay.reference, "method": pay.method}
        return Resolution(self.waiter.open.id, "confirm_payment", note, pay.confirmed_by, data, pay.actor)

    def _expect_hold(self, kind: str, otherwise: str) -> None:
        if self.state.hold != kind or self.waiter.open is None:
            raise WrongState(otherwise)

    # -- the warehouse ----------------------------------------------------------------

    # The warehouse updates answer the shipment as the step left it, which is what their
    # routes answer (None only where the step's result was recorded before such answers).

    @workflow.update
    async def pick(self, req: PickRequest) -> ShipmentAnswer | None:
        step = PickShipment(self.inp.order_id, req)
        picked = await self._warehouse(req.shipment_id, PICK_SHIPMENT, step, lambda: self._can_pick(req))
        self._apply(picked.snapshot, picked.shipment)
        if picked.short:
            location = self._shipment(req.shipment_id).location
            if location not in self.state.avoid:
                self.state.avoid.append(location)
            self.state.needs_sourcing = True
        return picked.shipment

    @pick.validator
    def _can_pick(self, req: PickRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        with refusals():
            shipment = self._at_rest(req.shipment_id)
            fulfilment.check_pick(shipment, [(p.sku, p.qty) for p in req.lines], req.short_reason)

    @workflow.update
    async def pack(self, req: PackRequest) -> ShipmentAnswer | None:
        step = PackShipment(self.inp.order_id, req)
        packed = await self._warehouse(req.shipment_id, PACK_SHIPMENT, step, lambda: self._can_pack(req))
        self._apply(packed, packed.shipment)
        return packed.shipment

    @pack.validator
    def _can_pack(self, req: PackRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        packages = [
            waves.Package(p.weight_g, p.length_mm, p.width_mm, p.height_mm, p.lines) for p in req.packages
        ]
        with refusals():
            fulfilment.check_pack(self._at_rest(req.shipment_id), req.service, packages)

    @workflow.update
    async def ship(self, req: ShipRequest) -> ShipmentAnswer | None:
        step = ShipShipment(self.inp.order_id, req)
        shipped = await self._warehouse(req.shipment_id, SHIP_SHIPMENT, step, lambda: self._can_ship(req))
        self._apply(shipped, shipped.shipment)
        return shipped.shipment

    @ship.validator
    def _can_ship(self, req: ShipRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        with refusals():
            fulfilment.check_ship(self._at_rest(req.shipment_id), req.carrier)

    async def _warehouse(
        self, shipment_id: str, ref: ActivityRef[In, Out], arg: In, check: Callable[[], None]
    ) -> Out:
        if not self._known(shipment_id):
            # The read model showed the shipment before this workflow applied the step that
            # made it (validators cannot wait): wait for that step, then validate for real.
            await workflow.wait_condition(lambda: not self.lock.locked())
            check()
        self.state.busy.add(shipment_id)
        try:
            async with self.lock:
                return await self._take(ref, arg)
        except ActivityError as err:
            raise refusal(err) from err
        finally:
            self.state.busy.discard(shipment_id)

    @workflow.query
    def snapshot(self) -> OrderSnapshot | None:
        return self.state.order

    # -- helpers ------------------------------------------------------------------------

    async def _take(self, ref: ActivityRef[In, Out], arg: In) -> Out:
        """Every order step is one short database transaction, idempotent by its key: a local
        activity (run by this worker inside the workflow task, recorded as a marker) is safe
        and saves the task-queue round trip and three history events per step. A crash
        mid-step re-runs it, which its key makes harmless. Runs recorded before this change
        keep regular activities (patch `local-steps`)."""
        if self.state.lean or workflow.patched("local-steps"):
            return await calls.run_local(ref, arg, start_to_close=STEP_TIMEOUT)
        return await calls.run(ref, arg, start_to_close=STEP_TIMEOUT)

    async def _withdraw_open_exception(self, why: str) -> None:
        open_id = self.waiter.open.id if self.waiter.open else ""
        await self._take(WITHDRAW_EXCEPTION, WithdrawException(open_id, why))

    def _name(self, step: str) -> str:
        self.state.steps_named += 1
        return f"{step}:{self.state.steps_named}"

    def _exception(
        self, kind: str, step: str, actions: list[str], details: dict[str, object]
    ) -> OpenException:
        subject = ("order", self.inp.order_id)
        return exception_for(kind, step, subject, self.inp.policies[kind], self.inp.value, actions, details)

    def _apply(self, snap: OrderSnapshot | OrderChange, shipment: ShipmentAnswer | None = None) -> None:
        if isinstance(snap, OrderChange):
            snap = merged(self._order(), snap, shipment)
        self.state.order = snap
        if not any(ln.backordered for ln in snap.lines):
            self.state.backorder_since = None
        if self.state.lean:
            self._set_attribute(sa.OMNI_STATUS, snap.status)
        else:
            workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(snap.status)])

    def _set_attribute(self, key: SearchAttributeKey[str], value: str) -> None:
        """Upsert only a change: the run's search attributes (those it started with, then every
        upsert) are in its history, so whether one is needed replays the same."""
        if workflow.info().typed_search_attributes.get(key) != value:
            workflow.upsert_search_attributes([key.value_set(value)])

    def _order(self) -> OrderSnapshot:
        assert self.state.order is not None, "the order is recorded before anything reads it"
        return self.state.order

    def _closed(self) -> bool:
        return self.state.order is not None and self.state.order.status in order_rules.DONE

    def _finished(self) -> bool:
        """Every unit shipped or cancelled."""
        snap = self.state.order
        return snap is not None and all(ln.shipped + ln.cancelled >= ln.ordered for ln in snap.lines)

    def _woken(self) -> bool:
        s = self.state
        return s.stock_news or s.needs_sourcing or self._finished() or self._backordered() == 0

    def _backordered(self) -> int:
        return sum(ln.backordered for ln in self.state.order.lines) if self.state.order else 0

    def _known(self, shipment_id: str) -> bool:
        return any(s.id == shipment_id for s in (self.state.order.shipments if self.state.order else []))

    def _being_made(self, shipment_id: str) -> bool:
        """Unknown here, but a step is running that may be creating it (sourcing)."""
        return not self._known(shipment_id) and self.lock.locked() and not self._finished()

    def _shipment(self, shipment_id: str) -> ShipmentSnap:
        shipment = fulfilment.find(self.state.order.shipments if self.state.order else [], shipment_id)
        assert isinstance(shipment, ShipmentSnap)
        return shipment

    def _at_rest(self, shipment_id: str) -> ShipmentSnap:
        """The shipment, refused while another warehouse step on it is in flight."""
        shipment = self._shipment(shipment_id)
        if shipment_id in self.state.busy:
            raise WrongState(f"shipment {shipment_id} has a step in progress")
        return shipment


def merged(order: OrderSnapshot, change: OrderChange, shipment: ShipmentAnswer | None) -> OrderSnapshot:
    """The order with a step's change applied: its status, and each line and shipment the
    change holds in place of the one the order had, new ones after. A whole order (what older
    histories recorded as the change) replaces everything, as it did when it was applied whole."""
    lines = {ln.line: ln for ln in change.lines}
    shipments = {s.id: s for s in change.shipments}
    if shipment is not None:
        shipments[shipment.id] = shipment.snap()
    return OrderSnapshot(
        order.order_id,
        change.status,
        [lines.pop(ln.line, ln) for ln in order.lines] + list(lines.values()),
        [shipments.pop(s.id, s) for s in order.shipments] + list(shipments.values()),
        change.payment_status,
    )
