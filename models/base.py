from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Opaque, sortable-enough, URL-safe ids: `key_3q9…`."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


async def stored_row(conn: AsyncConnection, table: str, columns: str, **key: Any) -> dict[str, Any] | None:
    """`columns` of the row of `table` with this key, as a plain dict (what the audit trail
    keeps as a change's `before`); None when there is none. Names are ours, never input."""
    where = " AND ".join(f"{name} = :{name}" for name in key)
    row = (await conn.execute(text(f"SELECT {columns} FROM {table} WHERE {where}"), key)).first()  # noqa: S608
    return None if row is None else dict(row._mapping)


def created_at_field() -> datetime:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[no-any-return]
