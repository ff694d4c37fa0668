"""Finance: the chart of accounts with balances, journal entries, the trial balance and the
inventory valuation. Read-only views of the books that models/finance.py writes; finance
and admin keys only. Shapes: api/schemas_ledger.py; the reads: api/read_models/ledger.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Role, guard
from api.deps import EngineDep
from api.pagination import PageDep, next_cursor
from api.problems import Problem
from api.read_models.ledger import account_totals, entries_after, valuation_lines
from api.schemas import Page
from api.schemas_ledger import AccountRead, EntryRead, TrialBalance, TrialBalanceLine, Valuation
from domain.posting import DEBIT_NORMAL

router = APIRouter(tags=["finance"])


@router.get("/v1/ledger/accounts", response_model=Page[AccountRead], **guard(Role.finance))
async def list_accounts(engine: EngineDep) -> Page[AccountRead]:
    """The chart of accounts with each account's balance in its normal direction."""
    items = []
    for r in await account_totals(engine):
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
    items, heads = await entries_after(engine, after, ref, event, page.limit)
    return Page(items=items, next_cursor=next_cursor(heads, page.limit, lambda r: [int(r.id)]))


@router.get("/v1/ledger/trial-balance", response_model=TrialBalance, **guard(Role.finance))
async def trial_balance(engine: EngineDep) -> TrialBalance:
    """Per account, the debit and credit totals (every account, zero when unused)."""
    accounts = [
        TrialBalanceLine(code=r.code, name=r.name, debit=int(r.debit), credit=int(r.credit))
        for r in await account_totals(engine)
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
    items = await valuation_lines(engine)
    return Valuation(items=items, total_value=sum(i.value for i in items))
