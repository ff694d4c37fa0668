"""The inventory core. Every stock change of the system goes through these functions, each
inside the caller's transaction (one unit of work), idempotent by a business key:

    apply_moves   adjustments, status moves, transfer legs, receipts, shipments
    reserve       all-or-nothing reservation of order lines for a channel (kits: every component)
    release       give reserved units back (cancel, short pick, re-sourcing)
    consume       reserved units leave with a shipment (sellable → customer)

Locking, always in this order, so two operations never deadlock and never oversell:
1. per-SKU advisory locks, sorted (models/availability.lock_skus) — before any write;
2. reservation rows (release/consume), by id;
3. balance rows `SELECT … FOR UPDATE` in primary-key order.
Every rule (ATP, ring-fences, safety stock) is computed under those locks."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.atp import LocationStock, Shortage, check_lines
from domain.errors import (
    InsufficientStock,
    InvalidStockChange,
    OperationConflict,
    ReservationShortage,
    UnknownReference,
)
from domain.lots import LotStock, allocate_fefo, is_expired
from domain.posting import ACCOUNT_OF_STATUS, lines_for, move_event
from models.availability import AvailabilitySnapshot, lock_sku_set, lock_skus, refresh_availability
from models.finance import Posting, average_cost, post, value_in, value_out
from models.inventory import STATUSES

SELLABLE = "sellable"


@dataclass(frozen=True)
class Move:
    sku: str
    qty: int
    from_location: str
    from_status: str
    to_location: str
    to_status: str
    lot: str = ""
    expires_at: datetime | None = None
    unit_cost: int | None = None  # for inbound value (a PO receipt's price); else the moving average


@dataclass(frozen=True)
class ReserveLine:
    line: str  # the order line id (unique within the reservation)
    sku: str
    location: str
    qty: int


@dataclass
class OperationResult:
    key: str
    kind: str
    replayed: bool = False
    data: dict[str, Any] = field(default_factory=dict)


# -- operations: written once per business key ---------------------------------------


def _fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def _begin(
    conn: AsyncConnection, key: str, kind: str, ref: str, payload: Any
) -> OperationResult | None:
    """Claim `key`; return the stored result if this operation was already done."""
    digest = _fingerprint(payload)
    inserted = await conn.execute(
        text(
            "INSERT INTO stock_operation (key, kind, ref, request_hash) VALUES (:k, :kind, :ref, :h) "
            "ON CONFLICT (key) DO NOTHING RETURNING key"
        ),
        {"k": key, "kind": kind, "ref": ref, "h": digest},
    )
    if inserted.first() is not None:
        return None
    row = (
        await conn.execute(
            text("SELECT kind, request_hash, result FROM stock_operation WHERE key = :k"), {"k": key}
        )
    ).one()
    if row.request_hash != digest or row.kind != kind:
        raise OperationConflict(key)
    return OperationResult(key=key, kind=kind, replayed=True, data=dict(row.result or {}))


async def _finish(conn: AsyncConnection, result: OperationResult) -> OperationResult:
    await conn.execute(
        text("UPDATE stock_operation SET result = CAST(:r AS jsonb) WHERE key = :k"),
        {"k": result.key, "r": json.dumps(result.data, default=str)},
    )
    return result


# -- moves ----------------------------------------------------------------------------


async def _location_types(conn: AsyncConnection, codes: set[str]) -> dict[str, str]:
    rows = await conn.execute(
        text("SELECT code, type FROM location WHERE code = ANY(:c)"), {"c": list(codes)}
    )
    found = {r.code: r.type for r in rows}
    for code in sorted(codes - found.keys()):
        raise UnknownReference("location", code)
    return found


async def _sku_tracking(conn: AsyncConnection, skus: set[str]) -> dict[str, tuple[str, str]]:
    rows = await conn.execute(
        text("SELECT code, kind, tracking FROM sku WHERE code = ANY(:c)"), {"c": list(skus)}
    )
    found = {r.code: (r.kind, r.tracking) for r in rows}
    for code in sorted(skus - found.keys()):
        raise UnknownReference("SKU", code)
    return found


async def _ensure_bucket(
    conn: AsyncConnection, sku: str, location: str, status: str, lot: str, expires_at: datetime | None
) -> int:
    row = (
        await conn.execute(
            text(
                """
                WITH ins AS (
                    INSERT INTO stock_balance (sku, location, status, lot, expires_at, qty, reserved, is_virtual,
                                               unit_cost)
                    VALUES (:sku, :loc, :st, :lot, :exp, 0, 0, false, 0)
                    ON CONFLICT (sku, location, status, lot) DO NOTHING RETURNING id
                )
                SELECT id FROM ins UNION ALL
                SELECT id FROM stock_balance WHERE sku = :sku AND location = :loc AND status = :st AND lot = :lot
                LIMIT 1
                """
            ),
            {"sku": sku, "loc": location, "st": status, "lot": lot, "exp": expires_at},
        )
    ).one()
    return int(row.id)


async def _lock_balances(conn: AsyncConnection, ids: set[int]) -> dict[int, Any]:
    rows = await conn.execute(
        text(
            "SELECT id, sku, location, status, lot, expires_at, qty, reserved FROM stock_balance "
            "WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
        ),
        {"ids": sorted(ids)},
    )
    return {r.id: r for r in rows}


def _validate_move(m: Move, types: dict[str, str], skus: dict[str, tuple[str, str]]) -> None:
    kind, tracking = skus[m.sku]
    if kind == "kit":
        raise InvalidStockChange(f"{m.sku} is a kit: stock is kept for its components")
    if m.qty <= 0:
        raise InvalidStockChange("a move needs a positive quantity")
    for loc, status in ((m.from_location, m.from_status), (m.to_location, m.to_status)):
        if types[loc] != "virtual" and status not in STATUSES:
            raise InvalidStockChange(f"unknown stock status {status!r}")
    if types[m.from_location] == "virtual" and types[m.to_location] == "virtual":
        raise InvalidStockChange("a move needs at least one real location")
    if (m.from_location, m.from_status) == (m.to_location, m.to_status):
        raise InvalidStockChange("a move must change location or status")
    if tracking == "lot" and not m.lot:
        raise InvalidStockChange(f"{m.sku} is lot-tracked: name the lot")
    if tracking != "lot" and m.lot:
        raise InvalidStockChange(f"{m.sku} is not lot-tracked: leave the lot out")


async def apply_moves(
    conn: AsyncConnection, key: str, kind: str, moves: list[Move], *, reason: str, ref: str = ""
) -> OperationResult:
    """Apply stock moves atomically, once per `key`. Raises InsufficientStock (nothing applied)
    when a real bucket would go below its reserved units."""
    skus = {m.sku for m in moves}
    await lock_skus(conn, skus)
    payload = {"moves": [asdict(m) for m in moves], "reason": reason, "ref": ref}
    done = await _begin(conn, key, kind, ref, payload)
    if done is not None:
        return done
    types = await _location_types(conn, {m.from_location for m in moves} | {m.to_location for m in moves})
    tracking = await _sku_tracking(conn, skus)
    for m in moves:
        _validate_move(m, types, tracking)

    def real(loc: str) -> bool:
        return types[loc] != "virtual"

    bucket: dict[tuple[str, str, str, str], int] = {}
    for m in moves:
        for loc, status in ((m.from_location, m.from_status), (m.to_location, m.to_status)):
            k = (m.sku, loc, status, m.lot)
            if real(loc) and k not in bucket:
                bucket[k] = await _ensure_bucket(conn, m.sku, loc, status, m.lot, m.expires_at)
    rows = await _lock_balances(conn, set(bucket.values()))
    arrivals: dict[tuple[str, str], int] = defaultdict(int)
    applied: list[dict[str, Any]] = []
    postings: list[Posting] = []
    events: set[str] = set()
    for m in moves:
        if real(m.from_location):
            bid = bucket[(m.sku, m.from_location, m.from_status, m.lot)]
            taken = await conn.execute(
                text(
                    "UPDATE stock_balance SET qty = qty - :n WHERE id = :id AND qty - reserved >= :n RETURNING qty"
                ),
                {"n": m.qty, "id": bid},
            )
            if taken.first() is None:
                cur = (
                    await conn.execute(
                        text("SELECT qty, reserved FROM stock_balance WHERE id = :id"), {"id": bid}
                    )
                ).one()
                raise InsufficientStock(
                    m.sku,
                    m.from_location,
                    m.from_status,
                    m.lot,
                    m.qty,
                    int(cur.qty),
                    int(cur.qty - cur.reserved),
                )
        if real(m.to_location):
            bid = bucket[(m.sku, m.to_location, m.to_status, m.lot)]
            await conn.execute(
                text(
                    "UPDATE stock_balance SET qty = qty + :n, expires_at = COALESCE(expires_at, :exp) WHERE id = :id"
                ),
                {"n": m.qty, "id": bid, "exp": m.expires_at},
            )
            sellable_before = (
                real(m.from_location) and m.from_status == SELLABLE and m.from_location == m.to_location
            )
            if m.to_status == SELLABLE and not sellable_before:
                arrivals[(m.sku, m.to_location)] += m.qty
        await conn.execute(
            text(
                "INSERT INTO stock_move (op_key, sku, lot, from_location, from_status, to_location, to_status, qty,"
                " reason, ref) VALUES (:k, :sku, :lot, :fl, :fs, :tl, :ts, :n, :reason, :ref)"
            ),
            {"k": key, "sku": m.sku, "lot": m.lot, "fl": m.from_location,
             "fs": m.from_status if real(m.from_location) else "virtual", "tl": m.to_location,
             "ts": m.to_status if real(m.to_location) else "virtual", "n": m.qty, "reason": reason, "ref": ref},
        )  # fmt: skip
        applied.append({"sku": m.sku, "lot": m.lot, "qty": m.qty, "from": [m.from_location, m.from_status],
                        "to": [m.to_location, m.to_status]})  # fmt: skip
        event, lines = await _value_move(conn, m, real(m.from_location), real(m.to_location), reason)
        if event:
            events.add(event)
        postings += lines
    for (sku, location), qty in sorted(arrivals.items()):
        await announce_sellable_increase(conn, sku, location, qty, reason, ref)
    del rows
    await post(conn, key, events.pop() if len(events) == 1 else kind, postings, ref=ref, memo=reason)
    await refresh_availability(conn, skus)
    return await _finish(conn, OperationResult(key=key, kind=kind, data={"moves": applied}))


async def _value_move(
    conn: AsyncConnection, m: Move, real_from: bool, real_to: bool, reason: str
) -> tuple[str | None, list[Posting]]:
    """Carry the move's value between valuation rows and say how the ledger sees it."""
    from_acc = ACCOUNT_OF_STATUS.get(m.from_status) if real_from else None
    to_acc = ACCOUNT_OF_STATUS.get(m.to_status) if real_to else None
    if from_acc is None and to_acc is None:
        return None, []
    if from_acc is not None and (from_acc, m.from_location) == (to_acc, m.to_location):
        return None, []  # e.g. sellable -> quarantine: same account, same place
    if from_acc is not None:
        value = await value_out(conn, m.sku, m.from_location, from_acc, m.qty)
    else:
        value = m.qty * (m.unit_cost if m.unit_cost is not None else await average_cost(conn, m.sku))
    if to_acc is not None:
        await value_in(conn, m.sku, m.to_location, to_acc, m.qty, value)
    event = move_event(from_acc, to_acc, m.from_location, m.to_location, reason)
    if event is None:
        return None, []
    place = {from_acc: m.from_location, to_acc: m.to_location}
    lines = lines_for(event, {"value": value, "cost": value}, from_account=from_acc, to_account=to_acc)
    real_place = m.to_location if real_to else m.from_location
    return event, [Posting.of(ln, location=place.get(ln.account, real_place), sku=m.sku) for ln in lines]


async def announce_sellable_increase(
    conn: AsyncConnection, sku: str, location: str, qty: int, reason: str, ref: str
) -> None:
    """The one hook for "sellable stock rose": waiting backorders subscribe to `stock_arrival`."""
    await conn.execute(
        text("INSERT INTO stock_arrival (sku, location, qty, reason, ref) VALUES (:s, :l, :q, :r, :ref)"),
        {"s": sku, "l": location, "q": qty, "r": reason, "ref": ref},
    )


def adjustment_move(sku: str, location: str, status: str, delta: int, lot: str = "",
                    expires_at: datetime | None = None) -> Move:  # fmt: skip
    """An adjustment is a move from/to the virtual `adjustment` location."""
    if delta > 0:
        return Move(sku, delta, "adjustment", "virtual", location, status, lot, expires_at)
    return Move(sku, -delta, location, status, "adjustment", "virtual", lot, expires_at)


# -- reservations ------------------------------------------------------------------


async def _expand_kits(conn: AsyncConnection, lines: list[ReserveLine]) -> list[ReserveLine]:
    skus = await _sku_tracking(conn, {ln.sku for ln in lines})
    kits = [s for s, (kind, _) in skus.items() if kind == "kit"]
    recipes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    if kits:
        for kit, comp, qty in await conn.execute(
            text(
                "SELECT kit_sku, component_sku, qty FROM sku_component WHERE kit_sku = ANY(:k) ORDER BY 1, 2"
            ),
            {"k": kits},
        ):
            recipes[kit].append((comp, qty))
    out: list[ReserveLine] = []
    for ln in lines:
        if ln.qty <= 0:
            raise InvalidStockChange(f"line {ln.line}: quantity must be positive")
        if ln.sku in recipes:
            out += [ReserveLine(f"{ln.line}/{c}", c, ln.location, ln.qty * q) for c, q in recipes[ln.sku]]
        else:
            out.append(ln)
    return out


_RESERVE_CONTEXT = text(
    """
    WITH lines AS (SELECT unnest(CAST(:skus AS text[])) AS sku),
    comps AS (
        SELECT DISTINCT coalesce(c.component_sku, s.code) AS sku FROM sku s
        LEFT JOIN sku_component c ON c.kit_sku = s.code WHERE s.code IN (SELECT sku FROM lines)
    ),
    kits AS (SELECT DISTINCT kit_sku AS sku FROM sku_component WHERE component_sku IN (SELECT sku FROM comps)),
    needed AS (
        SELECT sku FROM comps UNION SELECT sku FROM kits
        UNION SELECT component_sku FROM sku_component WHERE kit_sku IN (SELECT sku FROM kits)
    )
    SELECT json_build_object(
        'op', (SELECT json_build_object('kind', kind, 'hash', request_hash, 'result', result)
               FROM stock_operation WHERE key = :key),
        'skus', (SELECT coalesce(json_agg(json_build_object('code', code, 'kind', kind)), '[]')
                 FROM sku WHERE code IN (SELECT sku FROM lines)),
        'recipes', (SELECT coalesce(json_agg(json_build_object('kit', kit_sku, 'c', component_sku, 'q', qty)), '[]')
                    FROM sku_component WHERE kit_sku IN (SELECT sku FROM lines UNION SELECT sku FROM kits)),
        'kits', (SELECT coalesce(json_agg(sku), '[]') FROM kits),
        'needed', (SELECT coalesce(json_agg(sku), '[]') FROM needed),
        'channel', (SELECT code FROM channel WHERE code = :ch),
        'channels', (SELECT coalesce(json_agg(json_build_object('ch', c.code, 'loc', l.code)), '[]') FROM channel c
                     LEFT JOIN (channel_location cl JOIN location l ON l.code = cl.location AND l.can_ship)
                     ON cl.channel = c.code),
        'fences', (SELECT coalesce(json_agg(json_build_object('ch', channel, 's', sku, 'l', location, 'q', qty)), '[]')
                   FROM channel_ringfence WHERE sku IN (SELECT sku FROM needed) AND qty > 0),
        'safety', (SELECT coalesce(json_agg(json_build_object('ch', channel, 's', sku, 'q', safety_stock)), '[]')
                   FROM channel_policy WHERE sku IN (SELECT sku FROM needed))
    )
    """
)

_RESERVE_STATE = text(
    """
    WITH op AS (
        INSERT INTO stock_operation (key, kind, ref, request_hash) VALUES (:key, 'reserve', :ref, :hash)
        ON CONFLICT (key) DO NOTHING RETURNING key
    ),
    bal AS (
        SELECT id, sku, location, lot, expires_at, qty, reserved FROM stock_balance
        WHERE status = 'sellable' AND (sku, location) IN (SELECT * FROM unnest(CAST(:ps AS text[]), CAST(:pl AS text[])))
        ORDER BY id FOR UPDATE
    )
    SELECT (SELECT count(*) FROM op) AS claimed,
        (SELECT coalesce(json_agg(bal ORDER BY id), '[]') FROM bal) AS rows,
        (SELECT coalesce(json_agg(t), '[]') FROM (
            SELECT sku, location, sum(qty) AS q, sum(reserved) AS r FROM stock_balance
            WHERE sku = ANY(:needed) AND status = 'sellable' AND (expires_at IS NULL OR expires_at > now())
            GROUP BY sku, location) t) AS stock,
        (SELECT coalesce(json_agg(json_build_object('s', sku, 'l', location, 'ch', channel, 'q', qty)), '[]')
         FROM channel_reserved WHERE sku = ANY(:needed) AND qty > 0) AS by_channel
    """
)

_RESERVE_WRITE = text(
    """
    WITH b AS (
        UPDATE stock_balance s SET reserved = s.reserved + d.q
        FROM unnest(CAST(:bid AS bigint[]), CAST(:bq AS int[])) AS d(id, q) WHERE s.id = d.id RETURNING 1
    ),
    r AS (
        INSERT INTO reservation (key, line, ref, channel, sku, location, lot, qty, per_unit)
        SELECT :key, line, :ref, :ch, s, l, lot, q, pu FROM unnest(CAST(:rline AS text[]), CAST(:rs AS text[]),
            CAST(:rl AS text[]), CAST(:rlot AS text[]), CAST(:rq AS int[]), CAST(:rpu AS int[])) AS t(line, s, l, lot, q, pu)
        RETURNING 1
    ),
    cr AS (
        INSERT INTO channel_reserved (sku, location, channel, qty)
        SELECT s, l, :ch, q FROM unnest(CAST(:cs AS text[]), CAST(:cl AS text[]), CAST(:cq AS int[])) AS d(s, l, q)
        ON CONFLICT (sku, location, channel) DO UPDATE SET qty = channel_reserved.qty + EXCLUDED.qty RETURNING 1
    ),
    ca AS (
        INSERT INTO channel_availability (channel, sku, available, updated_at)
        SELECT ch, s, a, now() FROM unnest(CAST(:ach AS text[]), CAST(:as AS text[]), CAST(:aa AS int[])) AS t(ch, s, a)
        ON CONFLICT (channel, sku) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
            WHERE channel_availability.available <> EXCLUDED.available
        RETURNING channel, sku, available, (xmax = 0) AS first_seen
    ),
    ev AS (
        INSERT INTO availability_event (channel, sku, available)
        SELECT channel, sku, available FROM ca WHERE NOT (first_seen AND available = 0) RETURNING 1
    ),
    done AS (UPDATE stock_operation SET result = CAST(:result AS jsonb) WHERE key = :key RETURNING 1)
    SELECT (SELECT count(*) FROM b) AS balances, (SELECT count(*) FROM ev) AS events
    """
)


def _snapshot(ctx: dict[str, Any], stock_rows: list[dict[str, Any]], by_channel_rows: list[dict[str, Any]],
              targets: set[str]) -> AvailabilitySnapshot:  # fmt: skip
    fences: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for f in ctx["fences"]:
        fences[(f["s"], f["l"])][f["ch"]] = int(f["q"])
    taken: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for c in by_channel_rows:
        taken[(c["s"], c["l"])][c["ch"]] = int(c["q"])
    stock_map = {
        (r["sku"], r["location"]): LocationStock(int(r["q"]), int(r["r"]), fences.get((r["sku"], r["location"]), {}),
                                                 taken.get((r["sku"], r["location"]), {}))
        for r in stock_rows
    }  # fmt: skip
    for key in fences.keys() - stock_map.keys():
        stock_map[key] = LocationStock(0, 0, fences[key], taken.get(key, {}))
    channel_locations: dict[str, list[str]] = {}
    for c in ctx["channels"]:
        channel_locations.setdefault(c["ch"], [])
        if c["loc"] is not None:
            channel_locations[c["ch"]].append(c["loc"])
    recipes: dict[str, dict[str, int]] = defaultdict(dict)
    for rcp in ctx["recipes"]:
        recipes[rcp["kit"]][rcp["c"]] = int(rcp["q"])
    return AvailabilitySnapshot(
        stock=stock_map,
        channel_locations={ch: sorted(locs) for ch, locs in channel_locations.items()},
        safety={(s["ch"], s["s"]): int(s["q"]) for s in ctx["safety"]},
        recipes={k: v for k, v in recipes.items() if k in targets},
        targets=targets,
    )


def _after(snapshot: AvailabilitySnapshot, channel: str, made: list[dict[str, Any]]) -> AvailabilitySnapshot:
    """The snapshot once `made` is reserved for `channel` (no second read under the lock)."""
    stock_map = dict(snapshot.stock)
    for m in made:
        key = (m["sku"], m["location"])
        cur = stock_map.get(key, LocationStock(0, 0))
        by_channel = dict(cur.reserved_by_channel)
        by_channel[channel] = by_channel.get(channel, 0) + m["qty"]
        stock_map[key] = LocationStock(cur.on_hand, cur.reserved + m["qty"], cur.fences, by_channel)
    return AvailabilitySnapshot(stock_map, snapshot.channel_locations, snapshot.safety, snapshot.recipes,
                                snapshot.targets)  # fmt: skip


async def reserve(
    conn: AsyncConnection, key: str, channel: str, lines: list[ReserveLine], *, ref: str = ""
) -> OperationResult:
    """Reserve every line at its location for `channel`, or nothing (ReservationShortage).
    Kits reserve every component at the kit line's location, and respect the kit's own
    safety stock. Lot-tracked SKUs take unexpired lots first-expiry-first-out. Idempotent
    by `key`. Three statements run under the SKU locks: lock, claim-and-read, write."""
    payload = {"channel": channel, "lines": [asdict(ln) for ln in lines], "ref": ref}
    digest = _fingerprint(payload)
    params = {"skus": sorted({ln.sku for ln in lines}), "key": key, "ch": channel}
    ctx: dict[str, Any] = (await conn.execute(_RESERVE_CONTEXT, params)).scalar_one()
    if ctx["op"] is not None:
        return _replayed(key, "reserve", digest, ctx["op"])
    kinds = {s["code"]: s["kind"] for s in ctx["skus"]}
    for ln in lines:
        if ln.sku not in kinds:
            raise UnknownReference("SKU", ln.sku)
        if ln.qty <= 0:
            raise InvalidStockChange(f"line {ln.line}: quantity must be positive")
    if ctx["channel"] is None:
        raise UnknownReference("channel", channel)
    recipes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rcp in sorted(ctx["recipes"], key=lambda r: (r["kit"], r["c"])):
        recipes[rcp["kit"]].append((rcp["c"], int(rcp["q"])))
    expanded: list[tuple[ReserveLine, int]] = []  # (component line, units per kit unit)
    for ln in lines:
        if kinds[ln.sku] == "kit":
            expanded += [
                (ReserveLine(f"{ln.line}/{c}", c, ln.location, ln.qty * q), q) for c, q in recipes[ln.sku]
            ]
        else:
            expanded.append((ln, 1))
    allowed = {c["loc"] for c in ctx["channels"] if c["ch"] == channel}
    for ln, _ in expanded:
        if ln.location not in allowed:
            raise InvalidStockChange(f"channel {channel} does not fulfil from {ln.location}")
    skus = {ln.sku for ln, _ in expanded}
    await lock_sku_set(conn, skus | set(ctx["kits"]))
    pairs = sorted({(ln.sku, ln.location) for ln, _ in expanded})
    state = (await conn.execute(_RESERVE_STATE, {
        "key": key, "ref": ref, "hash": digest, "ps": [p[0] for p in pairs], "pl": [p[1] for p in pairs],
        "needed": list(ctx["needed"]),
    })).one()  # fmt: skip
    if not state.claimed:  # the same key committed while we waited for the lock
        return await _replay_committed(conn, key, "reserve", digest)
    targets = skus | set(ctx["kits"])
    before = _snapshot(ctx, state.stock, state.by_channel, targets)
    shortages = check_lines(
        [(ln.line, ln.sku, ln.location, ln.qty) for ln, _ in expanded],
        {p: before.location_atp(channel, *p) for p in pairs},
        {sku: before.simple_atp(channel, sku) for sku in skus},
    )
    kit_asks: dict[str, int] = defaultdict(int)
    for ln in lines:
        if kinds[ln.sku] == "kit":
            kit_asks[ln.sku] += ln.qty
    for kit, qty in sorted(kit_asks.items()):
        have = before.atp(channel, kit)
        if qty > have:
            shortages.append(Shortage(line=next(ln.line for ln in lines if ln.sku == kit), sku=kit,
                                      location=next(ln.location for ln in lines if ln.sku == kit),
                                      requested=qty, atp=have))  # fmt: skip
    if shortages:
        raise ReservationShortage(shortages)

    now = datetime.now(UTC)
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in state.rows:
        by_pair[(r["sku"], r["location"])].append(r)
    left = {r["id"]: int(r["qty"]) - int(r["reserved"]) for r in state.rows}
    made: list[dict[str, Any]] = []
    for ln, per_unit in expanded:
        candidates = by_pair[(ln.sku, ln.location)]
        lot_rows = {r["lot"]: r for r in candidates}
        lots = [LotStock(r["lot"], _parse_ts(r["expires_at"]), left[r["id"]]) for r in candidates]
        for lot, qty in allocate_fefo(
            [lot for lot in lots if not is_expired(lot.expires_at, now)], ln.qty, now
        ):
            left[lot_rows[lot]["id"]] -= qty
            made.append({"line": ln.line, "sku": ln.sku, "location": ln.location, "lot": lot, "qty": qty,
                         "per_unit": per_unit, "balance_id": lot_rows[lot]["id"]})  # fmt: skip
    after = _after(before, channel, made)
    values = sorted(after.all_atp().items())
    per_balance: dict[int, int] = defaultdict(int)
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for m in made:
        per_balance[m["balance_id"]] += m["qty"]
        per_pair[(m["sku"], m["location"])] += m["qty"]
    result = {"channel": channel, "reservations": [
        {k: v for k, v in m.items() if k not in ("balance_id", "per_unit")} for m in made]}  # fmt: skip
    await conn.execute(_RESERVE_WRITE, {
        "key": key, "ref": ref, "ch": channel,
        "bid": list(per_balance), "bq": list(per_balance.values()),
        "rline": [m["line"] for m in made], "rs": [m["sku"] for m in made], "rl": [m["location"] for m in made],
        "rlot": [m["lot"] for m in made], "rq": [m["qty"] for m in made], "rpu": [m["per_unit"] for m in made],
        "cs": [p[0] for p in per_pair], "cl": [p[1] for p in per_pair], "cq": list(per_pair.values()),
        "ach": [k[0] for k, _ in values], "as": [k[1] for k, _ in values], "aa": [v for _, v in values],
        "result": json.dumps(result),
    })  # fmt: skip
    return OperationResult(key=key, kind="reserve", data=result)


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _replayed(key: str, kind: str, digest: str, op: dict[str, Any]) -> OperationResult:
    if op["hash"] != digest or op["kind"] != kind:
        raise OperationConflict(key)
    return OperationResult(key=key, kind=kind, replayed=True, data=dict(op["result"] or {}))


async def _replay_committed(conn: AsyncConnection, key: str, kind: str, digest: str) -> OperationResult:
    row = (
        await conn.execute(
            text("SELECT kind, request_hash AS hash, result FROM stock_operation WHERE key = :k"), {"k": key}
        )
    ).one()
    return _replayed(key, kind, digest, dict(row._mapping))


async def _unreserve(conn: AsyncConnection, channel: str, deltas: list[tuple[int, str, str, int]]) -> None:
    """Give back reserved units of one channel: deltas are (balance id, sku, location, qty)."""
    per_balance: dict[int, int] = defaultdict(int)
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for bid, sku, location, qty in deltas:
        per_balance[bid] += qty
        per_pair[(sku, location)] += qty
    ids = sorted(per_balance)
    pairs = sorted(per_pair)
    await conn.execute(
        text(
            """
            WITH b AS (
                UPDATE stock_balance s SET reserved = s.reserved - d.q
                FROM unnest(CAST(:ids AS bigint[]), CAST(:qs AS int[])) AS d(id, q) WHERE s.id = d.id RETURNING 1
            )
            UPDATE channel_reserved c SET qty = c.qty - d.q
            FROM unnest(CAST(:s AS text[]), CAST(:l AS text[]), CAST(:q AS int[])) AS d(s, l, q)
            WHERE c.sku = d.s AND c.location = d.l AND c.channel = :ch
            """
        ),
        {"ids": ids, "qs": [per_balance[i] for i in ids], "ch": channel, "s": [p[0] for p in pairs],
         "l": [p[1] for p in pairs], "q": [per_pair[p] for p in pairs]},
    )  # fmt: skip


async def _active_reservations(
    conn: AsyncConnection, reservation_key: str, lines: dict[str, int] | None
) -> list[Any]:
    rows = (
        await conn.execute(
            text(
                "SELECT r.id, r.line, r.channel, r.sku, r.location, r.lot, r.per_unit,"
                " r.qty - r.consumed - r.released AS active,"
                " b.id AS balance_id FROM reservation r JOIN stock_balance b ON b.sku = r.sku AND"
                " b.location = r.location AND b.status = 'sellable' AND b.lot = r.lot"
                " WHERE r.key = :k AND r.consumed + r.released < r.qty ORDER BY r.id FOR UPDATE OF r"
            ),
            {"k": reservation_key},
        )
    ).all()
    if lines is None:
        return list(rows)
    return [r for r in rows if r.line in lines or r.line.split("/")[0] in lines]


def _budgets(rows: list[Any], lines: dict[str, int]) -> tuple[dict[str, int], int]:
    """Units to settle per reservation line, and the units asked that match no line. A kit
    line (`1`) settles its component lines (`1/TEE`) at qty × units per kit."""
    budget: dict[str, int] = {}
    matched: set[str] = set()
    for r in rows:
        if r.line in lines:
            budget[r.line] = lines[r.line]
            matched.add(r.line)
        elif "/" in r.line and r.line.split("/")[0] in lines:
            kit_line = r.line.split("/")[0]
            budget[r.line] = lines[kit_line] * int(r.per_unit)
            matched.add(kit_line)
    return budget, sum(q for line, q in lines.items() if line not in matched)


def _take(rows: list[Any], lines: dict[str, int] | None) -> tuple[list[tuple[Any, int]], int]:
    """How much of each active reservation row to release/consume (per line, in id order),
    and how many asked units could not be found."""
    if lines is None:
        return [(r, int(r.active)) for r in rows], 0
    budget, unmatched = _budgets(rows, lines)
    out: list[tuple[Any, int]] = []
    for r in rows:
        want = budget.get(r.line, 0)
        n = min(want, int(r.active))
        if n > 0:
            out.append((r, n))
            budget[r.line] = want - n
    return out, unmatched + sum(budget.values())


async def release(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None = None,
    *,
    ref: str = "",
) -> OperationResult:
    """Release active reserved units of a reservation (all of them, or up to `lines`:
    line -> qty). Idempotent by `key`."""
    return await _settle(conn, key, reservation_key, lines, ref=ref, consume=False)


async def consume(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None = None,
    *,
    ref: str = "",
) -> OperationResult:
    """Ship reserved units: sellable → customer, reservation consumed. Idempotent by `key`."""
    return await _settle(conn, key, reservation_key, lines, ref=ref, consume=True)


async def _settle(
    conn: AsyncConnection,
    key: str,
    reservation_key: str,
    lines: dict[str, int] | None,
    *,
    ref: str,
    consume: bool,
) -> OperationResult:
    kind = "consume" if consume else "release"

    async def reserved_skus() -> set[str]:
        query = text("SELECT DISTINCT sku FROM reservation WHERE key = :k")
        return set((await conn.execute(query, {"k": reservation_key})).scalars())

    skus = await reserved_skus()
    await lock_skus(conn, skus)
    # The reservation may have committed while we waited (or just before we looked): lock
    # whatever it holds now too, still before our first write.
    late = await reserved_skus() - skus
    if late:
        skus |= await lock_skus(conn, late)
    done = await _begin(conn, key, kind, ref, {"reservation": reservation_key, "lines": lines})
    if done is not None:
        return done
    rows = await _active_reservations(conn, reservation_key, lines)
    takes, missing = _take(rows, lines)
    if missing:
        got = sum(n for _, n in takes)
        raise InvalidStockChange(
            f"only {got} of {got + missing} units are still reserved under {reservation_key}"
        )
    await _lock_balances(conn, {int(r.balance_id) for r, _ in takes})
    bump = (
        "UPDATE reservation SET consumed = consumed + :n WHERE id = :id"
        if consume
        else "UPDATE reservation SET released = released + :n WHERE id = :id"
    )
    settled: list[dict[str, Any]] = []
    by_channel: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    for r, n in takes:
        await conn.execute(text(bump), {"n": n, "id": r.id})
        by_channel[r.channel].append((int(r.balance_id), r.sku, r.location, n))
        settled.append({"line": r.line, "sku": r.sku, "location": r.location, "lot": r.lot, "qty": n,
                        "channel": r.channel})  # fmt: skip
    for channel, deltas in sorted(by_channel.items()):
        await _unreserve(conn, channel, deltas)
    if consume:
        shipment: list[Posting] = []
        for s in settled:
            await conn.execute(
                text("UPDATE stock_balance SET qty = qty - :n WHERE sku = :s AND location = :l AND status = 'sellable'"
                     " AND lot = :lot"),
                {"n": s["qty"], "s": s["sku"], "l": s["location"], "lot": s["lot"]},
            )  # fmt: skip
            await conn.execute(
                text(
                    "INSERT INTO stock_move (op_key, sku, lot, from_location, from_status, to_location, to_status,"
                    " qty, reason, ref) VALUES (:k, :s, :lot, :l, 'sellable', 'customer', 'virtual', :n, 'shipment',"
                    " :ref)"
                ),
                {"k": key, "s": s["sku"], "lot": s["lot"], "l": s["location"], "n": s["qty"], "ref": ref},
            )
            cost = await value_out(conn, s["sku"], s["location"], ACCOUNT_OF_STATUS["sellable"], s["qty"])
            shipment += [
                Posting.of(ln, location=s["location"], sku=s["sku"], channel=s["channel"])
                for ln in lines_for("shipment", {"cost": cost}, from_account=ACCOUNT_OF_STATUS["sellable"])
            ]
        await post(conn, key, "shipment", shipment, ref=ref)
    await refresh_availability(conn, skus)
    return await _finish(conn, OperationResult(key=key, kind=kind, data={"lines": settled}))


# -- the check: every balance equals the sum of its moves ------------------------------


async def check(conn: AsyncConnection) -> list[str]:
    """Findings of drift (empty when the inventory is consistent)."""
    findings: list[str] = []
    drift = await conn.execute(
        text(
            """
            WITH moved AS (
                SELECT sku, lot, to_location AS location, to_status AS status, qty FROM stock_move
                UNION ALL
                SELECT sku, lot, from_location, from_status, -qty FROM stock_move
            ), sums AS (
                SELECT sku, lot, location, status, sum(qty) AS qty FROM moved
                WHERE status <> 'virtual' GROUP BY 1, 2, 3, 4
            )
            SELECT coalesce(b.sku, s.sku) AS sku, coalesce(b.location, s.location) AS location,
                   coalesce(b.status, s.status) AS status, coalesce(b.lot, s.lot) AS lot,
                   coalesce(b.qty, 0) AS balance, coalesce(s.qty, 0) AS moves
            FROM stock_balance b FULL JOIN sums s
              ON s.sku = b.sku AND s.location = b.location AND s.status = b.status AND s.lot = b.lot
            WHERE coalesce(b.qty, 0) <> coalesce(s.qty, 0)
            """
        )
    )
    for r in drift:
        findings.append(f"balance drift {r.sku}/{r.location}/{r.status}/{r.lot or '-'}: balance {r.balance} "
                        f"!= moves {r.moves}")  # fmt: skip
    reserved = await conn.execute(
        text(
            """
            SELECT b.sku, b.location, b.lot, b.reserved, coalesce(sum(r.qty - r.consumed - r.released), 0) AS active
            FROM stock_balance b LEFT JOIN reservation r
              ON r.sku = b.sku AND r.location = b.location AND r.lot = b.lot AND b.status = 'sellable'
            GROUP BY b.id HAVING b.reserved <> coalesce(sum(r.qty - r.consumed - r.released), 0)
            """
        )
    )
    for r in reserved:
        findings.append(
            f"reserved drift {r.sku}/{r.location}/{r.lot or '-'}: {r.reserved} != reservations {r.active}"
        )
    per_channel = await conn.execute(
        text(
            """
            WITH act AS (
                SELECT sku, location, channel, sum(qty - consumed - released) AS q FROM reservation GROUP BY 1, 2, 3
            )
            SELECT coalesce(c.sku, a.sku) AS sku, coalesce(c.location, a.location) AS location,
                   coalesce(c.channel, a.channel) AS channel, coalesce(c.qty, 0) AS kept, coalesce(a.q, 0) AS active
            FROM channel_reserved c FULL JOIN act a
              ON a.sku = c.sku AND a.location = c.location AND a.channel = c.channel
            WHERE coalesce(c.qty, 0) <> coalesce(a.q, 0)
            """
        )
    )
    for r in per_channel:
        findings.append(f"channel reserved drift {r.channel} {r.sku}/{r.location}: {r.kept} != {r.active}")
    negative = await conn.execute(text("SELECT count(*) FROM stock_balance WHERE qty < 0 OR reserved > qty"))
    if (n := negative.scalar()) and int(n) > 0:
        findings.append(f"{n} balances are negative or over-reserved")
    return findings
