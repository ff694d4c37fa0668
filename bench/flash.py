"""A flash sale through the HTTP API on one `omniflow dev` stack: buyers from three channels
(one with a ring-fence) order one unit each of a SKU with little stock, far more buyers than
units, each order its own workflow (`bench.lifecycle.flash_sale`).

    .venv/bin/python -m bench.flash [--stock 100] [--orders 1000] [--concurrency 64]

Prints sold, oversold (must be 0), unsold while buyers remain (must be 0), capture p50/p99,
orders/s and the refused lines by reason; writes bench/results/flash.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import write_json
from bench.lifecycle import flash_sale
from bench.lifecycle_shop import Shop
from bench.stack import DevStack


async def run(stock: int, orders: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omniflow-flash-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        shop = Shop(stack)
        try:
            await shop.setup()
            return await flash_sale(shop, stock, orders, concurrency)
        finally:
            await shop.close()
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    result = asyncio.run(run(args.stock, args.orders, args.concurrency))
    print(json.dumps(result, indent=2))
    print(f"wrote {write_json('flash.json', result)}")


if __name__ == "__main__":
    main()
