"""A client that has its answer and retries at once meets the replay, never 409 "in flight":
the Idempotency-Key middleware stores the response before it sends it. Only a real socket
shows this (over ASGI the client's call returns when the app has finished, store included),
and only under load: 16 clients, each in its own thread, each sending a keyed adjustment and
the same request again the moment the answer arrives. Before the fix about one retry in 40
met the key still in flight (the response was out, its store one round trip behind)."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from runtime.settings import Settings
from tests.factories import standard_catalog
from tests.live_api import live_api

CLIENTS = 16
ROUNDS = 20
ADJUSTMENT = {"sku": "TEE", "location": "DC-EAST", "status": "sellable", "delta": 1, "reason": "initial"}


def _first_and_retry(url: str, admin_key: str) -> list[tuple[int, int, str | None]]:
    seen = []
    auth = {"Authorization": f"Bearer {admin_key}"}
    # what is tested is the replay, not the latency: a loaded machine may take seconds a request
    with httpx.Client(base_url=url, headers=auth, timeout=60.0) as client:
        for _ in range(ROUNDS):
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            first = client.post("/v1/inventory/adjustments", json=ADJUSTMENT, headers=headers)
            retry = client.post("/v1/inventory/adjustments", json=ADJUSTMENT, headers=headers)
            assert "idempotent-replayed" not in first.headers
            if retry.headers.get("idempotent-replayed"):
                assert retry.json() == first.json()
            seen.append((first.status_code, retry.status_code, retry.headers.get("idempotent-replayed")))
    return seen


async def test_a_retry_sent_the_moment_the_answer_arrives_is_the_replay(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, admin_key: str
) -> None:
    await standard_catalog(engine)
    before = await _on_hand(engine)

    def clients(url: str) -> list[tuple[int, int, str | None]]:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(_first_and_retry, url, admin_key) for _ in range(CLIENTS)]
            return [pair for f in futures for pair in f.result()]

    async with live_api(settings, temporal_client) as url:
        seen = await asyncio.to_thread(clients, url)
    wrong = [pair for pair in seen if pair != (201, 201, "true")]
    assert not wrong, f"{len(wrong)} of {len(seen)}: (first, retry, replayed) {wrong[:5]}"
    assert await _on_hand(engine) - before == CLIENTS * ROUNDS  # each adjustment applied once


async def _on_hand(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        qty = await conn.scalar(
            text("SELECT coalesce(sum(qty), 0) FROM stock_balance WHERE sku = 'TEE' AND location = 'DC-EAST'")
        )
    return int(qty or 0)
