"""A workflow that reads the clock, on its own module (the sandbox imports a workflow's module
afresh for every run): tests/test_workflow_determinism.py shows the sandbox fails it."""

from __future__ import annotations

import time

from temporalio import workflow


@workflow.defn(name="ReadsTheClock", failure_exception_types=[Exception])  # fail the run, not retry
class ReadsTheClock:
    @workflow.run
    async def run(self) -> float:
        return time.time()
