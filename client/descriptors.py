"""The descriptors that turn an operation of client/operations*.py into a client method:
`_Operation` (the result on the sync client, an awaitable of it on the async one) and
`_Pages` (every item of every page). client.clients lists each operation once with them."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from client.models import Page
from client.request import Request

if TYPE_CHECKING:
    from client.clients import AsyncOmniflowClient, OmniflowClient

P = ParamSpec("P")
T = TypeVar("T")


class _Operation(Generic[P, T]):
    """`create_order = _Operation(ops.create_order)`: `client.create_order(...)` builds the
    request and sends it; the sync client returns the result, the async one an awaitable."""

    def __init__(self, build: Callable[P, Request[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Operation[P, T]: ...
    @overload
    def __get__(self, obj: OmniflowClient, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncOmniflowClient, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self.build
        if obj.is_async:
            sender = obj

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                return (await sender.send(build(*args, **kwargs))).value

            return functools.wraps(build)(call_async)

        def call(*args: Any, **kwargs: Any) -> Any:
            return obj.send(build(*args, **kwargs)).value

        return functools.wraps(build)(call)


class _Pages(Generic[P, T]):
    """`iter_orders = _Pages(ops.list_orders)`: every item of every page, in order."""

    def __init__(self, build: Callable[P, Request[Page[T]]]) -> None:
        self.build = build
        self.__doc__ = f"Every item of every page of {build.__name__} (same arguments)."

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Pages[P, T]: ...
    @overload
    def __get__(self, obj: OmniflowClient, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: AsyncOmniflowClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self.build

        def pages(*args: Any, **kwargs: Any) -> Any:
            return obj.paginate(build(*args, **kwargs))

        return pages
