"""`backorder-dispatcher`: one long-running loop that turns the inventory's `stock_arrival`
hook into `stock_arrived` signals for waiting orders (activities/backorders.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows.contracts import WAKE_BACKORDERS, WakeInput

ROUNDS_PER_RUN = 200  # continue-as-new long before the history grows large
# One arrival can wake 10,000 orders: signalling them took 79 s in bench/backlog.py, so the
# round's time is not bounded by its wait (a round timed out at wait + 60 s and was retried).
# The heartbeat after every signal is what finds a dead worker.
SIGNALLING_BUDGET = timedelta(minutes=30)


@workflow.defn(name="BackorderDispatcher")
class BackorderDispatcherWorkflow:
    @workflow.run
    async def run(self, inp: WakeInput) -> None:
        after = inp.after
        for _ in range(ROUNDS_PER_RUN):
            result = await calls.run(
                WAKE_BACKORDERS,
                WakeInput(after=after, wait_seconds=inp.wait_seconds),
                start_to_close=timedelta(seconds=inp.wait_seconds) + SIGNALLING_BUDGET,
                heartbeat=timedelta(seconds=20),
            )
            after = result.after
        workflow.continue_as_new(WakeInput(after=after, wait_seconds=inp.wait_seconds))
