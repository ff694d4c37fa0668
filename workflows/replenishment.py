"""Replenishment run `replenishment-{run_id}`: started by the schedule
`omniflow-replenishment` (every `OMNIFLOW_REPLENISHMENT_INTERVAL_SECONDS`, overlapping runs
skipped) or on demand by `POST /v1/replenishment/run`. One short workflow per run, like
housekeeping, so no history grows and nothing needs to continue as new.

1. **draft**: one transaction claims the run row, computes the suggestions and writes a
   draft PO per supplier and location (numbers derived from the run id). A retried or
   overlapping run of the same id finds the row and answers what the first one drafted.
2. **start**: each PO's `PurchaseOrder` workflow (`po-{number}`) is started, approval
   required (a person approves what a machine proposed); the run is then `done`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        DRAFT_REPLENISHMENT,
        START_REPLENISHMENT_ORDERS,
        DraftedPo,
        DraftRun,
        ReplenishmentInput,
        ReplenishmentResult,
        StartOrders,
    )

RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))


@dataclass
class ReplenishmentState:
    run_id: str
    status: str = "received"  # received | drafted | done
    suggestions: int = 0
    orders: list[DraftedPo] = field(default_factory=list)
    started: int = 0


@workflow.defn(name="Replenishment")
class ReplenishmentWorkflow:
    @workflow.init
    def __init__(self, inp: ReplenishmentInput) -> None:
        self.state = ReplenishmentState(run_id=inp.run_id)

    @workflow.run
    async def run(self, inp: ReplenishmentInput) -> ReplenishmentResult:
        if not self.state.run_id:  # a scheduled run: named by when it started
            self.state.run_id = "S" + workflow.now().strftime("%Y%m%dT%H%M%S")
        await self.draft()
        await self.start_orders()
        workflow.logger.info(
            "replenishment done", extra={"run_id": self.state.run_id, "orders": len(self.state.orders)}
        )
        return self.result()

    async def draft(self) -> None:
        drafted = await calls.run(
            DRAFT_REPLENISHMENT,
            DraftRun(self.state.run_id),
            start_to_close=timedelta(minutes=10),
            retry=RETRY,
        )
        self.state.suggestions = drafted.suggestions
        self.state.orders = list(drafted.orders)
        self._publish("drafted")

    async def start_orders(self) -> None:
        started = await calls.run(
            START_REPLENISHMENT_ORDERS,
            StartOrders(self.state.run_id, self.state.orders),
            start_to_close=timedelta(minutes=10),
            heartbeat=timedelta(seconds=60),
            retry=RETRY,
        )
        self.state.started = started.started
        self._publish("done")

    def _publish(self, status: str) -> None:
        self.state.status = status
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(status)])

    @workflow.query
    def snapshot(self) -> ReplenishmentResult:
        return self.result()

    def result(self) -> ReplenishmentResult:
        s = self.state
        return ReplenishmentResult(s.run_id, s.suggestions, s.orders, s.started)
