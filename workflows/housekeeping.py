"""Housekeeping: runs on a Temporal Schedule and removes what has outlived its purpose
(Idempotency-Key records past their retention)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import HousekeepingInput, HousekeepingResult

HOUSEKEEPING_SCHEDULE_ID = "omniflow-housekeeping"


@workflow.defn(name="Housekeeping")
class HousekeepingWorkflow:
    @workflow.run
    async def run(self, params: HousekeepingInput) -> HousekeepingResult:
        purged: int = await workflow.execute_activity(
            "purge_idempotency_records",
            params.idempotency_ttl_hours,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5),
            result_type=int,
        )
        workflow.logger.info("housekeeping done", extra={"idempotency_records_purged": purged})
        return HousekeepingResult(idempotency_records_purged=purged)
