"""Business outcomes leave activities as non-retryable ApplicationErrors whose `type` is the
domain error code, so workflows and the API can tell a refusal from a fault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.exceptions import ApplicationError

from domain.errors import DomainError


@asynccontextmanager
async def business_outcomes() -> AsyncIterator[None]:
    try:
        yield
    except DomainError as exc:
        raise ApplicationError(str(exc), exc.details(), type=exc.code, non_retryable=True) from exc
