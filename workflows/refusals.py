"""A business refusal from an activity, re-raised inside an update handler so that the update
fails (the caller gets 409/422) and the workflow itself carries on."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError


def refusal(err: ActivityError) -> ApplicationError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return ApplicationError(str(err), type="StepFailed", non_retryable=True)
