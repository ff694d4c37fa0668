"""The real worker (worker.build_worker, with its reservation batcher) as a context manager:
the `worker` fixture, and tests that start it only once orders wait for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings


@asynccontextmanager
async def running_worker(client: Client, engine: AsyncEngine, settings: Settings) -> AsyncIterator[Worker]:
    from worker import build_worker, close_batcher, reservation_batcher

    batcher = reservation_batcher(engine, settings)
    w = build_worker(client, engine, settings, batcher=batcher)
    async with w:
        yield w
    await close_batcher(batcher)
