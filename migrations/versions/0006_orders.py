"""Orders: the order read model (sales_order, order_line, shipment, shipment_line,
order_event timeline) and location.supplier for drop-ship locations.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_order",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("customer_email", sa.String(length=320), nullable=False),
        sa.Column("ship_to", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("billing_address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("promise", sa.String(length=10), nullable=False),
        sa.Column("allow_backorder", sa.Boolean(), nullable=False),
        sa.Column("allow_split", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("merchandise", sa.Integer(), nullable=False),
        sa.Column("shipping_amount", sa.Integer(), nullable=False),
        sa.Column("tax_amount", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.String(length=40), nullable=False),
        sa.Column("payment_reported", sa.String(length=20), nullable=False),
        sa.Column("payment_status", sa.String(length=20), nullable=False),
        sa.Column("payment_amount", sa.Integer(), nullable=False),
        sa.Column("payment_reference", sa.String(length=200), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("captured", sa.Integer(), nullable=False),
        sa.Column("fraud_score", sa.Integer(), nullable=True),
        sa.Column("fraud_reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "payment_status IN ('pending', 'authorized', 'captured', 'voided', 'refunded', 'partially_refunded', 'declined')",
            name="ck_sales_order_payment_status",
        ),
        sa.CheckConstraint("promise IN ('standard', 'express')", name="ck_sales_order_promise"),
        sa.CheckConstraint(
            "payment_reported IN ('authorized', 'captured', 'pending')",
            name="ck_sales_order_payment_reported",
        ),
        sa.CheckConstraint(
            "status IN ('received', 'on_hold', 'awaiting_stock', 'allocated', 'in_fulfillment', 'partially_shipped', 'shipped', 'completed', 'cancelled', 'partially_returned', 'returned')",
            name="ck_sales_order_status",
        ),
        sa.CheckConstraint(
            "shipping_amount >= 0 AND tax_amount >= 0 AND merchandise >= 0 AND payment_amount >= 0",
            name="ck_sales_order_amounts",
        ),
        sa.ForeignKeyConstraint(
            ["channel"],
            ["channel.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_sales_order_channel_external"),
    )
    op.create_index(
        "ix_sales_order_channel_status", "sales_order", ["channel", "status", "created_at"], unique=False
    )
    op.create_index("ix_sales_order_customer", "sales_order", ["customer_id", "created_at"], unique=False)
    op.create_table(
        "order_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["sales_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_order_event_order", "order_event", ["order_id", "id"], unique=False)
    op.create_table(
        "order_line",
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("line", sa.String(length=16), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("backordered", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("shipped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancelled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("returned", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("backordered_since", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "qty > 0 AND unit_price >= 0 AND reserved >= 0 AND backordered >= 0 AND shipped >= 0 AND cancelled >= 0 AND returned >= 0",
            name="ck_order_line_nonneg",
        ),
        sa.CheckConstraint("reserved + backordered + shipped + cancelled <= qty", name="ck_order_line_units"),
        sa.CheckConstraint("returned <= shipped", name="ck_order_line_returned"),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["sales_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("order_id", "line"),
    )
    op.create_index(
        "ix_order_line_backordered", "order_line", ["sku"], unique=False, postgresql_where="backordered > 0"
    )
    op.create_table(
        "shipment",
        sa.Column("id", sa.String(length=220), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("promise", sa.String(length=10), nullable=False),
        sa.Column("reservation_key", sa.String(length=240), nullable=True),
        sa.Column("supplier", sa.String(length=64), nullable=True),
        sa.Column("carrier", sa.String(length=64), nullable=True),
        sa.Column("service", sa.String(length=64), nullable=True),
        sa.Column("tracking", sa.String(length=128), nullable=True),
        sa.Column("packages", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('stock', 'dropship')", name="ck_shipment_kind"),
        sa.CheckConstraint(
            "status IN ('allocated', 'picked', 'packed', 'shipped', 'cancelled', 'requested')",
            name="ck_shipment_status",
        ),
        sa.ForeignKeyConstraint(
            ["location"],
            ["location.code"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["sales_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_shipment_order", "shipment", ["order_id"], unique=False)
    op.create_index("ix_shipment_pick", "shipment", ["location", "status", "created_at"], unique=False)
    op.create_table(
        "shipment_line",
        sa.Column("shipment_id", sa.String(length=220), nullable=False),
        sa.Column("line", sa.String(length=16), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("picked", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("qty >= 0 AND picked >= 0 AND picked <= qty", name="ck_shipment_line"),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("shipment_id", "line"),
    )
    op.add_column("location", sa.Column("supplier", sa.String(length=64), nullable=True))
    op.create_foreign_key("fk_location_supplier", "location", "supplier", ["supplier"], ["code"])


def downgrade() -> None:
    op.drop_constraint("fk_location_supplier", "location", type_="foreignkey")
    op.drop_column("location", "supplier")
    op.drop_table("shipment_line")
    op.drop_index("ix_shipment_pick", table_name="shipment")
    op.drop_index("ix_shipment_order", table_name="shipment")
    op.drop_table("shipment")
    op.drop_index("ix_order_line_backordered", table_name="order_line", postgresql_where="backordered > 0")
    op.drop_table("order_line")
    op.drop_index("ix_order_event_order", table_name="order_event")
    op.drop_table("order_event")
    op.drop_index("ix_sales_order_customer", table_name="sales_order")
    op.drop_index("ix_sales_order_channel_status", table_name="sales_order")
    op.drop_table("sales_order")
