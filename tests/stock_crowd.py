"""Helpers of the inventory concurrency tests: many clients, each on its own Postgres
connection, started together (`Crowd`), and the true and the published ATP to check them by."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.availability import load_snapshot

CHANNELS = ("web", "marketplace", "b2b")


# -- helpers ---------------------------------------------------------------------------


async def all_of(*aws: Awaitable[Any]) -> list[Any]:
    """Like asyncio.gather, but lets every client finish before raising the first failure
    (so that a failing client does not leave the others running past the test)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


async def all_atp(eng: AsyncEngine) -> dict[tuple[str, str], int]:
    """The true ATP of every channel and SKU, computed from the balances now."""
    async with eng.connect() as conn:
        skus = list((await conn.execute(text("SELECT code FROM sku ORDER BY code"))).scalars())
        snap = await load_snapshot(conn, skus)
    return {(ch, sku): snap.atp(ch, sku) for ch in CHANNELS for sku in skus}


async def stored_atp(eng: AsyncEngine) -> dict[tuple[str, str], int]:
    """`channel_availability` (what the API serves), missing rows read as 0 like the API does."""
    async with eng.connect() as conn:
        skus = list((await conn.execute(text("SELECT code FROM sku ORDER BY code"))).scalars())
        rows = await conn.execute(text("SELECT channel, sku, available FROM channel_availability"))
        stored = {(r.channel, r.sku): int(r.available) for r in rows}
    return {(ch, sku): stored.get((ch, sku), 0) for ch in CHANNELS for sku in skus}


async def connected_backends(eng: AsyncEngine) -> int:
    async with eng.connect() as conn:
        n = await conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        )
        return int(n.scalar_one())


@dataclass
class Crowd:
    """Start N clients, each holding its own connection, and release them at once."""

    size: int
    ready: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    pids: set[int] = field(default_factory=set)

    async def join(self, conn: AsyncConnection) -> None:
        async with conn.begin():
            self.pids.add(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
        self.ready += 1
        if self.ready == self.size:
            self.all_ready.set()
        await self.go.wait()

    async def start(self, eng: AsyncEngine, *, timeout: float = 30) -> int:
        """Wait until every client is connected; return how many backends serve the
        database at that moment; then let them all go."""
        await asyncio.wait_for(self.all_ready.wait(), timeout)
        backends = await connected_backends(eng)
        self.go.set()
        return backends


async def hot_rows_and_ops(eng: AsyncEngine) -> tuple[list[Any], set[str]]:
    """The TEE reservation rows in id order (the order Postgres serialized them under the SKU
    lock), and the keys of every reservation operation."""
    async with eng.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT id, key, channel, qty FROM reservation WHERE sku = 'TEE' ORDER BY id")
            )
        ).all()
        ops = set(
            (await conn.execute(text("SELECT key FROM stock_operation WHERE kind = 'reserve'"))).scalars()
        )
    return list(rows), ops
