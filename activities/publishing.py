"""One round of a channel's publisher: read the changes after the cursor, coalesce them
(domain.publishing), wait for the batch window unless a drop to zero is among them, sign
and POST the batch, and only after the receiver's 2xx advance the cursor and record what it
now has. A snapshot (every SKU's absolute ATP) goes first when the target is switched on,
resynced, or back after an outage. A failed POST raises: Temporal retries the round with
back-off, with the same delivery id for the same changes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain import publishing as rules
from models import publishing_store as store
from workflows.contracts import MARK_CHANNEL_FAILING, PUBLISH_ROUND, ChannelFailing, Published, PublishRound

PUBLISH_LAG = Histogram(
    "omniflow_publish_lag_seconds",
    "From the commit of an ATP change to the receiver's 2xx, per channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
POLL_SECONDS = 0.05
# (kind, cursor before, cursor after, items, when the oldest change committed)
Batch = tuple[str, tuple[int, int], tuple[int, int], list[rules.Item], datetime]
READ_FACTOR = 4  # read this many events per batch slot: coalescing folds repeats of a SKU


def _due(batch: Batch, t: Any) -> bool:
    kind, _, _, items, oldest = batch
    age_ms = (datetime.now(UTC) - oldest).total_seconds() * 1000
    return kind == "snapshot" or not items or rules.send_now(items, age_ms, int(t.batch_ms), int(t.max_batch))


class PublishingActivities:
    def __init__(
        self, engine: AsyncEngine, http: httpx.AsyncClient | None = None, timeout_seconds: float = 10.0
    ) -> None:
        self.engine = engine
        self.http = http or httpx.AsyncClient(timeout=timeout_seconds)

    @PUBLISH_ROUND.implement
    async def publish_channel_round(self, inp: PublishRound) -> Published:
        deadline = time.monotonic() + inp.idle_wait_seconds
        while True:  # watch the feed until a batch is due: a drop to zero goes ahead of its window
            async with self.engine.connect() as conn:
                t = await store.target(conn, inp.channel)
                if t is None or not t.enabled or t.paused:
                    return Published(enabled=False)
                batch = await self._batch(conn, t)
            if batch is not None and _due(batch, t):
                break
            if time.monotonic() >= deadline:  # nothing due yet: the next round watches on
                return Published(enabled=True, rate_per_s=float(t.rate_per_s))
            activity.heartbeat()
            await asyncio.sleep(POLL_SECONDS)
        kind, start, end, items, oldest = batch
        delivery = rules.delivery_id(inp.channel, start, end, kind)
        if items:
            await self._post(t, delivery, kind, items)
        lag_ms = int((datetime.now(UTC) - oldest).total_seconds() * 1000)
        async with self.engine.begin() as conn:
            await store.advance(conn, inp.channel, start, end, (delivery, kind, lag_ms), items)
        if items and kind == "delta":
            PUBLISH_LAG.labels(inp.channel).observe(lag_ms / 1000)
        return Published(True, bool(items), len(items), kind, rate_per_s=float(t.rate_per_s))

    async def _batch(self, conn: AsyncConnection, t: Any) -> Batch | None:
        """(kind, start, end, items, oldest change's time), or None when nothing changed."""
        start = (int(t.cursor_txid), int(t.cursor_seq))
        if t.snapshot_due:
            end = await store.feed_head(conn, t.channel)
            current = await store.current_atp(conn, t.channel)
            items = rules.snapshot(current, await store.published(conn, t.channel))
            return "snapshot", start, end, items, datetime.now(UTC)
        changes = await store.changes_after(conn, t.channel, start, int(t.max_batch) * READ_FACTOR)
        if not changes:
            return None
        taken: list[store.Change] = []
        skus: set[str] = set()
        for c in changes:  # no more SKUs than a batch holds: the cursor stops before the next
            if c.sku not in skus and len(skus) == int(t.max_batch):
                break
            skus.add(c.sku)
            taken.append(c)
        published = await store.published(conn, t.channel, sorted(skus))
        items = rules.coalesce([rules.Change(c.sku, c.available) for c in taken], published)
        end = (taken[-1].txid, taken[-1].seq)
        return "delta", start, end, items, min(c.at for c in taken)

    async def _post(self, t: Any, delivery: str, kind: str, items: list[rules.Item]) -> None:
        body = json.dumps(
            {
                "delivery_id": delivery,
                "channel": t.channel,
                "kind": kind,
                "items": [{"sku": i.sku, "available": i.available, "previous": i.previous} for i in items],
                "sent_at": datetime.now(UTC).isoformat(),
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            rules.DELIVERY_HEADER: delivery,
            rules.SIGNATURE_HEADER: rules.signature(t.secret, int(time.time()), body),
        }
        try:
            r = await self.http.post(t.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"{t.channel}: {type(exc).__name__} posting to the receiver", type="DeliveryFailed"
            ) from exc
        if not 200 <= r.status_code < 300:
            raise ApplicationError(
                f"{t.channel}: the receiver answered {r.status_code}", type="DeliveryFailed"
            )

    @MARK_CHANNEL_FAILING.implement
    async def mark_channel_failing(self, inp: ChannelFailing) -> None:
        """Deliveries have failed too long: a full snapshot goes once they work again."""
        async with self.engine.begin() as conn:
            await store.ask_snapshot(conn, inp.channel, paused=True if inp.paused else None, failing=True)
