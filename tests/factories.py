"""Master data for tests, written straight to the tables (the catalog API has its own tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models import stock
from runtime.db import make_async_engine


async def add_location(
    conn: AsyncConnection,
    code: str,
    *,
    lat: float = 40.7,
    lon: float = -74.0,
    ship_cost: int = 500,
    priority: int = 100,
    type: str = "dc",
) -> None:
    await conn.execute(
        text(
            "INSERT INTO location (code, name, type, lat, lon, ship_cost, priority, can_ship) "
            "VALUES (:c, :c, :t, :lat, :lon, :sc, :p, true)"
        ),
        {"c": code, "t": type, "lat": lat, "lon": lon, "sc": ship_cost, "p": priority},
    )


async def add_sku(
    conn: AsyncConnection,
    code: str,
    *,
    tracking: str = "none",
    unit_cost: int = 1000,
    price: int = 2000,
    components: dict[str, int] | None = None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO sku (code, name, kind, unit_cost, price, currency, tracking, returnable_days) "
            "VALUES (:c, :c, :k, :uc, :p, 'USD', :t, 30)"
        ),
        {"c": code, "k": "kit" if components else "simple", "uc": unit_cost, "p": price, "t": tracking},
    )
    for comp, qty in (components or {}).items():
        await conn.execute(
            text("INSERT INTO sku_component (kit_sku, component_sku, qty) VALUES (:k, :c, :q)"),
            {"k": code, "c": comp, "q": qty},
        )


async def add_channel(
    conn: AsyncConnection, code: str, locations: Iterable[str], rule: str = "nearest", type: str = "web"
) -> None:
    await conn.execute(
        text("INSERT INTO channel (code, name, type, sourcing_rule) VALUES (:c, :c, :t, :r)"),
        {"c": code, "t": type, "r": rule},
    )
    for loc in locations:
        await conn.execute(
            text("INSERT INTO channel_location (channel, location) VALUES (:c, :l)"), {"c": code, "l": loc}
        )


async def set_policy(
    conn: AsyncConnection, channel: str, sku: str, safety: int = 0, ringfence: dict[str, int] | None = None
) -> None:
    await conn.execute(
        text(
            "INSERT INTO channel_policy (channel, sku, safety_stock) VALUES (:c, :s, :ss) "
            "ON CONFLICT (channel, sku) DO UPDATE SET safety_stock = EXCLUDED.safety_stock"
        ),
        {"c": channel, "s": sku, "ss": safety},
    )
    for loc, qty in (ringfence or {}).items():
        await conn.execute(
            text("INSERT INTO channel_ringfence (channel, sku, location, qty) VALUES (:c, :s, :l, :q)"),
            {"c": channel, "s": sku, "l": loc, "q": qty},
        )
    from models.availability import refresh_availability

    await refresh_availability(conn, [sku])


async def receive(
    engine: AsyncEngine,
    sku: str,
    location: str,
    qty: int,
    *,
    lot: str = "",
    expires_at: datetime | None = None,
    key: str | None = None,
) -> None:
    async with engine.begin() as conn:
        await stock.apply_moves(
            conn,
            key or f"test-stock-{sku}-{location}-{lot}-{qty}",
            "adjustment",
            [stock.adjustment_move(sku, location, "sellable", qty, lot, expires_at)],
            reason="initial",
        )


async def standard_catalog(engine: AsyncEngine) -> None:
    """Two DCs and a store; web sells from all, marketplace from the DCs; a tee, a mug, a kit
    of both, and lot-tracked coffee."""
    async with engine.begin() as conn:
        await add_location(conn, "DC-EAST", lat=40.7, lon=-74.0, ship_cost=400, priority=1)
        await add_location(conn, "DC-WEST", lat=34.0, lon=-118.2, ship_cost=300, priority=2)
        await add_location(conn, "STORE-SF", lat=37.8, lon=-122.4, ship_cost=900, priority=3, type="store")
        for code in ("TEE", "MUG"):
            await add_sku(conn, code)
        await add_sku(conn, "COFFEE", tracking="lot", unit_cost=500)
        await add_sku(conn, "GIFT", components={"TEE": 1, "MUG": 2})
        await add_channel(conn, "web", ["DC-EAST", "DC-WEST", "STORE-SF"])
        await add_channel(conn, "marketplace", ["DC-EAST", "DC-WEST"], rule="cheapest", type="marketplace")
        await add_channel(conn, "b2b", ["DC-EAST"], rule="priority", type="b2b")


async def balance(
    engine: AsyncEngine, sku: str, location: str, status: str = "sellable", lot: str = ""
) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT qty, reserved FROM stock_balance WHERE sku=:s AND location=:l AND status=:st AND lot=:lot"
                ),
                {"s": sku, "l": location, "st": status, "lot": lot},
            )
        ).first()
    return (int(row.qty), int(row.reserved)) if row else (0, 0)


async def atp(engine: AsyncEngine, channel: str, sku: str) -> int:
    from models.availability import load_snapshot

    async with engine.connect() as conn:
        snap = await load_snapshot(conn, [sku])
    return snap.atp(channel, sku)


async def assert_inventory_clean(engine: AsyncEngine) -> None:
    """Zero drift: balances equal their moves, and the books agree with the stock."""
    from models import finance

    async with engine.connect() as conn:
        findings = await stock.check(conn) + await finance.check(conn)
    assert findings == [], findings


class DatabaseOutage:
    """Cut the API's sessions to the test database and refuse new ones (`await cut()`) until
    `await restore()`: Postgres restarting, as the API sees it. Through the `postgres`
    database, since a database cannot lock itself out."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.db = engine.url.database
        self.admin_db = make_async_engine(
            engine.url.set(database="postgres").render_as_string(False), pool_size=1
        )

    async def cut(self) -> None:
        await self._allow(False)

    async def restore(self) -> None:
        await self._allow(True)
        await self.admin_db.dispose()

    async def _allow(self, yes: bool) -> None:
        async with self.admin_db.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS {str(yes).lower()}'))
            if not yes:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND application_name = 'omniflow-api'"
                    ),
                    {"db": self.db},
                )


async def wait_for_a_sku_lock(engine: AsyncEngine) -> None:
    """Until some transaction waits for a SKU's advisory lock (5 s at most)."""
    async with engine.connect() as conn:
        for _ in range(500):
            waiting = await conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
            if waiting.scalar_one():
                return
            await asyncio.sleep(0.01)
    raise AssertionError("no transaction waited for a SKU lock")
