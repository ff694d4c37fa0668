"""Running an activity by its typed reference (workflows.contracts.ActivityRef): the input
is the reference's `In`, the answer its `Out`, and the name the histories know it by stays
in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import ActivityRef

In = TypeVar("In")
Out = TypeVar("Out")

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


async def run(
    ref: ActivityRef[In, Out],
    arg: In,
    *,
    start_to_close: timedelta,
    retry: RetryPolicy = RETRY,
    heartbeat: timedelta | None = None,
    schedule_to_close: timedelta | None = None,
) -> Out:
    """A regular activity: scheduled on the task queue, its result recorded in the history.
    `schedule_to_close`: how long it may keep retrying before the workflow hears it failed."""
    result: Out = await workflow.execute_activity(
        ref.name,
        arg,
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=schedule_to_close,
        heartbeat_timeout=heartbeat,
        retry_policy=retry,
        result_type=ref.result_type,
    )
    return result


async def run_local(
    ref: ActivityRef[In, Out], arg: In, *, start_to_close: timedelta, retry: RetryPolicy = RETRY
) -> Out:
    """A local activity: run by this worker inside the workflow task and recorded as a
    marker; for short keyed transactions, where it saves the task-queue round trip."""
    result: Out = await workflow.execute_local_activity(
        ref.name, arg, start_to_close_timeout=start_to_close, retry_policy=retry, result_type=ref.result_type
    )
    return result
