"""A process's timeline table (`po_event`, `return_event`): the events a reader sees, and
the idempotency record of each workflow step (an event with the step's key). One pair of
statements for every process that keeps one."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

OWNER_COLUMN = {"po_event": "po_number", "return_event": "return_number"}  # table -> its owner's key


async def step_result(conn: AsyncConnection, table: str, key: str) -> dict[str, Any] | None:
    """What the step with this key recorded, if it has run."""
    sql = text(f"SELECT detail FROM {table} WHERE key = :step_key")  # noqa: S608 - table from OWNER_COLUMN
    OWNER_COLUMN[table]
    found = (await conn.execute(sql, {"step_key": key})).first()
    return dict(found.detail) if found is not None else None


async def add_event(
    conn: AsyncConnection, table: str, owner: str, key: str | None, event: str, detail: dict[str, Any]
) -> None:
    sql = text(
        f"INSERT INTO {table} ({OWNER_COLUMN[table]}, key, event, detail, at)"  # noqa: S608 - table from OWNER_COLUMN
        " VALUES (:owner, :step_key, :event, CAST(:detail AS jsonb), now())"
    )
    params = {"owner": owner, "step_key": key, "event": event, "detail": json.dumps(detail, default=str)}
    await conn.execute(sql, params)
