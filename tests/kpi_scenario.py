"""The scripted scenario of the KPI report's tests (tests/test_kpis.py). Quantities are
driven through the real workflows and worker (orders sourced, picked, packed and shipped, a
backorder); the moments are then written directly, because when things happened is what the
KPIs measure and the workflows record the real now().

D0 is ten days ago at noon; the ship-by times are the defaults (standard 2 days). Stock: 10
TEE at DC-EAST, 10 MUG at DC-WEST.

- A (web) TEE 2, received day 0, shipped 1 h later: on time, complete.
- B (web) TEE 1 + MUG 1, received day 1: two shipments (DC-EAST, DC-WEST) 2 h and 5 h
  later: split, on time.
- C (web) TEE 1, received day 2, shipped 3 days later: late.
- D (web) MUG 12, received day 3: 9 reserved, 3 backordered since day 3; nothing shipped,
  past its ship-by time.
- E (marketplace) TEE 1, received day 4, shipped 30 min later.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from runtime.settings import Settings
from tests.orders import fulfil, place_order, stocked_shop, until

D0 = datetime.combine(datetime.now(UTC).date() - timedelta(days=10), time(12), UTC)
HOUR = 3600.0


def day(n: float) -> datetime:
    return D0 + timedelta(days=n)


async def write(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _ship_all(
    client: Client, settings: Settings, engine: AsyncEngine, ext: str, lines: Any, **kw: Any
) -> Any:
    handle = await place_order(engine, client, settings, ext, lines, payment="captured", **kw)
    snap = await until(handle, lambda s: bool(s.shipments) and s.status in ("allocated", "in_fulfillment"))
    for shipment in snap.shipments:
        await fulfil(handle, shipment.id)
    await until(handle, lambda s: s.status == "completed")
    return handle


async def _received(engine: AsyncEngine, order_id: str, at: datetime) -> None:
    await write(engine, "UPDATE sales_order SET created_at = :at WHERE id = :o", at=at, o=order_id)


async def _shipped(engine: AsyncEngine, shipment_id: str, at: datetime) -> None:
    await write(engine, "UPDATE shipment SET shipped_at = :at WHERE id = :s", at=at, s=shipment_id)


async def orders(engine: AsyncEngine, client: Client, settings: Settings) -> None:
    await stocked_shop(engine)
    a = await _ship_all(client, settings, engine, "A", [("TEE", 2, 2000)])
    b = await _ship_all(client, settings, engine, "B", [("TEE", 1, 2000), ("MUG", 1, 1500)])
    c = await _ship_all(client, settings, engine, "C", [("TEE", 1, 2000)])
    d = await place_order(engine, client, settings, "D", [("MUG", 12, 1500)], payment="captured")
    await until(d, lambda s: any(ln.backordered == 3 for ln in s.lines))
    e = await _ship_all(client, settings, engine, "E", [("TEE", 1, 2000)], channel="marketplace")
    for handle, received in ((a, day(0)), (b, day(1)), (c, day(2)), (d, day(3)), (e, day(4))):
        await _received(engine, handle.id, received)
    await _shipped(engine, f"{a.id}-S1", day(0) + timedelta(hours=1))
    await _shipped(engine, f"{b.id}-S1", day(1) + timedelta(hours=2))
    await _shipped(engine, f"{b.id}-S2", day(1) + timedelta(hours=5))
    await _shipped(engine, f"{c.id}-S1", day(5))
    await _shipped(engine, f"{e.id}-S1", day(4) + timedelta(minutes=30))
    await write(
        engine, "UPDATE order_line SET backordered_since = :at WHERE order_id = :o", at=day(3), o=d.id
    )
