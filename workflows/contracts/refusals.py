"""Refusals across Temporal: a domain refusal leaves an activity or an update validator as a
non-retryable ApplicationError whose type is the refusal's code, which the API reads back
(domain.errors.DomainError.kind_of)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from domain.errors import DomainError


def application_error(exc: DomainError) -> ApplicationError:
    return ApplicationError(str(exc), exc.details(), type=exc.code, non_retryable=True)
