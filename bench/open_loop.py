"""Capture latency under open-loop load: orders offered at a constant rate for a fixed time,
each sent at its own scheduled instant whether or not the ones before it were answered (a
closed loop slows its own offered load down when the system is slow, and so hides the
queueing it causes: coordinated omission). Latency is measured from the scheduled send
time, so time an order spent waiting for a free connection or a slow event loop counts.

`python -m bench.run --open-loop` runs it after the closed-loop levels at 50 % of the best
orders/s they measured (`--rate` sets the rate instead); the warehouse (bench.lifecycle_shop
Floor) works every order to completed, as in the closed loop.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile
from bench.lifecycle_shop import Floor, Shop


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {q: round(percentile(ordered, p), 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


@dataclass
class Offered:
    """What an open loop saw: per order, ms from its scheduled send to its answer (capture) and
    how late its send started; when each send started and each answer came."""

    capture_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    failed: int = 0
    start: float = 0.0  # when the first send was due


IN_FLIGHT = 64  # at most the load generator's HTTP connections per client (bench.lifecycle_shop)


async def offer(
    rate: float, total: int, send: Callable[[int, float], Awaitable[object]], in_flight: int = IN_FLIGHT
) -> Offered:
    """Send `total` requests at `rate` per second, the n-th at start + n / rate whatever the
    earlier ones are doing (each its own task), timing each from its scheduled instant.
    `send(n, scheduled)`; an exception counts as failed. At most `in_flight` are sent at once:
    the others wait their turn on a semaphore (and that wait counts in their latency), not in
    httpx's connection pool, whose queue costs the load generator CPU quadratic in its length
    (10,000 buyers queued there spent it minutes of CPU and timed 137 of them out)."""
    out = Offered(start=time.perf_counter() + 0.2)
    start = out.start
    gate = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        out.sent_at.append(time.perf_counter())
        out.send_lag_ms.append((out.sent_at[-1] - scheduled) * 1000)
        try:
            async with gate:
                await send(n, scheduled)
        except Exception as exc:
            out.failed += 1
            print(f"  failed: {exc!r}"[:200], file=sys.stderr)
            return
        out.answered_at.append(time.perf_counter())
        out.capture_ms.append((out.answered_at[-1] - scheduled) * 1000)

    await asyncio.gather(*(one(n) for n in range(total)))
    return out


async def measure(shop: Shop, rate: float, seconds: float, tag: str) -> dict[str, Any]:
    """Offer `rate` orders/s for `seconds`; capture latency (scheduled send → 202) p50/p95/p99,
    the rate actually sent and captured, and the end-to-end time to completed."""
    floor = Floor(shop)
    runner = asyncio.create_task(floor.run())
    total = max(1, round(rate * seconds))
    to_completed: list[float] = []
    completions: list[asyncio.Task[None]] = []

    async def completed(order_id: str, scheduled: float) -> None:
        await asyncio.wait_for(floor.completed[order_id].wait(), 300)
        to_completed.append((floor.completed_at[order_id] - scheduled) * 1000)

    async def place(n: int, scheduled: float) -> None:
        order_id, _, created_at = await shop.place("web", f"{tag}-{n}", "TEE", 1)
        floor.in_flight[order_id] = created_at
        completions.append(asyncio.create_task(completed(order_id, scheduled)))

    try:
        seen = await offer(rate, total, place)
        await asyncio.gather(*completions, return_exceptions=True)
    finally:
        floor.stop()
        await runner
    first = seen.start
    return {
        "offered_per_s": round(rate, 2),
        "seconds": seconds,
        "orders": total,
        "failed": seen.failed,
        # the n-th send is due n / rate after the first: sends that kept up span total / rate
        "sent_per_s": round(total / (max(seen.sent_at) - first + 1 / rate), 2),
        "captured_per_s": round(len(seen.answered_at) / (max(seen.answered_at) - first), 2)
        if seen.answered_at
        else 0.0,
        "capture_ms": _percentiles(seen.capture_ms),
        "to_completed_ms": _percentiles(to_completed),
        "send_lag_ms": _percentiles(seen.send_lag_ms),
    }


def line(result: dict[str, Any]) -> str:
    c, t, lag = result["capture_ms"], result["to_completed_ms"], result["send_lag_ms"]
    return (
        f"open loop: {result['orders']} orders offered at {result['offered_per_s']}/s for {result['seconds']} s "
        f"(captured {result['captured_per_s']}/s, {result['failed']} failed): capture p50/p95/p99 "
        f"{c['p50']}/{c['p95']}/{c['p99']} ms from the scheduled send; to completed p50/p99 {t['p50']}/{t['p99']} ms; "
        f"send lag p99 {lag['p99']} ms"
    )
