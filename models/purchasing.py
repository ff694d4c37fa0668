"""The purchasing read model: purchase orders and their lines, receipts, vendor bills and the
PO timeline, written by the purchase-order workflow's activities in the same transaction as
each business step (inbound, receipt, putaway, bill), read by the API; and replenishment's
policies, seasonality factors and runs.

A purchase order's id is its number, the business key: `po-{number}` is its workflow."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.purchasing import PO_STATUSES
from models.base import created_at_field


def _fk(target: str, *, primary_key: bool = False, nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(String(64), ForeignKey(target), primary_key=primary_key, nullable=nullable)


def _ts(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=nullable)


class PurchaseOrder(SQLModel, table=True):
    __tablename__ = "purchase_order"
    __table_args__ = (
        CheckConstraint(f"status IN {PO_STATUSES!r}", name="ck_purchase_order_status"),
        CheckConstraint("source IN ('api', 'replenishment')", name="ck_purchase_order_source"),
        Index("ix_purchase_order_supplier", "supplier"),
        Index("ix_purchase_order_status", "status"),
    )
    number: str = Field(primary_key=True, max_length=64)
    supplier: str = Field(sa_column=_fk("supplier.code"))
    location: str = Field(sa_column=_fk("location.code"))
    status: str = Field(max_length=24)
    currency: str = Field(max_length=3)
    value: int = Field(sa_column=Column(BigInteger, nullable=False))  # Σ qty × unit_cost, minor units
    expected_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    source: str = Field(default="api", max_length=16)
    run_id: str | None = Field(default=None, max_length=64)  # the replenishment run that drafted it
    request_hash: str = Field(max_length=64)
    note: str = Field(default="", max_length=500)  # why it was rejected or cancelled
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    sent_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()


class PurchaseOrderLine(SQLModel, table=True):
    """Every unit ordered is, per line: still expected, received (into sellable or
    quarantine), damaged, or no longer expected (`closed`: cancelled, confirmed below the
    order, or a short receipt accepted)."""

    __tablename__ = "purchase_order_line"
    __table_args__ = (
        CheckConstraint(
            "qty > 0 AND unit_cost >= 0 AND received >= 0 AND damaged >= 0 AND quarantined >= 0"
            " AND rejected >= 0 AND returned >= 0 AND closed >= 0 AND billed >= 0",
            name="ck_purchase_order_line_qty",
        ),
    )
    po_number: str = Field(sa_column=_fk("purchase_order.number", primary_key=True))
    sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    qty: int
    unit_cost: int
    confirmed: int | None = None
    promised_at: datetime | None = _ts()
    received: int = 0  # accepted into stock (sellable, or quarantine until QC)
    damaged: int = 0  # arrived damaged
    quarantined: int = 0  # of `received`, waiting for QC
    rejected: int = 0  # of `received`, failed QC
    returned: int = 0  # sent back to the supplier (damaged, over-received or failed QC)
    closed: int = 0  # no longer expected
    billed: int = 0
    billed_value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class PurchaseReceipt(SQLModel, table=True):
    __tablename__ = "po_receipt"
    po_number: str = Field(sa_column=_fk("purchase_order.number", primary_key=True))
    receipt_number: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)  # posted | discrepancy | settled
    lines: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    discrepancy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    received_at: datetime = created_at_field()


class VendorBill(SQLModel, table=True):
    __tablename__ = "vendor_bill"
    supplier: str = Field(sa_column=_fk("supplier.code", primary_key=True))
    invoice_number: str = Field(primary_key=True, max_length=64)
    po_number: str = Field(sa_column=_fk("purchase_order.number"))
    status: str = Field(max_length=16)  # matched | mismatch | accepted | disputed | rejected
    lines: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    mismatches: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    total: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = created_at_field()


class PurchaseOrderEvent(SQLModel, table=True):
    """The PO's timeline, and the idempotency record of each workflow step (`key` is
    `"po-{number}:{step}"`), as order_event is for orders."""

    __tablename__ = "po_event"
    __table_args__ = (Index("ix_po_event_po", "po_number", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    po_number: str = Field(sa_column=Column(String(64), ForeignKey("purchase_order.number"), nullable=False))
    key: str | None = Field(default=None, unique=True, max_length=300)
    event: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = created_at_field()


# -- replenishment ---------------------------------------------------------------------------


class ReplenishmentPolicy(SQLModel, table=True):
    """Per SKU and location: the safety stock, how many days an order covers beyond the
    reorder point (order-up-to), and the preferred supplier (else the cheapest)."""

    __tablename__ = "replenishment_policy"
    __table_args__ = (
        CheckConstraint("safety_stock >= 0 AND review_days >= 0", name="ck_replenishment_policy"),
    )
    sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    location: str = Field(sa_column=_fk("location.code", primary_key=True))
    safety_stock: int = 0
    review_days: int = 7
    supplier: str | None = Field(default=None, sa_column=_fk("supplier.code", nullable=True))


class ReplenishmentFactor(SQLModel, table=True):
    """A seasonality or promotion factor on demand, for one SKU or a category, over dates."""

    __tablename__ = "replenishment_factor"
    __table_args__ = (
        CheckConstraint("(sku IS NULL) <> (category IS NULL)", name="ck_replenishment_factor_target"),
        CheckConstraint("starts_on <= ends_on AND factor >= 0", name="ck_replenishment_factor_range"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    sku: str | None = Field(default=None, sa_column=_fk("sku.code", nullable=True))
    category: str | None = Field(default=None, max_length=64)
    starts_on: date = Field(sa_type=Date, nullable=False)
    ends_on: date = Field(sa_type=Date, nullable=False)
    factor: Decimal = Field(sa_column=Column(Numeric(8, 3), nullable=False))


class ReplenishmentRun(SQLModel, table=True):
    __tablename__ = "replenishment_run"
    run_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)  # running | done
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    started_at: datetime = created_at_field()
    finished_at: datetime | None = _ts()
