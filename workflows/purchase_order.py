"""Purchase order `po-{number}`: recorded (units on order in `inbound`) → approval over the
threshold (`po_approval`) → sent → supplier confirmation (none within the SLA:
`supplier_unconfirmed`) → receipts, QC and bills as they come, each discrepancy
(`receipt_discrepancy`) and bill mismatch (`bill_mismatch`) settled by a person in turn →
closed once everything is received, inspected and billed. Cancel takes what has not been
received. A PO with many receipts and bills continues-as-new before its history grows.

The workflow decides *when*; each step is one keyed transaction (activities/purchasing.py,
purchase_receipts.py, purchase_bills.py) called by its typed reference. The messages it
takes are in workflows/purchase_order_messages.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import purchasing as rules
    from workflows import activity_calls as calls
    from workflows.contracts import (
        CLOSE_EXCEPTION,
        CLOSE_PO,
        RECORD_PO,
        SEND_PO,
        SETTLE_BILL,
        SETTLE_RECEIPT,
        WITHDRAW_EXCEPTION,
        BillMismatch,
        CancelPurchase,
        Discrepancy,
        PoClose,
        PoDecision,
        PoRecord,
        PoRecorded,
        PoSettleBill,
        PoSettleReceipt,
        PoSnapshot,
        PurchaseOrderInput,
        Resolution,
        WithdrawException,
    )
    from workflows.exception_wait import ExceptionWaiter
    from workflows.keyed_steps import STEP_TIMEOUT
    from workflows.purchase_order_messages import PoState, PurchaseOrderMessages, line_qty


EVENTS_PER_STEP = 6  # an update's accepted and completed events, a marker, a workflow task


@workflow.defn(name="PurchaseOrder")
class PurchaseOrderWorkflow(PurchaseOrderMessages):
    @workflow.init
    def __init__(self, inp: PurchaseOrderInput) -> None:
        self.inp = inp
        self.state = PoState(steps_named=inp.steps_named)
        self.waiter = ExceptionWaiter()
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, inp: PurchaseOrderInput) -> PoSnapshot:
        recorded = await self.record()
        if not inp.continued:
            if not recorded.sent:
                await self.approval()
            await self.confirmation()
        await self.receive_and_bill()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._po()

    async def record(self) -> PoRecorded:
        """Units on order show in `inbound`; below the approval threshold the PO is sent. A
        continued run reads the PO back through the same keyed step."""
        async with self.lock:
            recorded = await calls.run_local(
                RECORD_PO, PoRecord(self.inp.number, self.inp.approval_required), start_to_close=STEP_TIMEOUT
            )
        self._apply(recorded.snapshot)
        return recorded

    async def approval(self) -> None:
        resolution = await self._ask("po_approval", "po_approval", rules.APPROVAL_ACTIONS, {}, self.inp.value)
        if resolution is None:
            return
        if resolution.action == "approve":
            await self._step(SEND_PO, PoDecision(self.inp.number, self._name("approve"), resolution))
        else:
            reason = f"rejected: {resolution.note or 'no reason given'}"
            await self._cancel_now(
                CancelPurchase(reason, resolution.resolved_by, resolution.actor), resolution.exception_id
            )
        self.waiter.closed()
        self.state.hold = ""

    async def confirmation(self) -> None:
        """Wait for the supplier's confirmation (or goods, which confirm by arriving); past
        the SLA a person chooses: resend and wait, keep waiting, or cancel."""
        policy = self.inp.policies["supplier_unconfirmed"]
        while not self._confirmed() and not self._done():
            try:
                await workflow.wait_condition(
                    lambda: self._confirmed() or self._done(), timeout=timedelta(seconds=policy.sla_seconds)
                )
                continue
            except TimeoutError:
                pass
            details: dict[str, object] = {"status": self._po().status}
            key = self._name("supplier_unconfirmed")
            resolution = await self._ask(
                "supplier_unconfirmed", key, rules.UNCONFIRMED_ACTIONS, details, self.inp.value
            )
            if resolution is None:
                continue
            if resolution.action == "cancel":
                request = CancelPurchase(
                    "the supplier did not confirm", resolution.resolved_by, resolution.actor
                )
                await self._cancel_now(request, resolution.exception_id)
            else:
                await calls.run_local(CLOSE_EXCEPTION, resolution, start_to_close=STEP_TIMEOUT)
            self.waiter.closed()
            self.state.hold = ""

    async def receive_and_bill(self) -> None:
        """Until the PO is closed or cancelled: settle what waits for a person, in turn; close
        once everything is received, inspected and billed; continue-as-new when long."""
        while not self._done():
            await workflow.wait_condition(
                lambda: bool(self.state.pending) or self._done() or self._closable() or self._long()
            )
            if self.state.pending:
                await self._settle(self.state.pending.pop(0))
            elif self._closable():
                await self._step(CLOSE_PO, PoClose(self.inp.number, self.inp.tolerances.bill_quantity))
            elif self._long() and not self._done():
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and not self.lock.locked()
                )
                if not self.state.pending:
                    workflow.continue_as_new(
                        replace(self.inp, steps_named=self.state.steps_named, continued=True)
                    )

    async def _settle(self, item: Discrepancy | BillMismatch) -> None:
        if isinstance(item, Discrepancy):
            details: dict[str, object] = {
                "receipt": item.receipt,
                "over": item.over,
                "damaged": item.damaged,
                "short": item.short,
            }
            key = f"receipt_discrepancy:{item.receipt}"
            resolution = await self._ask(
                "receipt_discrepancy", key, rules.DISCREPANCY_ACTIONS, details, item.value_at_risk
            )
            if resolution is not None:
                await self._step(SETTLE_RECEIPT, PoSettleReceipt(self.inp.number, item, resolution))
        else:
            details = {"invoice_number": item.invoice_number, "mismatches": item.mismatches}
            key = f"bill_mismatch:{item.invoice_number}"
            resolution = await self._ask(
                "bill_mismatch", key, rules.BILL_ACTIONS, details, item.value_at_risk
            )
            if resolution is not None:
                step = PoSettleBill(self.inp.number, item, resolution, self.inp.tolerances)
                await self._step(SETTLE_BILL, step)
        self.waiter.closed()
        self.state.hold = ""

    async def _ask(
        self, kind: str, key: str, actions: tuple[str, ...], details: dict[str, object], at_risk: int
    ) -> Resolution | None:
        """Open the exception and wait for its decision (None: the PO closed meanwhile)."""
        self.state.hold = kind
        resolution = await self.waiter.wait(
            self._exception(kind, key, actions, details, at_risk),
            self.inp.policies[kind],
            interrupt=self._done,
        )
        if resolution is None and self.waiter.open is not None:
            withdraw = WithdrawException(self.waiter.open.id, "the purchase order closed")
            await calls.run_local(WITHDRAW_EXCEPTION, withdraw, start_to_close=STEP_TIMEOUT)
            self.waiter.closed()
            self.state.hold = ""
        return resolution

    def _confirmed(self) -> bool:
        po = self._po()
        return any(ln.confirmed is not None or ln.received or ln.damaged for ln in po.lines)

    def _closable(self) -> bool:
        if self.state.pending or self.state.busy or self._done():
            return False
        return rules.ready_to_close(
            [line_qty(ln) for ln in self._po().lines], self.inp.tolerances.bill_quantity
        )

    def _long(self) -> bool:
        """Past the history limit: the server's count, or (where it gives none, as the test
        server) about six events a step."""
        events = max(workflow.info().get_current_history_length(), EVENTS_PER_STEP * self.state.steps_taken)
        return events > self.inp.history_limit
