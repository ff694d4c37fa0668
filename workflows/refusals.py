"""Refusals inside workflows: a domain rule's refusal in an update validator, and an
activity's refusal re-raised inside an update handler, so that the update fails (the caller
gets 409/422/404) and the workflow itself carries on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.errors import DomainError, StepFailed
    from workflows.contracts.refusals import application_error


@contextmanager
def refusals() -> Iterator[None]:
    """Around a validator's rule checks: a DomainError becomes the update's refusal."""
    try:
        yield
    except DomainError as exc:
        raise application_error(exc) from exc


def refusal(err: ActivityError) -> ApplicationError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return application_error(StepFailed(str(err)))
