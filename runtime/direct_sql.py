"""Textual statements run on psycopg directly, inside SQLAlchemy's transaction.

Our SQL is written as `text()` with `:name` parameters, and on these machines SQLAlchemy's
async execution of one such statement costs about 2.7 times the CPU of the same statement
sent by psycopg itself (bench/direct_sql.py measures both, side by side): a greenlet per
call, an execution context and a cursor result, none of which a plain `text()` needs. An
order runs about 90 statements in the worker and 30 in the API.

`DirectAsyncConnection.execute` takes the short way for a plain `text()` — parameters
named and untyped, one dict of them, no execution options, nobody listening to cursor
events (tracing and the tests' statement counters do, and then get SQLAlchemy's own path)
— inside a transaction SQLAlchemy has begun. It sends the statement SQLAlchemy compiled
for psycopg (compiled once per SQL text) on the connection's own psycopg connection, so it
is the same transaction, the same prepared-statement cache and the same type adaptation,
and answers a real SQLAlchemy `Result` (rows with attributes, `_mapping`, `scalars()`,
`rowcount`). A driver error goes through SQLAlchemy's own handler, so callers see the same
`IntegrityError`, and a lost connection invalidates the pool as before. Everything else
(ORM, Core constructs, typed or expanding parameters, executemany) is SQLAlchemy's path
unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util.concurrency import greenlet_spawn


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str  # as compiled for psycopg: %(name)s placeholders, literal % doubled
    names: frozenset[str]


class DirectResult(IteratorResult[Any]):
    """The rows a direct statement answered, and how many rows it changed."""

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        super().__init__(_metadata(keys), iter(rows))
        self.rowcount = rowcount


@lru_cache(maxsize=2048)
def _metadata(keys: tuple[str, ...]) -> SimpleResultMetaData:
    return SimpleResultMetaData(keys)


_plans: dict[tuple[str, str], _Plan | None] = {}


def _plan(statement: TextClause, dialect: Dialect) -> _Plan | None:
    """How to send this text directly, or None when only SQLAlchemy's path will do."""
    cache_key = (statement.text, dialect.name)
    if cache_key in _plans:
        found = _plans[cache_key]
        # Same SQL text, but bound with types or expanded elsewhere: not the cached plan.
        return found if found is not None and _plain(statement) else None
    plan = _compile(statement, dialect) if _plain(statement) else None
    if len(_plans) < 4096:  # our statements are a fixed set; a runaway of ad-hoc SQL is not cached
        _plans[cache_key] = plan
    return plan


def _plain(statement: TextClause) -> bool:
    return all(
        b.type._isnull and not b.expanding and b.callable is None for b in statement._bindparams.values()
    )


def _compile(statement: TextClause, dialect: Dialect) -> _Plan | None:
    if dialect.paramstyle != "pyformat":
        return None
    compiled = statement.compile(dialect=dialect)
    return _Plan(compiled.string, frozenset(statement._bindparams))


class DirectAsyncConnection(AsyncConnection):
    __slots__ = ()

    async def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any:
        params = {} if parameters is None else parameters
        if type(statement) is TextClause and execution_options is None and isinstance(params, Mapping):
            plan = _plan(statement, self.dialect)
            if plan is not None and plan.names <= params.keys() and self._direct_ready():
                return await self._direct(plan, params)
        return await super().execute(statement, parameters, execution_options=execution_options)

    def _direct_ready(self) -> bool:
        sync = self.sync_connection
        if sync is None or sync.invalidated or sync.closed or not sync.in_transaction():
            return False
        dispatch = sync.dispatch
        return not (dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    async def _direct(self, plan: _Plan, params: Mapping[str, Any]) -> DirectResult:
        sync = self.sync_connection
        assert sync is not None
        driver: psycopg.AsyncConnection[Any] = sync.connection.driver_connection  # type: ignore[assignment]
        cursor = driver.cursor()
        try:
            await cursor.execute(plan.sql, params)
            description = cursor.description
            rows = await cursor.fetchall() if description is not None else []
            rowcount = cursor.rowcount  # gone once the cursor is closed
        except psycopg.Error as e:
            # SQLAlchemy's own handling: the same exception classes, and a disconnect
            # invalidates the connection and the pool. It raises.
            await greenlet_spawn(sync._handle_dbapi_exception, e, plan.sql, dict(params), None, None)
            raise  # pragma: no cover - the handler always raises
        finally:
            await cursor.close()
        keys = tuple(c.name for c in description) if description is not None else ()
        return DirectResult(keys, rows, rowcount)


class DirectAsyncEngine(AsyncEngine):
    """An AsyncEngine whose connections run plain `text()` statements directly."""

    __slots__ = ()
    _connection_cls = DirectAsyncConnection


def direct(engine: AsyncEngine) -> DirectAsyncEngine:
    return DirectAsyncEngine(engine.sync_engine)
