"""The open loop of the order benchmark (bench/open_loop.py) keeps offering at its rate while
answers are slow, and times each request from its scheduled send: a closed loop would send
less and report only the service time (coordinated omission)."""

from __future__ import annotations

import asyncio

from bench.open_loop import offer


async def test_sends_keep_their_schedule_and_latency_counts_the_queue() -> None:
    gate = asyncio.Semaphore(1)  # one request at a time served, 50 ms each: 20/s at most

    async def send(n: int, scheduled: float) -> None:
        async with gate:
            await asyncio.sleep(0.05)

    seen = await offer(40.0, 20, send)  # offered at twice what is served
    assert seen.failed == 0 and len(seen.capture_ms) == 20
    span = max(seen.sent_at) - seen.start
    assert span < 0.475 + 0.2  # all sent on schedule (the 20th due at 19/40 s), not held back
    assert max(seen.send_lag_ms) < 150
    # the last waited behind the others: ~20 x 50 ms from its scheduled send minus 475 ms
    assert sorted(seen.capture_ms)[-1] > 400
    assert min(seen.capture_ms) >= 50


async def test_a_failed_send_is_counted_and_not_timed() -> None:
    async def send(n: int, scheduled: float) -> None:
        if n % 2:
            raise RuntimeError("refused")

    seen = await offer(100.0, 10, send)
    assert seen.failed == 5 and len(seen.capture_ms) == 5
