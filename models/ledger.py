"""Double-entry ledger, inventory valuation and payments (tables).

Invariants held by the database: an entry is written once per business key (UNIQUE), is
never updated or deleted (triggers), and balances at commit (a deferred constraint trigger);
lines post to exactly one side; payments never refund more than was captured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class Account(SQLModel, table=True):
    __tablename__ = "account"
    code: str = Field(primary_key=True, max_length=8)
    name: str = Field(max_length=100)
    type: str = Field(max_length=20)


class JournalEntry(SQLModel, table=True):
    __tablename__ = "journal_entry"
    __table_args__ = (Index("ix_journal_entry_ref", "ref"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    key: str = Field(unique=True, max_length=200)  # the business key: posted at most once
    event: str = Field(max_length=40)
    ref: str = Field(default="", max_length=200)
    currency: str = Field(default="USD", max_length=3)
    payload_hash: str = Field(max_length=64)
    memo: str = Field(default="", max_length=500)
    reverses: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("journal_entry.id")))
    posted_at: datetime = created_at_field()


class JournalLine(SQLModel, table=True):
    __tablename__ = "journal_line"
    __table_args__ = (
        CheckConstraint(
            "debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)", name="ck_journal_line_side"
        ),
        Index("ix_journal_line_account", "account"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    entry_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("journal_entry.id"), nullable=False, index=True)
    )
    account: str = Field(sa_column=Column(String(8), ForeignKey("account.code"), nullable=False))
    debit: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    credit: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    channel: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=64)
    sku: str | None = Field(default=None, max_length=64)


class InventoryValue(SQLModel, table=True):
    """Quantity and value per SKU, location and inventory account: the moving-average
    valuation. Value moves out at the row's own average (domain.posting.take_value)."""

    __tablename__ = "inventory_value"
    __table_args__ = (
        CheckConstraint("qty >= 0 AND value >= 0 AND (qty > 0 OR value = 0)", name="ck_inventory_value"),
    )
    sku: str = Field(primary_key=True, max_length=64)
    location: str = Field(primary_key=True, max_length=64)
    account: str = Field(sa_column=Column(String(8), ForeignKey("account.code"), primary_key=True))
    qty: int = 0
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class Payment(SQLModel, table=True):
    __tablename__ = "payment"
    __table_args__ = (
        CheckConstraint(
            "authorized >= 0 AND captured >= 0 AND refunded >= 0 AND captured <= authorized AND refunded <= captured",
            name="ck_payment_amounts",
        ),
        Index("ix_payment_ref", "ref"),
    )
    id: str = Field(primary_key=True, max_length=40)
    ref: str = Field(max_length=200)  # the order (or other subject) it pays for
    method: str = Field(max_length=32)
    gateway: str = Field(max_length=32)
    gateway_ref: str = Field(default="", max_length=200)
    currency: str = Field(default="USD", max_length=3)
    status: str = Field(
        max_length=20
    )  # authorized | captured | partially_refunded | refunded | voided | declined
    authorized: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    captured: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    captured_tax: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = created_at_field()


class PaymentOperation(SQLModel, table=True):
    """One gateway call, written once per business key (a retried capture captures once)."""

    __tablename__ = "payment_operation"
    key: str = Field(primary_key=True, max_length=200)
    payment_id: str = Field(
        sa_column=Column(String(40), ForeignKey("payment.id"), nullable=False, index=True)
    )
    kind: str = Field(max_length=12)
    amount: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    outcome: str = Field(max_length=20)
    gateway_ref: str = Field(default="", max_length=200)
    created_at: datetime = created_at_field()


class SandboxTransaction(SQLModel, table=True):
    """The built-in sandbox gateway's own books (as a real PSP keeps its own)."""

    __tablename__ = "sandbox_gateway_txn"
    id: str = Field(primary_key=True, max_length=40)
    idempotency_key: str = Field(unique=True, max_length=200)
    kind: str = Field(max_length=12)
    reference: str = Field(max_length=200)
    amount: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    outcome: str = Field(max_length=20)
    created_at: datetime = created_at_field()


class SandboxBehaviour(SQLModel, table=True):
    """Tell the sandbox how to answer for a payment reference: `decline` or `timeout`."""

    __tablename__ = "sandbox_gateway_behaviour"
    reference: str = Field(primary_key=True, max_length=200)
    mode: str = Field(max_length=12)
    remaining: int = 1_000_000  # how many more calls answer this way (then it behaves)
