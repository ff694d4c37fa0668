"""The ledger core: post a journal entry once per business key in the caller's transaction,
keep the moving-average valuation, and check the books.

Valuation is kept per (SKU, location, inventory account) as a quantity and a value in minor
units; units leave at their row's moving average (`domain.posting.take_value`), so the
inventory accounts equal the valuation exactly, with no rounding drift."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError
from domain.posting import INVENTORY_ACCOUNTS, Line, require_balanced, take_value


@dataclass
class LedgerConflict(DomainError):
    key: str
    code = "ledger_conflict"

    def __str__(self) -> str:
        return f"journal entry {self.key!r} was already posted with different lines"


@dataclass(frozen=True)
class Posting:
    """A journal line with its dimensions."""

    account: str
    debit: int
    credit: int
    channel: str | None = None
    location: str | None = None
    sku: str | None = None

    @staticmethod
    def of(line: Line, **dims: str | None) -> Posting:
        return Posting(line.account, line.debit, line.credit, **dims)


def _net(postings: list[Posting]) -> list[Posting]:
    """Merge lines of the same account and dimensions; drop what nets to zero."""
    totals: dict[tuple[str, str | None, str | None, str | None], int] = defaultdict(int)
    for p in postings:
        totals[(p.account, p.channel, p.location, p.sku)] += p.debit - p.credit
    return [
        Posting(acc, max(n, 0), max(-n, 0), ch, loc, sku)
        for (acc, ch, loc, sku), n in sorted(totals.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        if n != 0
    ]


async def post(
    conn: AsyncConnection,
    key: str,
    event: str,
    postings: list[Posting],
    *,
    ref: str = "",
    currency: str = "USD",
    memo: str = "",
    reverses: int | None = None,
) -> int | None:
    """Write the entry once per `key`; the same key with the same lines returns the first
    entry, with other lines raises LedgerConflict. Returns the entry id (None: nothing to post)."""
    lines = _net(postings)
    if not lines:
        return None
    require_balanced([Line(p.account, p.debit, p.credit) for p in lines])
    digest = hashlib.sha256(
        json.dumps([event, currency, [p.__dict__ for p in lines]], sort_keys=True).encode()
    ).hexdigest()
    params = {
        "k": key,
        "e": event,
        "ref": ref,
        "cur": currency,
        "h": digest,
        "memo": memo,
        "rev": reverses,
        "a": [p.account for p in lines],
        "d": [p.debit for p in lines],
        "c": [p.credit for p in lines],
        "ch": [p.channel for p in lines],
        "loc": [p.location for p in lines],
        "s": [p.sku for p in lines],
    }
    entry_id = (await conn.execute(_POST, params)).scalar()
    if entry_id is None:  # the key was posted before: the same lines, or a conflict
        existing = (
            await conn.execute(text("SELECT id, payload_hash FROM journal_entry WHERE key = :k"), {"k": key})
        ).one()
        if existing.payload_hash != digest:
            raise LedgerConflict(key)
        return int(existing.id)
    return int(entry_id)


# The entry and its lines in one statement; nothing (a null id) when the key is taken.
_POST = text(
    "WITH entry AS (INSERT INTO journal_entry (key, event, ref, currency, payload_hash, memo, reverses)"
    " VALUES (:k, :e, :ref, :cur, :h, :memo, :rev) ON CONFLICT (key) DO NOTHING RETURNING id),"
    " posted AS (INSERT INTO journal_line (entry_id, account, debit, credit, channel, location, sku)"
    " SELECT entry.id, a, d, c, ch, loc, s FROM entry, unnest(CAST(:a AS text[]), CAST(:d AS bigint[]),"
    " CAST(:c AS bigint[]), CAST(:ch AS text[]), CAST(:loc AS text[]), CAST(:s AS text[])) AS t(a, d, c, ch, loc, s)"
    " RETURNING 1)"
    " SELECT id FROM entry"
)


@dataclass
class ReversalRefused(DomainError):
    entry_id: int
    reason: str
    code = "reversal_refused"

    def __str__(self) -> str:
        return f"entry {self.entry_id} cannot be reversed: {self.reason}"


async def reverse(conn: AsyncConnection, key: str, entry_id: int, memo: str = "") -> int | None:
    """Correct an entry by posting its mirror image (entries are never edited). An entry is
    reversed at most once: a second request returns the first reversal. Entries that moved
    inventory value are refused: stock is corrected by a stock move, which revalues it."""
    head = (
        await conn.execute(
            text("SELECT event, ref, currency FROM journal_entry WHERE id = :i FOR UPDATE"), {"i": entry_id}
        )
    ).one()
    earlier = (
        await conn.execute(text("SELECT id FROM journal_entry WHERE reverses = :i"), {"i": entry_id})
    ).scalar()
    if earlier is not None:
        return int(earlier)
    lines = (
        await conn.execute(
            text(
                "SELECT account, debit, credit, channel, location, sku FROM journal_line WHERE entry_id = :i"
            ),
            {"i": entry_id},
        )
    ).all()
    if any(r.account in INVENTORY_ACCOUNTS for r in lines):
        raise ReversalRefused(entry_id, "it moved inventory value; correct the stock with a move instead")
    mirror = [Posting(r.account, int(r.credit), int(r.debit), r.channel, r.location, r.sku) for r in lines]
    return await post(
        conn,
        key,
        "reversal",
        mirror,
        ref=head.ref,
        currency=head.currency,
        memo=memo or f"reverses entry {entry_id} ({head.event})",
        reverses=entry_id,
    )


# -- valuation ------------------------------------------------------------------------


async def average_cost(conn: AsyncConnection, sku: str) -> int:
    """The SKU's moving average over every valued unit; its standard cost when none is held."""
    row = (
        await conn.execute(
            text(
                "SELECT coalesce(sum(qty), 0) AS q, coalesce(sum(value), 0) AS v FROM inventory_value WHERE sku = :s"
            ),
            {"s": sku},
        )
    ).one()
    if int(row.q) > 0:
        return int((int(row.v) + int(row.q) // 2) // int(row.q))
    unit = (await conn.execute(text("SELECT unit_cost FROM sku WHERE code = :s"), {"s": sku})).scalar()
    return int(unit or 0)


async def value_in(
    conn: AsyncConnection, sku: str, location: str, account: str, qty: int, value: int
) -> None:
    await conn.execute(
        text(
            "INSERT INTO inventory_value (sku, location, account, qty, value) VALUES (:s, :l, :a, :q, :v) "
            "ON CONFLICT (sku, location, account) DO UPDATE SET qty = inventory_value.qty + EXCLUDED.qty, "
            "value = inventory_value.value + EXCLUDED.value"
        ),
        {"s": sku, "l": location, "a": account, "q": qty, "v": value},
    )


async def value_out(conn: AsyncConnection, sku: str, location: str, account: str, qty: int) -> int:
    """Take `qty` units out at the row's moving average; returns the value taken."""
    row = (
        await conn.execute(
            text(
                "SELECT qty, value FROM inventory_value WHERE sku = :s AND location = :l AND account = :a FOR UPDATE"
            ),
            {"s": sku, "l": location, "a": account},
        )
    ).first()
    held_qty, held_value = (int(row.qty), int(row.value)) if row else (0, 0)
    taken_qty = min(qty, held_qty)
    value = take_value(held_qty, held_value, taken_qty)
    if taken_qty:
        await conn.execute(
            text(
                "UPDATE inventory_value SET qty = qty - :q, value = value - :v WHERE sku = :s AND location = :l "
                "AND account = :a"
            ),
            {"q": taken_qty, "v": value, "s": sku, "l": location, "a": account},
        )
    return value


# -- the check ---------------------------------------------------------------------------


async def check(conn: AsyncConnection) -> list[str]:
    """Findings (empty when the books are right): every entry balances, the trial balance
    balances, inventory accounts equal the valuation, the valuation's quantities equal the
    stock buckets, refunded <= captured."""
    findings: list[str] = []
    for r in await conn.execute(
        text(
            "SELECT e.key, sum(l.debit) AS d, sum(l.credit) AS c FROM journal_entry e LEFT JOIN journal_line l "
            "ON l.entry_id = e.id GROUP BY e.id HAVING coalesce(sum(l.debit), 0) <> coalesce(sum(l.credit), 0) "
            "OR count(l.id) = 0"
        )
    ):
        findings.append(f"entry {r.key} does not balance: debits {r.d} credits {r.c}")
    totals = (
        await conn.execute(text("SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0) FROM journal_line"))
    ).one()
    if totals[0] != totals[1]:
        findings.append(f"trial balance: debits {totals[0]} != credits {totals[1]}")
    ledger = {
        r.account: int(r.bal)
        for r in await conn.execute(
            text(
                "SELECT account, sum(debit) - sum(credit) AS bal FROM journal_line WHERE account = ANY(:a) "
                "GROUP BY account"
            ),
            {"a": sorted(INVENTORY_ACCOUNTS)},
        )
    }
    valued = {
        r.account: int(r.v)
        for r in await conn.execute(
            text("SELECT account, sum(value) AS v FROM inventory_value GROUP BY account")
        )
    }
    for account in sorted(INVENTORY_ACCOUNTS):
        if ledger.get(account, 0) != valued.get(account, 0):
            findings.append(
                f"account {account} is {ledger.get(account, 0)} but the valuation is {valued.get(account, 0)}"
            )
    for r in await conn.execute(
        text(
            """
            WITH buckets AS (
                SELECT sku, location, CASE WHEN status IN ('sellable', 'quarantine', 'damaged') THEN '1400'
                       WHEN status = 'in_transit' THEN '1410' WHEN status = 'returns' THEN '1420' END AS account,
                       sum(qty) AS qty
                FROM stock_balance WHERE status <> 'inbound' GROUP BY 1, 2, 3
            )
            SELECT coalesce(b.sku, v.sku) AS sku, coalesce(b.location, v.location) AS location,
                   coalesce(b.account, v.account) AS account, coalesce(b.qty, 0) AS stock, coalesce(v.qty, 0) AS valued
            FROM buckets b FULL JOIN inventory_value v
              ON v.sku = b.sku AND v.location = b.location AND v.account = b.account
            WHERE coalesce(b.qty, 0) <> coalesce(v.qty, 0)
            """
        )
    ):
        findings.append(
            f"valuation of {r.sku}@{r.location} ({r.account}) covers {r.valued} units, stock has {r.stock}"
        )
    for r in await conn.execute(
        text("SELECT id, ref, captured, refunded FROM payment WHERE refunded > captured")
    ):
        findings.append(f"payment {r.id} ({r.ref}) refunded {r.refunded} > captured {r.captured}")
    return findings
