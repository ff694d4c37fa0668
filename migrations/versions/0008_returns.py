"""Returns: return reasons (seeded with a default list), returns and their lines, the return
timeline, store credit, the stock a return holds for its exchange or replacement order, and
the accounts returns post to (vendor receivable, store credit liability, return fee revenue,
store credit bonus).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RETURN_STATUSES = (
    "requested",
    "authorized",
    "rejected",
    "in_transit",
    "received",
    "inspected",
    "completed",
    "cancelled",
    "expired",
)
OUTCOMES = ("refund", "exchange", "replacement", "store_credit")
ACCOUNTS = [
    {"code": "1200", "name": "Vendor receivable", "type": "asset"},
    {"code": "2300", "name": "Store credit liability", "type": "liability"},
    {"code": "4300", "name": "Return fee revenue", "type": "revenue"},
    {"code": "5300", "name": "Store credit bonus", "type": "expense"},
]
REASONS = [
    {"code": "defective", "label": "Defective or broken", "fee_amount": 0, "fee_percent": 0, "defect": True},
    {"code": "damaged_in_transit", "label": "Arrived damaged", "fee_amount": 0, "fee_percent": 0, "defect": True},
    {"code": "not_as_described", "label": "Not as described", "fee_amount": 0, "fee_percent": 0, "defect": True},
    {"code": "wrong_size", "label": "Wrong size or fit", "fee_amount": 0, "fee_percent": 0, "defect": False},
    {"code": "changed_mind", "label": "Changed my mind", "fee_amount": 500, "fee_percent": 0, "defect": False},
]  # fmt: skip # kept aligned: one reason a row


def _ts(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if default else None
    )


def _jsonb(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), nullable=False)


def upgrade() -> None:
    op.create_table(
        "return_reason",
        sa.Column("code", sa.String(length=64), primary_key=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("fee_amount", sa.Integer(), nullable=False),
        sa.Column("fee_percent", sa.Integer(), nullable=False),
        sa.Column("defect", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False, default=True),
        sa.CheckConstraint("fee_amount >= 0 AND fee_percent BETWEEN 0 AND 100", name="ck_return_reason_fee"),
    )
    op.create_table(
        "sales_return",
        sa.Column("number", sa.String(length=64), primary_key=True),
        sa.Column("order_id", sa.String(length=200), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("instant", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        _jsonb("approval_reasons"),
        _jsonb("new_order_lines"),
        sa.Column("new_order", sa.String(length=200), nullable=True),
        sa.Column("hold_key", sa.String(length=240), nullable=True),
        sa.Column("hold_location", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("credit", sa.Integer(), nullable=False),
        sa.Column("refunded", sa.Integer(), nullable=False),
        sa.Column("store_credit", sa.Integer(), nullable=False),
        sa.Column("charged", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        _ts("deadline_at"),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("received_at"),
        _ts("settled_at"),
        _ts("completed_at"),
        sa.CheckConstraint(f"status IN {RETURN_STATUSES!r}", name="ck_sales_return_status"),
        sa.CheckConstraint(f"outcome IN {OUTCOMES!r}", name="ck_sales_return_outcome"),
    )
    op.create_index("ix_sales_return_order", "sales_return", ["order_id"])
    op.create_index("ix_sales_return_status", "sales_return", ["status"])
    op.create_table(
        "return_line",
        sa.Column(
            "return_number", sa.String(length=64), sa.ForeignKey("sales_return.number"), primary_key=True
        ),
        sa.Column("sku", sa.String(length=64), sa.ForeignKey("sku.code"), primary_key=True),
        sa.Column("order_line", sa.String(length=16), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), sa.ForeignKey("return_reason.code"), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("keep", sa.Boolean(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("inspected", sa.Integer(), nullable=False),
        sa.Column("credited", sa.Integer(), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("refund_amount", sa.Integer(), nullable=False),
        sa.Column("condition", sa.String(length=16), nullable=True),
        _jsonb("dispositions"),
        sa.CheckConstraint(
            "qty > 0 AND received >= 0 AND inspected >= 0 AND inspected <= received AND received <= qty"
            " AND credited >= 0 AND credited <= qty AND fee >= 0",
            name="ck_return_line_qty",
        ),
    )
    op.create_table(
        "return_event",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "return_number", sa.String(length=64), sa.ForeignKey("sales_return.number"), nullable=False
        ),
        sa.Column("key", sa.String(length=300), nullable=True, unique=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        _jsonb("detail"),
        _ts("at", nullable=False),
    )
    op.create_index("ix_return_event_return", "return_event", ["return_number", "id"])
    op.create_table(
        "store_credit_entry",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False, unique=True),
        sa.Column("ref", sa.String(length=200), nullable=False),
        _ts("at", nullable=False),
    )
    op.create_index("ix_store_credit_customer", "store_credit_entry", ["customer_id", "id"])
    op.create_table(
        "order_prereservation",
        sa.Column("order_id", sa.String(length=200), primary_key=True),
        sa.Column("reservation_key", sa.String(length=240), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("adopted", sa.Boolean(), nullable=False),
    )
    account = sa.table(
        "account", sa.column("code", sa.String), sa.column("name", sa.String), sa.column("type", sa.String)
    )
    op.bulk_insert(account, ACCOUNTS)
    reason = sa.table(
        "return_reason",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("fee_amount", sa.Integer),
        sa.column("fee_percent", sa.Integer),
        sa.column("defect", sa.Boolean),
    )
    op.bulk_insert(reason, REASONS)


def downgrade() -> None:
    for table in (
        "order_prereservation",
        "store_credit_entry",
        "return_event",
        "return_line",
        "sales_return",
        "return_reason",
    ):
        op.drop_table(table)
    op.execute("DELETE FROM account WHERE code IN ('1200', '2300', '4300', '5300')")
