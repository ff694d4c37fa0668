"""SQL of the return aggregate: reasons, the return and its lines, its timeline (the step
records), what the order it comes from shipped, store credit, and the stock a return holds
for the order it promises. Each function runs inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import returns as rules
from models import timeline

# -- reasons -----------------------------------------------------------------------------------


async def reasons(conn: AsyncConnection) -> dict[str, rules.Reason]:
    rows = await conn.execute(text("SELECT * FROM return_reason ORDER BY code"))
    return {
        r.code: rules.Reason(r.code, r.label, int(r.fee_amount), int(r.fee_percent), bool(r.defect))
        for r in rows
    }


async def put_reason(conn: AsyncConnection, reason: rules.Reason) -> None:
    await conn.execute(
        text(
            "INSERT INTO return_reason (code, label, fee_amount, fee_percent, defect, created_at)"
            " VALUES (:code, :label, :fee_amount, :fee_percent, :defect, now())"
            " ON CONFLICT (code) DO UPDATE SET label = EXCLUDED.label, fee_amount = EXCLUDED.fee_amount,"
            " fee_percent = EXCLUDED.fee_percent, defect = EXCLUDED.defect"
        ),
        reason.__dict__,
    )


# -- what the order shipped ------------------------------------------------------------------


async def shipped_lines(conn: AsyncConnection, order_id: str, number: str) -> dict[str, rules.ShippedLine]:
    """The order's lines by SKU as a return sees them; `claimed` counts units on the other
    live returns of the order (call under the order's row lock to count them exactly)."""
    rows = await conn.execute(
        text(
            "SELECT l.line, l.sku, l.qty, l.shipped, l.cancelled, l.unit_price, s.returnable_days,"
            " (SELECT max(sh.shipped_at) FROM shipment sh JOIN shipment_line sl ON sl.shipment_id = sh.id"
            "   WHERE sh.order_id = l.order_id AND sl.line = l.line AND sh.shipped_at IS NOT NULL) AS shipped_at,"
            # a completed return holds only what came back (or was kept); a live one all it asked for
            " (SELECT coalesce(sum(CASE WHEN r.status = 'completed' THEN greatest(rl.received, rl.credited)"
            "   ELSE rl.qty END), 0) FROM return_line rl JOIN sales_return r ON r.number = rl.return_number"
            "   WHERE r.order_id = l.order_id AND rl.order_line = l.line AND r.number <> :number"
            "   AND r.status <> ALL(:not_live)) AS claimed"
            " FROM order_line l JOIN sku s ON s.code = l.sku WHERE l.order_id = :order_id ORDER BY l.line"
        ),
        {"order_id": order_id, "number": number, "not_live": list(rules.NOT_LIVE)},
    )
    out: dict[str, rules.ShippedLine] = {}
    for r in rows:
        out.setdefault(
            r.sku,
            rules.ShippedLine(
                r.line,
                r.sku,
                int(r.qty),
                int(r.shipped),
                int(r.cancelled),
                int(r.claimed),
                int(r.unit_price),
                int(r.returnable_days),
                r.shipped_at,
            ),
        )
    return out


async def order_lines(conn: AsyncConnection, order_id: str) -> list[rules.ShippedLine]:
    return list((await shipped_lines(conn, order_id, "")).values())


async def credited_before(conn: AsyncConnection, order_id: str, number: str) -> dict[str, int]:
    """Units of each order line credited by the order's other returns."""
    rows = await conn.execute(
        text(
            "SELECT rl.order_line, sum(rl.credited) AS n FROM return_line rl"
            " JOIN sales_return r ON r.number = rl.return_number"
            " WHERE r.order_id = :order_id AND r.number <> :number GROUP BY rl.order_line"
        ),
        {"order_id": order_id, "number": number},
    )
    return {r.order_line: int(r.n) for r in rows}


async def shipped_unit_costs(conn: AsyncConnection, order_id: str, skus: Sequence[str]) -> dict[str, int]:
    """The cost each SKU left with on the order's shipments (COGS posted ÷ units shipped)."""
    rows = await conn.execute(
        text(
            "SELECT jl.sku, sum(jl.debit) AS cost FROM journal_line jl JOIN journal_entry je ON je.id = jl.entry_id"
            " WHERE je.ref = :order_id AND jl.account = '5000' AND je.event = 'shipment' AND jl.sku = ANY(:skus)"
            " GROUP BY jl.sku"
        ),
        {"order_id": order_id, "skus": list(skus)},
    )
    cost = {r.sku: int(r.cost) for r in rows}
    moved = await conn.execute(
        text(
            "SELECT sku, sum(qty) AS qty FROM stock_move WHERE ref = :order_id AND to_location = 'customer'"
            " AND sku = ANY(:skus) GROUP BY sku"
        ),
        {"order_id": order_id, "skus": list(skus)},
    )
    return {r.sku: (cost.get(r.sku, 0) + int(r.qty) // 2) // int(r.qty) for r in moved if int(r.qty) > 0}


async def components(conn: AsyncConnection, skus: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    rows = await conn.execute(
        text(
            "SELECT kit_sku AS kit, component_sku AS component, qty FROM sku_component"
            " WHERE kit_sku = ANY(:skus) ORDER BY kit_sku, component_sku"
        ),
        {"skus": list(skus)},
    )
    out: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        out.setdefault(r.kit, []).append((r.component, int(r.qty)))
    return out


# -- the return --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeLine:
    sku: str
    order_line: str
    qty: int
    reason: str
    unit_price: int
    keep: bool
    fee: int


@dataclass(frozen=True)
class ReturnIntake:
    number: str
    order_id: str
    channel: str
    customer_id: str
    currency: str
    outcome: str
    instant: bool
    needs_approval: bool
    approval_reasons: list[dict[str, Any]]
    new_order_lines: list[dict[str, Any]]
    deadline_at: datetime
    request_hash: str
    lines: list[IntakeLine] = field(default_factory=list)


async def insert_return(conn: AsyncConnection, r: ReturnIntake) -> bool:
    """Record the return and its lines; False if the number is taken."""
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO sales_return (number, order_id, channel, customer_id, currency, outcome, instant,"
                " status, needs_approval, approval_reasons, new_order_lines, fee, credit, refunded, store_credit,"
                " charged, note, request_hash, deadline_at, created_at, updated_at) VALUES (:number, :order_id,"
                " :channel, :customer_id, :currency, :outcome, :instant, 'requested', :needs_approval,"
                " CAST(:approval_reasons AS jsonb), CAST(:new_order_lines AS jsonb), :fee, 0, 0, 0, 0, '',"
                " :request_hash, :deadline_at, now(), now()) ON CONFLICT DO NOTHING RETURNING number"
            ),
            {
                **{k: v for k, v in r.__dict__.items() if k != "lines"},
                "approval_reasons": json.dumps(r.approval_reasons),
                "new_order_lines": json.dumps(r.new_order_lines),
                "fee": sum(ln.fee for ln in r.lines),
            },
        )
    ).first()
    if inserted is None:
        return False
    await conn.execute(
        text(
            "INSERT INTO return_line (return_number, sku, order_line, qty, reason, unit_price, keep, received,"
            " inspected, credited, fee, refund_amount, dispositions) VALUES (:number, :sku, :order_line, :qty,"
            " :reason, :unit_price, :keep, 0, 0, 0, :fee, 0, '{}'::jsonb)"
        ),
        [{"number": r.number, **ln.__dict__} for ln in r.lines],
    )
    return True


async def request_hash_of(conn: AsyncConnection, number: str) -> str | None:
    found = (
        await conn.execute(text("SELECT request_hash FROM sales_return WHERE number = :n"), {"n": number})
    ).first()
    return None if found is None else str(found.request_hash)


async def lock_return(conn: AsyncConnection, number: str) -> Row[Any] | None:
    """The return row, locked until commit (the steps of one return never interleave)."""
    sql = text("SELECT * FROM sales_return WHERE number = :number FOR NO KEY UPDATE")
    return (await conn.execute(sql, {"number": number})).first()


async def lines(conn: AsyncConnection, number: str) -> list[Row[Any]]:
    sql = text("SELECT * FROM return_line WHERE return_number = :number ORDER BY sku")
    return list(await conn.execute(sql, {"number": number}))


async def update_line(conn: AsyncConnection, number: str, sku: str, **values: Any) -> None:
    """Set the named columns of one line (names from this module's callers only)."""
    if "dispositions" in values:
        values["dispositions"] = json.dumps(values["dispositions"])
    sets = ", ".join(
        f"{k} = CAST(:{k} AS jsonb)" if k == "dispositions" else f"{k} = :{k}" for k in sorted(values)
    )
    await conn.execute(
        text(f"UPDATE return_line SET {sets} WHERE return_number = :number AND sku = :sku"),  # noqa: S608
        {**values, "number": number, "sku": sku},
    )


async def update_return(conn: AsyncConnection, number: str, **values: Any) -> None:
    """Set the named columns of the return (names from this module's callers only)."""
    sets = ", ".join(f"{k} = :{k}" for k in sorted(values))
    await conn.execute(
        text(f"UPDATE sales_return SET {sets}, updated_at = now() WHERE number = :number"),  # noqa: S608
        {**values, "number": number},
    )


STAMPS = ("received_at", "settled_at", "completed_at")


async def stamp(conn: AsyncConnection, number: str, column: str, *, first_only: bool = False) -> None:
    """Set one of the return's moments (STAMPS) to now; `first_only` keeps an earlier one."""
    if column not in STAMPS:
        raise ValueError(f"{column} is not a moment of a return")
    keep = f" AND {column} IS NULL" if first_only else ""
    await conn.execute(
        text(f"UPDATE sales_return SET {column} = now() WHERE number = :n{keep}"),  # noqa: S608 - column from STAMPS
        {"n": number},
    )


async def location_type(conn: AsyncConnection, code: str) -> str | None:
    found = await conn.execute(text("SELECT type FROM location WHERE code = :c"), {"c": code})
    return found.scalar()


async def add_to_return(conn: AsyncConnection, number: str, **amounts: int) -> None:
    """Add to the return's money columns (fee, credit, refunded, store_credit, charged)."""
    sets = ", ".join(f"{k} = {k} + :{k}" for k in sorted(amounts))
    await conn.execute(
        text(f"UPDATE sales_return SET {sets}, updated_at = now() WHERE number = :number"),  # noqa: S608
        {**amounts, "number": number},
    )


async def step_result(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    return await timeline.step_result(conn, "return_event", key)


async def add_event(
    conn: AsyncConnection, number: str, key: str | None, event: str, detail: dict[str, Any]
) -> None:
    await timeline.add_event(conn, "return_event", number, key, event, detail)


async def add_returned(conn: AsyncConnection, order_id: str, order_line: str, units: int) -> None:
    """Units of an order line back from the customer (or kept by them, refunded)."""
    await conn.execute(
        text("UPDATE order_line SET returned = returned + :n WHERE order_id = :o AND line = :line"),
        {"n": units, "o": order_id, "line": order_line},
    )


# -- store credit ----------------------------------------------------------------------------


async def credit_entry(
    conn: AsyncConnection, key: str, customer_id: str, currency: str, amount: int, kind: str, ref: str
) -> bool:
    """One change of a customer's store credit, once per key; False if it was recorded before."""
    done = await conn.execute(
        text(
            "INSERT INTO store_credit_entry (customer_id, currency, amount, kind, key, ref, at)"
            " VALUES (:c, :cur, :a, :kind, :key, :ref, now()) ON CONFLICT (key) DO NOTHING RETURNING id"
        ),
        {"c": customer_id, "cur": currency, "a": amount, "kind": kind, "key": key, "ref": ref},
    )
    return done.first() is not None


async def lock_credit(conn: AsyncConnection, customer_id: str) -> int:
    """The customer's balance, under a lock held until commit (spends never overdraw)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('store_credit:' || :c))"), {"c": customer_id}
    )
    return await credit_balance(conn, customer_id)


async def credit_balance(conn: AsyncConnection, customer_id: str) -> int:
    found = await conn.execute(
        text("SELECT coalesce(sum(amount), 0) FROM store_credit_entry WHERE customer_id = :c"),
        {"c": customer_id},
    )
    return int(found.scalar_one())


async def credit_entries(conn: AsyncConnection, customer_id: str, limit: int = 500) -> list[Row[Any]]:
    sql = text(
        "SELECT id, amount, currency, kind, ref, at FROM store_credit_entry WHERE customer_id = :c"
        " ORDER BY id DESC LIMIT :limit"
    )
    return list(await conn.execute(sql, {"c": customer_id, "limit": limit}))


# -- stock held for the promised order -------------------------------------------------------


async def hold_for_order(conn: AsyncConnection, order_id: str, reservation_key: str, location: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO order_prereservation (order_id, reservation_key, location, adopted)"
            " VALUES (:o, :k, :loc, false) ON CONFLICT (order_id) DO NOTHING"
        ),
        {"o": order_id, "k": reservation_key, "loc": location},
    )


async def held_for(conn: AsyncConnection, order_id: str) -> Row[Any] | None:
    """The stock a return holds for this order, if it has not been taken yet."""
    sql = text("SELECT * FROM order_prereservation WHERE order_id = :o AND NOT adopted")
    return (await conn.execute(sql, {"o": order_id})).first()


async def adopt(conn: AsyncConnection, order_id: str) -> None:
    await conn.execute(
        text("UPDATE order_prereservation SET adopted = true WHERE order_id = :o"), {"o": order_id}
    )


async def drop_hold(conn: AsyncConnection, order_id: str) -> None:
    await conn.execute(text("DELETE FROM order_prereservation WHERE order_id = :o"), {"o": order_id})
