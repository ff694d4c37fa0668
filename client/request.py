"""One API call as data: what to send and how to read the answer. Every operation of the
API is a function returning a `Request` (client/operations.py); the sync and the async
client both send it, so each operation is written once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

T = TypeVar("T")

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def path(route: str, **values: str) -> str:
    """`path("/v1/orders/{order_id}", order_id="order-web-1")`, each value URL-quoted."""
    return route.format(**{k: quote(v, safe="") for k, v in values.items()})


@dataclass(frozen=True)
class Request(Generic[T]):
    """`parse` turns the decoded JSON body (None when there is none) into the result.
    `idempotency_key` is set when the request is built, once per logical write, and sent
    with every retry of it. `key_policy` is the route's: "required" (always sent, generated
    if not given), "optional" (sent unless the client is told not to) or None."""

    method: str
    route: str  # the path template, e.g. "/v1/orders/{order_id}" (for metrics and logs)
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    idempotency_key: str | None = None
    key_policy: str | None = None
    key_given: bool = False  # the caller chose the key (it is always sent)
    idempotent: bool = False  # sending it twice does what sending it once does
    ok_statuses: tuple[int, ...] = ()  # not an error although >= 400 (e.g. /readyz's 503)
    extra_timeout: float = 0.0  # a long poll's wait, on top of the client's timeout

    @property
    def retry_safe(self) -> bool:
        """May be sent again after an unclear outcome (no answer, a 503)."""
        return self.method in _SAFE_METHODS or self.idempotent or self.idempotency_key is not None

    def with_params(self, **params: Any) -> Request[T]:
        return replace(self, params={**self.params, **params})

    def without_optional_key(self) -> Request[T]:
        """What a client that sends keys only where the API requires one (or the caller gave
        one) sends."""
        if self.key_policy == "optional" and not self.key_given:
            return replace(self, idempotency_key=None)
        return self

    def query(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in self.params.items():
            for v in value if isinstance(value, list | tuple) else [value]:
                if v is None:
                    continue
                out.append((name, _text(v)))
        return out


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    return str(v)


def write(
    method: str,
    route: str,
    the_path: str,
    parse: Callable[[Any], T],
    body: Any,
    *,
    key: str | None,
    policy: str | None,
    **kw: Any,
) -> Request[T]:
    """A write; under a route that takes an Idempotency-Key, one is generated now (if not
    given) and stays the key of this write across retries."""
    generated = key or (new_idempotency_key() if policy else None)
    return Request(
        method,
        route,
        the_path,
        parse,
        json=body,
        idempotency_key=generated,
        key_policy=policy,
        key_given=key is not None,
        **kw,
    )


@dataclass(frozen=True)
class Reply(Generic[T]):
    """The result with what came with it: the status (a create answers 202 when new and 200
    when it existed), the headers, whether the API replayed a stored answer to the same
    Idempotency-Key, and how many attempts it took."""

    value: T
    status: int
    headers: httpx.Headers
    attempts: int = 1
    idempotency_key: str | None = None

    @property
    def replayed(self) -> bool:
        return bool(self.headers.get("idempotent-replayed") == "true")


@dataclass(frozen=True)
class Attempt:
    """One try of a request, as an observer sees it: its answer or its transport error."""

    method: str
    route: str
    path: str
    number: int
    seconds: float
    response: httpx.Response | None = None
    error: BaseException | None = None

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def outcome(self) -> str:
        """`200`, `503`, … or the transport error's name (`ConnectError`, `ReadTimeout`)."""
        return str(self.status) if self.response is not None else type(self.error).__name__


Observer = Callable[[Attempt], None]
