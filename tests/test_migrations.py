"""Migrations are the only way the schema changes, and they agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import models  # noqa: F401
from runtime.db import make_sync_engine
from runtime.migrate import alembic_config
from runtime.migrate import upgrade as migrate_up


def test_models_match_the_migrated_schema(database_url: str) -> None:
    engine = make_sync_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), "base")
    engine = make_sync_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars().all()
        )
    assert set(tables) <= {"alembic_version"}
    migrate_up(database_url)
    migrate_up(database_url)  # idempotent
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_key")).scalar() == 0
    engine.dispose()
