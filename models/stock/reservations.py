"""Reservations, the database half: the statements of `reserve` and of a batch of
reservations (read the context, claim the keys and read the state under the SKU locks, write
the plans) and the conversion of what they read into the domain values
`domain.reservation.plan_batch` decides from. One request is a batch of one: the same four
statements either way."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.atp import AvailabilitySnapshot, LocationStock
from domain.reservation import Balance, Catalog, ComponentLine, ReservationPlan, ReserveRequest
from models.availability import SUPERSEDE_LATER

# Before the locks, one statement: the operations of these keys already done, the kinds of
# the SKUs asked for, the recipes of the kits among them and of every kit containing one of
# their components (`kits`: locked too, and their ATP recomputed), the channels and the
# locations they ship from, and the ring-fences and safety stock of every SKU whose ATP
# changes (`needed`).
_CONTEXT = text(
    """
    WITH lines AS (SELECT unnest(CAST(:line_skus AS text[])) AS sku),
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
        'ops', (SELECT coalesce(json_agg(json_build_object('key', key, 'kind', kind, 'hash', request_hash,
                                                           'result', result)), '[]')
                FROM stock_operation WHERE key = ANY(CAST(:keys AS text[]))),
        'skus', (SELECT coalesce(json_agg(json_build_object('code', code, 'kind', kind)), '[]')
                 FROM sku WHERE code IN (SELECT sku FROM lines)),
        'recipes', (SELECT coalesce(json_agg(json_build_object('kit', kit_sku, 'c', component_sku, 'q', qty)), '[]')
                    FROM sku_component WHERE kit_sku IN (SELECT sku FROM lines UNION SELECT sku FROM kits)),
        'kits', (SELECT coalesce(json_agg(sku), '[]') FROM kits),
        'needed', (SELECT coalesce(json_agg(sku), '[]') FROM needed),
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

# Under the locks, one statement: claim the keys (`claimed`: those not committed by another
# transaction while we waited), lock the sellable balance rows of the lines' (sku, location)
# pairs, and read the stock (unexpired; and what expired lots hold) and the per-channel
# reserved units of every `needed` SKU.
_CLAIM_AND_READ = text(
    """
    WITH op AS (
        INSERT INTO stock_operation (key, kind, ref, request_hash)
        SELECT k, 'reserve', r, h FROM unnest(CAST(:keys AS text[]), CAST(:refs AS text[]),
                                              CAST(:hashes AS text[])) AS t(k, r, h)
        ON CONFLICT (key) DO NOTHING RETURNING key
    ),
    bal AS (
        SELECT id, sku, location, lot, expires_at, qty, reserved FROM stock_balance
        WHERE status = 'sellable'
          AND (sku, location) IN (SELECT * FROM unnest(CAST(:pair_skus AS text[]), CAST(:pair_locations AS text[])))
        ORDER BY id FOR UPDATE
    )
    SELECT (SELECT coalesce(json_agg(key), '[]') FROM op) AS claimed,
        (SELECT coalesce(json_agg(bal ORDER BY id), '[]') FROM bal) AS rows,
        (SELECT coalesce(json_agg(t), '[]') FROM (
            SELECT sku, location,
                coalesce(sum(qty) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0) AS q,
                coalesce(sum(reserved) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0) AS r,
                coalesce(sum(qty - reserved) FILTER (WHERE expires_at <= now()), 0) AS x
            FROM stock_balance WHERE sku = ANY(:needed_skus) AND status = 'sellable'
            GROUP BY sku, location) t) AS stock,
        (SELECT coalesce(json_agg(json_build_object('s', sku, 'l', location, 'ch', channel, 'q', qty)), '[]')
         FROM channel_reserved WHERE sku = ANY(:needed_skus) AND qty > 0) AS by_channel
    """
)

# Then one statement writes the plans: the balances' reserved units, the reservation rows,
# each channel's reserved units per (sku, location), the new ATP (and its change feed events,
# giving it to the events that sit after them: models.availability.SUPERSEDE_LATER),
# each operation's result, and lets go of the keys of the requests refused (a retry may
# succeed later).
_WRITE = text(
    """
    WITH b AS (
        UPDATE stock_balance s SET reserved = s.reserved + d.q
        FROM unnest(CAST(:balance_ids AS bigint[]), CAST(:balance_units AS int[])) AS d(id, q)
        WHERE s.id = d.id RETURNING 1
    ),
    r AS (
        INSERT INTO reservation (key, line, ref, channel, sku, location, lot, qty, per_unit)
        SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:lines AS text[]), CAST(:refs AS text[]),
                             CAST(:channels AS text[]), CAST(:skus AS text[]), CAST(:locations AS text[]),
                             CAST(:lots AS text[]), CAST(:units AS int[]), CAST(:per_unit AS int[]))
        RETURNING 1
    ),
    cr AS (
        INSERT INTO channel_reserved (sku, location, channel, qty)
        SELECT * FROM unnest(CAST(:reserved_skus AS text[]), CAST(:reserved_locations AS text[]),
                             CAST(:reserved_channels AS text[]), CAST(:reserved_units AS int[]))
        ON CONFLICT (sku, location, channel) DO UPDATE SET qty = channel_reserved.qty + EXCLUDED.qty RETURNING 1
    ),
    changed AS (
        INSERT INTO channel_availability (channel, sku, available, updated_at)
        SELECT ch, s, a, now()
        FROM unnest(CAST(:atp_channels AS text[]), CAST(:atp_skus AS text[]), CAST(:atp_values AS int[])) AS t(ch, s, a)
        ON CONFLICT (channel, sku) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
            WHERE channel_availability.available <> EXCLUDED.available
        RETURNING channel, sku, available, (xmax = 0) AS first_seen
    ),
    ev AS (
        INSERT INTO availability_event (channel, sku, available)
        SELECT channel, sku, available FROM changed WHERE NOT (first_seen AND available = 0) RETURNING 1
    ),
    """  # noqa: S608 (a constant fragment)
    + SUPERSEDE_LATER
    + """,
    done AS (
        UPDATE stock_operation o SET result = d.res
        FROM unnest(CAST(:done_keys AS text[]), CAST(:done_results AS jsonb[])) AS d(k, res)
        WHERE o.key = d.k RETURNING 1
    ),
    gone AS (DELETE FROM stock_operation WHERE key = ANY(CAST(:refused_keys AS text[])) RETURNING 1)
    SELECT (SELECT count(*) FROM b) AS balances, (SELECT count(*) FROM ev) AS events,
        (SELECT count(*) FROM gone) AS let_go
    """
)

_LET_GO = text("DELETE FROM stock_operation WHERE key = ANY(CAST(:refused_keys AS text[]))")


@dataclass(frozen=True, slots=True)
class Context:
    """The context statement's answer, as domain values (for a key not yet done)."""

    catalog: Catalog
    kits: set[str]  # every kit containing a component asked for
    needed: list[str]  # every SKU whose ATP the reservation changes, and the components of its kits
    channel_locations: dict[str, list[str]]  # every channel -> the locations it ships from, sorted
    recipes: dict[str, dict[str, int]]  # kit -> component -> units per kit
    fences: dict[tuple[str, str], dict[str, int]]  # (sku, location) -> channel -> ring-fenced units
    safety: dict[tuple[str, str], int]  # (channel, sku) -> safety stock

    def snapshot(self, state: Any, skus: set[str]) -> AvailabilitySnapshot:
        """ATP before, from the state read under the locks, of `skus` (the component SKUs) and
        of every kit containing one."""
        taken: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for c in state.by_channel:
            taken[(c["s"], c["l"])][c["ch"]] = int(c["q"])
        stock = {
            (r["sku"], r["location"]): LocationStock(
                int(r["q"]),
                int(r["r"]),
                self.fences.get((r["sku"], r["location"]), {}),
                taken.get((r["sku"], r["location"]), {}),
                int(r["x"]),
            )
            for r in state.stock
        }
        for key in self.fences.keys() - stock.keys():  # fenced but empty: still counts for its channel
            stock[key] = LocationStock(0, 0, self.fences[key], taken.get(key, {}))
        targets = skus | self.kits
        return AvailabilitySnapshot(
            stock=stock,
            channel_locations=self.channel_locations,
            safety=self.safety,
            recipes={k: v for k, v in self.recipes.items() if k in targets},
            targets=targets,
        )


async def read_context(conn: AsyncConnection, keys: Sequence[str], line_skus: set[str]) -> dict[str, Any]:
    params = {"line_skus": sorted(line_skus), "keys": list(keys)}
    ctx: dict[str, Any] = (await conn.execute(_CONTEXT, params)).scalar_one()
    return ctx


def context_of(ctx: dict[str, Any]) -> Context:
    recipes: dict[str, dict[str, int]] = defaultdict(dict)
    for rcp in sorted(ctx["recipes"], key=lambda r: (r["kit"], r["c"])):
        recipes[rcp["kit"]][rcp["c"]] = int(rcp["q"])
    channel_locations: dict[str, list[str]] = {}
    for c in ctx["channels"]:
        channel_locations.setdefault(c["ch"], [])
        if c["loc"] is not None:
            channel_locations[c["ch"]].append(c["loc"])
    fences: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for f in ctx["fences"]:
        fences[(f["s"], f["l"])][f["ch"]] = int(f["q"])
    served = {ch: sorted(locs) for ch, locs in channel_locations.items()}
    catalog = Catalog(
        kinds={s["code"]: s["kind"] for s in ctx["skus"]},
        recipes={kit: list(parts.items()) for kit, parts in recipes.items()},
        channel_locations=served,
    )
    return Context(
        catalog=catalog,
        kits=set(ctx["kits"]),
        needed=list(ctx["needed"]),
        channel_locations=served,
        recipes=dict(recipes),
        fences=dict(fences),
        safety={(s["ch"], s["s"]): int(s["q"]) for s in ctx["safety"]},
    )


async def claim_and_read(
    conn: AsyncConnection,
    claims: Sequence[tuple[str, str, str]],
    components: Iterable[ComponentLine],
    context: Context,
) -> Any:
    """The row (claimed keys, rows, stock, by_channel) of the claim-and-read statement.
    `claims`: (key, ref, request hash), claimed in key order (two batches never wait for each
    other's keys in opposite orders)."""
    pairs = sorted({(c.sku, c.location) for c in components})
    ordered = sorted(claims)
    params = {
        "keys": [c[0] for c in ordered],
        "refs": [c[1] for c in ordered],
        "hashes": [c[2] for c in ordered],
        "pair_skus": [p[0] for p in pairs],
        "pair_locations": [p[1] for p in pairs],
        "needed_skus": context.needed,
    }
    return (await conn.execute(_CLAIM_AND_READ, params)).one()


def balances_of(rows: list[dict[str, Any]]) -> list[Balance]:
    return [
        Balance(
            int(r["id"]),
            r["sku"],
            r["location"],
            r["lot"],
            datetime.fromisoformat(r["expires_at"]) if r["expires_at"] else None,
            int(r["qty"]) - int(r["reserved"]),
        )
        for r in rows
    ]


async def write(
    conn: AsyncConnection,
    accepted: Sequence[tuple[ReserveRequest, ReservationPlan]],
    refused_keys: Sequence[str],
    atp_after: dict[tuple[str, str], int],
) -> None:
    """Write the accepted plans (each under its request's key) and let go of the refused keys."""
    if not accepted:
        if refused_keys:
            await conn.execute(_LET_GO, {"refused_keys": list(refused_keys)})
        return
    made = [(req, m) for req, plan in accepted for m in plan.reservations]
    per_balance: dict[int, int] = defaultdict(int)
    per_channel: dict[tuple[str, str, str], int] = defaultdict(int)
    for req, plan in accepted:
        for bid, q in plan.per_balance.items():
            per_balance[bid] += q
        for (sku, location), q in plan.per_location.items():
            per_channel[(sku, location, req.channel)] += q
    await conn.execute(
        _WRITE,
        {
            "balance_ids": list(per_balance),
            "balance_units": list(per_balance.values()),
            "keys": [req.key for req, _ in made],
            "lines": [m.line for _, m in made],
            "refs": [req.ref for req, _ in made],
            "channels": [req.channel for req, _ in made],
            "skus": [m.sku for _, m in made],
            "locations": [m.location for _, m in made],
            "lots": [m.lot for _, m in made],
            "units": [m.qty for _, m in made],
            "per_unit": [m.per_unit for _, m in made],
            "reserved_skus": [k[0] for k in per_channel],
            "reserved_locations": [k[1] for k in per_channel],
            "reserved_channels": [k[2] for k in per_channel],
            "reserved_units": list(per_channel.values()),
            "atp_channels": [k[0] for k in atp_after],
            "atp_skus": [k[1] for k in atp_after],
            "atp_values": list(atp_after.values()),
            "done_keys": [req.key for req, _ in accepted],
            "done_results": [json.dumps(plan.result) for _, plan in accepted],
            "refused_keys": list(refused_keys),
        },
    )
