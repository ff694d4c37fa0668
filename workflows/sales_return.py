"""Return `rma-{number}`: recorded → authorized by policy, or by an approver
(`return_approval`) → the units of an exchange or replacement held → keep-it lines settled
→ the parcel (receipts until everything is back or the deadline: nothing back is `expired`)
→ inspection of what came back (past the refund SLA: `refund_overdue`) → the money (over the
threshold: `refund_approval`) and the promised order → completed. Cancel before anything
arrives.

The workflow decides *when*; each step is one keyed transaction (activities/returns.py,
return_money.py) called by its typed reference. The messages it takes are in
workflows/sales_return_messages.py."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain import returns as rules
    from workflows import activity_calls as calls
    from workflows.contracts import (
        CLOSE_EXCEPTION,
        DECIDE_RETURN,
        END_RETURN,
        HOLD_NEW_ORDER,
        PLACE_NEW_ORDER,
        RECORD_RETURN,
        SETTLE_RETURN,
        DecideReturn,
        EndReturn,
        HoldNewOrder,
        PlaceNewOrder,
        RecordReturn,
        ReturnInput,
        ReturnSnapshot,
        SettleReturn,
    )
    from workflows.exception_wait import ExceptionWaiter
    from workflows.keyed_steps import STEP_TIMEOUT
    from workflows.sales_return_messages import ReturnMessages, ReturnState


@workflow.defn(name="Return")
class ReturnWorkflow(ReturnMessages):
    @workflow.init
    def __init__(self, inp: ReturnInput) -> None:
        self.inp = inp
        self.state = ReturnState()
        self.waiter = ExceptionWaiter()
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, inp: ReturnInput) -> ReturnSnapshot:
        await self.record()
        if inp.needs_approval:
            await self.approval()
        if not self._done() and self.state.cancel is None:
            await self.authorized()
            await self.parcel()
            await self.settle()
        await self.close()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._ret()

    async def record(self) -> None:
        async with self.lock:
            snap = await calls.run_local(
                RECORD_RETURN, RecordReturn(self.inp.number), start_to_close=STEP_TIMEOUT
            )
        self._apply(snap)

    async def approval(self) -> None:
        """Outside policy (window, returnable): an approver decides; by default, rejected."""
        details: dict[str, object] = {"outcome": self.inp.outcome}
        resolution = await self._ask(
            "return_approval", rules.APPROVAL_ACTIONS, details, self.inp.value, interrupt=True
        )
        if resolution is None:
            return
        await self._step(DECIDE_RETURN, DecideReturn(self.inp.number, self._name("decide"), resolution))
        self._decided()

    async def authorized(self) -> None:
        """Hold the promised order's units; settle the lines that stay with the customer; an
        instant exchange (or one with nothing to send back) places its order now."""
        self.state.parcel_open = self._expected() > 0
        if self.inp.new_order is not None:
            await self._step(HOLD_NEW_ORDER, HoldNewOrder(self.inp.number, "hold"))
        if any(ln.keep for ln in self._ret().lines):
            await self._settle("keep", final=not self.state.parcel_open)
        if self.inp.new_order is not None and (self.inp.instant or not self.state.parcel_open):
            await self._place_order()

    async def parcel(self) -> None:
        """Until everything expected has arrived, the deadline, or a cancel."""
        if not self.state.parcel_open:
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._received() == self._expected() or self.state.cancel is not None,
                timeout=timedelta(seconds=self.inp.parcel_seconds),
            )
        await workflow.wait_condition(lambda: not self.state.busy and not self.lock.locked())
        self.state.parcel_open = False

    async def settle(self) -> None:
        """Once what came back is inspected, or the refund SLA passes and a person says refund
        now: the money, then the promised order; completing waits for the inspection."""
        if self.state.cancel is not None or self._received() == 0 or self._ret().settled:
            return
        await self._inspected_or_overdue()
        await self._settle("received", final=True)
        if self.inp.new_order is not None:
            await self._place_order()
        await workflow.wait_condition(lambda: self._inspected() and not self.state.busy)

    async def close(self) -> None:
        if self._done():
            return
        status, reason, by, actor = rules.COMPLETED, "", "", None
        if self.state.cancel is not None:
            cancel = self.state.cancel
            status, reason, by, actor = rules.CANCELLED, cancel.reason, cancel.cancelled_by, cancel.actor
        elif self._received() == 0 and self._expected() > 0 and not self._ret().settled:
            status, reason = rules.EXPIRED, "no parcel arrived before the deadline"
        await self._step(END_RETURN, EndReturn(self.inp.number, "end", status, reason, by, actor))

    # -- the steps of the phases ----------------------------------------------------------

    async def _inspected_or_overdue(self) -> None:
        policy = self.inp.policies["refund_overdue"]
        while not self._inspected():
            started = self.state.received_at or workflow.now()
            due = (started + timedelta(seconds=policy.sla_seconds) - workflow.now()).total_seconds()
            if due > 0:
                try:
                    await workflow.wait_condition(self._inspected, timeout=timedelta(seconds=due))
                    continue
                except TimeoutError:
                    pass
            details: dict[str, object] = {"received": self._received(), "outcome": self.inp.outcome}
            resolution = await self._ask("refund_overdue", rules.OVERDUE_ACTIONS, details, self.inp.value)
            if resolution is None:
                continue
            await calls.run_local(CLOSE_EXCEPTION, resolution, start_to_close=STEP_TIMEOUT)
            self._decided()
            if resolution.action == "refund_now":
                return
            self.state.received_at = workflow.now()  # keep waiting: the SLA starts again

    async def _settle(self, scope: str, *, final: bool) -> None:
        step = SettleReturn(
            self.inp.number,
            self._name("settle"),
            scope,
            approval_over=self.inp.refund_approval_threshold,
            bonus_percent=self.inp.store_credit_bonus_percent,
            final=final,
        )
        settlement = await self._step(SETTLE_RETURN, step)
        if not settlement.needs_approval:
            return
        details: dict[str, object] = {"amount": settlement.amount, "scope": scope}
        resolution = await self._ask(
            "refund_approval", rules.REFUND_APPROVAL_ACTIONS, details, abs(settlement.amount)
        )
        if resolution is None:
            return
        decision = "approved" if resolution.action == "approve" else "declined"
        await self._step(
            SETTLE_RETURN, replace(step, step=self._name("settle"), decision=decision, resolution=resolution)
        )
        self._decided()

    async def _place_order(self) -> None:
        if self.state.order_started or self.inp.new_order is None:
            return
        placed = await self._step(PLACE_NEW_ORDER, PlaceNewOrder(self.inp.number, "place"))
        order = replace(
            self.inp.new_order, order_id=placed.order_id, channel=placed.channel, value=placed.value
        )
        await workflow.start_child_workflow(
            "Order", order, id=placed.order_id, parent_close_policy=ParentClosePolicy.ABANDON
        )
        self.state.order_started = True
