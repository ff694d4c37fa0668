"""runtime.direct_sql: a plain text() statement goes to psycopg directly, inside SQLAlchemy's
transaction, and answers what SQLAlchemy's own path answers; anything else takes
SQLAlchemy's path. Against the real Postgres of the test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime import direct_sql
from runtime.db import make_async_engine, sqlalchemy_url

# Every kind of value our statements read: numbers, text, bool, json built in SQL, jsonb,
# time, arrays, NULL, a literal percent, casts written with `::` and an escaped colon.
_VALUES = text(
    "SELECT 1 AS i, 2.50::numeric(10, 2) AS n, 'a%b' AS pct, true AS b, NULL::text AS nothing,"
    " json_build_array(1, 'x', json_build_array(2)) AS j, CAST(:doc AS jsonb) AS doc,"
    " timestamptz '2026-12-04 05:00:00+00' AS at, date '2026-12-04' AS d,"
    " ARRAY['a', 'b']::text[] AS arr, '7'::int AS cast_int, 'x\\:y' AS colon, :given AS given,"
    " gen_random_uuid() IS NOT NULL AS has_uuid"
)
_PARAMS = {"doc": '{"k": [1, 2]}', "given": "ünïcode"}


@pytest.fixture
async def plain(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(database_url), pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
async def direct(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(database_url, pool_size=2, application_name="test-direct")
    yield eng
    await eng.dispose()


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of each statement that took the direct path."""
    seen: list[str] = []
    original = direct_sql.DirectAsyncConnection._direct

    async def spy(self: Any, plan: Any, params: Any) -> Any:
        seen.append(plan.sql)
        return await original(self, plan, params)

    monkeypatch.setattr(direct_sql.DirectAsyncConnection, "_direct", spy)
    return seen


@pytest.fixture
async def scratch(direct: AsyncEngine) -> AsyncIterator[str]:
    async with direct.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS direct_scratch (id int PRIMARY KEY, v text)"))
        await conn.execute(text("TRUNCATE direct_scratch"))
    yield "direct_scratch"
    async with direct.begin() as conn:
        await conn.execute(text("DROP TABLE direct_scratch"))


async def test_a_plain_text_answers_what_sqlalchemy_answers(
    plain: AsyncEngine, direct: AsyncEngine, direct_calls: list[str]
) -> None:
    async with plain.begin() as conn:
        want = (await conn.execute(_VALUES, _PARAMS)).one()
    assert direct_calls == []
    async with direct.begin() as conn:
        got = (await conn.execute(_VALUES, _PARAMS)).one()
        mapped = (await conn.execute(_VALUES, _PARAMS)).mappings().one()
        first = (await conn.execute(_VALUES, _PARAMS)).scalar_one_or_none()
    assert len(direct_calls) == 3 and "%(doc)s" in direct_calls[0] and "'a%%b'" in direct_calls[0]
    assert tuple(got) == tuple(want) and got._fields == want._fields
    assert dict(mapped) == dict(want._mapping)
    assert got.pct == "a%b" and got.colon == "x:y" and got.doc == {"k": [1, 2]} and got.j == [1, "x", [2]]
    assert got.arr == ["a", "b"] and got.cast_int == 7 and got.nothing is None and got.given == "ünïcode"
    assert first == 1


async def test_writes_share_the_transaction_and_count_their_rows(
    direct: AsyncEngine, scratch: str, direct_calls: list[str]
) -> None:
    insert = text(f"INSERT INTO {scratch} (id, v) SELECT g, 'x' FROM generate_series(1, :n) g")
    async with direct.begin() as conn:
        assert (await conn.execute(insert, {"n": 3})).rowcount == 3
        update = await conn.execute(
            text(f"UPDATE {scratch} SET v = :v WHERE id >= :low"), {"v": "y", "low": 2}
        )
        assert update.rowcount == 2
        # A Core statement on SQLAlchemy's path sees the direct writes: one transaction.
        ids = (await conn.execute(text(f"SELECT id FROM {scratch} WHERE v = :v").bindparams(v="y"))).scalars()
        assert sorted(ids) == [2, 3]

    async def delete_then_fail() -> None:
        async with direct.begin() as conn:
            await conn.execute(text(f"DELETE FROM {scratch} WHERE id = :id"), {"id": 1})
            raise RuntimeError("the step failed")

    with pytest.raises(RuntimeError):
        await delete_then_fail()
    async with direct.connect() as conn:
        assert (await conn.execute(text(f"SELECT count(*) FROM {scratch}"))).scalar_one() == 3
    # The insert, update and delete; the count is the first statement of its transaction
    # (below), and the bound select is not plain.
    assert len(direct_calls) == 3


async def test_outside_a_begun_transaction_the_first_statement_begins_it_and_commit_keeps_it(
    direct: AsyncEngine, scratch: str, direct_calls: list[str]
) -> None:
    async with direct.connect() as conn:
        await conn.execute(text(f"INSERT INTO {scratch} (id, v) VALUES (:id, :v)"), {"id": 1, "v": "a"})
        assert direct_calls == []  # SQLAlchemy's path, which begins the transaction
        await conn.execute(text(f"INSERT INTO {scratch} (id, v) VALUES (:id, :v)"), {"id": 2, "v": "b"})
        assert len(direct_calls) == 1
        await conn.commit()
    async with direct.connect() as conn:
        assert (await conn.execute(text(f"SELECT count(*) FROM {scratch}"))).scalar_one() == 2


async def test_a_driver_error_is_sqlalchemys_exception_and_the_transaction_rolls_back(
    direct: AsyncEngine, scratch: str, direct_calls: list[str]
) -> None:
    insert = text(f"INSERT INTO {scratch} (id, v) VALUES (:id, :v)")
    async with direct.begin() as conn:
        await conn.execute(insert, {"id": 1, "v": "a"})

    async def insert_twice() -> None:
        async with direct.begin() as conn:
            await conn.execute(insert, {"id": 2, "v": "b"})
            await conn.execute(insert, {"id": 1, "v": "again"})

    with pytest.raises(exc.IntegrityError) as raised:
        await insert_twice()
    assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
    assert "again" not in str(raised.value)  # hide_parameters: no values in the message
    assert len(direct_calls) == 3
    async with direct.connect() as conn:
        assert (await conn.execute(text(f"SELECT id FROM {scratch}"))).scalars().all() == [1]


async def test_a_lost_connection_invalidates_it_and_the_next_checkout_works(direct: AsyncEngine) -> None:
    async with direct.connect() as conn:
        await conn.execute(text("SELECT 1"))  # begins
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with make_async_engine(str(direct.url).replace("+psycopg", ""), pool_size=1).begin() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(exc.OperationalError) as raised:
            await conn.execute(text("SELECT :x AS x"), {"x": 1})
        assert raised.value.connection_invalidated
    async with direct.begin() as conn:
        assert (await conn.execute(text("SELECT :x AS x"), {"x": 2})).scalar_one() == 2


async def test_what_only_sqlalchemy_can_run_takes_its_path(
    direct: AsyncEngine, direct_calls: list[str]
) -> None:
    async with direct.begin() as conn:
        typed = text("SELECT :n AS n").bindparams(bindparam("n", type_=psql_int()))
        assert (await conn.execute(typed, {"n": 5})).scalar_one() == 5
        expanding = text("SELECT count(*) FROM unnest(ARRAY[1, 2, 3]) x WHERE x IN :xs").bindparams(
            bindparam("xs", expanding=True)
        )
        assert (await conn.execute(expanding, {"xs": [1, 3]})).scalar_one() == 2
        assert (await conn.execute(text("SELECT :x AS x"), [{"x": 1}])).rowcount in (-1, 1)  # executemany
        options = await conn.execute(
            text("SELECT :x AS x"), {"x": 1}, execution_options={"compiled_cache": None}
        )
        assert options.scalar_one() == 1
        with pytest.raises(exc.StatementError, match="value is required for bind parameter 'missing'"):
            await conn.execute(text("SELECT :missing AS m"), {})
    assert direct_calls == []


async def test_a_cursor_listener_sees_every_statement(direct: AsyncEngine, direct_calls: list[str]) -> None:
    """Tracing and the tests' statement counters listen to cursor events: SQLAlchemy's path."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(direct.sync_engine, "before_cursor_execute", record)
    try:
        async with direct.begin() as conn:
            assert (await conn.execute(text("SELECT :x AS x"), {"x": 1})).scalar_one() == 1
    finally:
        event.remove(direct.sync_engine, "before_cursor_execute", record)
    assert seen == ["SELECT %(x)s AS x"] and direct_calls == []
    async with direct.begin() as conn:
        assert (await conn.execute(text("SELECT :x AS x"), {"x": 1})).scalar_one() == 1
    assert direct_calls == ["SELECT %(x)s AS x"]


def psql_int() -> Any:
    from sqlalchemy import Integer

    return Integer()
