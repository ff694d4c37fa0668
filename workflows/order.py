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
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import hold_decisions
    from domain import holds as hold_rules
    from domain import orders as order_rules
    from workflows import order_carry
    from workflows import search_attributes as sa
    from workflows.contracts import (
        BACKORDER_UNITS,
        CLOSE_EXCEPTION,
        COMPLETE_ORDER,
        RECORD_ORDER,
        SETTLE_HOLD,
        SOURCE_ORDER,
        BackorderUnits,
        CancelRequest,
        CompleteOrder,
        OrderInput,
        OrderSnapshot,
        Recorded,
        RecordOrder,
        SettleHold,
        Sourced,
        SourceOrder,
        StockArrived,
    )
    from workflows.exception_wait import ExceptionWaiter
    from workflows.order_messages import LEAN_COMMANDS, OrderMessages, OrderState

HOLD_ACTIONS = {kind: list(h.actions) for kind, h in hold_rules.HOLDS.items()}
BACKORDER_ACTIONS = ["keep_waiting", "cancel"]
SHORT_PICK_ACTIONS = ["backorder", "cancel"]


@workflow.defn(name="Order")
class OrderWorkflow(OrderMessages):
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        self.inp = inp
        self.state = OrderState()
        self.waiter = ExceptionWaiter()
        self.lock = asyncio.Lock()

    # -- the life of an order ---------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderSnapshot:
        # Decided once, in the first workflow task (a patch asked for the first time in a later
        # task that the worker replays is taken as absent). `lean-commands` stands for every
        # earlier patch of this workflow: each patch costs the server a marker and an upsert of
        # TemporalChangeVersion, so a run that has it asks none of the others.
        lean = workflow.patched(LEAN_COMMANDS)
        if lean:
            self._set_attribute(sa.OMNI_CHANNEL, inp.channel)  # the API sets it at start
        else:
            workflow.upsert_search_attributes([sa.OMNI_CHANNEL.value_set(inp.channel)])
        if inp.carried is not None:  # a long wait continued as new (workflows/order_carry.py)
            self.state = order_carry.restored_state(inp.carried)
            self.state.lean = lean
            await self.fulfil()
            return await self.close()
        self.state.lean = lean
        self.state.closed_by_last_step = lean or workflow.patched("close-in-last-step")
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
            if self.state.lean or workflow.patched("record-and-source"):
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
                self._continue_if_long()
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
                    CancelRequest(reason, None, resolution.resolved_by, resolution.actor),
                    resolution.exception_id,
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
            if sourced.snapshot is not None:  # always, from `source_order`
                self._apply(sourced.snapshot)
        await self._sourced(sourced)

    async def _sourced(self, sourced: Sourced) -> None:
        """`sourced`'s order is applied already (from it, or from the `Recorded` it came in)."""
        self.state.stock_news = False
        if not sourced.unfillable:
            return
        if any(s.status in ("picked", "packed", "shipped") for s in self._order().shipments):
            self.state.unfillable = dict(
                sourced.unfillable
            )  # a short pick nobody can refill: a person decides
        else:
            reason = "out of stock and the order allows no backorder"
            await self._cancel_now(CancelRequest(reason, dict(sourced.unfillable), "system:sourcing"))

    def _continue_if_long(self) -> None:
        """Continue as new once the history passes its bound, only at rest (patched)."""
        at_rest = not self.lock.locked() and not self.state.busy and self.waiter.open is None
        if (
            at_rest
            and order_carry.past_bound()
            and workflow.all_handlers_finished()
            and workflow.patched(order_carry.PATCH)
        ):
            workflow.continue_as_new(order_carry.carried_input(self.inp, self.state))

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
                self._continue_if_long()  # no re-check comes back to `fulfil` when it is >= the age
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
            request = CancelRequest(
                "backorder aged out", lines or None, resolution.resolved_by, resolution.actor
            )
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
                backordered = await self._take(BACKORDER_UNITS, step)
                self._apply(backordered)
            await self._take(CLOSE_EXCEPTION, resolution)
        else:
            open_lines = {line: n for line, n in short.items() if n > 0}
            request = CancelRequest(
                "short pick", open_lines or None, resolution.resolved_by, resolution.actor
            )
            await self._cancel_now(request, resolution.exception_id)
        self.waiter.closed()

    @workflow.signal
    def stock_arrived(self, news: StockArrived) -> None:
        self.state.stock_news = True
