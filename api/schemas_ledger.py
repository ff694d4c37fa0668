"""Response shapes of the finance API (docs/api.md, "Finance")."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas import ResponseModel

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
