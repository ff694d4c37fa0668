"""reservation.per_unit: component units per kit unit (1 for plain lines)

Lets a kit line be released or shipped in part by its own line id.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reservation", sa.Column("per_unit", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )
    op.create_check_constraint("ck_reservation_per_unit", "reservation", "per_unit > 0")


def downgrade() -> None:
    op.drop_constraint("ck_reservation_per_unit", "reservation")
    op.drop_column("reservation", "per_unit")
