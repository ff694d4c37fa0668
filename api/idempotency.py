"""The Idempotency-Key mechanism of docs/api.md, once, for every write route that opts in with
`guard(..., idempotency="required" | "optional")`.

- Same key + same request → the first response is replayed, with `Idempotent-Replayed: true`.
- Same key + a different request → 422.  Same key while the first is in flight → 409.
- A route declared `guard(..., idempotency="required")` answers 400 without a key.

Keys are scoped to the caller (the hash of its API key), so clients never collide. The
request fingerprint is the method, the path and the body as canonical JSON (key order and
whitespace do not matter). Responses below 500 are kept (except 401/403, which ran nothing);
a 5xx or a crash frees the key so the client can retry. The key is settled (the response stored,
or the key freed) before the response is sent: a client that has its answer and retries at once
meets the replay, never its own request still "in flight". When the database is what failed
(restarting), freeing the key or storing the response is retried in the background until it
is back, so a retry is not kept waiting as "in flight". A key whose first request died
mid-flight with its process is taken over after `idempotency_in_flight_seconds`; the business
keys underneath (workflow ids, posting keys) make that retry safe as well.

A route declared with `key_taken_with_the_write` takes the key itself, as the first statement
of its own write transaction (`begin_with_key`), so the key's record commits with the route's
first write instead of in a transaction of its own (order intake: one commit fewer). A
key found taken there makes the middleware answer exactly as for any other route (replay,
409, 422, or take it over and run the route again); a route that answers before it took the
key has its response stored under the key with one insert (unless it says the answer is
not to be kept: order intake's refusal for want of stock, api.intake_refusal)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import database_unavailable, database_unavailable_response
from api.idempotency_keys import (
    FORGET,
    HELD,
    KEPT_HEADERS,
    RELEASE,
    SCOPE_KEY,
    STORE,
    STORE_NEW,
    TAKE,
    TAKE_IF_FREE,
    TAKE_OVER,
    KeyToTake,
    route_pattern,
    takes_key_with_its_write,
)
from api.metrics import IDEMPOTENT_REPLAYS
from api.problems import problem_response

log = structlog.stdlib.get_logger("omniflow.idempotency")

_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# The caller and Idempotency-Key of the request being run, for what the route sends on: a
# workflow update takes its id from it (api.temporal.update), so a retry after a 503 whose
# first try went through is that same update, answered with its result, not a second step.
IDEMPOTENT_CALL: ContextVar[str | None] = ContextVar("idempotent_call", default=None)
_NOT_STORED = {401, 403}


def _stored(captured: dict[str, Any]) -> bool:
    """Whether this response is kept under its key: below 500, and not 401/403 (ran nothing)."""
    return captured["status"] < 500 and captured["status"] not in _NOT_STORED


def _taken(scope: Scope, caller: str, key: str, fingerprint: str, now: datetime) -> dict[str, Any]:
    """The parameters of taking the key (TAKE) for this request."""
    return {"c": caller, "k": key, "m": scope["method"], "p": scope["path"], "h": fingerprint, "now": now}


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = (
            json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
        )
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, ttl: timedelta, in_flight_timeout: timedelta) -> None:
        self.app = app
        self.ttl = ttl
        self.in_flight_timeout = in_flight_timeout
        self._catching_up: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admitted = self._admit(scope)
        if not isinstance(admitted, tuple):
            await admitted(scope, receive, send)
            return
        key, auth = admitted
        body = await _read_body(receive)  # BodyTooLarge propagates to the 413 handler outside
        caller = hashlib.sha256(auth).hexdigest()
        fingerprint = request_fingerprint(scope["method"], scope["path"], body)
        if takes_key_with_its_write(scope["method"], scope["path"]):
            await self._run_taking_key_itself(scope, body, receive, send, caller, key, fingerprint)
            return
        claim = await self._try_claim(scope, caller, key, fingerprint)
        if claim is not None:
            await claim(scope, receive, send)
            return
        await self._run_and_settle(scope, body, send, caller, key)

    async def _run_taking_key_itself(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, caller: str, key: str, fingerprint: str
    ) -> None:
        """A route that takes its key in its own write transaction (`key_taken_with_the_write`).
        Found taken: answer as any route would (replay, 409, 422), or run it again once the
        key is taken over. Then settle as usual; a response given before the key was taken
        is stored with one insert (or not at all: a 5xx, 401, 403)."""
        pending = scope[SCOPE_KEY] = KeyToTake(_taken(scope, caller, key, fingerprint, datetime.now(UTC)))
        release = {"c": caller, "k": key}
        try:
            captured, held = await self._run(scope, body)
            if (
                not pending.claimed
                and pending.kept
                and _stored(captured)
                and not await self._store_new(scope, pending, captured)
            ):
                pending.held = True  # it answered before taking the key, which another request had
            if pending.held:
                claim = await self._try_claim(scope, caller, key, fingerprint)
                if claim is not None:
                    await claim(scope, receive, send)
                    return
                pending.held, pending.claimed = False, True  # taken over: ours now
                captured, held = await self._run(scope, body)
        except BaseException:
            if pending.claimed:
                await self._write(
                    scope, FORGET if pending.settled else RELEASE, release, key, "release the key"
                )
            raise
        try:
            if pending.settled:  # stored with the route's write; freed if the route then failed
                if not _stored(captured):
                    await self._write(scope, FORGET, release, key, "free the key")
            elif pending.claimed:
                await self._settle(scope, captured, release, key)
        finally:
            for message in held:
                await send(message)

    async def _store_new(self, scope: Scope, pending: KeyToTake, captured: dict[str, Any]) -> bool:
        """Store the answer of a route that answered before it took the key, in one insert;
        False when the key was taken already (by an earlier request)."""
        stored = {**pending.taken, "rh": pending.taken["h"], **self._response(captured)}
        engine: AsyncEngine = scope["app"].state.engine
        try:
            async with engine.begin() as conn:
                return (await conn.execute(STORE_NEW, stored)).first() is not None
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise
            log.warning(
                "idempotency: could not store the response (database unavailable)", key=pending.taken["k"]
            )
            return True  # nothing was taken: the key stays free for a retry

    def _admit(self, scope: Scope) -> ASGIApp | tuple[str, bytes]:
        """The key and the caller's credentials when this request is one to remember; otherwise
        what answers it instead: the app itself, or a 400 for a malformed key."""
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            return self.app
        policy = self._policy(scope)
        if policy is None:  # the route did not opt in (e.g. it returns a secret that must not be stored)
            return self.app
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        if not key:  # a required key is checked by the route, after authentication (api.auth.guard)
            return self.app
        if len(key) > 255 or not key.isprintable():
            return problem_response(
                400, "Idempotency-Key must be 1-255 printable characters", slug="bad-idempotency-key"
            )
        auth = headers.get(b"authorization", b"")
        if not auth:
            return self.app  # will answer 401; nothing to remember
        return key, auth

    async def _try_claim(self, scope: Scope, caller: str, key: str, fingerprint: str) -> ASGIApp | None:
        """`_claim`, or a 503 when the database is unavailable."""
        engine: AsyncEngine = scope["app"].state.engine
        try:
            return await self._claim(engine, caller, key, scope, fingerprint)
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise
            # Nothing was claimed: answer 503 here (not as an unhandled error) so the client retries.
            return database_unavailable_response(scope["path"], exc)

    async def _run(self, scope: Scope, body: bytes) -> tuple[dict[str, Any], list[Message]]:
        """Run the route on the body read already; its response captured, not sent yet."""
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}
        held: list[Message] = []

        async def replay_receive() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            held.append(message)  # sent once the key is settled

        await self.app(scope, replay_receive, capture_send)
        return captured, held

    async def _run_and_settle(self, scope: Scope, body: bytes, send: Send, caller: str, key: str) -> None:
        """Run the route, free the key or store its response, and only then send the response:
        a client that has its answer and retries at once meets the stored replay (or a free
        key), never this request still in flight (409)."""
        release = {"c": caller, "k": key}
        call = IDEMPOTENT_CALL.set(f"{caller}\n{key}")
        try:
            captured, held = await self._run(scope, body)
        except BaseException:
            await self._write(scope, RELEASE, release, key, "release the key")
            raise
        finally:
            IDEMPOTENT_CALL.reset(call)
        try:
            await self._settle(scope, captured, release, key)
        finally:
            for message in held:
                await send(message)

    async def _settle(
        self, scope: Scope, captured: dict[str, Any], release: dict[str, str], key: str
    ) -> None:
        if not _stored(captured):
            await self._write(scope, RELEASE, release, key, "release the key")
            return
        stored = {**self._response(captured), **release}
        await self._write(scope, STORE, stored, key, "store the response")

    @staticmethod
    def _response(captured: dict[str, Any]) -> dict[str, Any]:
        """What is kept of a response: status, the replayed headers, the body."""
        kept = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in captured["headers"]
            if k.decode("latin-1").lower() in KEPT_HEADERS
        }
        return {"s": captured["status"], "h": json.dumps(kept), "b": bytes(captured["body"])}

    async def _write(self, scope: Scope, statement: Any, params: dict[str, Any], key: str, what: str) -> None:
        """Settle the key (free it, or store the response). The response is decided already;
        when the database is unavailable, keep trying in the background until it is back (or
        until the key would be taken over anyway) instead of leaving the key in flight."""
        try:
            await _execute(scope, statement, params)
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise
            _key_left_in_flight(key, what, exc)
            task = asyncio.create_task(self._catch_up(scope, statement, params, key, what))
            self._catching_up.add(task)
            task.add_done_callback(self._catching_up.discard)

    async def _catch_up(
        self, scope: Scope, statement: Any, params: dict[str, Any], key: str, what: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.in_flight_timeout.total_seconds()
        delay = 0.2
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            try:
                await _execute(scope, statement, params)
            except DBAPIError as exc:
                if not database_unavailable(exc):
                    break
                delay = min(delay * 2, 2.0)
                continue
            log.info(f"idempotency: could {what} once the database was back", key=key)
            return
        log.warning(f"idempotency: gave up trying to {what}; the key is taken over when it expires", key=key)

    def _policy(self, scope: Scope) -> str | None:
        """The route's declaration: "required", "optional" or None (not idempotent). Read from
        the OpenAPI document (public, and what `guard` writes), indexed once per app."""
        app = scope["app"]
        index: list[tuple[str, re.Pattern[str], str]] | None = getattr(app.state, "idempotency_index", None)
        if index is None:
            index = []
            for path, item in app.openapi()["paths"].items():
                pattern = route_pattern(path)
                for method, op in item.items():
                    if op.get("x-idempotency"):
                        index.append((method.upper(), pattern, str(op["x-idempotency"])))
            app.state.idempotency_index = index
        for method, pattern, policy in index:
            if method == scope["method"] and pattern.match(scope["path"]):
                return policy
        return None

    async def _claim(
        self, engine: AsyncEngine, caller: str, key: str, scope: Scope, fingerprint: str
    ) -> ASGIApp | None:
        """Take the key for this request (None) or return the response to send instead."""
        now = datetime.now(UTC)
        taken = _taken(scope, caller, key, fingerprint, now)
        async with engine.begin() as conn:
            if (await conn.execute(TAKE_IF_FREE, taken)).first() is not None:
                return None
            row = (await conn.execute(HELD, {"c": caller, "k": key})).first()
            if row is None:  # released between our insert and select: take it now
                await conn.execute(TAKE, taken)
                return None
            expired = row.created_at < now - self.ttl
            abandoned = row.state == "in_flight" and row.locked_at < now - self.in_flight_timeout
            if expired or (abandoned and row.request_hash == fingerprint):
                await conn.execute(TAKE_OVER, {**taken, "exp": expired})
                if abandoned:
                    log.warning("idempotency key taken over after an abandoned attempt", key=key)
                return None
        if row.request_hash != fingerprint:
            return problem_response(
                422,
                "this Idempotency-Key was used for a different request; use a new key for a new action",
                slug="idempotency-key-reused",
            )
        if row.state == "in_flight":
            return problem_response(
                409,
                "a request with this Idempotency-Key is still being processed; retry shortly",
                slug="idempotency-key-in-flight",
                headers={"Retry-After": "1"},
            )
        IDEMPOTENT_REPLAYS.inc()
        return _Replay(row.response_status, row.response_headers or {}, row.response_body or b"")


async def _execute(scope: Scope, statement: Any, params: dict[str, Any]) -> None:
    # The app's engine as it is now (not when the request began): what a retry must use.
    engine: AsyncEngine = scope["app"].state.engine
    async with engine.begin() as conn:
        await conn.execute(statement, params)


def _key_left_in_flight(key: str, what: str, exc: DBAPIError) -> None:
    log.warning(
        f"idempotency: could not {what} (database unavailable); retrying in the background",
        key=key,
        error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
    )


class _Replay:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw += [(b"content-length", str(len(self.body)).encode()), (b"idempotent-replayed", b"true")]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
