"""Housekeeping: runs on a Temporal Schedule and removes what has outlived its purpose
(Idempotency-Key records past their retention)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows.contracts import (
        PURGE_IDEMPOTENCY_RECORDS,
        REFRESH_EXPIRED_AVAILABILITY,
        HousekeepingInput,
        HousekeepingResult,
        PurgeRecords,
        RefreshExpired,
    )

HOUSEKEEPING_SCHEDULE_ID = "omniflow-housekeeping"
# The schedule runs hourly; looking back further lets a missed run catch up (a refresh that
# changes nothing publishes nothing).
EXPIRY_LOOKBACK_HOURS = 3
RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)


@workflow.defn(name="Housekeeping")
class HousekeepingWorkflow:
    @workflow.run
    async def run(self, params: HousekeepingInput) -> HousekeepingResult:
        purged = await calls.run(
            PURGE_IDEMPOTENCY_RECORDS,
            PurgeRecords(params.idempotency_ttl_hours),
            start_to_close=timedelta(minutes=5),
            retry=RETRY,
        )
        refreshed = 0
        if workflow.patched("refresh-expired-lots"):
            # Lots expire with time, not in a transaction: republish the ATP they took with them.
            refreshed = await calls.run(
                REFRESH_EXPIRED_AVAILABILITY,
                RefreshExpired(EXPIRY_LOOKBACK_HOURS),
                start_to_close=timedelta(minutes=5),
                retry=RETRY,
            )
        workflow.logger.info(
            "housekeeping done", extra={"idempotency_records_purged": purged, "skus_refreshed": refreshed}
        )
        return HousekeepingResult(idempotency_records_purged=purged, skus_refreshed_for_expiry=refreshed)
