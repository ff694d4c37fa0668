"""The outermost ASGI layer: a request id bound into every log line, the body size limit (a 413,
the body read and dropped up to a bound first, so that the client gets it), a NUL byte refused
in the path and the query (Postgres text cannot hold one: a 422, not a 500), one access log
line and the Prometheus request metrics per request, and the RateLimit-* headers of the count
the request was charged to (api.rate_limits)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import validation_problem
from api.metrics import HTTP_LATENCY, HTTP_REQUESTS
from api.problems import Problem, problem_response
from api.rate_limits import STATE as RATE_LIMIT

log = structlog.stdlib.get_logger("omniflow.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes", slug="body-too-large")


# A body over the limit is still read (and dropped) up to these bounds before the 413 is sent:
# a client that sends its whole body before it reads (no `Expect: 100-continue`, e.g. urllib)
# would otherwise have the connection reset under it, the answer unread. Past them the server
# stops reading and the connection is closed, as before.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0


def limited_receive(receive: Receive, limit: int) -> Receive:
    """Count body bytes as they arrive: chunked uploads cannot slip past the limit."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                if message.get("more_body", False):
                    await drain(receive)
                raise BodyTooLarge(limit)
        return message

    return wrapped


async def drain(receive: Receive) -> None:
    """Read and drop the rest of the request body, up to DRAIN_BYTES and DRAIN_SECONDS."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                verdict = scope["state"].get(RATE_LIMIT)
                if verdict is not None:  # api.rate_limits: the count this request was charged to
                    message["headers"] += verdict.headers()
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await drain(receive)
                raise BodyTooLarge(self.max_body_bytes)
            nul = nul_errors(scope)
            if nul:
                await validation_problem(nul)(scope, receive, send_wrapper)
                return
            await self.app(scope, limited_receive(receive, self.max_body_bytes), send_wrapper)
        except BodyTooLarge as exc:
            if started:
                raise
            response = problem_response(413, str(exc.detail), slug="body-too-large")
            await response(scope, receive, send_wrapper)
        finally:
            route = _route_label(scope)
            elapsed = time.perf_counter() - start
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            log.info(
                "request",
                method=method,
                path=scope.get("path"),
                route=route,
                status=status,
                ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


_NUL_MSG = "must not contain a NUL character (\\u0000)"


def nul_errors(scope: Scope) -> list[dict[str, Any]]:
    """Where the path or the query holds a NUL, as validation errors: `["path", <parameter>]`
    (the route's name for the segment; `["path"]` when no route matches) and `["query", <name>]`.
    JSON bodies are checked by the request models (api.schemas.RequestModel)."""
    errors: list[dict[str, Any]] = []
    path: str = scope.get("path", "")
    if "\x00" in path:
        names = [name for name, value in _path_params(scope).items() if "\x00" in str(value)]
        for loc in [["path", name] for name in names] or [["path"]]:
            errors.append({"loc": loc, "msg": _NUL_MSG, "type": "value_error"})
    query = scope.get("query_string", b"").decode("latin-1")
    if "\x00" in query or "%00" in query:
        seen: set[str] = set()
        for name, value in parse_qsl(query, keep_blank_values=True):
            if ("\x00" in name or "\x00" in value) and name not in seen:
                seen.add(name)
                errors.append({"loc": ["query", name], "msg": _NUL_MSG, "type": "value_error"})
    return errors


def _path_params(scope: Scope) -> dict[str, str]:
    """The path parameters of the documented route the path matches (the OpenAPI templates,
    indexed once per app), before routing: e.g. `code` for /v1/skus/%00."""
    app = scope.get("app")
    state = getattr(app, "state", None)
    if app is None or state is None or not hasattr(app, "openapi"):
        return {}
    index: list[tuple[re.Pattern[str], list[str]]] | None = getattr(state, "path_param_index", None)
    if index is None:
        index = []
        for template in app.openapi().get("paths", {}):
            names = re.findall(r"\{([^}/]+)\}", template)
            if names:
                regex = re.sub(r"\\\{[^}/]+\\\}", "([^/]+)", re.escape(template))
                index.append((re.compile(f"^{regex}$"), names))
        state.path_param_index = index
    path: str = scope.get("path", "")
    for pattern, names in index:
        found = pattern.match(path)
        if found:
            return dict(zip(names, found.groups(), strict=True))
    return {}


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
