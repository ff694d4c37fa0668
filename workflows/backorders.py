"""`backorder-dispatcher`: one long-running loop that turns the inventory's `stock_arrival`
hook into `stock_arrived` signals for waiting orders (activities/backorders.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import WakeInput, WakeResult

ROUNDS_PER_RUN = 200  # continue-as-new long before the history grows large


@workflow.defn(name="BackorderDispatcher")
class BackorderDispatcherWorkflow:
    @workflow.run
    async def run(self, inp: WakeInput) -> None:
        after = inp.after
        for _ in range(ROUNDS_PER_RUN):
            result = await workflow.execute_activity(
                "wake_backorders",
                WakeInput(after=after, wait_seconds=inp.wait_seconds),
                start_to_close_timeout=timedelta(seconds=inp.wait_seconds + 60),
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
                ),
                result_type=WakeResult,
            )
            after = result.after
        workflow.continue_as_new(WakeInput(after=after, wait_seconds=inp.wait_seconds))
