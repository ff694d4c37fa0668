"""The human queue inside a workflow: open a row, wait for a person (a `resolve` update)
with a timer at the SLA, escalate at each SLA, take the default action at the policy limit.

Usage inside a workflow (which routes its `resolve_exception` update to `offer`):

    self.waiter = ExceptionWaiter(set_status=...)
    resolution = await self.waiter.wait(OpenException(...), policy)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.errors import BadAction, NotOpen
    from workflows import activity_calls as calls
    from workflows import search_attributes as sa
    from workflows.contracts import (
        ESCALATE_EXCEPTION,
        OPEN_EXCEPTION,
        Escalate,
        ExceptionPolicyInput,
        OpenException,
        Resolution,
    )
    from workflows.contracts.exceptions import OpenedException
    from workflows.refusals import refusals

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# The patch that unsets OmniException when an exception closes (it was set to "").
UNSET_WHEN_CLOSED = "omni-exception-unset"


def exception_for(
    kind: str,
    step: str,
    subject: tuple[str, str],
    policy: ExceptionPolicyInput,
    value_at_risk: int,
    actions: Sequence[str],
    details: dict[str, object],
) -> OpenException:
    """The exception this workflow opens at `step`: its key `{workflow_id}:{step}` is the
    business key of the wait (a retried open finds the same row). `subject`: (type, id)."""
    workflow_id = workflow.info().workflow_id
    return OpenException(
        key=f"{workflow_id}:{step}",
        kind=kind,
        subject_type=subject[0],
        subject_id=subject[1],
        workflow_id=workflow_id,
        sla_seconds=policy.sla_seconds,
        value_at_risk=value_at_risk,
        actions=list(actions),
        details=details,
    )


class ExceptionWaiter:
    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.open: OpenedException | None = None
        self.kind: str = ""
        self.actions: list[str] = []
        self.level = 0
        self._resolution: Resolution | None = None
        self._on_change = on_change
        self._check: Callable[[Resolution], None] | None = None

    # -- called from the workflow's update validator and handler -------------------------

    def validate(self, resolution: Resolution) -> None:
        with refusals():
            if self.open is None or resolution.exception_id != self.open.id:
                raise NotOpen("this exception is not open")
            if self._resolution is not None:
                raise NotOpen("this exception is already being resolved")
            if resolution.action not in self.actions:
                raise BadAction(f"action {resolution.action!r} is not one of {self.actions}")
            if self._check is not None:
                self._check(resolution)

    def offer(self, resolution: Resolution) -> None:
        self._resolution = resolution

    # -- the wait ------------------------------------------------------------------------

    async def wait(
        self,
        req: OpenException,
        policy: ExceptionPolicyInput,
        *,
        interrupt: Callable[[], bool] | None = None,
        check: Callable[[Resolution], None] | None = None,
    ) -> Resolution | None:
        """Open the exception and wait for its decision. `interrupt`: the wait ends with None
        as soon as it is true (the reason for the exception went away; the caller closes the
        row). `check`: extra validation of a decision's data, run in the update validator."""
        self._check = check
        self.open = await calls.run(OPEN_EXCEPTION, req, start_to_close=ACTIVITY_TIMEOUT)
        self.kind, self.actions, self.level, self._resolution = req.kind, list(req.actions), 0, None
        workflow.upsert_search_attributes(
            [sa.OMNI_EXCEPTION.value_set(req.kind), sa.OMNI_PRIORITY.value_set(self.open.priority)]
        )
        self._changed()
        sla = timedelta(seconds=policy.sla_seconds)
        gone = interrupt or (lambda: False)
        while self._resolution is None:
            if gone():
                return None
            try:
                await workflow.wait_condition(lambda: self._resolution is not None or gone(), timeout=sla)
                continue
            except TimeoutError:
                if self.level >= policy.max_escalations:
                    workflow.logger.warning(
                        "exception hit its limit; default action", extra={"kind": req.kind}
                    )
                    note = f"no decision after {self.level} escalations"
                    self._resolution = Resolution(self.open.id, policy.default_action, note, "system:policy")
                    break
                self.level += 1
                escalation = Escalate(self.open.id, self.level, policy.sla_seconds, req.value_at_risk)
                escalated = await calls.run(ESCALATE_EXCEPTION, escalation, start_to_close=ACTIVITY_TIMEOUT)
                workflow.logger.warning("exception escalated", extra={"kind": req.kind, "level": self.level})
                workflow.upsert_search_attributes([sa.OMNI_PRIORITY.value_set(escalated.priority)])
                self._changed()
        return self._resolution

    def closed(self) -> None:
        """Call once the resolving activity has committed."""
        self.open = None
        self.actions = []
        self._resolution = None
        self._check = None
        # Unset, not "": the Temporal UI's query box cannot send an empty string (it turns
        # `OmniException != ""` into `!= "undefined"`), so `OmniException IS NOT NULL` must
        # mean "waiting for a person". Runs from before the patch keep "" once closed.
        if workflow.patched(UNSET_WHEN_CLOSED):
            workflow.upsert_search_attributes([sa.OMNI_EXCEPTION.value_unset()])
        else:
            workflow.upsert_search_attributes([sa.OMNI_EXCEPTION.value_set("")])
        self._changed()

    def _changed(self) -> None:
        if self._on_change:
            self._on_change()


class AwaitsDecisions:
    """Base of every workflow with a human queue: owns the waiter and the `resolve_exception`
    update that `POST /v1/exceptions/{id}/resolve` sends (validated, so a wrong action or an
    exception no longer open is refused at once)."""

    waiter: ExceptionWaiter

    @workflow.update
    async def resolve_exception(self, resolution: Resolution) -> str:
        self.waiter.offer(resolution)
        return "accepted"

    @resolve_exception.validator
    def _can_resolve(self, resolution: Resolution) -> None:
        self.waiter.validate(resolution)
