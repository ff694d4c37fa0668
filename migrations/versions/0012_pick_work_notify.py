"""Pick work changes are announced: NOTIFY `pick_work` (payload: the location) when a
shipment row or line changes what GET /v1/pick-tasks reads, so a waiting long poll is woken
instead of re-reading every 50 ms.

Only changes that can change the pick work notify: a stock shipment entering or leaving
`allocated` (or one that is allocated changing location, promise, order or age), and the
lines of an allocated stock shipment. Packing and shipping never notify: a NOTIFY takes a
cluster-wide lock at commit, so the fewer transactions that send one the better. Within a
transaction Postgres folds repeated notifications (same channel and payload) into one.
An empty payload (TRUNCATE) means every location.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


# table -> (its trigger function, the columns whose change can change the pick work)
_WATCHED = {
    "shipment": (
        "shipment_pick_work_notify",
        ("kind", "status", "location", "promise", "order_id", "created_at"),
    ),
    "shipment_line": ("shipment_line_pick_work_notify", ("shipment_id", "line", "sku", "qty", "picked")),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION shipment_pick_work_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.kind = 'stock' AND OLD.status = 'allocated' THEN
                PERFORM pg_notify('pick_work', OLD.location);
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.kind = 'stock' AND NEW.status = 'allocated' THEN
                PERFORM pg_notify('pick_work', NEW.location);
            END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION shipment_line_pick_work_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            loc text;
        BEGIN
            SELECT location INTO loc FROM shipment
             WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.shipment_id ELSE NEW.shipment_id END
               AND kind = 'stock' AND status = 'allocated';
            IF FOUND THEN
                PERFORM pg_notify('pick_work', loc);
            END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION pick_work_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('pick_work', '');
            RETURN NULL;
        END $$;
        """
    )
    for table, (function, columns) in _WATCHED.items():
        old = ", ".join(f"OLD.{c}" for c in columns)
        new = ", ".join(f"NEW.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER {table}_pick_work AFTER INSERT OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        # Updates that touch none of these (packing, shipping, timestamps) send nothing.
        op.execute(
            f"CREATE TRIGGER {table}_pick_work_update AFTER UPDATE ON {table} "
            f"FOR EACH ROW WHEN (({old}) IS DISTINCT FROM ({new})) EXECUTE FUNCTION {function}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_pick_work_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION pick_work_notify_all()"
        )


def downgrade() -> None:
    for table, (function, _) in _WATCHED.items():
        for suffix in ("", "_update", "_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_pick_work{suffix} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP FUNCTION IF EXISTS pick_work_notify_all()")
