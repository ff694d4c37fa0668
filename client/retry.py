"""When to send a request again, and how long to wait first (tenacity does the looping).

Retried: a request that is safe to repeat (a read, a PUT, or a write carrying an
Idempotency-Key, which the API replays instead of doing twice) when the API answered one
of `statuses` (503 while Postgres or the workflow engine is away, 429, 502, 504) or 409
`idempotency-key-in-flight` (the first try of the same write is still running), or when no
answer came. A connection that could not even be opened is retried for any request: nothing
was sent. The wait is the API's `Retry-After` when it gives one (at most `max_delay`), else
an exponential back-off with jitter."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import tenacity

from client.errors import ApiError
from client.request import Request

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int | None = 5  # in all, the first included; None: no limit (then set a timeout)
    timeout: float | None = 60.0  # seconds from the first attempt after which none is started
    deadline: float | None = None  # a time.monotonic() after which no attempt is started
    initial_delay: float = 0.2
    max_delay: float = 5.0
    jitter: float = 0.3  # ± this fraction of each back-off
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    respect_retry_after: bool = True

    def retryable(self, request: Request[Any], exc: BaseException) -> bool:
        if isinstance(exc, ApiError):
            if exc.status == 409 and exc.slug == "idempotency-key-in-flight":
                return True
            return exc.status in self.statuses and request.retry_safe
        if isinstance(exc, _NOT_SENT):
            return True
        return isinstance(exc, httpx.TransportError) and request.retry_safe

    def delay(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 = the first)."""
        if self.respect_retry_after and isinstance(exc, ApiError) and exc.retry_after is not None:
            wait = min(exc.retry_after, self.max_delay)
        else:
            backoff = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
            wait = backoff * random.uniform(1 - self.jitter, 1 + self.jitter)
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - time.monotonic()))
        return wait

    def tenacity(self, request: Request[Any]) -> dict[str, Any]:
        """Keyword arguments of tenacity.Retrying / AsyncRetrying for this request."""
        stops: list[Any] = []
        if self.attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.attempts))
        if self.timeout is not None:
            stops.append(tenacity.stop_after_delay(self.timeout))
        if self.deadline is not None:
            deadline = self.deadline
            stops.append(lambda _state: time.monotonic() >= deadline)
        return {
            "stop": tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            "wait": lambda state: self.delay(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            ),
            "retry": tenacity.retry_if_exception(lambda exc: self.retryable(request, exc)),
            "reraise": True,
        }
