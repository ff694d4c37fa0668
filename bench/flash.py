"""The flash sale of issue 20 through the HTTP API on `omniflow dev` stacks
(bench/flash_kit.py: a kit whose components two other SKUs on sale share, three channels, a
ring-fence and safety stock; buyers arriving at a constant rate, each its own task, timed
from its scheduled instant; a buyer the stock cannot cover is turned away at intake with a
409, the others' orders are workflows that reserve or are refused at sourcing), then its
checks.

    .venv/bin/python -m bench.flash [--units 250] [--buyers 2500] [--seconds 60] [--compare]

The issue's size: `--units 1000 --buyers 10000` (about 167 buyers/s for a minute).

`--compare`: the same sale twice, side by side in one run, each on a fresh stack: order
sourcing reserving one step at a time (OMNIFLOW_RESERVATION_BATCHING=false, before issue 20)
and through the worker's batcher (the default). Prints sold, oversold (must be 0), unsold
while buyers remain (must be 0), fence and safety stock kept, capture p50/p99 of the buyers
taken and of those turned away, buyers/s, the refused lines by reason and where (intake or
sourcing), the time until every order taken is decided, CPU seconds per process of the stack
and commits per buyer; writes bench/results/flash.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import write_json
from bench.flash_kit import Sale, check, run_sale, stock_the_sale
from bench.lifecycle_shop import Shop
from bench.stack import DevStack


async def run(units: int, buyers: int, seconds: float, batching: bool, cache: float) -> dict[str, Any]:
    env = {
        "OMNIFLOW_LOG_LEVEL": "WARNING",
        "OMNIFLOW_RESERVATION_BATCHING": str(batching).lower(),
        "OMNIFLOW_INTAKE_STOCK_CACHE_SECONDS": str(cache),
    }
    with tempfile.TemporaryDirectory(prefix="omniflow-flash-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env=env).start()
        shop = Shop(stack)
        try:
            await shop.setup()
            sale = Sale(units)
            await stock_the_sale(shop, sale)
            measured, answers = await run_sale(shop, sale, buyers, seconds)
            return {
                "batching": batching,
                "intake_cache_seconds": cache,
                **measured,
                **await check(shop, sale, answers),
            }
        finally:
            await shop.close()
            stack.stop()


ROWS = [
    "buyers_per_s",
    "taken_at_intake",
    "capture_ms",
    "all_decided_seconds",
    "accepted_by_sku",
    "oversold",
    "sold_but_not_booked",
    "orders_in_part",
    "unsold_while_buyers_remain",
    "component_units_left",
    "ring_fence_kept",
    "safety_stock_kept",
    "refusals_by_reason",
    "refusals_where",
    "cores_busy",
    "cpu_seconds",
    "commits_per_buyer",
    "write_xacts_per_buyer",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=250, help="units of each component")
    parser.add_argument("--buyers", type=int, default=2500)
    parser.add_argument("--seconds", type=float, default=60.0, help="the buyers arrive evenly over this")
    parser.add_argument("--compare", action="store_true", help="one step at a time, then batched")
    parser.add_argument(
        "--intake-cache",
        type=float,
        default=0.2,
        help="OMNIFLOW_INTAKE_STOCK_CACHE_SECONDS (0: a read per order)",
    )
    args = parser.parse_args()
    modes = [False, True] if args.compare else [True]
    runs = [
        asyncio.run(run(args.units, args.buyers, args.seconds, mode, args.intake_cache)) for mode in modes
    ]
    for row in ROWS:
        print(f"{row:28} " + "  |  ".join(json.dumps(r[row]) for r in runs))
    print(f"wrote {write_json('flash.json', {'runs': runs})}")


if __name__ == "__main__":
    main()
