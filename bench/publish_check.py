"""What a receiver was told, checked against the change feed and GET /v1/availability (the
publishing bench's flash sale and the publishing tests):

- every item it applied is the channel's true ATP at the feed position its delivery
  reflects (a delivery id ends with that position: `{channel}-{d|s}-{start}-{end}`), so no
  stale, higher value ever replaced a newer, lower one;
- nothing was refused by compare-and-set (each `previous` was what the receiver held);
- in the end it holds what GET /v1/availability answers, for every channel and SKU (a SKU it
  was never told about counts as 0: consumers start from 0)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.publish_receiver import Receiver

Position = tuple[int, int]


def end_of(delivery_id: str) -> Position:
    """The feed position a delivery brings its receiver to."""
    txid, _, seq = delivery_id.rsplit("-", 1)[1].partition(".")
    return int(txid), int(seq)


@dataclass
class FeedHistory:
    """Each SKU's values on one channel, in feed order."""

    positions: dict[str, list[Position]] = field(default_factory=lambda: defaultdict(list))
    values: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def at(self, sku: str, position: Position) -> int:
        """The SKU's ATP once the feed is read up to `position` (0 before its first event)."""
        k = bisect.bisect_right(self.positions.get(sku, []), position)
        return self.values[sku][k - 1] if k else 0


async def feed_history(engine: AsyncEngine, channel: str) -> FeedHistory:
    history = FeedHistory()
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT txid, seq, sku, available FROM availability_event WHERE channel = :c ORDER BY txid, seq"
            ),
            {"c": channel},
        )
        for r in rows:
            history.positions[r.sku].append((int(r.txid), int(r.seq)))
            history.values[r.sku].append(int(r.available))
    return history


@dataclass
class Verdict:
    items: int = 0  # items applied, all channels
    untrue: list[str] = field(default_factory=list)  # items not the true ATP at their position
    stale: int = 0  # items refused by compare-and-set
    final_mismatches: list[str] = field(default_factory=list)  # (channel, sku) not as GET /v1/availability

    @property
    def ok(self) -> bool:
        return not self.untrue and not self.stale and not self.final_mismatches


async def check(
    engine: AsyncEngine, receiver: Receiver, channels: Iterable[str], availability: list[dict[str, Any]]
) -> Verdict:
    """`availability`: the items of GET /v1/availability (every channel and SKU)."""
    verdict = Verdict(stale=receiver.stale)
    for channel in channels:
        history = await feed_history(engine, channel)
        for (ch, sku), applied in receiver.applied.items():
            if ch != channel:
                continue
            for a in applied:
                verdict.items += 1
                true = history.at(sku, end_of(a.delivery_id))
                if a.available != true:
                    verdict.untrue.append(f"{channel} {sku}: {a.available} from {a.delivery_id}, true {true}")
    for row in availability:
        held = receiver.held.get((row["channel"], row["sku"]), 0)
        if held != row["available"]:
            verdict.final_mismatches.append(
                f"{row['channel']} {row['sku']}: holds {held}, ATP {row['available']}"
            )
    return verdict
