"""Order `order-{channel}-{external_id}`: received → holds → (pre-order release) → source and
reserve → fulfil (per shipment pick → pack → ship, re-sourcing short picks, waiting for
backordered stock) → closed. Cancel at any point before the last unit ships.

The workflow decides *when*; each step is one keyed transaction in an activity
(activities/orders.py), called by its typed reference (workflows.contracts.order_steps),
which answers the order as it now stands (`OrderSnapshot`). The update validators ask the
same domain rules as the activities (domain.fulfilment, domain.orders) on that snapshot, so
a wrong state is refused at once (409) and wrong quantities (422) before any work.

Every step that changes the order runs under one lock: warehouse updates, cancels and the
main flow never interleave their activities, so each sees the previous one's result."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain import fulfilment, hold_decisions, waves
    from domain import holds as hold_rules
    from domain import orders as order_rules
    from domain.errors import WrongState
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        BACKORDER_UNITS,
        CANCEL_ORDER,
        CLOSE_EXCEPTION,
        COMPLETE_ORDER,
        PACK_SHIPMENT,
        PICK_SHIPMENT,
        RECORD_ORDER,
        SETTLE_HOLD,
        SHIP_SHIPMENT,
        SOURCE_ORDER,
        WITHDRAW_EXCEPTION,
        ActivityRef,
        BackorderUnits,
        CancelOrder,
        CancelRequest,
        CompleteOrder,
        OpenException,
        OrderInput,
        OrderSnapshot,
        PackRequest,
        PackShipment,
        PaymentConfirmation,
        PickRequest,
        PickShipment,
        Recorded,
        RecordOrder,
        Resolution,
        SettleHold,
        ShipmentSnap,
        ShipRequest,
        ShipShipment,
        ShipToFix,
        Sourced,
        SourceOrder,
        StockArrived,
        WithdrawException,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter
    from workflows.refusals import refusal, refusals

STEP_TIMEOUT = timedelta(seconds=60)
HOLD_ACTIONS = {kind: list(h.actions) for kind, h in hold_rules.HOLDS.items()}
BACKORDER_ACTIONS = ["keep_waiting", "cancel"]
SHORT_PICK_ACTIONS = ["backorder", "cancel"]

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


@workflow.defn(name="Order")
class OrderWorkflow(AwaitsDecisions):
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        self.inp = inp
        self.state = OrderState()
        self.waiter = ExceptionWaiter()
        self.lock = asyncio.Lock()

    # -- the life of an order ---------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderSnapshot:
        workflow.upsert_search_attributes([sa.OMNI_CHANNEL.value_set(inp.channel)])
        # Decided once, in the first workflow task (a patch asked for the first time in a later
        # task that the worker replays is taken as absent).
        self.state.closed_by_last_step = workflow.patched("close-in-last-step")
        recorded = await self.receive()
        await self.clear_holds(recorded)
        if not self._closed():
            await self.wait_for_release(recorded)
            await self.allocate(recorded)
            await self.fulfil()
        return await self.close()

    async def receive(self) -> Recorded:
        """Record the order: payment, holds, pre-order lines; an order nothing holds is
        sourced in the same step (patch record-and-source)."""
        async with self.lock:  # shipments it makes are visible in the read model before we see them
            if workflow.patched("record-and-source"):
                recorded = await self._take(
                    RECORD_ORDER, RecordOrder(self.inp.order_id, self._name("source"))
                )
            else:
                recorded = await self._take(RECORD_ORDER, RecordOrder(self.inp.order_id))
        self._apply(recorded.snapshot)
        return recorded

    async def clear_holds(self, recorded: Recorded) -> None:
        for i, kind in enumerate(recorded.holds):
            await self._hold(kind, recorded.hold_details.get(kind, {}), len(recorded.holds) - i - 1)
            if self._closed():
                return

    async def wait_for_release(self, recorded: Recorded) -> None:
        """Pre-order lines wait for their SKU's release date (or a cancel)."""
        if not recorded.release_at:
            return
        wait = (datetime.fromisoformat(recorded.release_at) - workflow.now()).total_seconds()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._closed, timeout=timedelta(seconds=wait))

    async def allocate(self, recorded: Recorded) -> None:
        if self._closed():
            return
        if recorded.sourced is not None:
            await self._sourced(recorded.sourced)
        else:
            await self._source()

    async def fulfil(self) -> None:
        """Until every unit has shipped or is cancelled: re-source what a short pick
        released, decide what cannot be filled, or wait (for the warehouse, stock, a cancel
        or the backorder age)."""
        while not self._finished():
            if self.state.needs_sourcing:
                self.state.needs_sourcing = False
                await self._source()
                self.state.avoid = []  # only the re-source right after a short pick stays away
            elif self.state.unfillable:
                await self._short_pick_decision()
            elif self._backordered() > 0:
                await self._await_stock()
            else:
                await workflow.wait_condition(
                    lambda: (
                        self._finished()
                        or self.state.needs_sourcing
                        or bool(self.state.unfillable)
                        or self._backordered() > 0
                    )
                )

    async def close(self) -> OrderSnapshot:
        await workflow.wait_condition(lambda: not self.state.busy and not self.lock.locked())
        snap = self._order()
        # The step that shipped or cancelled the last unit closed the order in its own
        # transaction; runs from before that change close it with one more step.
        if not (self.state.closed_by_last_step and snap.status in order_rules.DONE):
            async with self.lock:
                snap = await self._take(COMPLETE_ORDER, CompleteOrder(self.inp.order_id))
                self._apply(snap)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return snap

    # -- holds ------------------------------------------------------------------------

    async def _hold(self, kind: str, details: dict[str, object], holds_after: int) -> None:
        attempt = 0
        while not self._closed():
            attempt += 1
            self.state.hold = kind
            resolution = await self.waiter.wait(
                self._exception(kind, f"hold:{kind}:{attempt}", HOLD_ACTIONS[kind], details),
                self.inp.policies[kind],
                interrupt=self._closed,
                check=hold_decisions.HOLD_CHECKS.get(kind),
            )
            if resolution is None:  # cancelled meanwhile: the cancel closed the row
                self.waiter.closed()
                break
            if resolution.action == "cancel":
                reason = f"{kind}: {resolution.note or 'cancelled'}"
                await self._cancel_now(
                    CancelRequest(reason, None, resolution.resolved_by), resolution.exception_id
                )
                self.waiter.closed()
                break
            async with self.lock:
                settled = await self._take(
                    SETTLE_HOLD, SettleHold(self.inp.order_id, kind, resolution, holds_after)
                )
                self._apply(settled.snapshot)
            self.waiter.closed()
            if settled.cleared:
                break
            details = {**details, "previous_attempt": settled.note}
        self.state.hold = ""

    # -- sourcing and backorders --------------------------------------------------------

    async def _source(self) -> None:
        async with self.lock:
            step = SourceOrder(self.inp.order_id, self._name("source"), self.state.avoid)
            sourced = await self._take(SOURCE_ORDER, step)
            self._apply(sourced.snapshot)
        await self._sourced(sourced)

    async def _sourced(self, sourced: Sourced) -> None:
        self.state.stock_news = False
        if not sourced.unfillable:
            return
        if any(s.status in ("picked", "packed", "shipped") for s in sourced.snapshot.shipments):
            self.state.unfillable = dict(
                sourced.unfillable
            )  # a short pick nobody can refill: a person decides
        else:
            reason = "out of stock and the order allows no backorder"
            await self._cancel_now(CancelRequest(reason, dict(sourced.unfillable), "system:sourcing"))

    async def _await_stock(self) -> None:
        """Wait for stock news (a signal from the backorder dispatcher) or the periodic
        re-check; past the aging limit a person is asked whether to keep waiting."""
        if self.state.backorder_since is None:
            self.state.backorder_since = workflow.now()
        aging = timedelta(seconds=self.inp.backorder_aging_seconds)
        recheck = timedelta(seconds=self.inp.backorder_recheck_seconds)
        while not self._woken():
            left = aging - (workflow.now() - self.state.backorder_since)
            try:
                await workflow.wait_condition(
                    self._woken, timeout=max(min(recheck, left), timedelta(seconds=1))
                )
            except TimeoutError:
                if workflow.now() - self.state.backorder_since < aging:
                    break  # the periodic re-check
                if not await self._backorder_aged():
                    break
                self.state.backorder_since = workflow.now()  # asked and answered: the age starts again
        if not self._finished() and self._backordered() > 0:
            await self._source()

    async def _backorder_aged(self) -> bool:
        """Ask a person whether to keep waiting; False when stock came (or the order changed)
        before anyone answered."""
        details: dict[str, object] = {"backordered_units": self._backordered()}
        resolution = await self.waiter.wait(
            self._exception("backorder_aging", self._name("backorder_aging"), BACKORDER_ACTIONS, details),
            self.inp.policies["backorder_aging"],
            interrupt=self._woken,
        )
        if resolution is None:
            await self._withdraw_open_exception("stock arrived or the order changed")
            self.waiter.closed()
            return False
        if resolution.action == "cancel":
            lines = {ln.line: ln.backordered for ln in self._order().lines if ln.backordered > 0}
            request = CancelRequest("backorder aged out", lines or None, resolution.resolved_by)
            await self._cancel_now(request, resolution.exception_id)
        else:
            await self._take(CLOSE_EXCEPTION, resolution)
        self.waiter.closed()
        return True

    async def _short_pick_decision(self) -> None:
        short, self.state.unfillable = self.state.unfillable, {}
        resolution = await self.waiter.wait(
            self._exception("short_pick", self._name("short_pick"), SHORT_PICK_ACTIONS, {"lines": short}),
            self.inp.policies["short_pick"],
            interrupt=self._finished,
        )
        if resolution is None:
            await self._withdraw_open_exception("the order changed")
        elif resolution.action == "backorder":
            async with self.lock:
                step = BackorderUnits(self.inp.order_id, self._name("backorder"), resolution.resolved_by)
                self._apply(await self._take(BACKORDER_UNITS, step))
            await self._take(CLOSE_EXCEPTION, resolution)
        else:
            open_lines = {line: n for line, n in short.items() if n > 0}
            request = CancelRequest("short pick", open_lines or None, resolution.resolved_by)
            await self._cancel_now(request, resolution.exception_id)
        self.waiter.closed()

    @workflow.signal
    def stock_arrived(self, news: StockArrived) -> None:
        self.state.stock_news = True

    # -- cancel -----------------------------------------------------------------------

    async def _cancel_now(self, req: CancelRequest, exception_id: str = "") -> OrderSnapshot:
        async with self.lock:
            step = CancelOrder(self.inp.order_id, req, self._name("cancel"), exception_id)
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
        return Resolution(self.waiter.open.id, "fix_address", note, fix.fixed_by, {"ship_to": fix.ship_to})

    def _payment(self, pay: PaymentConfirmation, note: str) -> Resolution:
        assert self.waiter.open is not None
        data = {"status": pay.status, "amount": pay.amount, "reference": pay.reference, "method": pay.method}
        return Resolution(self.waiter.open.id, "confirm_payment", note, pay.confirmed_by, data)

    def _expect_hold(self, kind: str, otherwise: str) -> None:
        if self.state.hold != kind or self.waiter.open is None:
            raise WrongState(otherwise)

    # -- the warehouse ----------------------------------------------------------------

    @workflow.update
    async def pick(self, req: PickRequest) -> OrderSnapshot:
        step = PickShipment(self.inp.order_id, req)
        picked = await self._warehouse(req.shipment_id, PICK_SHIPMENT, step, lambda: self._can_pick(req))
        self._apply(picked.snapshot)
        if picked.short:
            location = self._shipment(req.shipment_id).location
            if location not in self.state.avoid:
                self.state.avoid.append(location)
            self.state.needs_sourcing = True
        return picked.snapshot

    @pick.validator
    def _can_pick(self, req: PickRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        with refusals():
            shipment = self._at_rest(req.shipment_id)
            fulfilment.check_pick(shipment, [(p.sku, p.qty) for p in req.lines], req.short_reason)

    @workflow.update
    async def pack(self, req: PackRequest) -> OrderSnapshot:
        step = PackShipment(self.inp.order_id, req)
        snap = await self._warehouse(req.shipment_id, PACK_SHIPMENT, step, lambda: self._can_pack(req))
        self._apply(snap)
        return snap

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
    async def ship(self, req: ShipRequest) -> OrderSnapshot:
        step = ShipShipment(self.inp.order_id, req)
        snap = await self._warehouse(req.shipment_id, SHIP_SHIPMENT, step, lambda: self._can_ship(req))
        self._apply(snap)
        return snap

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
        if workflow.patched("local-steps"):
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
        return OpenException(
            key=f"{self.inp.order_id}:{step}",
            kind=kind,
            subject_type="order",
            subject_id=self.inp.order_id,
            workflow_id=workflow.info().workflow_id,
            sla_seconds=self.inp.policies[kind].sla_seconds,
            value_at_risk=self.inp.value,
            actions=actions,
            details=details,
        )

    def _apply(self, snap: OrderSnapshot) -> None:
        self.state.order = snap
        if not any(ln.backordered for ln in snap.lines):
            self.state.backorder_since = None
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(snap.status)])

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
