"""The audit trail: one append-only row per human action (who, what, when, the request id).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_key_id", sa.String(length=40), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.UniqueConstraint("key", name="uq_audit_entry_key"),
    )
    op.create_index("ix_audit_entry_actor", "audit_entry", ["actor_key_id", "id"])
    op.create_index("ix_audit_entry_object", "audit_entry", ["object_type", "object_id", "id"])
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])
    # Append-only, as the movement ledger and the journal are: a correction is a new row.
    op.execute(
        """
        CREATE FUNCTION audit_entry_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_entry rows are immutable (% refused)', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$;
        CREATE TRIGGER audit_entry_no_update BEFORE UPDATE OR DELETE ON audit_entry
            FOR EACH ROW EXECUTE FUNCTION audit_entry_immutable();
        CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
            FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_immutable();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update ON audit_entry")
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
    op.execute("DROP FUNCTION IF EXISTS audit_entry_immutable()")
    op.drop_index("ix_audit_entry_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_object", table_name="audit_entry")
    op.drop_index("ix_audit_entry_actor", table_name="audit_entry")
    op.drop_table("audit_entry")
