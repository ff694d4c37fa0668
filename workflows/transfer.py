"""Transfer `transfer-{number}`: sellable at the source → in transit → sellable (or damaged)
at the destination. Ship and receive are updates (validated: a wrong state is refused at
once); a short or damaged receipt waits in the `receipt_discrepancy` queue."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.errors import InvalidRequest, WrongState
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        RECEIVE_TRANSFER,
        SETTLE_TRANSFER_DISCREPANCY,
        SHIP_TRANSFER,
        ActivityRef,
        OpenException,
        ReceiveTransfer,
        ShipTransfer,
        TransferDecision,
        TransferInput,
        TransferReceipt,
        TransferShipment,
        TransferState,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for
    from workflows.refusals import refusal, refusals

STEP_TIMEOUT = timedelta(seconds=30)
In = TypeVar("In")
DISCREPANCY_ACTIONS = ["write_off", "found"]


@workflow.defn(name="Transfer")
class TransferWorkflow(AwaitsDecisions):
    @workflow.init
    def __init__(self, inp: TransferInput) -> None:
        # The number from the input at once: a ship or receive update may be handled before
        # `run` starts (the API ships right after it creates), and its step needs the number.
        self.number = inp.number
        self.status = "requested"
        self.value_at_risk = 0
        self.busy = False
        self.waiter = ExceptionWaiter()

    @workflow.run
    async def run(self, inp: TransferInput) -> TransferState:
        self._publish()
        await workflow.wait_condition(lambda: self.status in ("completed", "discrepancy", "cancelled"))
        if self.status == "discrepancy":
            resolution = await self.waiter.wait(self._discrepancy(inp), inp.discrepancy_policy)
            assert resolution is not None  # nothing interrupts this wait: only a decision ends it
            decision = TransferDecision(inp.number, resolution)
            await calls.run(SETTLE_TRANSFER_DISCREPANCY, decision, start_to_close=STEP_TIMEOUT)
            self.waiter.closed()
            self.status = "completed"
            self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    # -- people and warehouses ------------------------------------------------------------

    def _discrepancy(self, inp: TransferInput) -> OpenException:
        subject = ("transfer", inp.number)
        return exception_for(
            "receipt_discrepancy",
            "receipt_discrepancy",
            subject,
            inp.discrepancy_policy,
            self.value_at_risk,
            DISCREPANCY_ACTIONS,
            {"transfer": inp.number},
        )

    async def _step(self, ref: ActivityRef[In, TransferState], arg: In) -> TransferState:
        """Run one warehouse step; a business refusal fails the update, not the transfer."""
        self.busy = True
        try:
            result = await calls.run(ref, arg, start_to_close=STEP_TIMEOUT)
        except ActivityError as err:
            raise refusal(err) from err
        finally:
            self.busy = False
        self.status = result.status
        self.value_at_risk = max(self.value_at_risk, result.value_at_risk)
        self._publish()
        return self.state()

    @workflow.update
    async def ship(self, req: ShipTransfer) -> TransferState:
        return await self._step(SHIP_TRANSFER, TransferShipment(self.number, req.actor))

    @ship.validator
    def _can_ship(self, req: ShipTransfer) -> None:
        self._expect("requested")

    @workflow.update
    async def receive(self, req: ReceiveTransfer) -> TransferState:
        return await self._step(RECEIVE_TRANSFER, TransferReceipt(self.number, req))

    @receive.validator
    def _can_receive(self, req: ReceiveTransfer) -> None:
        self._expect("shipped")
        if not req.lines:
            with refusals():
                raise InvalidRequest("name the received lines")

    @workflow.query
    def state(self) -> TransferState:
        return TransferState(
            number=self.number,
            status=self.status,
            open_exception=self.waiter.open.id if self.waiter.open else None,
        )

    def _expect(self, status: str) -> None:
        if self.busy or self.status != status:
            with refusals():
                raise WrongState(
                    f"transfer {self.number} is {self.status}{' (busy)' if self.busy else ''}, not {status}"
                )

    def _publish(self) -> None:
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(self.status)])
