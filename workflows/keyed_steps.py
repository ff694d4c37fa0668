"""The keyed steps a process workflow takes (purchase orders, returns): each step one local
activity under the workflow's lock, called by its typed reference; an activity's refusal
fails the update that asked for it, not the process; the answer's snapshot becomes the
workflow's view of the object. Step names are numbered (`receive:7`) so each keys its
effects once, however often it is retried."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows.contracts import ActivityRef
    from workflows.refusals import refusal

STEP_TIMEOUT = timedelta(seconds=60)
In = TypeVar("In")
Out = TypeVar("Out")


class StepState(Protocol):
    steps_named: int
    steps_taken: int
    busy: bool


class KeyedSteps:
    state: Any  # a StepState
    lock: asyncio.Lock
    snapshot_type: type  # the snapshot the steps answer (alone or as `.snapshot`)

    def _recorded(self) -> bool:
        """True once the first step has read the object (steps wait for it)."""
        raise NotImplementedError

    def _apply(self, snap: Any) -> None:
        raise NotImplementedError

    async def _step(self, ref: ActivityRef[In, Out], arg: In) -> Out:
        """One keyed step under the lock; a refusal fails the update, not the process."""
        await workflow.wait_condition(self._recorded)
        self.state.busy = True
        self.state.steps_taken += 1
        try:
            async with self.lock:
                result = await calls.run_local(ref, arg, start_to_close=STEP_TIMEOUT)
        except ActivityError as err:
            raise refusal(err) from err
        finally:
            self.state.busy = False
        snap = getattr(result, "snapshot", result)
        if isinstance(snap, self.snapshot_type):
            self._apply(snap)
        return result

    def _name(self, step: str) -> str:
        self.state.steps_named += 1
        return f"{step}:{self.state.steps_named}"
