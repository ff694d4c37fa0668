"""SQL of channel publishing: the target and its cursor, the changes after it, what was last
published, and the deliveries (with their lag). Each function runs in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.publishing import Item


async def target(conn: AsyncConnection, channel: str) -> Row[Any] | None:
    sql = text("SELECT * FROM channel_publishing WHERE channel = :c")
    return (await conn.execute(sql, {"c": channel})).first()


async def put_target(conn: AsyncConnection, channel: str, secret: str, **config: Any) -> bool:
    """Set the channel's target (url, enabled, batch_ms, max_batch, rate_per_s); a new one
    gets `secret` and starts with a snapshot. True when it was created."""
    created = await conn.execute(
        text(
            "INSERT INTO channel_publishing (channel, url, secret, enabled, batch_ms, max_batch, rate_per_s,"
            " cursor_txid, cursor_seq, paused, snapshot_due, created_at, updated_at) VALUES (:channel, :url,"
            " :secret, :enabled, :batch_ms, :max_batch, :rate_per_s, 0, 0, false, true, now(), now())"
            " ON CONFLICT (channel) DO NOTHING RETURNING channel"
        ),
        {"channel": channel, "secret": secret, **config},
    )
    if created.first() is not None:
        return True
    await conn.execute(
        text(
            "UPDATE channel_publishing SET url = :url, batch_ms = :batch_ms, max_batch = :max_batch,"
            " rate_per_s = :rate_per_s, paused = false, updated_at = now(),"
            " snapshot_due = snapshot_due OR (:enabled AND NOT enabled), enabled = :enabled WHERE channel = :channel"
        ),
        {"channel": channel, **config},
    )
    return False


async def set_secret(conn: AsyncConnection, channel: str, secret: str) -> None:
    await conn.execute(
        text("UPDATE channel_publishing SET secret = :s, updated_at = now() WHERE channel = :c"),
        {"c": channel, "s": secret},
    )


async def ask_snapshot(
    conn: AsyncConnection, channel: str, *, paused: bool | None = None, failing: bool = False
) -> None:
    """The next delivery is a full snapshot (a resync, or back after an outage: `failing`
    marks since when, unless it already was)."""
    await conn.execute(
        text(
            "UPDATE channel_publishing SET snapshot_due = true,"
            " failing_since = CASE WHEN :failing THEN coalesce(failing_since, now()) ELSE failing_since END,"
            " paused = coalesce(:paused, paused), updated_at = now() WHERE channel = :c"
        ),
        {"c": channel, "paused": paused, "failing": failing},
    )


@dataclass(frozen=True)
class Change:
    txid: int
    seq: int
    sku: str
    available: int
    at: datetime


async def changes_after(
    conn: AsyncConnection, channel: str, after: tuple[int, int], limit: int
) -> list[Change]:
    """The channel's feed after `after`, only below the oldest running transaction (so an
    event that commits late is never skipped: models.availability.read_feed)."""
    rows = await conn.execute(
        text(
            "SELECT txid, seq, sku, available, created_at FROM availability_event"
            " WHERE channel = :ch AND (txid, seq) > (:tx, :seq)"
            " AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint ORDER BY txid, seq LIMIT :lim"
        ),
        {"ch": channel, "tx": after[0], "seq": after[1], "lim": limit},
    )
    return [Change(int(r.txid), int(r.seq), r.sku, int(r.available), r.created_at) for r in rows]


async def changes_between(
    conn: AsyncConnection, channel: str, after: tuple[int, int], upto: tuple[int, int]
) -> list[Change]:
    """The channel's feed in (after, upto]: all committed once `upto` was read below the
    horizon, so the same range always gives the same changes."""
    rows = await conn.execute(
        text(
            "SELECT txid, seq, sku, available, created_at FROM availability_event"
            " WHERE channel = :ch AND (txid, seq) > (:tx, :seq) AND (txid, seq) <= (:tx1, :seq1) ORDER BY txid, seq"
        ),
        {"ch": channel, "tx": after[0], "seq": after[1], "tx1": upto[0], "seq1": upto[1]},
    )
    return [Change(int(r.txid), int(r.seq), r.sku, int(r.available), r.created_at) for r in rows]


async def atp_at(conn: AsyncConnection, channel: str, position: tuple[int, int]) -> dict[str, int]:
    """Every SKU's ATP on the channel once its feed is read up to `position` (0 before its
    first change): the current value for a SKU that has not changed since, else its last
    change up to there. Every change of channel_availability writes its feed event in the
    same transaction, and one statement reads both, so the two agree."""
    rows = await conn.execute(
        text(
            "WITH later AS (SELECT DISTINCT sku FROM availability_event"
            "  WHERE channel = :ch AND (txid, seq) > (:tx, :seq))"
            " SELECT s.code AS sku, CASE WHEN s.code IN (SELECT sku FROM later) THEN coalesce("
            "  (SELECT e.available FROM availability_event e WHERE e.channel = :ch AND e.sku = s.code"
            "   AND (e.txid, e.seq) <= (:tx, :seq) ORDER BY e.txid DESC, e.seq DESC LIMIT 1), 0)"
            "  ELSE coalesce(a.available, 0) END AS available"
            " FROM sku s LEFT JOIN channel_availability a ON a.sku = s.code AND a.channel = :ch"
        ),
        {"ch": channel, "tx": position[0], "seq": position[1]},
    )
    return {r.sku: int(r.available) for r in rows}


async def feed_head(conn: AsyncConnection, channel: str) -> tuple[int, int]:
    row = (
        await conn.execute(
            text(
                "SELECT txid, seq FROM availability_event WHERE channel = :ch"
                " AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
                " ORDER BY txid DESC, seq DESC LIMIT 1"
            ),
            {"ch": channel},
        )
    ).first()
    return (0, 0) if row is None else (int(row.txid), int(row.seq))


async def current_atp(conn: AsyncConnection, channel: str) -> dict[str, int]:
    """Every SKU's ATP on the channel now (0 where nothing was ever available)."""
    rows = await conn.execute(
        text(
            "SELECT s.code AS sku, coalesce(a.available, 0) AS available FROM sku s"
            " LEFT JOIN channel_availability a ON a.sku = s.code AND a.channel = :ch"
        ),
        {"ch": channel},
    )
    return {r.sku: int(r.available) for r in rows}


async def published(conn: AsyncConnection, channel: str, skus: Sequence[str] | None = None) -> dict[str, int]:
    sql = "SELECT sku, available FROM channel_published WHERE channel = :ch"
    params: dict[str, Any] = {"ch": channel}
    if skus is not None:
        sql += " AND sku = ANY(:skus)"
        params["skus"] = list(skus)
    return {r.sku: int(r.available) for r in await conn.execute(text(sql), params)}


async def advance(
    conn: AsyncConnection,
    channel: str,
    start: tuple[int, int],
    end: tuple[int, int],
    delivery: tuple[str, str, int],  # id, kind, lag_ms
    items: Sequence[Item],
) -> bool:
    """After the receiver's 2xx: the cursor moves from `start` to `end` (only from `start`:
    False if another round moved it), the items are what the receiver now has."""
    moved = await conn.execute(
        text(
            "UPDATE channel_publishing SET cursor_txid = :tx, cursor_seq = :seq, last_delivery_at = now(),"
            " failing_since = NULL, snapshot_due = snapshot_due AND NOT :snapshot, updated_at = now()"
            " WHERE channel = :ch AND cursor_txid = :tx0 AND cursor_seq = :seq0 RETURNING channel"
        ),
        {
            "ch": channel,
            "tx": end[0],
            "seq": end[1],
            "tx0": start[0],
            "seq0": start[1],
            "snapshot": delivery[1] == "snapshot",
        },
    )
    if moved.first() is None:
        return False
    if items:
        await conn.execute(
            text(
                "INSERT INTO channel_published (channel, sku, available, delivery_id, at) VALUES (:ch, :sku, :n, :d, now())"
                " ON CONFLICT (channel, sku) DO UPDATE SET available = EXCLUDED.available,"
                " delivery_id = EXCLUDED.delivery_id, at = EXCLUDED.at"
            ),
            [{"ch": channel, "sku": i.sku, "n": i.available, "d": delivery[0]} for i in items],
        )
        await conn.execute(
            text(
                "INSERT INTO publish_delivery (delivery_id, channel, kind, items, lag_ms, delivered_at)"
                " VALUES (:d, :ch, :kind, :n, :lag, now()) ON CONFLICT DO NOTHING"
            ),
            {"d": delivery[0], "ch": channel, "kind": delivery[1], "n": len(items), "lag": delivery[2]},
        )
    return True


async def lag_stats(
    conn: AsyncConnection,
    channel: str | None = None,
    last: int = 1000,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Row[Any]:
    """p50 / p99 lag (ms) and count of delivered changes (deltas): the channel's (every
    channel's, with None) last `last` deliveries, or, with `since` / `until`, every delivery
    in that window [since, until) (the publish lag KPI). Lag is a delivery's oldest change's
    commit to the receiver's 2xx."""
    windowed = since is not None or until is not None
    return (
        await conn.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50,"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99, count(*) AS n FROM"
                " (SELECT lag_ms FROM publish_delivery WHERE kind = 'delta'"
                "  AND (CAST(:ch AS text) IS NULL OR channel = :ch)"
                "  AND (CAST(:since AS timestamptz) IS NULL OR delivered_at >= :since)"
                "  AND (CAST(:until AS timestamptz) IS NULL OR delivered_at < :until)"
                "  ORDER BY delivered_at DESC LIMIT :last) d"
            ),
            {"ch": channel, "last": None if windowed else last, "since": since, "until": until},
        )
    ).one()
