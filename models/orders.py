"""The order read model: written by the order workflow's activities in the same transaction
as each business step (reservation, pick, ship, cancel, payment), read by the API.

An order's id is its workflow id, `order-{channel}-{external_id}`: a business key, so two
racing requests for the same order meet on one row and one workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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

from domain.orders import STATUSES
from models.base import created_at_field

ORDER_STATUSES = STATUSES  # said once, in domain.orders
SHIPMENT_STATUSES = ("allocated", "picked", "packed", "shipped", "cancelled", "requested")
PAYMENT_STATUSES = (
    "pending",
    "authorized",
    "captured",
    "voided",
    "refunded",
    "partially_refunded",
    "declined",
)


class SalesOrder(SQLModel, table=True):
    __tablename__ = "sales_order"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_sales_order_channel_external"),
        CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="ck_sales_order_status"),
        CheckConstraint(f"payment_status IN {PAYMENT_STATUSES!r}", name="ck_sales_order_payment_status"),
        CheckConstraint("promise IN ('standard', 'express')", name="ck_sales_order_promise"),
        CheckConstraint(
            "payment_reported IN ('authorized', 'captured', 'pending')",
            name="ck_sales_order_payment_reported",
        ),
        CheckConstraint(
            "shipping_amount >= 0 AND tax_amount >= 0 AND merchandise >= 0 AND payment_amount >= 0",
            name="ck_sales_order_amounts",
        ),
        Index("ix_sales_order_channel_status", "channel", "status", "created_at"),
        Index("ix_sales_order_customer", "customer_id", "created_at"),
    )
    id: str = Field(primary_key=True, max_length=200)  # = workflow id
    channel: str = Field(sa_column=Column(String(64), ForeignKey("channel.code"), nullable=False))
    external_id: str = Field(max_length=64)
    status: str = Field(default="received", max_length=20)
    customer_id: str = Field(max_length=200)
    customer_email: str = Field(default="", max_length=320)
    ship_to: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    billing_address: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    promise: str = Field(default="standard", max_length=10)
    allow_backorder: bool = True
    allow_split: bool = True
    currency: str = Field(default="USD", max_length=3)
    merchandise: int = 0
    shipping_amount: int = 0
    tax_amount: int = 0
    payment_method: str = Field(default="", max_length=40)
    payment_reported: str = Field(
        default="pending", max_length=20
    )  # what the channel said: authorized|captured|pending
    payment_status: str = Field(default="pending", max_length=20)  # what our books say
    payment_amount: int = 0
    payment_reference: str = Field(default="", max_length=200)
    payment_id: str | None = Field(default=None, max_length=64)  # our payment row, once authorized
    captured: int = 0  # minor units captured for this order so far
    fraud_score: int | None = None
    fraud_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    request_hash: str = Field(max_length=64)  # what the channel sent, to tell a retry from a conflict
    workflow_id: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint(
            "qty > 0 AND unit_price >= 0 AND reserved >= 0 AND backordered >= 0 AND shipped >= 0 "
            "AND cancelled >= 0 AND returned >= 0",
            name="ck_order_line_nonneg",
        ),
        # Every unit in at most one place; shipped + cancelled <= ordered; returned <= shipped.
        CheckConstraint("reserved + backordered + shipped + cancelled <= qty", name="ck_order_line_units"),
        CheckConstraint("returned <= shipped", name="ck_order_line_returned"),
        Index("ix_order_line_backordered", "sku", postgresql_where="backordered > 0"),
    )
    order_id: str = Field(sa_column=Column(String(200), ForeignKey("sales_order.id"), primary_key=True))
    line: str = Field(primary_key=True, max_length=16)  # "1", "2", … in the order's line order
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), nullable=False))
    qty: int
    unit_price: int
    reserved: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    backordered: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    shipped: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    cancelled: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    returned: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    backordered_since: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Shipment(SQLModel, table=True):
    __tablename__ = "shipment"
    __table_args__ = (
        CheckConstraint(f"status IN {SHIPMENT_STATUSES!r}", name="ck_shipment_status"),
        CheckConstraint("kind IN ('stock', 'dropship')", name="ck_shipment_kind"),
        Index("ix_shipment_pick", "location", "status", "created_at"),
        Index("ix_shipment_order", "order_id"),
    )
    id: str = Field(primary_key=True, max_length=220)  # "{order id}-S{n}"
    order_id: str = Field(sa_column=Column(String(200), ForeignKey("sales_order.id"), nullable=False))
    location: str = Field(sa_column=Column(String(64), ForeignKey("location.code"), nullable=False))
    kind: str = Field(default="stock", max_length=10)
    status: str = Field(default="allocated", max_length=12)
    promise: str = Field(default="standard", max_length=10)
    reservation_key: str | None = Field(default=None, max_length=240)
    supplier: str | None = Field(default=None, max_length=64)  # drop-ship: who ships it
    carrier: str | None = Field(default=None, max_length=64)
    service: str | None = Field(default=None, max_length=64)
    tracking: str | None = Field(default=None, max_length=128)
    packages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    shipped_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class ShipmentLine(SQLModel, table=True):
    __tablename__ = "shipment_line"
    __table_args__ = (CheckConstraint("qty >= 0 AND picked >= 0 AND picked <= qty", name="ck_shipment_line"),)
    shipment_id: str = Field(sa_column=Column(String(220), ForeignKey("shipment.id"), primary_key=True))
    line: str = Field(primary_key=True, max_length=16)
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), nullable=False))
    qty: int  # units of the order line in this shipment (lowered by a short pick or a cancel)
    picked: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OrderEvent(SQLModel, table=True):
    """The order's timeline, and the idempotency record of each workflow step: `key` is
    `"{workflow_id}:{step}"`, so a retried activity finds its own step already done."""

    __tablename__ = "order_event"
    __table_args__ = (Index("ix_order_event_order", "order_id", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    order_id: str = Field(sa_column=Column(String(200), ForeignKey("sales_order.id"), nullable=False))
    key: str | None = Field(default=None, unique=True, max_length=300)
    event: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = created_at_field()
