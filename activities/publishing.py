"""One round of a channel's publisher: deliver the batch the round before decided, then
watch the feed for the next one. A batch is a pinned feed range (PublishBatch): the round
that decides it only hands it back, so the range is in the workflow's history before it is
posted; every attempt rebuilds the same items from the feed (a delta: the changes in its
range coalesced per SKU, domain.publishing; a snapshot: every SKU's absolute ATP at its
end), signs and POSTs them, at the target's rate, and only after the receiver's 2xx
advances the cursor and records what the receiver now has. So a failed POST retried by
Temporal with back-off, or taken up by another worker after a crash, carries the same
delivery id and the same items, and the receiver deduplicates. A snapshot goes first when
the target is switched on, resynced, or back after an outage; a drop to zero goes ahead of
the batch window."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import PUBLISH_LAG
from domain import publishing as rules
from models import publishing_store as store
from workflows.contracts import (
    MARK_CHANNEL_FAILING,
    PUBLISH_ROUND,
    ChannelFailing,
    PublishBatch,
    Published,
    PublishRound,
)

POLL_SECONDS = 0.05
READ_FACTOR = 4  # read this many events per batch slot: coalescing folds repeats of a SKU


@dataclass(frozen=True)
class Batch:
    pin: PublishBatch
    items: list[rules.Item]
    oldest: datetime  # when its oldest change committed (a snapshot: when it was read)

    @property
    def start(self) -> tuple[int, int]:
        return (self.pin.start_txid, self.pin.start_seq)

    @property
    def end(self) -> tuple[int, int]:
        return (self.pin.end_txid, self.pin.end_seq)


def _pin(kind: str, start: tuple[int, int], end: tuple[int, int]) -> PublishBatch:
    return PublishBatch(kind, start[0], start[1], end[0], end[1])


def _due(batch: Batch, t: Any) -> bool:
    age_ms = (datetime.now(UTC) - batch.oldest).total_seconds() * 1000
    return batch.pin.kind == "snapshot" or rules.send_now(
        batch.items, age_ms, int(t.batch_ms), int(t.max_batch)
    )


def _live(t: Any) -> bool:
    return t is not None and bool(t.enabled) and not t.paused


class PublishingActivities:
    def __init__(
        self, engine: AsyncEngine, http: httpx.AsyncClient | None = None, timeout_seconds: float = 10.0
    ) -> None:
        self.engine = engine
        self.http = http or httpx.AsyncClient(timeout=timeout_seconds)

    @PUBLISH_ROUND.implement
    async def publish_channel_round(self, inp: PublishRound) -> Published:
        """Deliver the batch the round before decided (if still owed), then watch the feed
        until the next batch is due and hand it back: the next round delivers it, so its
        range sits in the workflow's history before anything is posted."""
        t = await self._target(inp.channel)
        if not _live(t):
            return Published(enabled=False)
        items = 0
        if inp.batch is not None:
            items = await self._deliver(t, inp.batch)
            t = await self._target(inp.channel)
            if not _live(t):
                return Published(enabled=False)
        upcoming = await self._watch(inp, t)
        kind = inp.batch.kind if items and inp.batch else ""
        return Published(True, bool(items), items, kind, rate_per_s=float(t.rate_per_s), next=upcoming)

    async def _target(self, channel: str) -> Any:
        async with self.engine.connect() as conn:
            return await store.target(conn, channel)

    async def _deliver(self, t: Any, pin: PublishBatch) -> int:
        """POST the pinned batch (rebuilt from the feed), at the target's rate, and advance
        the cursor after the 2xx. Nothing when the cursor already moved past it (an attempt
        before got its 2xx) or a snapshot is owed first. Returns the items delivered."""
        start = (pin.start_txid, pin.start_seq)
        if (int(t.cursor_txid), int(t.cursor_seq)) != start or (pin.kind == "delta" and t.snapshot_due):
            return 0
        async with self.engine.connect() as conn:
            batch = await self._rebuild(conn, t, pin)
        if batch.items:
            await self._wait_rate(t)
            await self._post(
                t, rules.delivery_id(t.channel, batch.start, batch.end, pin.kind), pin.kind, batch.items
            )
        await self._advance(t, batch)
        return len(batch.items)

    async def _wait_rate(self, t: Any) -> None:
        """At most rate_per_s deliveries a second (a workflow timer is too coarse for this)."""
        if t.last_delivery_at is None:
            return
        gap = 1 / float(t.rate_per_s) - (datetime.now(UTC) - t.last_delivery_at).total_seconds()
        if gap > 0:
            await asyncio.sleep(gap)

    async def _advance(self, t: Any, batch: Batch) -> None:
        lag_ms = int((datetime.now(UTC) - batch.oldest).total_seconds() * 1000)
        delivery = rules.delivery_id(t.channel, batch.start, batch.end, batch.pin.kind)
        async with self.engine.begin() as conn:
            moved = await store.advance(
                conn, t.channel, batch.start, batch.end, (delivery, batch.pin.kind, lag_ms), batch.items
            )
        if moved and batch.items and batch.pin.kind == "delta":
            PUBLISH_LAG.labels(t.channel).observe(lag_ms / 1000)

    async def _watch(self, inp: PublishRound, t: Any) -> PublishBatch | None:
        """Watch the feed until a batch is due (a drop to zero goes ahead of its window); a
        batch whose changes the receiver already has only moves the cursor. None when
        nothing fell due in idle_wait_seconds, or the target was switched off."""
        deadline = time.monotonic() + inp.idle_wait_seconds
        while True:
            async with self.engine.connect() as conn:
                t = await store.target(conn, inp.channel)
                batch = await self._plan(conn, t) if _live(t) else None
            if batch is not None and _due(batch, t):
                if batch.items:
                    return batch.pin
                await self._advance(t, batch)
                continue
            if not _live(t) or time.monotonic() >= deadline:
                return None
            activity.heartbeat()
            await asyncio.sleep(POLL_SECONDS)

    async def _plan(self, conn: AsyncConnection, t: Any) -> Batch | None:
        """The next batch after the cursor, or None when nothing changed."""
        start = (int(t.cursor_txid), int(t.cursor_seq))
        if t.snapshot_due:
            return await self._rebuild(
                conn, t, _pin("snapshot", start, await store.feed_head(conn, t.channel))
            )
        changes = await store.changes_after(conn, t.channel, start, int(t.max_batch) * READ_FACTOR)
        if not changes:
            return None
        taken: list[store.Change] = []
        skus: set[str] = set()
        for c in changes:  # no more SKUs than a batch holds: the batch ends before the next
            if c.sku not in skus and len(skus) == int(t.max_batch):
                break
            skus.add(c.sku)
            taken.append(c)
        return await self._coalesced(conn, t, _pin("delta", start, (taken[-1].txid, taken[-1].seq)), taken)

    async def _rebuild(self, conn: AsyncConnection, t: Any, pin: PublishBatch) -> Batch:
        """The batch of a pinned range, the same on every attempt: a snapshot is every SKU's
        ATP at its end, a delta the changes in its range coalesced against what the receiver
        has (which only a delivery of this range changes)."""
        end = (pin.end_txid, pin.end_seq)
        if pin.kind == "snapshot":
            current = await store.atp_at(conn, t.channel, end)
            items = rules.snapshot(current, await store.published(conn, t.channel))
            return Batch(pin, items, datetime.now(UTC))
        changes = await store.changes_between(conn, t.channel, (pin.start_txid, pin.start_seq), end)
        return await self._coalesced(conn, t, pin, changes)

    async def _coalesced(
        self, conn: AsyncConnection, t: Any, pin: PublishBatch, changes: list[store.Change]
    ) -> Batch:
        published = await store.published(conn, t.channel, sorted({c.sku for c in changes}))
        items = rules.coalesce([rules.Change(c.sku, c.available) for c in changes], published)
        oldest = min((c.at for c in changes), default=datetime.now(UTC))
        return Batch(pin, items, oldest)

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
