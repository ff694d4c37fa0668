"""The returns read model: return reasons, returns (RMAs) and their lines, the return
timeline, store credit, and the stock a return holds for the order it promises (an
exchange or a replacement), written by the return workflow's activities in the same
transaction as each business step, read by the API.

A return's id is its number, the business key: `rma-{number}` is its workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.returns import OUTCOMES, RETURN_STATUSES
from models.base import created_at_field


def _ts() -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=True)


class ReturnReason(SQLModel, table=True):
    """A managed reason: its fee (flat per line and/or percent of the line's value) and
    whether it is a defect (never charged)."""

    __tablename__ = "return_reason"
    __table_args__ = (
        CheckConstraint("fee_amount >= 0 AND fee_percent BETWEEN 0 AND 100", name="ck_return_reason_fee"),
    )
    code: str = Field(primary_key=True, max_length=64)
    label: str = Field(max_length=200)
    fee_amount: int = 0
    fee_percent: int = 0
    defect: bool = False
    created_at: datetime = created_at_field()


class SalesReturn(SQLModel, table=True):
    __tablename__ = "sales_return"
    __table_args__ = (
        CheckConstraint(f"status IN {RETURN_STATUSES!r}", name="ck_sales_return_status"),
        CheckConstraint(f"outcome IN {OUTCOMES!r}", name="ck_sales_return_outcome"),
        Index("ix_sales_return_order", "order_id"),
        Index("ix_sales_return_status", "status"),
    )
    number: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(sa_column=Column(String(200), ForeignKey("sales_order.id"), nullable=False))
    channel: str = Field(max_length=64)
    customer_id: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    outcome: str = Field(max_length=16)
    instant: bool = False
    status: str = Field(max_length=16)
    needs_approval: bool = False
    approval_reasons: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    new_order_lines: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    new_order: str | None = Field(default=None, max_length=200)  # the exchange or replacement order
    hold_key: str | None = Field(default=None, max_length=240)  # its units, reserved at authorization
    hold_location: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=64)  # where the parcel was received
    fee: int = 0
    credit: int = 0  # merchandise and tax share of the units credited
    refunded: int = 0
    store_credit: int = 0
    charged: int = 0  # an exchange's difference paid by the customer
    note: str = Field(default="", max_length=500)
    request_hash: str = Field(max_length=64)
    deadline_at: datetime | None = _ts()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    received_at: datetime | None = _ts()
    settled_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()


class ReturnLine(SQLModel, table=True):
    __tablename__ = "return_line"
    __table_args__ = (
        CheckConstraint(
            "qty > 0 AND received >= 0 AND inspected >= 0 AND inspected <= received AND received <= qty"
            " AND credited >= 0 AND credited <= qty AND fee >= 0",
            name="ck_return_line_qty",
        ),
    )
    return_number: str = Field(
        sa_column=Column(String(64), ForeignKey("sales_return.number"), primary_key=True)
    )
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), primary_key=True))
    order_line: str = Field(max_length=16)
    qty: int
    reason: str = Field(sa_column=Column(String(64), ForeignKey("return_reason.code"), nullable=False))
    unit_price: int
    keep: bool = False  # refunded without a parcel
    received: int = 0
    inspected: int = 0
    credited: int = 0  # units whose value went back to the customer
    fee: int = 0
    refund_amount: int = 0
    condition: str | None = Field(default=None, max_length=16)
    dispositions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class ReturnEvent(SQLModel, table=True):
    """The return's timeline, and the idempotency record of each workflow step (`key` is
    `"rma-{number}:{step}"`), as order_event is for orders."""

    __tablename__ = "return_event"
    __table_args__ = (Index("ix_return_event_return", "return_number", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    return_number: str = Field(
        sa_column=Column(String(64), ForeignKey("sales_return.number"), nullable=False)
    )
    key: str | None = Field(default=None, unique=True, max_length=300)
    event: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = created_at_field()


class StoreCreditEntry(SQLModel, table=True):
    """A customer's store credit, one signed entry per change (issued, bonus, spent,
    restored); the balance is their sum. `key` makes each change happen once."""

    __tablename__ = "store_credit_entry"
    __table_args__ = (Index("ix_store_credit_customer", "customer_id", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    customer_id: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=16)  # issued | bonus | spent | restored
    key: str = Field(unique=True, max_length=300)
    ref: str = Field(max_length=200)
    at: datetime = created_at_field()


class OrderPrereservation(SQLModel, table=True):
    """Stock a return reserved for the order it promises: that order's sourcing takes the
    reservation as its shipment instead of planning one, so the units cannot sell out
    between the return's authorization and the order."""

    __tablename__ = "order_prereservation"
    order_id: str = Field(primary_key=True, max_length=200)
    reservation_key: str = Field(max_length=240)
    location: str = Field(max_length=64)
    adopted: bool = False
