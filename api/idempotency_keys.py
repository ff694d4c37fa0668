"""The rows of the Idempotency-Key mechanism (api.idempotency): the `idempotency_record`
statements, and the route side of taking a key with the route's own write (`key_taken_with_the_write`
and `begin_with_key`)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from api.problems import Problem

TAKE = text(
    "INSERT INTO idempotency_record (scope, key, method, path, request_hash, state, created_at,"
    " locked_at) VALUES (:c, :k, :m, :p, :h, 'in_flight', :now, :now)"
)
TAKE_IF_FREE = text(TAKE.text + " ON CONFLICT (scope, key) DO NOTHING RETURNING key")
HELD = text("SELECT * FROM idempotency_record WHERE scope = :c AND key = :k FOR UPDATE")
TAKE_OVER = text(
    "UPDATE idempotency_record SET method = :m, path = :p, request_hash = :h, state = 'in_flight',"
    " response_status = NULL, response_headers = NULL, response_body = NULL,"
    " created_at = CASE WHEN :exp THEN :now ELSE created_at END, locked_at = :now,"
    " completed_at = NULL WHERE scope = :c AND key = :k"
)
RELEASE = text("DELETE FROM idempotency_record WHERE scope = :c AND key = :k AND state = 'in_flight'")
# A response stored with the route's write that the route then did not give (its 5xx after the
# commit): the key is freed, as for any 5xx.
FORGET = text("DELETE FROM idempotency_record WHERE scope = :c AND key = :k")
STORE = text(
    "UPDATE idempotency_record SET state = 'done', response_status = :s, response_headers = "
    "CAST(:h AS jsonb), response_body = :b, completed_at = now() WHERE scope = :c AND key = :k"
)


# A route's first response stored at once, when the route answered before it took the key.
STORE_NEW = text(
    "INSERT INTO idempotency_record (scope, key, method, path, request_hash, state, response_status,"
    " response_headers, response_body, created_at, locked_at, completed_at) VALUES (:c, :k, :m, :p,"
    " :rh, 'done', :s, CAST(:h AS jsonb), :b, :now, :now, now()) ON CONFLICT (scope, key) DO NOTHING"
    " RETURNING key"
)
KEPT_HEADERS = {"content-type", "location", "retry-after"}  # what a replay gives back of the headers
SCOPE_KEY = "omniflow.idempotency_key"  # the KeyToTake of a request to such a route

# (method, path template) of the routes that take their key in their own write transaction.
_WITH_THEIR_WRITE: set[tuple[str, str]] = set()


def key_taken_with_the_write(method: str, path: str) -> None:
    """Declare that this route takes its Idempotency-Key in its own write transaction
    (`begin_with_key`) instead of the middleware taking it in one of its own first."""
    _WITH_THEIR_WRITE.add((method.upper(), path))


def takes_key_with_its_write(method: str, path: str) -> bool:
    """Whether a request (method, concrete path) is to such a route."""
    return any(m == method and route_pattern(p).match(path) for m, p in _WITH_THEIR_WRITE)


@functools.cache
def route_pattern(template: str) -> re.Pattern[str]:
    """The concrete paths of a path template (`/v1/orders/{order_id}`)."""
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")


@dataclass
class KeyToTake:
    taken: dict[str, Any]  # the TAKE parameters
    claimed: bool = False  # the key's record committed (with the route's write, or taken over)
    held: bool = False  # the route found the key taken: its answer is discarded
    # False: the route answered, before taking the key, with a refusal that is not data (order
    # intake's insufficient stock): not stored, the key stays free and a retry is run again.
    kept: bool = True
    storing: bool = False  # the route stores its response in its write transaction (store_with_write)
    settled: bool = False  # ... and that transaction committed: nothing is left to store


@asynccontextmanager
async def begin_with_key(engine: AsyncEngine, request: Request) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()` whose first statement takes the request's Idempotency-Key (a route
    declared with `key_taken_with_the_write`; without a key it is just `engine.begin()`). The key's record
    commits with the transaction or not at all. Found taken: a 409 the middleware discards
    (it answers as for a taken key); the transaction wrote nothing."""
    pending: KeyToTake | None = request.scope.get(SCOPE_KEY)
    async with engine.begin() as conn:
        if pending is not None and not pending.claimed and not await _take(conn, pending):
            pending.held = True
            raise Problem(409, "this Idempotency-Key is taken", slug="idempotency-key-in-flight")
        yield conn
    if pending is not None:
        pending.claimed = True
        pending.settled = pending.storing


async def store_with_write(conn: AsyncConnection, request: Request, response: Response) -> None:
    """Store the route's response under its key in the route's own write transaction (inside
    `begin_with_key`), so that the key is settled by the same commit as the write: no second
    write after it. Without a key, nothing."""
    pending: KeyToTake | None = request.scope.get(SCOPE_KEY)
    if pending is None:
        return
    kept = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in response.raw_headers
        if k.decode("latin-1") in KEPT_HEADERS
    }
    params = {
        "c": pending.taken["c"],
        "k": pending.taken["k"],
        "s": response.status_code,
        "h": json.dumps(kept),
        "b": bytes(response.body),
    }
    await conn.execute(STORE, params)
    pending.storing = True


async def _take(conn: AsyncConnection, pending: KeyToTake) -> bool:
    return (await conn.execute(TAKE_IF_FREE, pending.taken)).first() is not None
