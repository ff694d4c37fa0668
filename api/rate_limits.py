"""Rate limits per API key and route class, counted by the `limits` library (sliding window
counter: no burst of twice the limit at a window's edge, O(1) per request).

- **reads** (GET) and **writes** (POST/PUT/PATCH/DELETE): one count per key each, taken by
  `guard`'s dependency (api.auth) on every guarded route;
- **long-polls** (`wait` > 0 on the change feed): a count of their own per key, and at most
  `OMNIFLOW_RATE_LIMIT_LONG_POLLS_CONCURRENT` held open at once per key;
- **anonymous**: requests without a valid key, per client IP, counted before the 401 (so
  guessing keys is as slow as the limit).

Past a limit: 429 problem+json `rate-limited` with `Retry-After`. Every limited response
carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the
window frees room), added by api.middleware from `scope["state"]["rate_limit"]`.

Counts live in `OMNIFLOW_RATE_LIMIT_STORAGE`: `memory://` (the default) counts per API
process, so N replicas let a key through N times the limit; a shared storage (`redis://…`)
counts across replicas. The concurrent long-polls are counted per process in every case. A
shared storage that fails lets requests through (logged): rate limits protect the service,
they must not take it down."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from api.problems import Problem
from runtime.settings import Settings

log = structlog.stdlib.get_logger("omniflow.api")

READS, WRITES, LONG_POLLS, ANONYMOUS = "reads", "writes", "long-polls", "anonymous"
STATE = "rate_limit"  # where a request's verdict waits for api.middleware to send its headers


@dataclass(frozen=True)
class Verdict:
    limit: int
    remaining: int
    reset: int  # seconds

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
        ]


def rate_limited(route_class: str, verdict: Verdict, retry_after: int) -> Problem:
    return Problem(
        429,
        f"the {route_class} limit of this key ({verdict.limit} per window) is used up; "
        f"retry after {retry_after} s",
        slug="rate-limited",
        headers={"Retry-After": str(retry_after)},
    )


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        uri = settings.rate_limit_storage
        storage = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}")
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[str, RateLimitItem] = {
            READS: parse(settings.rate_limit_reads),
            WRITES: parse(settings.rate_limit_writes),
            LONG_POLLS: parse(settings.rate_limit_long_polls),
            ANONYMOUS: parse(settings.rate_limit_anonymous),
        }
        self.concurrent = settings.rate_limit_long_polls_concurrent
        self._open_polls: dict[str, int] = {}

    async def hit(self, request: Request, route_class: str, who: str) -> None:
        """Count one request of `who` in `route_class`; 429 past the limit."""
        if not self.enabled:
            return
        item = self._items[route_class]
        try:
            allowed = await self._limiter.hit(item, route_class, who)
            stats = await self._limiter.get_window_stats(item, route_class, who)
        except Exception as exc:  # a shared storage that is down: let the request through
            log.warning("rate limit storage failed; request let through", error=type(exc).__name__)
            return
        verdict = Verdict(item.amount, stats.remaining, max(1, math.ceil(stats.reset_time - time.time())))
        request.scope.setdefault("state", {})[STATE] = verdict
        if not allowed:
            raise rate_limited(route_class, verdict, verdict.reset)

    @asynccontextmanager
    async def long_poll(self, request: Request, who: str) -> AsyncIterator[None]:
        """Hold one of `who`'s long-poll places while the body runs; 429 when all are taken."""
        await self.hit(request, LONG_POLLS, who)
        if self.enabled and self._open_polls.get(who, 0) >= self.concurrent:
            held = Verdict(self.concurrent, 0, 1)
            request.scope.setdefault("state", {})[STATE] = held
            raise Problem(
                429,
                f"this key already holds {self.concurrent} long-polls open; retry when one returns",
                slug="rate-limited",
                headers={"Retry-After": "1"},
            )
        self._open_polls[who] = self._open_polls.get(who, 0) + 1
        try:
            yield
        finally:
            self._open_polls[who] -= 1
            if not self._open_polls[who]:
                del self._open_polls[who]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
