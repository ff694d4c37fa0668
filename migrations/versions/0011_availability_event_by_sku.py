"""The change feed's events by (channel, SKU) in feed order: what a writer looks up under
the SKU lock to give its value to the events of that SKU sitting after its own (a younger
txid that committed first: models/availability.py), and a SKU's last change up to a feed
position (a publisher's snapshot).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_availability_event_sku", "availability_event", ["channel", "sku", "txid", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_availability_event_sku", table_name="availability_event")
