"""ledger and payments

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "journal_entry",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=False, server_default=sa.text("''")),
        sa.Column("reverses", sa.BigInteger(), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["reverses"],
            ["journal_entry.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_journal_entry_ref", "journal_entry", ["ref"], unique=False)
    op.create_table(
        "payment",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("gateway_ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("authorized", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("captured", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("captured_tax", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("refunded", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "authorized >= 0 AND captured >= 0 AND refunded >= 0 AND captured <= authorized AND refunded <= captured",
            name="ck_payment_amounts",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_ref", "payment", ["ref"], unique=False)
    op.create_table(
        "sandbox_gateway_behaviour",
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=12), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_table(
        "sandbox_gateway_txn",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_table(
        "inventory_value",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=8), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("value", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint("qty >= 0 AND value >= 0 AND (qty > 0 OR value = 0)", name="ck_inventory_value"),
        sa.ForeignKeyConstraint(
            ["account"],
            ["account.code"],
        ),
        sa.PrimaryKeyConstraint("sku", "location", "account"),
    )
    op.create_table(
        "journal_line",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=8), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("credit", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)", name="ck_journal_line_side"
        ),
        sa.ForeignKeyConstraint(
            ["account"],
            ["account.code"],
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entry.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_journal_line_account", "journal_line", ["account"], unique=False)
    op.create_index(op.f("ix_journal_line_entry_id"), "journal_line", ["entry_id"], unique=False)
    op.create_table(
        "payment_operation",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("gateway_ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payment.id"],
        ),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        op.f("ix_payment_operation_payment_id"), "payment_operation", ["payment_id"], unique=False
    )

    # The chart of accounts as of this revision (frozen here: later changes get their own revision).
    op.bulk_insert(
        sa.table(
            "account",
            sa.column("code", sa.String),
            sa.column("name", sa.String),
            sa.column("type", sa.String),
        ),
        [
            {"code": "1000", "name": "Cash clearing", "type": "asset"},
            {"code": "1100", "name": "Accounts receivable", "type": "asset"},
            {"code": "1400", "name": "Inventory", "type": "asset"},
            {"code": "1410", "name": "Inventory in transit", "type": "asset"},
            {"code": "1420", "name": "Returns inventory", "type": "asset"},
            {"code": "2000", "name": "Accounts payable", "type": "liability"},
            {"code": "2100", "name": "Goods received not invoiced", "type": "liability"},
            {"code": "2200", "name": "Tax payable", "type": "liability"},
            {"code": "3000", "name": "Opening balance equity", "type": "equity"},
            {"code": "4000", "name": "Revenue", "type": "revenue"},
            {"code": "4100", "name": "Shipping revenue", "type": "revenue"},
            {"code": "4200", "name": "Sales returns", "type": "contra_revenue"},
            {"code": "5000", "name": "Cost of goods sold", "type": "expense"},
            {"code": "5100", "name": "Shrinkage", "type": "expense"},
            {"code": "5200", "name": "Purchase price variance", "type": "expense"},
        ],
    )
    # The ledger is append-only: corrections are reversing entries.
    op.execute(
        """
        CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are immutable: post a reversing entry instead', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$;
        CREATE TRIGGER journal_entry_immutable BEFORE UPDATE OR DELETE ON journal_entry
            FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
        CREATE TRIGGER journal_line_immutable BEFORE UPDATE OR DELETE ON journal_line
            FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
        CREATE TRIGGER journal_entry_no_truncate BEFORE TRUNCATE ON journal_entry
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
        CREATE TRIGGER journal_line_no_truncate BEFORE TRUNCATE ON journal_line
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
        """
    )
    # Every entry balances, checked by the database when the transaction commits.
    op.execute(
        """
        CREATE FUNCTION journal_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE d bigint; c bigint; entry bigint;
        BEGIN
            IF TG_TABLE_NAME = 'journal_entry' THEN
                entry := NEW.id;
            ELSE
                entry := NEW.entry_id;
            END IF;
            SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0) INTO d, c FROM journal_line WHERE entry_id = entry;
            IF d <> c OR d = 0 THEN
                RAISE EXCEPTION 'journal entry % does not balance (debits %, credits %)', entry, d, c
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER journal_line_balanced AFTER INSERT ON journal_line
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();
        CREATE CONSTRAINT TRIGGER journal_entry_has_lines AFTER INSERT ON journal_entry
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();
        """
    )


def downgrade() -> None:
    for trigger, table in (
        ("journal_entry_immutable", "journal_entry"),
        ("journal_line_immutable", "journal_line"),
        ("journal_entry_no_truncate", "journal_entry"),
        ("journal_line_no_truncate", "journal_line"),
        ("journal_line_balanced", "journal_line"),
        ("journal_entry_has_lines", "journal_entry"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ledger_immutable()")
    op.execute("DROP FUNCTION IF EXISTS journal_entry_balanced()")
    op.drop_index(op.f("ix_payment_operation_payment_id"), table_name="payment_operation")
    op.drop_table("payment_operation")
    op.drop_index(op.f("ix_journal_line_entry_id"), table_name="journal_line")
    op.drop_index("ix_journal_line_account", table_name="journal_line")
    op.drop_table("journal_line")
    op.drop_table("inventory_value")
    op.drop_table("sandbox_gateway_txn")
    op.drop_table("sandbox_gateway_behaviour")
    op.drop_index("ix_payment_ref", table_name="payment")
    op.drop_table("payment")
    op.drop_index("ix_journal_entry_ref", table_name="journal_entry")
    op.drop_table("journal_entry")
    op.drop_table("account")
