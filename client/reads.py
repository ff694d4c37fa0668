"""`get`: the `Request` of a read (`GET`), as client.request.write is the one of a write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from client.request import Request, path

T = TypeVar("T")


def get(
    route: str, parse: Callable[[Any], T], params: Mapping[str, Any] | None = None, **values: str
) -> Request[T]:
    return Request("GET", route, path(route, **values), parse, params=dict(params or {}))
