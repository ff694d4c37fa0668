"""The purchase-order workflow's messages and helpers: the approver's decision, the
supplier's confirmation, the warehouse's receipts and QC, finance's bills and the cancel,
each validated by the rules of domain.purchasing before any work, and the keyed steps every
phase takes. `workflows.purchase_order.PurchaseOrderWorkflow` adds the phases of `run`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import purchasing as rules
    from domain.errors import InvalidRequest, WrongState
    from workflows import search_attributes as sa
    from workflows.contracts import (
        BILL_PO,
        CANCEL_PO,
        CONFIRM_PO,
        QC_PO,
        RECEIVE_PO,
        ApprovalDecision,
        BillMismatch,
        CancelPurchase,
        Discrepancy,
        OpenException,
        PoBill,
        PoCancel,
        PoConfirm,
        PoLineSnap,
        PoQc,
        PoReceive,
        PoSnapshot,
        PurchaseOrderInput,
        QcRequest,
        Receipt,
        Resolution,
        SupplierConfirmation,
        VendorBillIn,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for
    from workflows.keyed_steps import KeyedSteps
    from workflows.refusals import refusals


@dataclass
class PoState:
    """What the workflow knows between steps; the PO itself is `po`, as its last step left it."""

    po: PoSnapshot | None = None
    steps_named: int = 0
    hold: str = ""  # the exception being waited on
    busy: bool = False  # a warehouse, supplier or finance step is in flight
    pending: list[Discrepancy | BillMismatch] = field(default_factory=list)  # waiting for a person, in order
    # Receipts and invoices already queued (a retry replays them).
    queued: set[str] = field(default_factory=set)
    steps_taken: int = 0  # steps this run took: an estimate of its history where the server gives none


def line_qty(ln: PoLineSnap) -> rules.PoLineQty:
    return rules.PoLineQty(
        ln.sku,
        ln.qty,
        ln.unit_cost,
        ln.confirmed,
        ln.received,
        ln.damaged,
        ln.quarantined,
        ln.rejected,
        ln.returned,
        ln.closed,
        ln.billed,
    )


class PurchaseOrderMessages(KeyedSteps, AwaitsDecisions):
    snapshot_type = PoSnapshot
    inp: PurchaseOrderInput
    state: PoState
    waiter: ExceptionWaiter
    lock: asyncio.Lock

    # -- the approver -------------------------------------------------------------------

    @workflow.update
    async def decide_approval(self, decision: ApprovalDecision) -> PoSnapshot:
        self.waiter.offer(self._approval(decision))
        await workflow.wait_condition(lambda: self.state.hold != "po_approval")
        return self._po()

    @decide_approval.validator
    def _can_decide_approval(self, decision: ApprovalDecision) -> None:
        with refusals():
            if self.state.hold != "po_approval" or self.waiter.open is None:
                raise WrongState(f"purchase order {self.inp.number} is not waiting for approval")
            if not decision.approve and not decision.reason.strip():
                raise InvalidRequest("a rejection gives its reason")
        self.waiter.validate(self._approval(decision))

    def _approval(self, decision: ApprovalDecision) -> Resolution:
        assert self.waiter.open is not None
        action = "approve" if decision.approve else "reject"
        return Resolution(
            self.waiter.open.id, action, decision.reason, decision.decided_by, actor=decision.actor
        )

    # -- the supplier ---------------------------------------------------------------------

    @workflow.update
    async def confirm(self, confirmation: SupplierConfirmation) -> PoSnapshot:
        return await self._step(CONFIRM_PO, PoConfirm(self.inp.number, confirmation))

    @confirm.validator
    def _can_confirm(self, confirmation: SupplierConfirmation) -> None:
        with refusals():
            po = self._at_rest()
            if po is None:
                return
            if po.status not in (rules.SENT,) or any(ln.confirmed is not None for ln in po.lines):
                raise WrongState(
                    f"purchase order {po.number} is {po.status}: it is confirmed once, after it is sent"
                )
            rules.check_confirmation(self._lines(), [(ln.sku, ln.qty) for ln in confirmation.lines])

    # -- the warehouse --------------------------------------------------------------------

    @workflow.update
    async def receive(self, receipt: Receipt) -> PoSnapshot:
        step = PoReceive(self.inp.number, receipt, self.inp.tolerances.over_receipt)
        received = await self._step(RECEIVE_PO, step)
        if received.discrepancy is not None:
            self._queue(f"receipt:{receipt.receipt}", received.discrepancy)
        return received.snapshot

    @receive.validator
    def _can_receive(self, receipt: Receipt) -> None:
        with refusals():
            po = self._at_rest()
            if po is None:
                return
            if po.status not in (rules.SENT, rules.CONFIRMED, rules.PARTIALLY_RECEIVED, rules.RECEIVED):
                raise WrongState(f"purchase order {po.number} is {po.status}: nothing is expected")
            if not receipt.receipt.strip():
                raise InvalidRequest("name the receipt (its number is the business key)")
            units = [rules.ReceivedUnits(ln.sku, ln.qty_received, ln.qty_damaged) for ln in receipt.lines]
            if not units:
                raise InvalidRequest("name the received lines")
            rules.check_receipt(self._lines(), units, self.inp.tolerances.over_receipt, final=receipt.final)

    @workflow.update
    async def inspect(self, request: QcRequest) -> PoSnapshot:
        return await self._step(QC_PO, PoQc(self.inp.number, request, self._asked("qc")))

    @inspect.validator
    def _can_inspect(self, request: QcRequest) -> None:
        with refusals():
            if self._at_rest() is None:
                return
            if not request.lines:
                raise InvalidRequest("name the inspected lines")
            results = [rules.QcResult(ln.sku, ln.qty, ln.result, ln.disposition) for ln in request.lines]
            rules.check_qc(self._lines(), results)

    # -- finance --------------------------------------------------------------------------

    @workflow.update
    async def bill(self, bill: VendorBillIn) -> PoSnapshot:
        billed = await self._step(BILL_PO, PoBill(self.inp.number, bill, self.inp.tolerances))
        if billed.mismatch is not None:
            self._queue(f"bill:{bill.invoice_number}", billed.mismatch)
        return billed.snapshot

    @bill.validator
    def _can_bill(self, bill: VendorBillIn) -> None:
        with refusals():
            po = self._at_rest()
            if po is None:
                return
            if po.status in (rules.DRAFT, rules.AWAITING_APPROVAL, rules.CANCELLED, rules.CLOSED):
                raise WrongState(f"purchase order {po.number} is {po.status}: it takes no bill")
            if not bill.invoice_number.strip() or not bill.lines:
                raise InvalidRequest("a bill has an invoice_number and lines")
            billed = [rules.BilledLine(ln.sku, ln.qty, ln.unit_cost) for ln in bill.lines]
            tol = self.inp.tolerances
            rules.match_bill(self._lines(), billed, tol.bill_quantity, tol.bill_value)

    # -- cancel ---------------------------------------------------------------------------

    @workflow.update
    async def cancel(self, request: CancelPurchase) -> PoSnapshot:
        return await self._cancel_now(request)

    @cancel.validator
    def _can_cancel(self, request: CancelPurchase) -> None:
        with refusals():
            po = self._at_rest()
            if po is None:
                return
            if po.status in rules.PO_DONE or not any(line_qty(ln).open for ln in po.lines):
                raise WrongState(f"purchase order {po.number} is {po.status}: nothing left to cancel")
            if not request.reason.strip():
                raise InvalidRequest("a cancel gives its reason")

    async def _cancel_now(self, request: CancelPurchase, exception_id: str = "") -> PoSnapshot:
        step = PoCancel(self.inp.number, self._asked("cancel"), request, exception_id)
        return await self._step(CANCEL_PO, step)

    @workflow.query
    def snapshot(self) -> PoSnapshot | None:
        return self.state.po

    # -- helpers --------------------------------------------------------------------------

    def _queue(self, key: str, item: Discrepancy | BillMismatch) -> None:
        if key not in self.state.queued:
            self.state.queued.add(key)
            self.state.pending.append(item)

    def _exception(
        self, kind: str, key: str, actions: tuple[str, ...], details: dict[str, object], at_risk: int
    ) -> OpenException:
        subject = ("purchase_order", self.inp.number)
        return exception_for(kind, key, subject, self.inp.policies[kind], at_risk, actions, details)

    def _apply(self, snap: PoSnapshot) -> None:
        self.state.po = snap
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(snap.status)])

    def _recorded(self) -> bool:
        return self.state.po is not None

    def _po(self) -> PoSnapshot:
        assert self.state.po is not None, "the PO is recorded before anything reads it"
        return self.state.po

    def _lines(self) -> dict[str, rules.PoLineQty]:
        return {ln.sku: line_qty(ln) for ln in self._po().lines}

    def _at_rest(self) -> PoSnapshot | None:
        """The PO to validate against; None while it is being read (a run that continued as
        new) or a step is in flight: the snapshot is about to change, so the handler waits
        and the activity checks the same rules."""
        return None if self.state.busy else self.state.po

    def _done(self) -> bool:
        return self.state.po is not None and self.state.po.status in rules.PO_DONE
