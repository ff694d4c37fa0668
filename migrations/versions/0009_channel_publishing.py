"""Channel publishing: webhook targets and feed cursors, the ATP last published per SKU,
and the deliveries made (with their lag).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "channel_publishing",
        sa.Column("channel", sa.String(length=64), sa.ForeignKey("channel.code"), primary_key=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("batch_ms", sa.Integer(), nullable=False),
        sa.Column("max_batch", sa.Integer(), nullable=False),
        sa.Column("rate_per_s", sa.Float(), nullable=False),
        sa.Column("cursor_txid", sa.BigInteger(), nullable=False),
        sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("snapshot_due", sa.Boolean(), nullable=False),
        _ts("failing_since"),
        _ts("last_delivery_at"),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.CheckConstraint(
            "batch_ms >= 0 AND max_batch > 0 AND rate_per_s > 0", name="ck_channel_publishing_limits"
        ),
    )
    op.create_table(
        "channel_published",
        sa.Column("channel", sa.String(length=64), primary_key=True),
        sa.Column("sku", sa.String(length=64), primary_key=True),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        _ts("at", nullable=False),
    )
    op.create_table(
        "publish_delivery",
        sa.Column("delivery_id", sa.String(length=200), primary_key=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("lag_ms", sa.Integer(), nullable=False),
        _ts("delivered_at", nullable=False),
    )
    op.create_index("ix_publish_delivery_channel", "publish_delivery", ["channel", "delivered_at"])


def downgrade() -> None:
    for table in ("publish_delivery", "channel_published", "channel_publishing"):
        op.drop_table(table)
