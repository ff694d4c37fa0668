"""Dependencies shared by routes: settings, the database, the Temporal client.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per
dependency per request. It does the same with a class given as a dependency (`Depends()` on
it), since it cannot know that its `__init__` does no I/O; `built_in_loop` gives such a class
to FastAPI as a coroutine with the class's own parameters."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.temporal import Updates
from runtime.settings import Settings

T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_engine(request: Request) -> AsyncEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_session(engine: Annotated[AsyncEngine, Depends(get_engine)]) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session


@asynccontextmanager
async def single_read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for a read that is one statement: in autocommit, so no BEGIN and ROLLBACK
    round trips around it."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def get_temporal(request: Request) -> Client:
    return request.app.state.temporal  # type: ignore[no-any-return]


async def get_updates(request: Request) -> Updates:
    return request.app.state.updates  # type: ignore[no-any-return]


def built_in_loop(cls: type[T]) -> Callable[..., Awaitable[T]]:
    """`cls` as a dependency built in the event loop. The order benchmark measured the thread
    pool's hand-off for the step routes' classes at 7 % of the API's CPU."""

    async def build(**fields: Any) -> T:
        return cls(**fields)

    # FastAPI reads the parameters (queries, sub-dependencies) off this signature; eval_str
    # resolves annotations written as strings in the class's own module.
    build.__signature__ = inspect.signature(cls, eval_str=True)  # type: ignore[attr-defined]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
UpdatesDep = Annotated[Updates, Depends(get_updates)]
