"""Finance: the chart of accounts with balances, journal entries, the trial balance and the
inventory valuation. Read-only views of the books that models/finance.py writes; finance
and admin keys only."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import text

from api.auth import Role, guard
from api.deps import EngineDep
from api.pagination import PageDep, next_cursor
from api.problems import Problem
from api.schemas import Page, ResponseModel
from domain.posting import DEBIT_NORMAL, INVENTORY_ACCOUNTS

router = APIRouter(tags=["finance"])

CURRENCY = "USD"


class AccountRead(ResponseModel):
    code: str
    name: str
    type: str = Field(description="asset, liability, equity, revenue, contra_revenue or expense.")
    balance: int = Field(
        description="In the account's normal direction: debits − credits for asset, expense and "
        "contra_revenue accounts, credits − debits for the others."
    )
    debit: int
    credit: int


class LineRead(ResponseModel):
    account: str
    debit: int
    credit: int
    channel: str | None
    location: str | None
    sku: str | None


class EntryRead(ResponseModel):
    id: int
    key: str = Field(description="The business key: an entry is posted at most once per key.")
    event: str
    ref: str
    currency: str
    posted_at: datetime
    memo: str
    reverses: int | None = Field(description="The entry this one corrects (a reversing entry).")
    lines: list[LineRead]
    balanced: bool


class TrialBalanceLine(ResponseModel):
    code: str
    name: str
    debit: int
    credit: int


class TrialBalance(ResponseModel):
    accounts: list[TrialBalanceLine]
    total_debit: int
    total_credit: int
    currency: str = CURRENCY


class AccountValue(ResponseModel):
    account: str
    qty: int
    value: int


class ValuationLine(ResponseModel):
    sku: str
    location: str
    qty: int
    average_cost: int = Field(description="value / qty, rounded half up (0 when nothing is held).")
    value: int
    accounts: list[AccountValue] = Field(
        description="The same units and value per inventory account (1400, 1410, 1420)."
    )


class Valuation(ResponseModel):
    items: list[ValuationLine]
    total_value: int = Field(description="Equals the balances of the inventory accounts.")
    currency: str = CURRENCY


_ACCOUNT_TOTALS = text(
    "SELECT a.code, a.name, a.type, coalesce(sum(l.debit), 0) AS debit, coalesce(sum(l.credit), 0) AS credit "
    "FROM account a LEFT JOIN journal_line l ON l.account = a.code GROUP BY a.code, a.name, a.type ORDER BY a.code"
)


@router.get("/v1/ledger/accounts", response_model=Page[AccountRead], **guard(Role.finance))
async def list_accounts(engine: EngineDep) -> Page[AccountRead]:
    """The chart of accounts with each account's balance in its normal direction."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_ACCOUNT_TOTALS)).all()
    items = []
    for r in rows:
        debit, credit = int(r.debit), int(r.credit)
        balance = debit - credit if r.type in DEBIT_NORMAL else credit - debit
        items.append(
            AccountRead(code=r.code, name=r.name, type=r.type, balance=balance, debit=debit, credit=credit)
        )
    return Page(items=items, next_cursor=None)


@router.get("/v1/ledger/entries", response_model=Page[EntryRead], **guard(Role.finance))
async def list_entries(
    engine: EngineDep,
    page: PageDep,
    ref: Annotated[str | None, Query(max_length=200, description="The subject (order, PO, …).")] = None,
    event: Annotated[str | None, Query(max_length=40, description="e.g. shipment, capture.")] = None,
) -> Page[EntryRead]:
    """Journal entries with their lines, oldest first; every entry balances."""
    after = page.after[0] if page.after else 0
    if not isinstance(after, int) or isinstance(after, bool):
        raise Problem(
            400, "the cursor is not valid (use next_cursor from the previous page)", slug="bad-cursor"
        )
    async with engine.connect() as conn:
        heads = (
            await conn.execute(
                text(
                    "SELECT id, key, event, ref, currency, posted_at, memo, reverses FROM journal_entry "
                    "WHERE id > :after AND (CAST(:ref AS text) IS NULL OR ref = :ref) "
                    "AND (CAST(:event AS text) IS NULL OR event = :event) ORDER BY id LIMIT :lim"
                ),
                {"after": after, "ref": ref, "event": event, "lim": page.limit + 1},
            )
        ).all()
        shown = heads[: page.limit]
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
    items = [
        EntryRead(
            id=int(h.id),
            key=h.key,
            event=h.event,
            ref=h.ref,
            currency=h.currency,
            posted_at=h.posted_at,
            memo=h.memo,
            reverses=h.reverses,
            lines=lines[int(h.id)],
            balanced=bool(lines[int(h.id)])
            and sum(ln.debit for ln in lines[int(h.id)]) == sum(ln.credit for ln in lines[int(h.id)]),
        )
        for h in shown
    ]
    return Page(items=items, next_cursor=next_cursor(list(heads), page.limit, lambda r: [int(r.id)]))


@router.get("/v1/ledger/trial-balance", response_model=TrialBalance, **guard(Role.finance))
async def trial_balance(engine: EngineDep) -> TrialBalance:
    """Per account, the debit and credit totals (every account, zero when unused)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_ACCOUNT_TOTALS)).all()
    accounts = [
        TrialBalanceLine(code=r.code, name=r.name, debit=int(r.debit), credit=int(r.credit)) for r in rows
    ]
    return TrialBalance(
        accounts=accounts,
        total_debit=sum(a.debit for a in accounts),
        total_credit=sum(a.credit for a in accounts),
    )


@router.get("/v1/valuation", response_model=Valuation, **guard(Role.finance))
async def valuation(engine: EngineDep) -> Valuation:
    """Per SKU and location: units held, their moving-average cost and value (over the
    inventory accounts: on hand, in transit, returns). The total equals the ledger's
    inventory accounts."""
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
    return Valuation(items=items, total_value=sum(i.value for i in items))
