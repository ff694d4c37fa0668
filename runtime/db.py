"""Database engines. The API and activities use one async engine per process
(psycopg 3, pooled); migrations and CLI checks use a sync engine on the same URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import psycopg
from psycopg._preparing import PrepareManager
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime.direct_sql import direct


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (what people and compose files write) and use psycopg 3."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a libpq URL, for a psycopg connection of its own (outside any
    SQLAlchemy pool: the API's LISTEN connection)."""
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class PreparedKeptConnection(psycopg.AsyncConnection[Any]):
    """A psycopg connection that keeps its prepared statements across a ROLLBACK of a
    transaction in which no statement failed.

    psycopg prepares a statement on the server once a session has run it five times, and
    forgets every one of them (sending DEALLOCATE ALL) at each ROLLBACK, in case the
    transaction dropped or altered what they refer to. Our pooled sessions roll back often
    (an API read that commits nothing, a step refused by a rule) and never run DDL that a
    rollback could undo (migrations run on their own connections), so with psycopg's
    default most statements were parsed and planned anew at every execution: measured in
    Postgres's log under the order benchmark, 80 % of all statements ran unprepared (about
    60 % of the worker's, 75-99 % of the API's), and parse and plan took more of Postgres's
    time than execution (docs/performance.md, *Prepared statements kept across a
    rollback*). Postgres keeps a session's prepared statements through a rollback (they are
    not transactional) and re-plans one whose tables changed.

    After a failed statement (the transaction in error) the rollback is psycopg's own,
    forgetting them all: that is what removes a statement Postgres now refuses ("cached
    plan must not change result type", after a migration changed a table's columns) and one
    whose preparing execution failed. The same refusal outside a transaction clears the
    session's statements through `forget_refused_plans`. DEALLOCATE ALL, DISCARD ALL and
    DROP sent as statements clear them as before (psycopg's own check of their results)."""

    def _rollback_gen(self) -> Generator[Any, Any, None]:
        if self.pgconn.transaction_status != TransactionStatus.INTRANS:
            yield from super()._rollback_gen()
            return
        kept, self._prepared = self._prepared, PrepareManager()
        try:
            yield from super()._rollback_gen()
        finally:
            self._prepared = kept


_REFUSED_PLAN = "cached plan must not change result type"


def forget_refused_plans(context: ExceptionContext) -> None:
    """SQLAlchemy's `handle_error`: when Postgres refuses a prepared statement whose result
    would change shape, the session forgets its prepared statements (DEALLOCATE ALL after
    its next statement), so that the caller's retry runs it afresh. In a transaction the
    rollback does the same; this covers statements run in autocommit (`single_read`)."""
    error = context.original_exception
    if not (isinstance(error, psycopg.errors.FeatureNotSupported) and _REFUSED_PLAN in str(error)):
        return
    connection = context.connection
    driver = connection.connection.driver_connection if connection is not None else None
    if isinstance(driver, psycopg.AsyncConnection):
        driver._prepared.clear()


def _connector(url: str, connect_args: Mapping[str, str]) -> Callable[[], Awaitable[PreparedKeptConnection]]:
    conninfo = make_conninfo(libpq_url(url), **connect_args)

    async def connect() -> PreparedKeptConnection:
        return await PreparedKeptConnection.connect(conninfo)

    return connect


def make_async_engine(
    url: str,
    pool_size: int = 10,
    application_name: str = "omniflow",
    session_settings: Mapping[str, str] | None = None,
) -> AsyncEngine:
    """`session_settings`: Postgres settings every session of the pool starts with (set once
    per connection, not by a statement in every transaction)."""
    # application_name: shown in pg_stat_activity and the server log, which process a session
    # belongs to.
    connect_args = {"application_name": application_name}
    if session_settings:
        connect_args["options"] = " ".join(f"-c {name}={value}" for name, value in session_settings.items())
    # Plain text() statements skip SQLAlchemy's execution machinery (runtime.direct_sql).
    engine = direct(
        create_async_engine(
            sqlalchemy_url(url),
            async_creator=_connector(url, connect_args),
            pool_size=pool_size,
            max_overflow=pool_size,
            # No ping before each checkout: it was a third of all our statements. A connection
            # the server dropped fails its first statement instead; SQLAlchemy then discards the
            # whole pool, the activity retries and the API answers 503 with Retry-After.
            pool_pre_ping=False,
            pool_recycle=1800,
            # An error's text names the statement, never its values (emails, addresses, payment
            # references would reach the logs through a failed statement's exception).
            hide_parameters=True,
        )
    )
    event.listen(engine.sync_engine, "handle_error", forget_refused_plans)
    return engine


def make_sync_engine(url: str, pool_size: int = 5) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_size=pool_size, pool_pre_ping=True, hide_parameters=True)
