"""`make bench` / `make bench-quick`: the order lifecycle against the Temporal ceiling, a
flash sale, a table on stdout, `bench/results/latest.json` and a plot
(`bench/results/lifecycle.png`).

    python -m bench.run --quick     # under 4 minutes
    python -m bench.run --full      # more levels and orders; minutes
    python -m bench.run --quick --open-loop   # then capture latency at half the best orders/s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

from bench import lifecycle, open_loop

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = {
    # concurrency levels, orders per level, flash sale (stock, orders, concurrency)
    "quick": ([1, 4, 16], 24, (30, 120, 24)),
    "full": ([1, 2, 4, 8, 16, 32], 80, (50, 400, 64)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--levels", help="comma-separated concurrency levels (overrides the profile)")
    parser.add_argument("--orders", type=int, help="orders per level (overrides the profile)")
    parser.add_argument("--skip-flash", action="store_true", help="no flash sale (comparing builds)")
    parser.add_argument("--out", default="latest.json", help="result file name in bench/results/")
    parser.add_argument(
        "--open-loop", action="store_true", help="then offer orders at a constant rate (bench/open_loop.py)"
    )
    parser.add_argument("--rate", type=float, help="open-loop orders/s (default: half the best level's)")
    parser.add_argument("--open-seconds", type=float, default=30.0, help="how long the open loop offers")
    args = parser.parse_args()
    profile = "full" if args.full else "quick"
    levels, per_level, flash = PROFILES[profile]
    if args.levels:
        levels = [int(x) for x in args.levels.split(",")]
    per_level = args.orders or per_level
    t0 = time.monotonic()
    print(f"omniflow bench ({profile}): levels {levels}, {per_level} orders per level", flush=True)
    steady = (args.rate, args.open_seconds) if args.open_loop or args.rate else None
    result = asyncio.run(lifecycle.run(levels, per_level, None if args.skip_flash else flash, steady))
    result.update(
        profile=profile,
        seconds=round(time.monotonic() - t0, 1),
        machine={
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.out == "latest.json":
        lifecycle.plot(result, RESULTS / "lifecycle.png")
    print(lifecycle.table(result))
    if result["open_loop"]:
        print(open_loop.line(result["open_loop"]))
    print(
        f"ratio {result['ratio']} (orders {result['orders_per_s']}/s vs ceiling {result['ceiling_wf_per_s']}/s "
        f"at {result['at_concurrency']} clients; cpu_ratio {result['cpu_ratio']} "
        f"({result.get('cpu_ratio_at_our_rate')} at our rate), server_ratio {result['server_ratio']} "
        f"({result.get('server_ratio_at_our_rate')} at our rate)); wrote bench/results/{args.out} in {result['seconds']} s"
    )


if __name__ == "__main__":
    main()
