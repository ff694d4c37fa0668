"""The check: every balance equals the sum of its moves, and every reserved counter the sum
of its active reservations."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_BALANCE_DRIFT = text(
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

_RESERVED_DRIFT = text(
    """
    SELECT b.sku, b.location, b.lot, b.reserved, coalesce(sum(r.qty - r.consumed - r.released), 0) AS active
    FROM stock_balance b LEFT JOIN reservation r
      ON r.sku = b.sku AND r.location = b.location AND r.lot = b.lot AND b.status = 'sellable'
    GROUP BY b.id HAVING b.reserved <> coalesce(sum(r.qty - r.consumed - r.released), 0)
    """
)

_CHANNEL_RESERVED_DRIFT = text(
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


async def check(conn: AsyncConnection) -> list[str]:
    """Findings of drift (empty when the inventory is consistent)."""
    findings: list[str] = []
    for r in await conn.execute(_BALANCE_DRIFT):
        findings.append(
            f"balance drift {r.sku}/{r.location}/{r.status}/{r.lot or '-'}: balance {r.balance} "
            f"!= moves {r.moves}"
        )
    for r in await conn.execute(_RESERVED_DRIFT):
        findings.append(
            f"reserved drift {r.sku}/{r.location}/{r.lot or '-'}: {r.reserved} != reservations {r.active}"
        )
    for r in await conn.execute(_CHANNEL_RESERVED_DRIFT):
        findings.append(f"channel reserved drift {r.channel} {r.sku}/{r.location}: {r.kept} != {r.active}")
    negative = await conn.execute(text("SELECT count(*) FROM stock_balance WHERE qty < 0 OR reserved > qty"))
    if (n := negative.scalar()) and int(n) > 0:
        findings.append(f"{n} balances are negative or over-reserved")
    return findings
