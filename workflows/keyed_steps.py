"""The keyed steps a process workflow takes (purchase orders, returns): each step one local
activity under the workflow's lock, called by its typed reference; an activity's refusal
fails the update that asked for it, not the process; the answer's snapshot becomes the
workflow's view of the object. Step names are numbered (`receive:7`) so each keys its
effects once, however often it is retried."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows.contracts import ActivityRef
    from workflows.refusals import refusal

STEP_TIMEOUT = timedelta(seconds=60)
# The patch of runs whose steps asked for by an update are named by the update (asked_name).
STEPS_NAMED_BY_UPDATE = "steps-named-by-update"
In = TypeVar("In")
Out = TypeVar("Out")


def update_step_name(step: str, update_id: str) -> str:
    """`receive:u3f…`: the name of a step an update asked for, from the update's id."""
    return f"{step}:u{hashlib.sha256(update_id.encode()).hexdigest()[:20]}"


def asked_name(step: str, numbered: Callable[[str], str]) -> str:
    """The name of a step, which keys its effects. A step an update asks for is named by the
    update's id (the request's Idempotency-Key, api.temporal): its activity commits inside
    the task that runs the update, so if that task is lost (the worker dies) the update
    never happened for the workflow, and the step counter has not moved. Numbered, the next
    request would take the lost step's number and be answered with the lost step's record
    (a second parcel taken for the first); named by the update, a retry of the lost request
    is that step again and any other request a step of its own. Steps of the workflow's own
    phases, and runs from before this patch, are numbered (`numbered`)."""
    info = workflow.current_update_info()
    if info is None or not workflow.patched(STEPS_NAMED_BY_UPDATE):
        return numbered(step)
    return update_step_name(step, info.id)


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

    def _asked(self, step: str) -> str:
        """The name of a step an update asks for (asked_name)."""
        return asked_name(step, self._name)
