"""Exception handlers: every error becomes problem+json; no stack trace leaves the process."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.problems import Problem, problem_response

log = structlog.stdlib.get_logger("omniflow.api")


def _loc(loc: tuple[Any, ...] | list[Any]) -> list[Any]:
    return [str(p) if not isinstance(p, int) else p for p in loc]


async def _problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    reserved = {"type", "title", "status", "detail", "slug", "headers"}
    extra = {k: v for k, v in exc.extra.items() if k not in reserved}  # the RFC 9457 members stay ours
    return problem_response(
        exc.status_code,
        str(exc.detail),
        slug=exc.slug,
        title=exc.title,
        headers=dict(exc.headers) if exc.headers else None,
        **extra,
    )


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code in (404, 405) and detail in ("Not Found", "Method Not Allowed"):
        detail = f"{detail}: {request.method} {request.url.path}"
    return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(
        [
            {
                "loc": _loc(e.get("loc", ())),
                "msg": e.get("msg", "invalid"),
                "type": e.get("type", "value_error"),
            }
            for e in exc.errors()
        ]
    )


def validation_problem(errors: list[dict[str, Any]]) -> Response:
    """The 422 of an invalid request: each error's `loc` (e.g. ["query", "kind"]), `msg`, `type`."""
    first = errors[0] if errors else None
    detail = (
        f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else "the request is not valid"
    )
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem_response(
        422, detail, slug="validation-error", title="Request validation failed", errors=errors
    )


def database_unavailable(exc: BaseException) -> bool:
    """Postgres did not answer (down, restarting, connection lost, pool exhausted) or ended
    the transaction for a transient reason: the client should retry, it did nothing wrong.
    psycopg raises OperationalError for all of these (including deadlocks, serialization
    failures and admin shutdown); anything else from the driver is a fault of ours."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OperationalError | InterfaceError | PoolTimeout):
            return True
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
    return False


def database_unavailable_response(path: str, exc: BaseException) -> Response:
    log.warning(
        "database unavailable",
        path=path,
        error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
    )
    return problem_response(
        503,
        "the database is unavailable; retry shortly",
        slug="database-unavailable",
        headers={"Retry-After": "2"},
    )


async def _database(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):
        return database_unavailable_response(request.url.path, exc)
    return await _unhandled(request, exc)


async def _unhandled(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):  # raised outside the routes (a middleware's own query)
        return database_unavailable_response(request.url.path, exc)
    request_id = request.scope.get("state", {}).get("request_id")
    log.error("unhandled error", exc_info=exc, path=request.url.path)
    return problem_response(
        500,
        "An unexpected error occurred. It has been logged"
        + (f" with request id {request_id}." if request_id else "."),
        slug="internal-error",
        request_id=request_id,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(PoolTimeout, _database)
    app.add_exception_handler(Exception, _unhandled)
