"""Transfer `transfer-{number}`: sellable at the source → in transit → sellable (or damaged)
at the destination. Ship and receive are updates (validated: a wrong state is refused at
once); a short or damaged receipt waits in the `receipt_discrepancy` queue."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes as sa
    from workflows.contracts import (
        OpenException,
        ReceiveTransfer,
        ShipTransfer,
        TransferInput,
        TransferState,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter
    from workflows.refusals import refusal

STEP_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
DISCREPANCY_ACTIONS = ["write_off", "found"]


@workflow.defn(name="Transfer")
class TransferWorkflow(AwaitsDecisions):
    def __init__(self) -> None:
        self.number = ""
        self.status = "requested"
        self.value_at_risk = 0
        self.busy = False
        self.waiter = ExceptionWaiter()

    @workflow.run
    async def run(self, inp: TransferInput) -> TransferState:
        self.number = inp.number
        self._publish()
        await workflow.wait_condition(lambda: self.status in ("completed", "discrepancy", "cancelled"))
        if self.status == "discrepancy":
            resolution = await self.waiter.wait(
                OpenException(
                    key=f"{workflow.info().workflow_id}:receipt_discrepancy",
                    kind="receipt_discrepancy", subject_type="transfer", subject_id=inp.number,
                    workflow_id=workflow.info().workflow_id, sla_seconds=inp.discrepancy_policy.sla_seconds,
                    value_at_risk=self.value_at_risk, actions=DISCREPANCY_ACTIONS, details={"transfer": inp.number},
                ),
                inp.discrepancy_policy,
            )  # fmt: skip
            await workflow.execute_activity(
                "settle_transfer_discrepancy", args=[inp.number, resolution], start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=RETRY, result_type=TransferState,
            )  # fmt: skip
            self.waiter.closed()
            self.status = "completed"
            self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    # -- people and warehouses ------------------------------------------------------------

    async def _step(self, activity: str, *args: object) -> TransferState:
        """Run one warehouse step; a business refusal fails the update, not the transfer."""
        self.busy = True
        try:
            result: TransferState = await workflow.execute_activity(
                activity, args=list(args), start_to_close_timeout=STEP_TIMEOUT, retry_policy=RETRY,
                result_type=TransferState,
            )  # fmt: skip
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
        return await self._step("ship_transfer", self.number)

    @ship.validator
    def _can_ship(self, req: ShipTransfer) -> None:
        self._expect("requested")

    @workflow.update
    async def receive(self, req: ReceiveTransfer) -> TransferState:
        return await self._step("receive_transfer", self.number, req)

    @receive.validator
    def _can_receive(self, req: ReceiveTransfer) -> None:
        self._expect("shipped")
        if not req.lines:
            raise ApplicationError("name the received lines", type="Invalid", non_retryable=True)

    @workflow.query
    def state(self) -> TransferState:
        return TransferState(
            number=self.number,
            status=self.status,
            open_exception=self.waiter.open.id if self.waiter.open else None,
        )

    def _expect(self, status: str) -> None:
        if self.busy or self.status != status:
            raise ApplicationError(
                f"transfer {self.number} is {self.status}{' (busy)' if self.busy else ''}, not {status}",
                type="WrongState", non_retryable=True,
            )  # fmt: skip

    def _publish(self) -> None:
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(self.status)])
