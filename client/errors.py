"""The one error of the client: an answer of 4xx or 5xx from the API, as RFC 9457 problem
details. Network failures (nothing came back) are httpx's `httpx.TransportError`."""

from __future__ import annotations

import contextlib
import email.utils
import time
from http import HTTPStatus
from typing import Any

import httpx

_MEMBERS = ("type", "title", "status", "detail")


class ApiError(Exception):
    """The API answered `status` >= 400. `slug` names the problem (`validation-error`,
    `not-found`, `conflict`, `idempotency-key-in-flight`, `database-unavailable`, …); `extra`
    holds the problem's other members (`errors` of a 422, `order_id` of a create conflict,
    `current_status`, `request_id`, …)."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        extra: dict[str, Any] | None = None,
        method: str = "",
        path: str = "",
        headers: httpx.Headers | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title or _phrase(status)
        self.detail = detail
        self.extra: dict[str, Any] = extra or {}
        self.method = method
        self.path = path
        self.headers = headers or httpx.Headers()
        super().__init__(str(self))

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        if not isinstance(body, dict):  # not problem+json (a proxy's page, say): keep its text
            body = {"detail": response.text[:500]}
        return cls(
            response.status_code,
            type=str(body.get("type") or "about:blank"),
            title=str(body.get("title") or ""),
            detail=str(body.get("detail") or ""),
            extra={k: v for k, v in body.items() if k not in _MEMBERS},
            method=response.request.method,
            path=response.request.url.path,
            headers=response.headers,
        )

    @property
    def slug(self) -> str | None:
        """`conflict` for type `/problems/conflict`; None for `about:blank`."""
        return self.type.rsplit("/problems/", 1)[1] if "/problems/" in self.type else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        """A validation problem's fields: [{"loc": ["body", "lines", 0, "sku"], "msg": …}]."""
        errors = self.extra.get("errors")
        return list(errors) if isinstance(errors, list) else []

    @property
    def retry_after(self) -> float | None:
        """Seconds the API asked to wait (`Retry-After`), if it did."""
        return retry_after(self.headers)

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"{self.status} {self.title}: {self.detail}{where}"

    def __reduce__(self) -> Any:  # picklable (thread and process pools)
        return (
            _rebuild,
            (self.status, self.type, self.title, self.detail, self.extra, self.method, self.path),
        )


def _rebuild(status: int, type: str, title: str, detail: str, extra: Any, method: str, path: str) -> ApiError:
    return ApiError(status, type=type, title=title, detail=detail, extra=extra, method=method, path=path)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
