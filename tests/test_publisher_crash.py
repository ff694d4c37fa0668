"""The channel publisher when its worker is SIGKILLed mid-delivery, against the whole stack
(`omniflow dev`: the supervisor starts a new worker): the receiver got the POST and applied
it, the worker died before its 2xx advanced the cursor; the new worker redelivers the same
delivery (same id, same items, though more changes came meanwhile), the receiver
deduplicates it, and it ends holding GET /v1/availability: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.chaos import worker_process
from bench.common import CHANNELS, LOCATIONS, create_catalog
from bench.publish_check import check
from bench.publish_receiver import Receiver, running
from client import NewSku, OmniflowClient
from runtime.db import make_async_engine
from tests.stack import DevStack

SKUS = ["K-1", "K-2"]


async def _eventually(ok: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, "the receiver never got there"
        await asyncio.sleep(0.2)


@pytest.fixture
def stack(tmp_path: Path) -> DevStack:
    return DevStack(tmp_path / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"})


async def test_a_worker_killed_mid_delivery_is_redelivered_the_same_and_deduplicated(stack: DevStack) -> None:
    receiver = Receiver(stall_seconds=3.0)
    async with running(receiver):
        await asyncio.to_thread(stack.start)
        try:
            await _scenario(stack, receiver)
        finally:
            await asyncio.to_thread(stack.stop)


async def _scenario(stack: DevStack, receiver: Receiver) -> None:
    with OmniflowClient(stack.api, stack.admin_key, timeout=30.0) as admin:
        create_catalog(admin, [NewSku(code=s, name=s, price=1000) for s in SKUS], LOCATIONS, CHANNELS)
    async with httpx.AsyncClient(base_url=stack.api, headers=stack.headers, timeout=30.0) as http:

        async def adjust(sku: str, delta: int) -> None:
            body = {"sku": sku, "location": "DC-EAST", "delta": delta, "reason": "found"}
            r = await http.post(
                "/v1/inventory/adjustments", json=body, headers={"Idempotency-Key": f"{sku}-{time.time_ns()}"}
            )
            assert r.status_code == 201, r.text

        target = {"url": f"{receiver.url}/web", "batch_ms": 0, "rate_per_s": 100}
        r = await http.put("/v1/channels/web/publishing", json=target)
        receiver.secrets["web"] = r.json()["secret"]
        await adjust("K-1", 5)
        await _eventually(lambda: receiver.held.get(("web", "K-1")) == 5, 60)
        receiver.stall_next = 1  # the next delivery is applied, but its answer comes too late ...
        await adjust("K-1", 3)
        await _eventually(lambda: receiver.stalling == 1, 30)
        worker = worker_process(stack)
        assert worker is not None
        worker.send_signal(signal.SIGKILL)  # ... for the worker: it dies before the cursor moves
        await adjust("K-2", 4)  # more changes while it is down
        await adjust("K-1", 1)
        await _eventually(lambda: receiver.duplicates >= 1, 150)  # the new worker's retry
        want = {
            i["sku"]: i["available"]
            for i in (await http.get("/v1/availability", params={"channel": "web"})).json()["items"]
        }
        await _eventually(lambda: receiver.state_of("web") == want, 60)
        availability = (await http.get("/v1/availability", params={"channel": "web"})).json()["items"]
    held = [a for a in receiver.applied[("web", "K-1")] if a.available == 8]
    assert len(held) == 1 and receiver.attempts.count(held[0].delivery_id) >= 2  # one id, applied once
    assert want == {"K-1": 9, "K-2": 4} and receiver.stale == 0 and receiver.bad_signatures == 0
    engine = make_async_engine(stack.database_url, pool_size=2)
    try:
        verdict = await check(engine, receiver, ["web"], availability)
    finally:
        await engine.dispose()
    assert verdict.ok, verdict
    assert "worker exited" in stack.stderr()
