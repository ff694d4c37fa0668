"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(HTTPException):
    """Raise anywhere in the API: becomes a problem+json response. Subclassing HTTPException
    keeps FastAPI from turning it into a 400 when raised while the body is being read."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.slug = slug
        self.title = title or HTTPStatus(status).phrase
        self.extra = extra


def problem_body(
    status: int, detail: str | None, *, slug: str | None = None, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description or HTTPStatus(status).phrase,
    }
    body.update(jsonable_encoder(extra))
    return body


def problem_response(
    status: int,
    detail: str | None,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, slug=slug, title=title, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


# Common problems, named once so every route says them the same way.
def not_found(what: str) -> Problem:
    return Problem(404, f"{what} was not found", slug="not-found")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, detail, slug="conflict", **extra)


def engine_unavailable(detail: str = "the workflow engine did not answer in time") -> Problem:
    return Problem(503, detail, slug="engine-unavailable", headers={"Retry-After": "2"})
