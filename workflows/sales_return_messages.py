"""The return workflow's messages and helpers: the warehouse's receipt and inspection and
the cancel, each validated by the rules of domain.returns before any work, and the keyed
steps every phase takes. `workflows.sales_return.ReturnWorkflow` adds the phases of `run`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import returns as rules
    from domain.errors import InvalidRequest, WrongState
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        INSPECT_UNITS,
        RECEIVE_PARCEL,
        WITHDRAW_EXCEPTION,
        CancelReturn,
        Inspection,
        InspectUnits,
        ParcelReceipt,
        ReceiveParcel,
        Resolution,
        ReturnInput,
        ReturnSnapshot,
        WithdrawException,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for
    from workflows.keyed_steps import STEP_TIMEOUT, KeyedSteps
    from workflows.refusals import refusals


@dataclass
class ReturnState:
    """What the workflow knows between steps; the return itself is `ret`, as its last step left it."""

    ret: ReturnSnapshot | None = None
    steps_named: int = 0
    hold: str = ""  # the exception being waited on
    busy: bool = False  # a warehouse step is in flight
    steps_taken: int = 0
    parcel_open: bool = False  # receipts are taken (from authorization to the deadline)
    received_at: datetime | None = None  # the first receipt: the refund SLA runs from it
    cancel: CancelReturn | None = None
    order_started: bool = False


class ReturnMessages(KeyedSteps, AwaitsDecisions):
    snapshot_type = ReturnSnapshot
    inp: ReturnInput
    state: ReturnState
    waiter: ExceptionWaiter
    lock: asyncio.Lock

    # -- the warehouse --------------------------------------------------------------------

    @workflow.update
    async def receive(self, receipt: ParcelReceipt) -> ReturnSnapshot:
        snap = await self._step(
            RECEIVE_PARCEL, ReceiveParcel(self.inp.number, self._asked("receive"), receipt)
        )
        if self.state.received_at is None:
            self.state.received_at = workflow.now()
        return snap

    @receive.validator
    def _can_receive(self, receipt: ParcelReceipt) -> None:
        with refusals():
            ret = self._at_rest()
            if ret is None:
                return
            if not self.state.parcel_open or self._done():
                raise WrongState(f"return {ret.number} is {ret.status}: no parcel is expected")
            if not receipt.lines or not receipt.location.strip():
                raise InvalidRequest("a receipt names its location and the units that arrived")
            arriving: dict[str, int] = {}
            for ln in receipt.lines:
                arriving[ln.sku] = arriving.get(ln.sku, 0) + ln.qty
            parcel = [ln for ln in ret.lines if not ln.keep]
            expected = {ln.sku: ln.qty for ln in parcel}
            problems = rules.receive_problems(expected, {ln.sku: ln.received for ln in parcel}, arriving)
            if problems:
                raise InvalidRequest("; ".join(problems))

    @workflow.update
    async def inspect(self, inspection: Inspection) -> ReturnSnapshot:
        return await self._step(
            INSPECT_UNITS, InspectUnits(self.inp.number, self._asked("inspect"), inspection)
        )

    @inspect.validator
    def _can_inspect(self, inspection: Inspection) -> None:
        with refusals():
            ret = self._at_rest()
            if ret is None:
                return
            if ret.status in rules.RETURN_DONE or not any(ln.received for ln in ret.lines):
                raise WrongState(f"return {ret.number} is {ret.status}: nothing has arrived to inspect")
            if not inspection.lines:
                raise InvalidRequest("name the inspected lines")
            asked = [(ln.sku, ln.qty, ln.condition, ln.disposition) for ln in inspection.lines]
            received = {ln.sku: ln.received for ln in ret.lines}
            problems = rules.inspect_problems(received, {ln.sku: ln.inspected for ln in ret.lines}, asked)
            if problems:
                raise InvalidRequest("; ".join(problems))

    # -- the customer ---------------------------------------------------------------------

    @workflow.update
    async def cancel(self, request: CancelReturn) -> ReturnSnapshot:
        self.state.cancel = request
        await workflow.wait_condition(lambda: self._done())
        return self._ret()

    @cancel.validator
    def _can_cancel(self, request: CancelReturn) -> None:
        with refusals():
            ret = self._at_rest()
            if ret is None:
                return
            if self._done() or self.state.cancel is not None or any(ln.received for ln in ret.lines):
                raise WrongState(
                    f"return {ret.number} is {ret.status}: only a return not yet received is cancelled"
                )

    @workflow.query
    def snapshot(self) -> ReturnSnapshot | None:
        return self.state.ret

    # -- helpers --------------------------------------------------------------------------

    async def _ask(
        self,
        kind: str,
        actions: tuple[str, ...],
        details: dict[str, object],
        at_risk: int,
        interrupt: bool = False,
    ) -> Resolution | None:
        """Open the exception and wait for its decision (None: the return was cancelled meanwhile)."""
        self.state.hold = kind
        step = self._name(kind)
        req = exception_for(
            kind, step, ("return", self.inp.number), self.inp.policies[kind], at_risk, actions, details
        )
        gone = (lambda: self.state.cancel is not None) if interrupt else None
        resolution = await self.waiter.wait(req, self.inp.policies[kind], interrupt=gone)
        if resolution is None and self.waiter.open is not None:
            withdraw = WithdrawException(self.waiter.open.id, "the return was cancelled")
            await calls.run_local(WITHDRAW_EXCEPTION, withdraw, start_to_close=STEP_TIMEOUT)
            self._decided()
        return resolution

    def _decided(self) -> None:
        self.waiter.closed()
        self.state.hold = ""

    def _apply(self, snap: ReturnSnapshot) -> None:
        self.state.ret = snap
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(snap.status)])

    def _recorded(self) -> bool:
        return self.state.ret is not None

    def _ret(self) -> ReturnSnapshot:
        assert self.state.ret is not None, "the return is recorded before anything reads it"
        return self.state.ret

    def _at_rest(self) -> ReturnSnapshot | None:
        """The return to validate against; None while a step is in flight (the snapshot is
        about to change, so the handler waits and the activity checks the same rules)."""
        return None if self.state.busy else self.state.ret

    def _done(self) -> bool:
        return self.state.ret is not None and self.state.ret.status in rules.RETURN_DONE

    def _expected(self) -> int:
        return sum(ln.qty for ln in self._ret().lines if not ln.keep)

    def _received(self) -> int:
        return sum(ln.received for ln in self._ret().lines if not ln.keep)

    def _inspected(self) -> bool:
        return all(ln.inspected == ln.received for ln in self._ret().lines)
