"""Channel availability: computed from balances with the rules in domain/atp.py, kept
current in `channel_availability`, and announced on the change feed.

Why the feed cannot skip a late commit: events are read in (txid, seq) order and only
those written by transactions older than the oldest still running one
(`pg_snapshot_xmin(pg_current_snapshot())`). A transaction that is still open has a txid at
or above that horizon, so it is read on a later page, after the cursor.

Why its values end true: every change of a SKU's availability takes a transaction advisory
lock per SKU (and per kit containing it) and computes the new value under it, so a SKU's
writers commit one after another, each with the value of everything committed before it.
Their txids need not follow: an order step gets its txid at its order row lock, before its
SKU locks, so a writer that took the SKU lock first can have the younger txid, commit first,
and sit after it in the feed. So each writer, under the lock, also gives its value to the
events of the same (channel, SKU) with a younger txid (`SUPERSEDE_LATER`): they committed
before it (its value is newer) and no reader has seen them (while it runs the horizon is at
or below its txid, below theirs). An event's value is final once it is below the horizon,
and the last event of a SKU in feed order carries the value of its last commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.atp import AvailabilitySnapshot, LocationStock


async def kits_containing(conn: AsyncConnection, skus: Iterable[str]) -> set[str]:
    rows = await conn.execute(
        text("SELECT DISTINCT kit_sku FROM sku_component WHERE component_sku = ANY(:s)"), {"s": list(skus)}
    )
    return set(rows.scalars().all())


# Everything a snapshot needs, in one statement: the targets (the SKUs asked for, and with
# `kits` the kits built from them), the recipes of the kits among them, and for every SKU
# needed (targets and their components) the ring-fences, the units reserved per channel,
# the sellable stock per location (unexpired on hand and reserved, what the rules count;
# what expired lots hold beyond their reservations, what no rule counts) and the safety
# stock; and every channel with the locations it ships from (none: a null location). Each
# table is read by `= ANY(array)`, as its index wants, not joined to the CTE.
SNAPSHOT = text(
    """
    WITH given AS (SELECT unnest(CAST(:skus AS text[])) AS c),
    targets AS (
        SELECT c FROM given
        UNION SELECT kit_sku FROM sku_component WHERE :kits AND component_sku = ANY(CAST(:skus AS text[]))
    ),
    recipe AS (
        SELECT kit_sku, component_sku, qty FROM sku_component
        WHERE kit_sku = ANY(ARRAY(SELECT c FROM targets))
    ),
    needed AS (SELECT ARRAY(SELECT c FROM targets UNION SELECT component_sku FROM recipe) AS n)
    SELECT
        ARRAY(SELECT c FROM targets) AS targets,
        (SELECT json_agg(json_build_array(kit_sku, component_sku, qty)) FROM recipe) AS recipes,
        (SELECT json_agg(json_build_array(channel, sku, location, qty)) FROM channel_ringfence
            WHERE sku = ANY(CAST((SELECT n FROM needed) AS text[])) AND qty > 0) AS fences,
        (SELECT json_agg(json_build_array(sku, location, channel, qty)) FROM channel_reserved
            WHERE sku = ANY(CAST((SELECT n FROM needed) AS text[])) AND qty > 0) AS by_channel,
        (SELECT json_agg(json_build_array(sku, location, on_hand, reserved, expired) ORDER BY sku, location)
            FROM (
                SELECT sku, location,
                    coalesce(sum(qty) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0) AS on_hand,
                    coalesce(sum(reserved) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0)
                        AS reserved,
                    coalesce(sum(qty - reserved) FILTER (WHERE expires_at <= now()), 0) AS expired
                FROM stock_balance WHERE sku = ANY(CAST((SELECT n FROM needed) AS text[])) AND status = 'sellable'
                GROUP BY sku, location
            ) AS sellable) AS stock,
        (SELECT json_agg(json_build_array(channel, sku, safety_stock)) FROM channel_policy
            WHERE sku = ANY(CAST((SELECT n FROM needed) AS text[]))) AS safety,
        (SELECT json_agg(json_build_array(c.code, l.code) ORDER BY c.code, l.code)
            FROM channel c LEFT JOIN (channel_location cl JOIN location l ON l.code = cl.location AND l.can_ship)
            ON cl.channel = c.code) AS channels
    """
)


async def load_snapshot(
    conn: AsyncConnection, skus: Iterable[str], *, with_kits: bool = True
) -> AvailabilitySnapshot:
    row = (await conn.execute(SNAPSHOT, {"skus": sorted(set(skus)), "kits": with_kits})).one()
    recipes: dict[str, dict[str, int]] = defaultdict(dict)
    for kit, comp, qty in row.recipes or ():
        recipes[kit][comp] = int(qty)
    fences: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for channel, sku, location, qty in row.fences or ():
        fences[(sku, location)][channel] = int(qty)
    by_channel: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for sku, location, channel, qty in row.by_channel or ():
        by_channel[(sku, location)][channel] = int(qty)
    stock: dict[tuple[str, str], LocationStock] = {}
    for sku, location, on_hand, reserved, expired in row.stock or ():
        key = (sku, location)
        stock[key] = LocationStock(
            int(on_hand), int(reserved), fences.get(key, {}), by_channel.get(key, {}), int(expired)
        )
    for key in fences.keys() - stock.keys():  # fenced but empty: still counts for reserved_by_channel
        stock[key] = LocationStock(0, 0, fences[key], by_channel.get(key, {}))
    safety = {(channel, sku): int(ss) for channel, sku, ss in row.safety or ()}
    channel_locations: dict[str, list[str]] = {}
    for channel, location in row.channels or ():
        channel_locations.setdefault(channel, [])
        if location is not None:
            channel_locations[channel].append(location)
    return AvailabilitySnapshot(stock, channel_locations, safety, dict(recipes), set(row.targets))


async def lock_skus(conn: AsyncConnection, skus: Iterable[str]) -> set[str]:
    """Serialize availability changes per SKU (and per kit containing it). Must run before the
    stock the new ATP is computed from is read, in an earlier statement than the one writing
    it (whose snapshot then holds every earlier writer's events): see the module docstring.
    One statement. Returns the locked set."""
    return await _lock_codes(
        conn,
        "codes AS (SELECT c FROM given UNION"
        " SELECT kit_sku FROM sku_component WHERE component_sku IN (SELECT c FROM given))",
        skus,
    )


async def lock_skus_with_components(conn: AsyncConnection, skus: Iterable[str]) -> set[str]:
    """`lock_skus` of these SKUs and of the components of the kits among them, in one
    statement (what a shipment of kits touches). Returns the locked set."""
    return await _lock_codes(
        conn,
        "parts AS (SELECT c FROM given UNION"
        " SELECT component_sku FROM sku_component WHERE kit_sku IN (SELECT c FROM given)),"
        " codes AS (SELECT c FROM parts UNION"
        " SELECT kit_sku FROM sku_component WHERE component_sku IN (SELECT c FROM parts))",
        skus,
    )


# Every SKU lock is taken through this one expression (same key format, same sorted order),
# whichever function computes the set of codes (a CTE named `codes`).
_LOCK_SORTED_CODES = "count(pg_advisory_xact_lock(hashtextextended('sku:' || c, 0))) FROM (SELECT c FROM codes ORDER BY c) AS sorted_codes"


async def _lock_codes(conn: AsyncConnection, codes_from_given: str, skus: Iterable[str]) -> set[str]:
    """Lock the `codes` that a constant CTE fragment computes from `given` (these SKUs), in one
    statement; the locked set."""
    sql = (
        "WITH given AS (SELECT unnest(CAST(:s AS text[])) AS c), "
        + codes_from_given
        + " SELECT array_agg(c) AS locked, "
        + _LOCK_SORTED_CODES
    )
    row = (await conn.execute(text(sql), {"s": sorted(set(skus))})).one()
    return set(row.locked or [])


async def lock_skus_of_reservation(conn: AsyncConnection, reservation_key: str) -> set[str]:
    """`lock_skus` of the SKUs reserved under this key, read and locked in one statement.
    Returns the reserved SKUs. The read is the statement's snapshot, taken before any lock
    wait: a reservation under the key that commits meanwhile is the caller's to look for
    (after this statement) and lock too."""
    sql = text(
        "WITH given AS (SELECT DISTINCT sku AS c FROM reservation WHERE key = :reservation_key),"  # noqa: S608 (a constant fragment)
        " codes AS (SELECT c FROM given UNION"
        " SELECT kit_sku FROM sku_component WHERE component_sku IN (SELECT c FROM given))"
        " SELECT (SELECT array_agg(c) FROM given) AS reserved, " + _LOCK_SORTED_CODES
    )
    row = (await conn.execute(sql, {"reservation_key": reservation_key})).one()
    return set(row.reserved or [])


async def lock_sku_set(conn: AsyncConnection, codes: Iterable[str]) -> None:
    """Take the advisory locks of exactly these SKUs, in sorted order, in one statement."""
    await conn.execute(
        text("WITH codes AS (SELECT unnest(CAST(:c AS text[])) AS c) SELECT " + _LOCK_SORTED_CODES),
        {"c": sorted(set(codes))},
    )


# The statement's `changed` CTE (channel, sku, available: what it wrote to
# channel_availability) gives its values to the feed's events of the same (channel, SKU)
# that sit after its own (a younger txid, committed while this transaction waited for the
# SKU lock): see the module docstring. Its range of ix_availability_event_sku is empty
# unless such a commit happened.
SUPERSEDE_LATER = (
    "superseded AS (UPDATE availability_event e SET available = n.available FROM changed n"
    " WHERE e.channel = n.channel AND e.sku = n.sku AND e.txid > (pg_current_xact_id()::text)::bigint"
    " AND e.available <> n.available RETURNING 1)"
)


# Store what changed, give it to the events sitting after it, append it to the feed.
REFRESH = text(
    """
    WITH changed AS (
        INSERT INTO channel_availability (channel, sku, available, updated_at)
        SELECT * , now() FROM unnest(CAST(:ch AS text[]), CAST(:sk AS text[]), CAST(:av AS int[]))
        ON CONFLICT (channel, sku) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
            WHERE channel_availability.available <> EXCLUDED.available
        RETURNING channel, sku, available, (xmax = 0) AS first_seen
    ), """  # noqa: S608 (a constant fragment)
    + SUPERSEDE_LATER
    + """
    INSERT INTO availability_event (channel, sku, available)
    SELECT channel, sku, available FROM changed WHERE NOT (first_seen AND available = 0)
    """
)


async def refresh_availability(conn: AsyncConnection, skus: Iterable[str]) -> int:
    """Recompute ATP of these SKUs (and their kits) for every channel; store what changed
    and append it to the feed (a SKU first seen at 0 is no news: consumers start from 0).
    Call inside the transaction that changed the stock, after
    `lock_skus`. Returns the number of feed events written."""
    snapshot = await load_snapshot(conn, skus)
    values = snapshot.all_atp()
    if not values:
        return 0
    channels, codes, amounts = zip(*((ch, sku, v) for (ch, sku), v in sorted(values.items())), strict=True)
    result = await conn.execute(REFRESH, {"ch": list(channels), "sk": list(codes), "av": list(amounts)})
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class FeedEvent:
    seq: int
    txid: int
    sku: str
    available: int


def encode_after(txid: int, seq: int) -> str:
    return f"{txid}.{seq}"


def decode_after(after: str | None) -> tuple[int, int]:
    if not after or after == "0":
        return (0, 0)
    txid, _, seq = after.partition(".")
    return (int(txid), int(seq or 0))


# A page of a channel's feed after a position, only below the oldest running transaction.
FEED_PAGE = text(
    """
    SELECT seq, txid, sku, available FROM availability_event
    WHERE channel = :ch AND (txid, seq) > (:tx, :seq)
      AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint
    ORDER BY txid, seq LIMIT :lim
    """
)


async def read_feed(
    conn: AsyncConnection, channel: str, after: tuple[int, int], limit: int
) -> list[FeedEvent]:
    rows = await conn.execute(FEED_PAGE, {"ch": channel, "tx": after[0], "seq": after[1], "lim": limit})
    return [FeedEvent(int(r.seq), int(r.txid), r.sku, int(r.available)) for r in rows]
