"""Purchasing: supplier item terms (currency, lead time, inspection), purchase orders and
their lines, receipts, vendor bills and the PO timeline; replenishment policies, seasonality
factors and runs; SKU categories.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PO_STATUSES = (
    "draft",
    "awaiting_approval",
    "sent",
    "confirmed",
    "partially_received",
    "received",
    "closed",
    "cancelled",
)


def _ts(name: str, *, nullable: bool = False, default: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if default else None
    )


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length=64), sa.ForeignKey(target), nullable=nullable)


def upgrade() -> None:
    op.add_column(
        "supplier_item", sa.Column("currency", sa.String(length=3), nullable=False, server_default="USD")
    )
    op.add_column("supplier_item", sa.Column("lead_time_days", sa.Integer(), nullable=True))
    op.add_column(
        "supplier_item", sa.Column("inspect", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("sku", sa.Column("category", sa.String(length=64), nullable=True))
    op.create_table(
        "purchase_order",
        sa.Column("number", sa.String(length=64), primary_key=True),
        _fk("supplier", "supplier.code"),
        _fk("location", "location.code"),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        _ts("expected_at"),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        _ts("created_at", default=True),
        _ts("updated_at", default=True),
        _ts("sent_at", nullable=True),
        _ts("closed_at", nullable=True),
        sa.CheckConstraint(f"status IN {PO_STATUSES!r}", name="ck_purchase_order_status"),
        sa.CheckConstraint("source IN ('api', 'replenishment')", name="ck_purchase_order_source"),
    )
    op.create_index("ix_purchase_order_supplier", "purchase_order", ["supplier"])
    op.create_index("ix_purchase_order_status", "purchase_order", ["status"])
    op.create_table(
        "purchase_order_line",
        sa.Column(
            "po_number", sa.String(length=64), sa.ForeignKey("purchase_order.number"), primary_key=True
        ),
        sa.Column("sku", sa.String(length=64), sa.ForeignKey("sku.code"), primary_key=True),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=True),
        _ts("promised_at", nullable=True),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("received", "damaged", "quarantined", "rejected", "returned", "closed", "billed")
        ],
        sa.Column("billed_value", sa.BigInteger(), nullable=False, server_default="0"),
        sa.CheckConstraint(
            "qty > 0 AND unit_cost >= 0 AND received >= 0 AND damaged >= 0 AND quarantined >= 0"
            " AND rejected >= 0 AND returned >= 0 AND closed >= 0 AND billed >= 0",
            name="ck_purchase_order_line_qty",
        ),
    )
    op.create_table(
        "po_receipt",
        sa.Column(
            "po_number", sa.String(length=64), sa.ForeignKey("purchase_order.number"), primary_key=True
        ),
        sa.Column("receipt_number", sa.String(length=64), primary_key=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("discrepancy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _ts("received_at", default=True),
    )
    op.create_table(
        "vendor_bill",
        sa.Column("supplier", sa.String(length=64), sa.ForeignKey("supplier.code"), primary_key=True),
        sa.Column("invoice_number", sa.String(length=64), primary_key=True),
        _fk("po_number", "purchase_order.number"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("mismatches", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        _ts("created_at", default=True),
    )
    op.create_table(
        "po_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("po_number", sa.String(length=64), sa.ForeignKey("purchase_order.number"), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=True, unique=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _ts("at", default=True),
    )
    op.create_index("ix_po_event_po", "po_event", ["po_number", "id"])
    op.create_table(
        "replenishment_policy",
        sa.Column("sku", sa.String(length=64), sa.ForeignKey("sku.code"), primary_key=True),
        sa.Column("location", sa.String(length=64), sa.ForeignKey("location.code"), primary_key=True),
        sa.Column("safety_stock", sa.Integer(), nullable=False),
        sa.Column("review_days", sa.Integer(), nullable=False),
        _fk("supplier", "supplier.code", nullable=True),
        sa.CheckConstraint("safety_stock >= 0 AND review_days >= 0", name="ck_replenishment_policy"),
    )
    op.create_table(
        "replenishment_factor",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        _fk("sku", "sku.code", nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("factor", sa.Numeric(8, 3), nullable=False),
        sa.CheckConstraint("(sku IS NULL) <> (category IS NULL)", name="ck_replenishment_factor_target"),
        sa.CheckConstraint("starts_on <= ends_on AND factor >= 0", name="ck_replenishment_factor_range"),
    )
    op.create_table(
        "replenishment_run",
        sa.Column("run_id", sa.String(length=64), primary_key=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _ts("started_at", default=True),
        _ts("finished_at", nullable=True),
    )


def downgrade() -> None:
    for table in (
        "replenishment_run",
        "replenishment_factor",
        "replenishment_policy",
        "po_event",
        "vendor_bill",
        "po_receipt",
        "purchase_order_line",
        "purchase_order",
    ):
        op.drop_table(table)
    op.drop_column("sku", "category")
    for column in ("inspect", "lead_time_days", "currency"):
        op.drop_column("supplier_item", column)
