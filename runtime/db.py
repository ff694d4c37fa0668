"""Database engines. The API and activities use one async engine per process
(psycopg 3, pooled); migrations and CLI checks use a sync engine on the same URL."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
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
    return direct(
        create_async_engine(
            sqlalchemy_url(url),
            connect_args=connect_args,
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


def make_sync_engine(url: str, pool_size: int = 5) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_size=pool_size, pool_pre_ping=True, hide_parameters=True)
