"""inventory core

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The id of the writing transaction: the change feed reads below the oldest running one.
TXID = sa.text("(pg_current_xact_id()::text)::bigint")


def upgrade() -> None:
    op.create_table(
        "availability_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False, server_default=TXID),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(
        "ix_availability_event_feed", "availability_event", ["channel", "txid", "seq"], unique=False
    )
    op.create_table(
        "channel",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=False),
        sa.Column("sourcing_rule", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "sourcing_rule IN ('nearest', 'cheapest', 'priority')", name="ck_channel_sourcing_rule"
        ),
        sa.CheckConstraint("type IN ('web', 'marketplace', 'b2b', 'pos', 'edi')", name="ck_channel_type"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "channel_reserved",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.CheckConstraint("qty >= 0", name="ck_channel_reserved_qty"),
        sa.PrimaryKeyConstraint("sku", "location", "channel"),
    )
    op.create_table(
        "exception",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False, server_default=sa.text("'open'")),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("priority", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("value_at_risk", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default=sa.text("'[]'")
        ),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default=sa.text("'{}'")
        ),
        sa.Column("resolution", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved', 'cancelled')", name="ck_exception_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_exception_open", "exception", ["status", "kind", "due_at"], unique=False)
    op.create_index("ix_exception_subject", "exception", ["subject_type", "subject_id"], unique=False)
    op.create_table(
        "location",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("ship_cost", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("can_ship", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("type IN ('dc', 'store', '3pl', 'dropship', 'virtual')", name="ck_location_type"),
        sa.CheckConstraint("lat IS NULL OR (lat BETWEEN -90 AND 90)", name="ck_location_lat"),
        sa.CheckConstraint("lon IS NULL OR (lon BETWEEN -180 AND 180)", name="ck_location_lon"),
        sa.CheckConstraint("ship_cost >= 0", name="ck_location_ship_cost"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "reservation",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("line", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("consumed", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("released", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "qty > 0 AND consumed >= 0 AND released >= 0 AND consumed + released <= qty",
            name="ck_reservation_qty",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "line", "sku", "location", "lot", name="uq_reservation_line"),
    )
    op.create_index(
        "ix_reservation_active",
        "reservation",
        ["sku", "location"],
        unique=False,
        postgresql_where="consumed + released < qty",
    )
    op.create_index("ix_reservation_ref", "reservation", ["ref"], unique=False)
    op.create_table(
        "sku",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("unit_cost", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tracking", sa.String(length=10), nullable=False),
        sa.Column("returnable_days", sa.Integer(), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('simple', 'kit')", name="ck_sku_kind"),
        sa.CheckConstraint("tracking IN ('none', 'lot', 'serial')", name="ck_sku_tracking"),
        sa.CheckConstraint("unit_cost >= 0 AND price >= 0 AND returnable_days >= 0", name="ck_sku_amounts"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "stock_arrival",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False, server_default=TXID),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_arrival_order", "stock_arrival", ["txid", "id"], unique=False)
    op.create_table(
        "stock_operation",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "supplier",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("dropship", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("lead_time_days >= 0", name="ck_supplier_lead_time"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "channel_location",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel"],
            ["channel.code"],
        ),
        sa.ForeignKeyConstraint(
            ["location"],
            ["location.code"],
        ),
        sa.PrimaryKeyConstraint("channel", "location"),
    )
    op.create_table(
        "channel_policy",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("safety_stock", sa.Integer(), nullable=False),
        sa.CheckConstraint("safety_stock >= 0", name="ck_channel_policy_safety"),
        sa.ForeignKeyConstraint(
            ["channel"],
            ["channel.code"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("channel", "sku"),
    )
    op.create_table(
        "channel_ringfence",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.CheckConstraint("qty >= 0", name="ck_channel_ringfence_qty"),
        sa.ForeignKeyConstraint(
            ["channel"],
            ["channel.code"],
        ),
        sa.ForeignKeyConstraint(
            ["location"],
            ["location.code"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("channel", "sku", "location"),
    )
    op.create_table(
        "cycle_count",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'submitted', 'awaiting_approval', 'posted', 'rejected', 'cancelled')",
            name="ck_cycle_count_status",
        ),
        sa.ForeignKeyConstraint(
            ["location"],
            ["location.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sku_component",
        sa.Column("kit_sku", sa.String(length=64), nullable=False),
        sa.Column("component_sku", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.CheckConstraint("qty > 0", name="ck_sku_component_qty"),
        sa.ForeignKeyConstraint(
            ["component_sku"],
            ["sku.code"],
        ),
        sa.ForeignKeyConstraint(
            ["kit_sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("kit_sku", "component_sku"),
    )
    op.create_table(
        "stock_balance",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("reserved", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("is_virtual", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("unit_cost", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "status IN ('sellable', 'in_transit', 'inbound', 'returns', 'quarantine', 'damaged', 'virtual')",
            name="ck_stock_balance_status",
        ),
        sa.CheckConstraint("NOT is_virtual OR reserved = 0", name="ck_stock_balance_virtual_unreserved"),
        sa.CheckConstraint("is_virtual OR qty >= 0", name="ck_stock_balance_not_negative"),
        sa.CheckConstraint(
            "reserved >= 0 AND (is_virtual OR reserved <= qty)", name="ck_stock_balance_reserved"
        ),
        sa.ForeignKeyConstraint(
            ["location"],
            ["location.code"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sku", "location", "status", "lot", name="uq_stock_balance_bucket"),
    )
    op.create_table(
        "stock_move",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("op_key", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("from_location", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=False),
        sa.Column("to_location", sa.String(length=64), nullable=False),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("qty > 0", name="ck_stock_move_qty"),
        sa.ForeignKeyConstraint(
            ["op_key"],
            ["stock_operation.key"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_stock_move_op_key"), "stock_move", ["op_key"], unique=False)
    op.create_index("ix_stock_move_ref", "stock_move", ["ref"], unique=False)
    op.create_index(
        "ix_stock_move_sku_location", "stock_move", ["sku", "from_location", "to_location"], unique=False
    )
    op.create_table(
        "supplier_item",
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("moq", sa.Integer(), nullable=False),
        sa.Column("order_multiple", sa.Integer(), nullable=False),
        sa.CheckConstraint("cost >= 0 AND moq >= 1 AND order_multiple >= 1", name="ck_supplier_item_terms"),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier"],
            ["supplier.code"],
        ),
        sa.PrimaryKeyConstraint("supplier", "sku"),
    )
    op.create_table(
        "transfer",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("from_location", sa.String(length=64), nullable=False),
        sa.Column("to_location", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "status IN ('requested', 'shipped', 'received', 'discrepancy', 'completed', 'cancelled')",
            name="ck_transfer_status",
        ),
        sa.ForeignKeyConstraint(
            ["from_location"],
            ["location.code"],
        ),
        sa.ForeignKeyConstraint(
            ["to_location"],
            ["location.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cycle_count_line",
        sa.Column("count_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("expected", sa.Integer(), nullable=True),
        sa.Column("counted", sa.Integer(), nullable=True),
        sa.Column("variance", sa.Integer(), nullable=True),
        sa.Column("variance_value", sa.Integer(), nullable=True),
        sa.Column("within_tolerance", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["count_id"],
            ["cycle_count.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.PrimaryKeyConstraint("count_id", "sku", "lot"),
    )
    op.create_table(
        "transfer_line",
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("shipped", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("received", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("damaged", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "qty > 0 AND shipped >= 0 AND received >= 0 AND damaged >= 0", name="ck_transfer_line"
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["sku.code"],
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfer.id"],
        ),
        sa.PrimaryKeyConstraint("transfer_id", "sku", "lot"),
    )

    # The movement ledger is immutable: corrections are new moves.
    op.execute(
        """
        CREATE FUNCTION stock_move_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'stock_move rows are immutable (% on move %)', TG_OP, OLD.id
                USING ERRCODE = 'restrict_violation';
        END $$;
        CREATE TRIGGER stock_move_no_update BEFORE UPDATE OR DELETE ON stock_move
            FOR EACH ROW EXECUTE FUNCTION stock_move_immutable();
        CREATE TRIGGER stock_move_no_truncate BEFORE TRUNCATE ON stock_move
            FOR EACH STATEMENT EXECUTE FUNCTION stock_move_immutable();
        """
    )
    # Virtual locations: the outside world, so that every stock change is a move.
    op.execute(
        """
        INSERT INTO location (code, name, type, ship_cost, priority, can_ship) VALUES
            ('supplier', 'Suppliers (virtual)', 'virtual', 0, 0, false),
            ('customer', 'Customers (virtual)', 'virtual', 0, 0, false),
            ('adjustment', 'Inventory adjustments (virtual)', 'virtual', 0, 0, false),
            ('scrap', 'Scrap (virtual)', 'virtual', 0, 0, false)
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS stock_move_no_update ON stock_move")
    op.execute("DROP TRIGGER IF EXISTS stock_move_no_truncate ON stock_move")
    op.execute("DROP FUNCTION IF EXISTS stock_move_immutable()")
    op.drop_table("transfer_line")
    op.drop_table("cycle_count_line")
    op.drop_table("transfer")
    op.drop_table("supplier_item")
    op.drop_index("ix_stock_move_sku_location", table_name="stock_move")
    op.drop_index("ix_stock_move_ref", table_name="stock_move")
    op.drop_index(op.f("ix_stock_move_op_key"), table_name="stock_move")
    op.drop_table("stock_move")
    op.drop_table("stock_balance")
    op.drop_table("sku_component")
    op.drop_table("cycle_count")
    op.drop_table("channel_ringfence")
    op.drop_table("channel_policy")
    op.drop_table("channel_location")
    op.drop_table("supplier")
    op.drop_table("stock_operation")
    op.drop_index("ix_stock_arrival_order", table_name="stock_arrival")
    op.drop_table("stock_arrival")
    op.drop_table("sku")
    op.drop_index("ix_reservation_ref", table_name="reservation")
    op.drop_index(
        "ix_reservation_active", table_name="reservation", postgresql_where="consumed + released < qty"
    )
    op.drop_table("reservation")
    op.drop_table("location")
    op.drop_index("ix_exception_subject", table_name="exception")
    op.drop_index("ix_exception_open", table_name="exception")
    op.drop_table("exception")
    op.drop_table("channel_reserved")
    op.drop_table("channel")
    op.drop_index("ix_availability_event_feed", table_name="availability_event")
    op.drop_table("availability_event")
