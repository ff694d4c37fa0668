"""The finance API's read model: account totals, journal entries with their lines, and the
inventory valuation, from the books that models/finance.py writes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.schemas_ledger import AccountValue, EntryRead, LineRead, ValuationLine
from domain.posting import INVENTORY_ACCOUNTS

_ACCOUNT_TOTALS = text(
    "SELECT a.code, a.name, a.type, coalesce(sum(l.debit), 0) AS debit, coalesce(sum(l.credit), 0) AS credit "
    "FROM account a LEFT JOIN journal_line l ON l.account = a.code GROUP BY a.code, a.name, a.type ORDER BY a.code"
)


async def account_totals(engine: AsyncEngine) -> list[Any]:
    """Every account (code, name, type) with its debit and credit totals, zero when unused."""
    async with engine.connect() as conn:
        return list((await conn.execute(_ACCOUNT_TOTALS)).all())


def _entry(h: Any, lines: list[LineRead]) -> EntryRead:
    return EntryRead(
        id=int(h.id),
        key=h.key,
        event=h.event,
        ref=h.ref,
        currency=h.currency,
        posted_at=h.posted_at,
        memo=h.memo,
        reverses=h.reverses,
        lines=lines,
        balanced=bool(lines) and sum(ln.debit for ln in lines) == sum(ln.credit for ln in lines),
    )


async def entries_after(
    engine: AsyncEngine, after: int, ref: str | None, event: str | None, limit: int
) -> tuple[list[EntryRead], list[Any]]:
    """Up to `limit` entries with id > `after`, oldest first, with their lines; and the rows
    fetched (limit + 1 of them when there is a next page)."""
    async with engine.connect() as conn:
        heads = (
            await conn.execute(
                text(
                    "SELECT id, key, event, ref, currency, posted_at, memo, reverses FROM journal_entry "
                    "WHERE id > :after AND (CAST(:ref AS text) IS NULL OR ref = :ref) "
                    "AND (CAST(:event AS text) IS NULL OR event = :event) ORDER BY id LIMIT :lim"
                ),
                {"after": after, "ref": ref, "event": event, "lim": limit + 1},
            )
        ).all()
        shown = heads[:limit]
        lines: dict[int, list[LineRead]] = defaultdict(list)
        if shown:
            for r in await conn.execute(
                text(
                    "SELECT entry_id, account, debit, credit, channel, location, sku FROM journal_line "
                    "WHERE entry_id = ANY(:ids) ORDER BY entry_id, id"
                ),
                {"ids": [int(h.id) for h in shown]},
            ):
                lines[int(r.entry_id)].append(
                    LineRead(
                        account=r.account,
                        debit=int(r.debit),
                        credit=int(r.credit),
                        channel=r.channel,
                        location=r.location,
                        sku=r.sku,
                    )
                )
    return [_entry(h, lines[int(h.id)]) for h in shown], list(heads)


async def valuation_lines(engine: AsyncEngine) -> list[ValuationLine]:
    """Per SKU and location held: units, value and moving-average cost over the inventory accounts."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT sku, location, account, qty, value FROM inventory_value "
                    "WHERE account = ANY(:a) AND (qty <> 0 OR value <> 0) ORDER BY sku, location, account"
                ),
                {"a": sorted(INVENTORY_ACCOUNTS)},
            )
        ).all()
    per: dict[tuple[str, str], list[AccountValue]] = defaultdict(list)
    for r in rows:
        per[(r.sku, r.location)].append(AccountValue(account=r.account, qty=int(r.qty), value=int(r.value)))
    items = []
    for (sku, location), parts in per.items():
        qty = sum(p.qty for p in parts)
        value = sum(p.value for p in parts)
        items.append(
            ValuationLine(
                sku=sku,
                location=location,
                qty=qty,
                value=value,
                accounts=parts,
                average_cost=(value + qty // 2) // qty if qty > 0 else 0,
            )
        )
    return items
