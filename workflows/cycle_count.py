"""Cycle count `count-{id}`: the warehouse submits counted quantities (a validated update);
variances within tolerance post at once as `count` adjustments; the rest waits for an
approver in the `count_variance` queue (default at the limit: reject, post nothing)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.errors import InvalidRequest, WrongState
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        DECIDE_COUNT,
        EVALUATE_COUNT,
        CountDecision,
        CountEvaluation,
        CountState,
        CycleCountInput,
        OpenException,
        SubmitCount,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for
    from workflows.refusals import refusal, refusals

STEP_TIMEOUT = timedelta(seconds=30)
APPROVAL_ACTIONS = ["approve", "reject"]


@workflow.defn(name="CycleCount")
class CycleCountWorkflow(AwaitsDecisions):
    @workflow.init
    def __init__(self, inp: CycleCountInput) -> None:
        self.id = inp.id
        self.tolerance = inp.tolerance
        self.status = "open"
        self.busy = False
        self.evaluation: CountState | None = None
        self.waiter = ExceptionWaiter()

    @workflow.run
    async def run(self, inp: CycleCountInput) -> CountState:
        self._publish()
        await workflow.wait_condition(lambda: self.status in ("awaiting_approval", "posted"))
        if self.status == "awaiting_approval":
            assert self.evaluation is not None
            resolution = await self.waiter.wait(self._variance(inp, self.evaluation), inp.approval_policy)
            assert resolution is not None  # nothing interrupts this wait: only a decision ends it
            decision = CountDecision(inp.id, resolution)
            decided = await calls.run(DECIDE_COUNT, decision, start_to_close=STEP_TIMEOUT)
            self.waiter.closed()
            self.status = decided.status
            self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    def _variance(self, inp: CycleCountInput, evaluation: CountState) -> OpenException:
        details: dict[str, object] = {
            "location": inp.location,
            "lines_over_tolerance": evaluation.over_tolerance_lines,
        }
        subject = ("cycle_count", inp.id)
        return exception_for(
            "count_variance",
            "count_variance",
            subject,
            inp.approval_policy,
            evaluation.value_at_risk,
            APPROVAL_ACTIONS,
            details,
        )

    @workflow.update
    async def submit(self, req: SubmitCount) -> CountState:
        self.busy = True
        try:
            evaluation = CountEvaluation(self.id, req, self.tolerance)
            self.evaluation = await calls.run(EVALUATE_COUNT, evaluation, start_to_close=STEP_TIMEOUT)
        except ActivityError as err:
            raise refusal(err) from err
        finally:
            self.busy = False
        self.status = self.evaluation.status
        self._publish()
        return self.state()

    @submit.validator
    def _can_submit(self, req: SubmitCount) -> None:
        with refusals():
            if self.busy or self.status != "open":
                raise WrongState(f"count {self.id} is {self.status}, not open")
            if not req.lines:
                raise InvalidRequest("name the counted lines")

    @workflow.query
    def state(self) -> CountState:
        ev = self.evaluation
        return CountState(
            id=self.id,
            status=self.status,
            over_tolerance_lines=ev.over_tolerance_lines if ev else 0,
            value_at_risk=ev.value_at_risk if ev else 0,
            open_exception=self.waiter.open.id if self.waiter.open else None,
        )

    def _publish(self) -> None:
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(self.status)])
