"""Replenishment suggestions for 10,000 SKU-locations with 90 days of shipments, computed the
way the API and a run compute them: five bulk queries (models.replenishment.load_inputs:
scope and position, shipped units, supplier terms, factors), then the pure domain
(domain.replenishment.suggest_all). No query per SKU.

    .venv/bin/python -m bench.replenish [--skus 1000] [--locations 10] [--days 90] [--repeat 3]

It builds its own data in a throw-away embedded Postgres (COPY): SKUs in 20 categories,
locations, 5 suppliers (each SKU from 1–2 of them), a policy row per SKU-location, sellable,
inbound and reserved stock, a seasonality factor per category, and a shipment on about 70 %
of days per SKU-location. Prints the time of each part, the total, and the time per 1,000."""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from domain.replenishment import Factors, suggest_all
from models import replenishment as store
from runtime.db import make_async_engine
from runtime.embedded_pg import EmbeddedPostgres
from runtime.migrate import upgrade
from runtime.ports import free_port

LIMIT_SECONDS = 5.0
SUPPLIERS = 5
CATEGORIES = 20


def _copy(cur: psycopg.Cursor, table: str, columns: str, rows: Sequence[Sequence[object]]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _catalog(cur: psycopg.Cursor, rng: random.Random, skus: list[str], locations: list[str]) -> None:
    _copy(
        cur,
        "location",
        "code, name, type, ship_cost, priority, can_ship",
        [(loc, loc, "dc", 400, i, True) for i, loc in enumerate(locations)],
    )
    _copy(
        cur,
        "sku",
        "code, name, kind, unit_cost, price, currency, tracking, returnable_days, category",
        [(s, s, "simple", 1000, 2000, "USD", "none", 30, f"CAT{i % CATEGORIES}") for i, s in enumerate(skus)],
    )
    suppliers = [f"SUP{i}" for i in range(SUPPLIERS)]
    _copy(
        cur,
        "supplier",
        "code, name, lead_time_days, dropship",
        [(s, s, 5 + 3 * i, False) for i, s in enumerate(suppliers)],
    )
    items = []
    for s in skus:
        for sup in rng.sample(suppliers, rng.randint(1, 2)):
            item = (sup, s, rng.randint(200, 900), rng.choice((1, 6, 12)), rng.choice((1, 6)), "USD", False)
            items.append(item)
    _copy(cur, "supplier_item", "supplier, sku, cost, moq, order_multiple, currency, inspect", items)
    policies = [(s, loc, rng.randint(0, 20), rng.choice((7, 14)), None) for s in skus for loc in locations]
    _copy(cur, "replenishment_policy", "sku, location, safety_stock, review_days, supplier", policies)
    today = datetime.now(UTC).date()
    factors = [
        (None, f"CAT{c}", today - timedelta(days=30), today + timedelta(days=30), 1.2)
        for c in range(CATEGORIES)
    ]
    _copy(cur, "replenishment_factor", "sku, category, starts_on, ends_on, factor", factors)


def _stock(cur: psycopg.Cursor, rng: random.Random, skus: list[str], locations: list[str]) -> None:
    rows = []
    for s in skus:
        for loc in locations:
            qty = rng.randint(0, 200)
            rows.append((s, loc, "sellable", "", qty, rng.randint(0, qty // 4), False, 1000))
            rows.append((s, loc, "inbound", "", rng.choice((0, 0, 24)), 0, False, 1000))
    _copy(cur, "stock_balance", "sku, location, status, lot, qty, reserved, is_virtual, unit_cost", rows)


def _shipments(
    cur: psycopg.Cursor, rng: random.Random, skus: list[str], locations: list[str], days: int
) -> int:
    """One move per SKU-location-day shipped, all under one stock operation."""
    cur.execute(
        "INSERT INTO stock_operation (key, kind, ref, request_hash) VALUES ('bench', 'consume', '', 'x')"
    )
    now = datetime.now(UTC)
    buf = io.StringIO()
    n = 0
    for s in skus:
        for loc in locations:
            rate = rng.uniform(0.2, 6)
            for day in range(days):
                if rng.random() < 0.7:
                    at = (now - timedelta(days=day, hours=rng.uniform(0, 23))).isoformat()
                    buf.write(
                        f"bench\t{s}\t\t{loc}\tsellable\tcustomer\tvirtual\t{max(1, round(rng.expovariate(1 / rate)))}\tshipment\t\t{at}\n"
                    )
                    n += 1
    buf.seek(0)
    columns = (
        "op_key, sku, lot, from_location, from_status, to_location, to_status, qty, reason, ref, created_at"
    )
    with cur.copy(f"COPY stock_move ({columns}) FROM STDIN") as copy:
        while chunk := buf.read(1 << 20):
            copy.write(chunk)
    return n


def build(url: str, skus: int, locations: int, days: int) -> int:
    rng = random.Random(14)
    sku_codes = [f"SKU{i:05d}" for i in range(skus)]
    location_codes = [f"DC{i:02d}" for i in range(locations)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        _catalog(cur, rng, sku_codes, location_codes)
        _stock(cur, rng, sku_codes, location_codes)
        moves = _shipments(cur, rng, sku_codes, location_codes, days)
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return moves


async def measure(url: str, demand_days: int) -> dict[str, float | int]:
    engine = make_async_engine(url, pool_size=1)
    try:
        today: date = datetime.now(UTC).date()
        t0 = time.perf_counter()
        async with engine.connect() as conn:
            data = await store.load_inputs(conn, demand_days, today)
        t1 = time.perf_counter()
        found = suggest_all(
            data.points, data.shipped, demand_days, Factors(data.factors), data.options, today
        )
        t2 = time.perf_counter()
    finally:
        await engine.dispose()
    return {
        "points": len(data.points),
        "suggested": sum(1 for s in found if s.suggested_qty > 0),
        "sql_s": t1 - t0,
        "domain_s": t2 - t1,
        "total_s": t2 - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--locations", type=int, default=10)
    parser.add_argument("--days", type=int, default=90, help="days of shipment history built")
    parser.add_argument("--demand-days", type=int, default=90, help="the demand window measured")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omniflow-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "data", free_port(), database="bench", durable=False)
        pg.start()
        try:
            upgrade(pg.url)
            t = time.perf_counter()
            moves = build(pg.url, args.skus, args.locations, args.days)
            print(
                f"built {args.skus * args.locations:,} SKU-locations, {moves:,} shipments in {time.perf_counter() - t:.1f} s"
            )
            runs = [asyncio.run(measure(pg.url, args.demand_days)) for _ in range(args.repeat)]
        finally:
            pg.stop()
    for i, r in enumerate(runs, 1):
        per = float(r["total_s"]) / max(int(r["points"]), 1) * 1000
        print(
            f"run {i}: {r['points']:,} SKU-locations, {r['suggested']:,} to order: SQL {r['sql_s']:.3f} s"
            f" + domain {r['domain_s']:.3f} s = {r['total_s']:.3f} s total, {per * 1000:.1f} ms per 1,000"
        )
    best = min(float(r["total_s"]) for r in runs)
    verdict = "within" if best <= LIMIT_SECONDS else "OVER"
    print(f"best {best:.3f} s: {verdict} the {LIMIT_SECONDS:.0f} s budget")


if __name__ == "__main__":
    main()
