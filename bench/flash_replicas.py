"""The flash sale (`bench.lifecycle.flash_sale`, as `python -m bench.flash` runs it) on
`omniflow dev --replicas N`: N API processes and N workers against one Postgres and one
Temporal server, every buyer's client taking turns over the APIs (client/clients.py).

    .venv/bin/python -m bench.flash_replicas [--replicas 2] [--stock 100] [--orders 1000] [--concurrency 64]

Prints what the flash sale prints (sold, oversold, unsold while buyers remain, capture
p50/p99, orders/s, refusals by reason) with the answers each API gave, and checks from
Postgres that every unit is held once: the balances' reserved units and the open
reservations equal the units the orders accepted, and no buyer's order holds more than the
one unit it asked for. Writes bench/results/flash-replicas-N.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from bench.common import write_json
from bench.lifecycle import flash_sale
from bench.lifecycle_shop import Shop
from bench.stack import DevStack

SKU = "FLASH"  # bench/lifecycle_shop.py's scarce SKU


async def run(replicas: int, stock: int, orders: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omniflow-flash-") as tmp:
        env = {"OMNIFLOW_LOG_LEVEL": "WARNING"}
        stack = DevStack(Path(tmp) / "data", extra_env=env, replicas=replicas).start()
        shop = Shop(stack)
        try:
            await shop.setup()
            result = await flash_sale(shop, stock, orders, concurrency)
            held = held_once(stack.database_url, result["accepted_units"])
            answers = dict(sorted(shop.answers_by_api.items()))
            return {"replicas": replicas, **result, "answers_by_api_port": answers, "held_once": held}
        finally:
            await shop.close()
            stack.stop()


def held_once(database_url: str, accepted: int) -> dict[str, Any]:
    """What Postgres holds of the flash SKU against what the orders accepted (`ok`: all agree)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(reserved), 0) FROM stock_balance WHERE sku = %s AND NOT is_virtual", (SKU,)
        ).fetchone()
        in_balances = int(row[0]) if row else -1
        row = conn.execute(
            "SELECT coalesce(sum(qty - consumed - released), 0) FROM reservation WHERE sku = %s", (SKU,)
        ).fetchone()
        in_reservations = int(row[0]) if row else -1
        more_than_one = conn.execute(
            "SELECT order_id FROM order_line WHERE sku = %s GROUP BY order_id"
            " HAVING sum(reserved + shipped) > 1",
            (SKU,),
        ).fetchall()
    return {
        "in_balances": in_balances,
        "in_reservations": in_reservations,
        "orders_holding_more_than_one": [str(r[0]) for r in more_than_one[:10]],
        "ok": in_balances == in_reservations == accepted and not more_than_one,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="API and worker processes, each")
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    result = asyncio.run(run(args.replicas, args.stock, args.orders, args.concurrency))
    print(json.dumps(result, indent=2))
    print(f"wrote {write_json(f'flash-replicas-{args.replicas}.json', result)}")
    ok = result["oversold"] == 0 and result["unsold_while_buyers_remain"] == 0 and result["held_once"]["ok"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
