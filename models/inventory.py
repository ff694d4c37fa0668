"""Inventory: balances per bucket, the immutable movement ledger, reservations, the
availability change feed and the sellable-stock announcements.

Invariants held by the database itself:
- real buckets never go negative; 0 <= reserved <= qty (CHECK constraints);
- moves are never updated or deleted (trigger in the migration);
- each balance equals the sum of its moves (checked by `models.stock.check`, which
  `omniflow inventory check` runs)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_at_field

STATUSES = ("sellable", "in_transit", "inbound", "returns", "quarantine", "damaged")
VIRTUAL_STATUS = "virtual"


class StockBalance(SQLModel, table=True):
    __tablename__ = "stock_balance"
    __table_args__ = (
        UniqueConstraint("sku", "location", "status", "lot", name="uq_stock_balance_bucket"),
        CheckConstraint(f"status IN {(*STATUSES, VIRTUAL_STATUS)!r}", name="ck_stock_balance_status"),
        CheckConstraint("is_virtual OR qty >= 0", name="ck_stock_balance_not_negative"),
        CheckConstraint(
            "reserved >= 0 AND (is_virtual OR reserved <= qty)", name="ck_stock_balance_reserved"
        ),
        CheckConstraint("NOT is_virtual OR reserved = 0", name="ck_stock_balance_virtual_unreserved"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), nullable=False))
    location: str = Field(sa_column=Column(String(64), ForeignKey("location.code"), nullable=False))
    status: str = Field(max_length=12)
    lot: str = Field(default="", max_length=64)
    expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    qty: int = 0
    reserved: int = 0
    is_virtual: bool = False
    unit_cost: int = 0  # moving average cost of what is in this bucket (finance keeps the ledger)


class StockOperation(SQLModel, table=True):
    """One business change of stock (an adjustment, a transfer step, a reservation…),
    written once per business key; a retry with the same key finds it and does nothing."""

    __tablename__ = "stock_operation"
    key: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=32)
    ref: str = Field(default="", max_length=200)
    request_hash: str = Field(max_length=64)
    result: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = created_at_field()


class StockMove(SQLModel, table=True):
    __tablename__ = "stock_move"
    __table_args__ = (
        CheckConstraint("qty > 0", name="ck_stock_move_qty"),
        Index("ix_stock_move_sku_location", "sku", "from_location", "to_location"),
        Index("ix_stock_move_ref", "ref"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    op_key: str = Field(
        sa_column=Column(String(200), ForeignKey("stock_operation.key"), nullable=False, index=True)
    )
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), nullable=False))
    lot: str = Field(default="", max_length=64)
    from_location: str = Field(max_length=64)
    from_status: str = Field(max_length=12)
    to_location: str = Field(max_length=64)
    to_status: str = Field(max_length=12)
    qty: int
    reason: str = Field(max_length=32)
    ref: str = Field(default="", max_length=200)
    created_at: datetime = created_at_field()


class Reservation(SQLModel, table=True):
    """Units of a sellable bucket promised to one order line at one location (and lot)."""

    __tablename__ = "reservation"
    __table_args__ = (
        UniqueConstraint("key", "line", "sku", "location", "lot", name="uq_reservation_line"),
        CheckConstraint(
            "qty > 0 AND consumed >= 0 AND released >= 0 AND consumed + released <= qty",
            name="ck_reservation_qty",
        ),
        Index("ix_reservation_ref", "ref"),
        Index("ix_reservation_active", "sku", "location", postgresql_where="consumed + released < qty"),
        CheckConstraint("per_unit > 0", name="ck_reservation_per_unit"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    key: str = Field(max_length=200)  # the reserving operation's business key
    line: str = Field(max_length=64)  # the order line (or kit line) it serves
    ref: str = Field(default="", max_length=200)  # the order / transfer it belongs to
    channel: str = Field(max_length=64)
    sku: str = Field(max_length=64)
    location: str = Field(max_length=64)
    lot: str = Field(default="", max_length=64)
    qty: int
    consumed: int = 0
    released: int = 0
    per_unit: int = 1  # component units per kit unit when this row serves a kit line
    created_at: datetime = created_at_field()


class ChannelReserved(SQLModel, table=True):
    """Active reserved units per channel, kept beside the balance so that ring-fences can be
    computed under the balance lock without summing reservations."""

    __tablename__ = "channel_reserved"
    __table_args__ = (CheckConstraint("qty >= 0", name="ck_channel_reserved_qty"),)
    sku: str = Field(primary_key=True, max_length=64)
    location: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=64)
    qty: int = 0


class AvailabilityEvent(SQLModel, table=True):
    """The change feed: a channel's ATP of a SKU after a committed change. Read in
    (txid, seq) order and only below the oldest running transaction, so an event that
    commits late is never skipped; a writer gives its value to the events of its SKU that
    sit after its own, not yet readable (see models/availability.py)."""

    __tablename__ = "availability_event"
    __table_args__ = (
        Index("ix_availability_event_feed", "channel", "txid", "seq"),
        Index("ix_availability_event_sku", "channel", "sku", "txid", "seq"),
    )
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    txid: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel: str = Field(max_length=64)
    sku: str = Field(max_length=64)
    available: int
    created_at: datetime = created_at_field()


class StockArrival(SQLModel, table=True):
    """The one hook for "sellable stock of a SKU rose": written in the same transaction as the
    move; consumers (waiting backorders) read it in (txid, id) order like the feed."""

    __tablename__ = "stock_arrival"
    __table_args__ = (Index("ix_stock_arrival_order", "txid", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    txid: int = Field(sa_column=Column(BigInteger, nullable=False))
    sku: str = Field(max_length=64)
    location: str = Field(max_length=64)
    qty: int
    reason: str = Field(max_length=32)
    ref: str = Field(default="", max_length=200)
    created_at: datetime = created_at_field()


class ChannelAvailability(SQLModel, table=True):
    """The current ATP per channel and SKU, as of the last committed change (what
    GET /v1/availability serves, and what the feed's events say)."""

    __tablename__ = "channel_availability"
    channel: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    available: int
    updated_at: datetime = created_at_field()
