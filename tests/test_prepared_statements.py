"""runtime.db.PreparedKeptConnection: the engines' sessions keep their prepared statements
across the rollback of a transaction in which no statement failed (psycopg alone forgets
them at any rollback and sends DEALLOCATE ALL), and still forget them after a failed
statement, when Postgres refuses a changed plan, and when a statement says so. Against the real Postgres of the test session; what the
server holds is read from the session's own pg_prepared_statements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.db import PreparedKeptConnection, libpq_url, make_async_engine

_PROBE = text("SELECT count(*) AS n FROM generate_series(1, :upto) AS g -- prepared-probe")
_HELD = text(
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%prepared-probe%'"
    " AND statement NOT LIKE '%pg_prepared_statements%'"
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # One connection, so that every block below is the same server session.
    eng = make_async_engine(database_url, pool_size=1, application_name="test-prepared")
    yield eng
    await eng.dispose()


async def _psycopg(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, psycopg.AsyncConnection)
    return raw


async def _run_probe(conn: AsyncConnection, times: int) -> None:
    for _ in range(times):
        assert (await conn.execute(_PROBE, {"upto": 3})).scalar_one() == 3


class Refused(Exception):
    """A rule's refusal raised inside a transaction: no statement failed."""


async def _refuse_after_the_probe(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # the refusal leaves the block: SQLAlchemy rolls back
        await _run_probe(conn, 1)
        raise Refused


async def _fail_after_the_probe(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await _run_probe(conn, 1)
        await conn.execute(text("SELECT 1 / 0"))


async def _held(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(_HELD)).scalar_one())


async def test_a_statement_prepared_once_survives_rollbacks_without_a_failed_statement(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        assert type(await _psycopg(conn)) is PreparedKeptConnection
        await _run_probe(conn, 6)  # psycopg prepares at the fifth
    assert await _held(engine) == 1

    # A read that commits nothing: SQLAlchemy rolls it back when the block ends.
    async with engine.connect() as conn:
        await _run_probe(conn, 1)
    # A transaction refused by a rule: rolled back, no statement failed.
    with pytest.raises(Refused):
        await _refuse_after_the_probe(engine)
    assert await _held(engine) == 1

    # The prepared statement is still what psycopg uses: no second one is made.
    async with engine.begin() as conn:
        await _run_probe(conn, 6)
        raw = await _psycopg(conn)
        assert len(raw._prepared._names) >= 1
    assert await _held(engine) == 1


async def test_after_a_failed_statement_the_rollback_forgets_them_as_psycopg_does(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await _run_probe(conn, 6)
    assert await _held(engine) == 1
    with pytest.raises(exc.DBAPIError):
        await _fail_after_the_probe(engine)
    assert await _held(engine) == 0


async def test_plain_psycopg_forgets_them_at_a_rollback(database_url: str) -> None:
    """What the subclass exists for: without it, a rollback deallocates everything."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        for _ in range(6):
            await conn.execute("SELECT count(*) FROM generate_series(1, %s) AS g -- prepared-probe", (3,))
        await conn.rollback()
        held = await (await conn.execute(str(_HELD))).fetchone()
        assert held == (0,)


async def test_a_deallocate_statement_still_clears_the_cache(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await _run_probe(conn, 6)
    assert await _held(engine) == 1
    async with engine.begin() as conn:
        await conn.execute(text("DEALLOCATE ALL"))
        raw = await _psycopg(conn)
        assert not raw._prepared._names
    assert await _held(engine) == 0
    async with engine.begin() as conn:  # and psycopg prepares it again when it is run again
        await _run_probe(conn, 6)
    assert await _held(engine) == 1


async def test_a_table_changed_under_a_kept_statement_is_replanned(engine: AsyncEngine) -> None:
    """Kept statements outlive a schema change made elsewhere: Postgres re-plans them."""
    count = text("SELECT count(*) FROM prepared_scratch WHERE id > :floor")
    async with _table(engine, "prepared_scratch", 1, 2):
        async with engine.begin() as conn:
            for _ in range(6):
                assert (await conn.execute(count, {"floor": 0})).scalar_one() == 2
        async with engine.connect() as conn:  # a rollback, the statement kept
            await conn.execute(count, {"floor": 0})
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE INDEX IF NOT EXISTS ix_prepared_scratch ON prepared_scratch (id)")
            )
            await conn.execute(text("INSERT INTO prepared_scratch VALUES (3)"))
        async with engine.begin() as conn:
            assert (await conn.execute(count, {"floor": 0})).scalar_one() == 3


@pytest.mark.parametrize("autocommit", [False, True], ids=["in a transaction", "in autocommit"])
async def test_a_kept_select_star_fails_once_after_its_columns_change_then_runs_again(
    engine: AsyncEngine, database_url: str, autocommit: bool
) -> None:
    """A migration that changes a table's columns under a running process: Postgres refuses
    a prepared statement whose result would change shape; the session forgets its prepared
    statements (the rollback in a transaction, `forget_refused_plans` in autocommit, as
    `single_read` runs) and the caller's retry runs the statement afresh."""
    everything = text("SELECT * FROM prepared_shape WHERE id >= :floor")
    async with _table(engine, "prepared_shape", 1):
        for _ in range(6):
            await _select(engine, everything, autocommit)
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as other:
            await other.execute("ALTER TABLE prepared_shape ADD COLUMN note text DEFAULT 'x'")
        with pytest.raises(exc.DBAPIError, match="cached plan must not change result type"):
            await _select(engine, everything, autocommit)
        assert await _select(engine, everything, autocommit) == [(1, "x")]


@asynccontextmanager
async def _table(engine: AsyncEngine, name: str, *ids: int) -> AsyncIterator[None]:
    """A scratch table `name (id int)` holding `ids`, dropped afterwards."""
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        await conn.execute(text(f"CREATE TABLE {name} (id int)"))
        await conn.execute(text(f"INSERT INTO {name} SELECT unnest(CAST(:ids AS int[]))"), {"ids": list(ids)})
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {name}"))


async def _select(engine: AsyncEngine, statement: Any, autocommit: bool) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        if autocommit:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = [tuple(r) for r in (await conn.execute(statement, {"floor": 0})).all()]
        await conn.commit()
        return rows
